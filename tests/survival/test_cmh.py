"""The Cochran-Mantel-Haenszel odds ratio and exact response rates."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from carkin._karmma3 import ARMS, N_RANDOMIZED, N_RESPONDERS
from carkin.errors import DataError
from carkin.survival import cmh_odds_ratio, response_rate


def _from_tables(tables):
    """One row per subject from 2x2 tables [[a, b], [c, d]]: rows treatment/control, columns responder/not."""
    rows = []
    for h, table in enumerate(tables):
        for arm, counts in zip(("trt", "ctl"), table, strict=True):
            for responded, count in zip((1, 0), counts, strict=True):
                rows += [{"stratum": h, "arm": arm, "resp": responded}] * count
    return pd.DataFrame(rows)


THREE_STRATA = [[[12, 5], [6, 9]], [[20, 8], [10, 10]], [[7, 7], [3, 9]]]


class TestAgainstReferences:
    def test_three_strata_match_statsmodels_stratified_table(self):
        # statsmodels 0.15 (installed only to produce these numbers):
        #   t = StratifiedTable([np.array(x) for x in THREE_STRATA])
        #   t.oddsratio_pooled, t.logodds_pooled_se, t.oddsratio_pooled_confint(),
        #   t.test_null_odds(correction=False), t.test_null_odds(correction=True)
        df = _from_tables(THREE_STRATA)
        result = cmh_odds_ratio(df, response="resp", group="arm", strata="stratum", groups=("trt", "ctl"))
        assert result.odds_ratio == pytest.approx(2.9206200093940815, rel=1e-12)
        assert result.log_or_se == pytest.approx(0.4137983314023368, rel=1e-12)
        assert (result.ci_low, result.ci_high) == pytest.approx((1.2979240446019362, 6.572049631678701), rel=1e-12)
        assert result.statistic == pytest.approx(6.701667027995773, rel=1e-12)
        assert result.p_value == pytest.approx(0.00963228120605042, rel=1e-10)
        corrected = cmh_odds_ratio(
            df, response="resp", group="arm", strata="stratum", groups=("trt", "ctl"), correction=True
        )
        assert corrected.statistic == pytest.approx(5.717979508971551, rel=1e-12)

    def test_three_strata_by_hand(self):
        # Mantel-Haenszel: sum(ad/n) / sum(bc/n) = (108/32 + 200/48 + 63/26) / (30/32 + 80/48 + 21/26)
        df = _from_tables(THREE_STRATA)
        result = cmh_odds_ratio(df, response="resp", group="arm", strata="stratum", groups=("trt", "ctl"))
        assert result.odds_ratio == pytest.approx(
            (108 / 32 + 200 / 48 + 63 / 26) / (30 / 32 + 80 / 48 + 21 / 26), rel=1e-12
        )

    def test_one_stratum_reduces_to_the_sample_odds_ratio_and_woolf_interval(self):
        # With one table the Robins-Breslow-Greenland variance is Woolf's 1/a + 1/b + 1/c + 1/d, and the CMH
        # statistic is (n - 1)/n times Pearson's chi-square.
        a, b, c, d = 30, 10, 15, 20
        df = _from_tables([[[a, b], [c, d]]])
        result = cmh_odds_ratio(df, response="resp", group="arm", groups=("trt", "ctl"))
        assert result.odds_ratio == pytest.approx(a * d / (b * c), rel=1e-12)
        assert result.log_or_se == pytest.approx(np.sqrt(1 / a + 1 / b + 1 / c + 1 / d), rel=1e-12)
        pearson = stats.chi2_contingency([[a, b], [c, d]], correction=False)[0]
        n = a + b + c + d
        assert result.statistic == pytest.approx(pearson * (n - 1) / n, rel=1e-12)

    def test_the_order_of_the_groups_inverts_the_ratio(self):
        df = _from_tables(THREE_STRATA)
        forward = cmh_odds_ratio(df, response="resp", group="arm", strata="stratum", groups=("trt", "ctl"))
        backward = cmh_odds_ratio(df, response="resp", group="arm", strata="stratum", groups=("ctl", "trt"))
        assert backward.odds_ratio == pytest.approx(1 / forward.odds_ratio, rel=1e-12)
        assert backward.ci_high == pytest.approx(1 / forward.ci_low, rel=1e-12)
        assert backward.p_value == pytest.approx(forward.p_value, rel=1e-12)

    def test_a_stratum_with_one_subject_adds_nothing(self):
        df = _from_tables(THREE_STRATA)
        lone = pd.DataFrame([{"stratum": 9, "arm": "trt", "resp": 1}])
        with_lone = cmh_odds_ratio(
            pd.concat([df, lone]), response="resp", group="arm", strata="stratum", groups=("trt", "ctl")
        )
        assert with_lone.odds_ratio == pytest.approx(2.9206200093940815, rel=1e-12)
        assert with_lone.n_strata == 3


class TestErrors:
    def test_exactly_two_groups_are_needed(self):
        df = _from_tables(THREE_STRATA)
        df.loc[0, "arm"] = "third"
        with pytest.raises(DataError, match=r"column arm: the CMH odds ratio compares exactly two groups"):
            cmh_odds_ratio(df, response="resp", group="arm")

    def test_a_non_binary_response_names_the_row(self):
        df = _from_tables(THREE_STRATA)
        df.loc[4, "resp"] = 3
        with pytest.raises(DataError, match=r"row 6, column resp: non-binary response value 3"):
            cmh_odds_ratio(df, response="resp", group="arm", strata="stratum")

    def test_an_infinite_odds_ratio_is_rejected(self):
        df = _from_tables([[[5, 0], [3, 4]]])
        with pytest.raises(DataError, match=r"column resp: the Mantel-Haenszel odds ratio is infinite"):
            cmh_odds_ratio(df, response="resp", group="arm", groups=("trt", "ctl"))


class TestResponseRate:
    def test_karmma3_published_response_rates_with_exact_intervals(self):
        # [RodriguezOtero2023] (docs/references.md): 181/254 = 71% (95% CI 66-77) and 55/132 = 42% (33-50). Those
        # published bounds are what the normal (Wald) interval gives (65.7-76.8, 33.3-50.1); the exact
        # Clopper-Pearson interval used here is a point wider at one end: 65.3-76.7 and 33.2-50.6.
        responders, randomized = N_RESPONDERS, N_RANDOMIZED
        df = pd.DataFrame({
            "arm": [arm for arm in ARMS for _ in range(randomized[arm])],
            "resp": [int(i < responders[arm]) for arm in ARMS for i in range(randomized[arm])],
        })
        rates = response_rate(df, response="resp", group="arm")
        expected = {arm: (responders[arm], randomized[arm], rate, low, high)
                    for arm, rate, low, high in (("ide-cel", 71, 65.3, 76.7), ("standard", 42, 33.2, 50.6))}
        for arm, (k, n, rate, low, high) in expected.items():
            r = rates[arm]
            assert (r.responders, r.n, round(100 * r.rate)) == (k, n, rate)
            assert (round(100 * r.ci_low, 1), round(100 * r.ci_high, 1)) == (low, high)

    def test_clopper_pearson_is_the_beta_quantile_closed_form(self):
        k, n = 7, 20
        rate = response_rate(pd.DataFrame({"resp": [1] * k + [0] * (n - k)}), response="resp")["all"]
        assert rate.ci_low == pytest.approx(stats.beta.ppf(0.025, k, n - k + 1), rel=1e-10)
        assert rate.ci_high == pytest.approx(stats.beta.ppf(0.975, k + 1, n - k), rel=1e-10)
