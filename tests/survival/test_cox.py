"""Cox regression: lifelines for Efron, a hand-derived Breslow likelihood, R's coxph, and simulated hazard ratios."""

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter
from scipy import optimize

from carkin.errors import DataError
from carkin.survival import cox_ph

from . import reference as ref


def _exponential_ph(n, log_hr, seed, strata_effect=0.0):
    """Exponential times with a binary treatment of hazard ratio exp(log_hr) and a stratum effect."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, n).astype(float)
    s = rng.integers(0, 2, n)
    rate = 0.1 * np.exp(log_hr * x + strata_effect * s)
    t = rng.exponential(1 / rate)
    c = rng.uniform(0, 30, n)
    return pd.DataFrame({"t": np.minimum(t, c), "e": (t <= c).astype(int), "x": x, "s": s, "z": rng.normal(size=n)})


class TestEfronThroughLifelines:
    def test_estimates_match_coxphfitter(self):
        df = _exponential_ph(300, -0.5, seed=0)
        result = cox_ph(df, time="t", event="e", covariates=["x", "z"])
        cph = CoxPHFitter().fit(df[["t", "e", "x", "z"]], duration_col="t", event_col="e")
        for name in ("x", "z"):
            assert result[name].coef == pytest.approx(cph.params_[name], rel=1e-10)
            assert result[name].se == pytest.approx(cph.standard_errors_[name], rel=1e-10)
            assert result[name].p_value == pytest.approx(cph.summary.loc[name, "p"], rel=1e-8)
            assert result[name].hr_ci_low == pytest.approx(cph.summary.loc[name, "exp(coef) lower 95%"], rel=1e-8)
        assert result.concordance == pytest.approx(cph.concordance_index_, rel=1e-10)
        assert result.log_likelihood == pytest.approx(cph.log_likelihood_, rel=1e-10)
        assert result.n == 300 and result.n_events == df.e.sum()

    @pytest.mark.parametrize("strata", [None, "s"])
    def test_tied_data_match_r_coxph_efron(self, strata):
        expected = ref.COX[("efron", strata)]
        result = cox_ph(ref.tied_data(), time="time", event="event", covariates=["x1", "x2"], strata=strata)
        # lifelines stops Newton-Raphson a little earlier than R: agreement to ~1e-6
        assert [c.coef for c in result.coefficients] == pytest.approx(expected["coef"], abs=1e-5)
        assert [c.se for c in result.coefficients] == pytest.approx(expected["se"], abs=1e-5)
        if strata is None:
            assert result.log_likelihood == pytest.approx(expected["loglik"], abs=1e-6)
            assert result.concordance == pytest.approx(expected["concordance"], abs=1e-9)

    @pytest.mark.parametrize("strata", [None, "s"])
    def test_robust_se_with_ties_matches_r_not_lifelines(self, strata):
        # lifelines' own sandwich ignores ties (0.371 instead of R's 0.389 for x1 here); carkin's uses Efron
        # score residuals
        expected = ref.COX[("efron", strata)]
        result = cox_ph(
            ref.tied_data(), time="time", event="event", covariates=["x1", "x2"], strata=strata, robust=True
        )
        assert [c.se for c in result.coefficients] == pytest.approx(expected["robust_se"], abs=1e-5)
        assert result.robust

    def test_robust_se_without_ties_matches_lifelines(self):
        df = _exponential_ph(200, 0.4, seed=1)
        result = cox_ph(df, time="t", event="e", covariates=["x", "z"], robust=True)
        cph = CoxPHFitter().fit(df[["t", "e", "x", "z"]], duration_col="t", event_col="e", robust=True)
        assert [c.se for c in result.coefficients] == pytest.approx(cph.standard_errors_[["x", "z"]].tolist(), rel=1e-6)


class TestBreslow:
    def test_five_subjects_by_hand(self):
        # times 1, 1, 2, 3, 4+ with x = 1, 0, 1, 0, 1. Breslow partial log-likelihood (risk sets by hand):
        #   t=1: all five (three x=1, two x=0), deaths x=1 and x=0:  b - 2 log(3 e^b + 2)
        #   t=2: subjects 3, 4, 5 (two x=1, one x=0), death x=1:      b - log(2 e^b + 1)
        #   t=3: subjects 4, 5 (one each), death x=0:                 -log(e^b + 1)
        df = pd.DataFrame({"t": [1, 1, 2, 3, 4], "e": [1, 1, 1, 1, 0], "x": [1.0, 0, 1, 0, 1]})

        def score(b):
            u = np.exp(b)
            return 2 - 2 * 3 * u / (3 * u + 2) - 2 * u / (2 * u + 1) - u / (u + 1)

        def information(b):
            u = np.exp(b)
            return 2 * 3 * 2 * u / (3 * u + 2) ** 2 + 2 * u / (2 * u + 1) ** 2 + u / (u + 1) ** 2

        b_hat = optimize.brentq(score, -10, 10, xtol=1e-14)
        result = cox_ph(df, time="t", event="e", covariates="x", ties="breslow")
        assert result["x"].coef == pytest.approx(b_hat, abs=1e-9)
        assert result["x"].se == pytest.approx(1 / np.sqrt(information(b_hat)), rel=1e-8)
        u = np.exp(b_hat)
        loglik = 2 * b_hat - 2 * np.log(3 * u + 2) - np.log(2 * u + 1) - np.log(u + 1)
        assert result.log_likelihood == pytest.approx(loglik, rel=1e-10)
        efron = cox_ph(df, time="t", event="e", covariates="x")
        assert abs(efron["x"].coef - b_hat) > 1e-3  # the tie at t=1 matters

    @pytest.mark.parametrize("strata", [None, "s"])
    @pytest.mark.parametrize("robust", [False, True])
    def test_tied_data_match_r_coxph_breslow(self, strata, robust):
        expected = ref.COX[("breslow", strata)]
        result = cox_ph(
            ref.tied_data(),
            time="time",
            event="event",
            covariates=["x1", "x2"],
            strata=strata,
            ties="breslow",
            robust=robust,
        )
        assert [c.coef for c in result.coefficients] == pytest.approx(expected["coef"], abs=1e-8)
        assert [c.se for c in result.coefficients] == pytest.approx(expected["robust_se" if robust else "se"], abs=1e-8)
        if strata is None:
            assert result.log_likelihood == pytest.approx(expected["loglik"], abs=1e-8)

    def test_without_ties_breslow_equals_efron(self):
        df = _exponential_ph(250, -0.3, seed=2, strata_effect=0.5)
        for robust in (False, True):
            breslow = cox_ph(df, time="t", event="e", covariates=["x", "z"], strata="s", ties="breslow", robust=robust)
            efron = cox_ph(df, time="t", event="e", covariates=["x", "z"], strata="s", robust=robust)
            for name in ("x", "z"):
                assert breslow[name].coef == pytest.approx(efron[name].coef, abs=1e-6)
                assert breslow[name].se == pytest.approx(efron[name].se, rel=1e-5)


class TestRecoversTheTruth:
    @pytest.mark.parametrize("ties", ["efron", "breslow"])
    def test_hazard_ratio_of_an_exponential_simulation(self, ties):
        log_hr = np.log(0.5)
        df = _exponential_ph(2000, log_hr, seed=3, strata_effect=0.8)
        result = cox_ph(df, time="t", event="e", covariates=["x"], strata="s", ties=ties)
        assert abs(result["x"].coef - log_hr) < 4 * result["x"].se
        assert result["x"].hr_ci_low < 0.5 < result["x"].hr_ci_high
        assert result["x"].hazard_ratio == pytest.approx(np.exp(result["x"].coef))


class TestErrors:
    def test_unknown_ties_lists_the_choices(self):
        with pytest.raises(
            ValueError, match=r"ties='exact' \(str\) is not supported; choose one of \['breslow', 'efron'\]"
        ):
            cox_ph(_exponential_ph(50, 0, 4), time="t", event="e", covariates="x", ties="exact")

    def test_no_events_is_rejected(self):
        df = _exponential_ph(50, 0, 5).assign(e=0)
        with pytest.raises(DataError, match=r"column e: no events in the data"):
            cox_ph(df, time="t", event="e", covariates="x")

    def test_a_constant_covariate_is_rejected(self):
        df = _exponential_ph(50, 0, 6).assign(x=1.0)
        with pytest.raises(DataError, match=r"column x: covariate 'x' is constant"):
            cox_ph(df, time="t", event="e", covariates="x")

    def test_missing_covariate_values_name_the_row(self):
        df = _exponential_ph(50, 0, 7)
        df.loc[3, "z"] = np.nan
        with pytest.raises(DataError, match=r"row 5, column z: missing covariate value"):
            cox_ph(df, time="t", event="e", covariates=["x", "z"])

    def test_no_covariates_is_rejected(self):
        with pytest.raises(ValueError, match="covariates is empty"):
            cox_ph(_exponential_ph(50, 0, 8), time="t", event="e", covariates=[])


def test_result_serialises_to_stable_keys():
    d = cox_ph(_exponential_ph(100, 0.2, 9), time="t", event="e", covariates=["x", "z"]).to_dict()
    assert set(d) == {
        "analysis",
        "ties",
        "robust",
        "strata",
        "alpha",
        "n",
        "n_events",
        "concordance",
        "log_likelihood",
        "coefficients",
    }
    assert set(d["coefficients"]["x"]) == {
        "name",
        "coef",
        "se",
        "hazard_ratio",
        "hr_ci_low",
        "hr_ci_high",
        "z",
        "p_value",
    }
