"""Log-rank tests: a hand-computed example, lifelines, R, the stratified sum and the trend test."""

import numpy as np
import pandas as pd
import pytest
from lifelines.statistics import logrank_test as lifelines_logrank, multivariate_logrank_test
from scipy import stats

from carkin.survival import logrank_test, logrank_trend_test

from . import reference as ref


def _loop_logrank(times, events, groups, labels):
    """O, E and Cov(O - E) by the 2 x k table at each event time, written with plain loops (independent)."""
    k = len(labels)
    observed, expected, variance = np.zeros(k), np.zeros(k), np.zeros((k, k))
    records = list(zip(times, events, groups, strict=True))
    for t in sorted({ti for ti, ei, _ in records if ei == 1}):
        at_risk = np.array([sum(1 for ti, _, gi in records if gi == g and ti >= t) for g in labels], float)
        deaths = np.array([sum(1 for ti, ei, gi in records if gi == g and ti == t and ei == 1) for g in labels], float)
        n, d = at_risk.sum(), deaths.sum()
        observed += deaths
        expected += d * at_risk / n
        if n > 1:
            for j in range(k):
                for m in range(k):
                    variance[j, m] += d * (n - d) / (n - 1) * at_risk[j] / n * ((j == m) - at_risk[m] / n)
    return observed, expected, variance


def _random(n=150, k=2, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, k, n)
    t = rng.exponential(1 / (0.1 * (1 + 0.3 * g)))
    c = rng.uniform(0, 20, n)
    time = np.minimum(t, c)
    if ties:
        time = np.ceil(time)
    return pd.DataFrame({"t": time, "e": (t <= c).astype(int), "g": g, "s": rng.integers(0, 3, n)})


class TestHandComputed:
    def test_six_subjects_by_hand(self):
        # A: 1 (event), 3 (event), 5 (censored); B: 2, 4, 6 (events). At each event time (n_A, n_B, deaths):
        #   t=1: (3, 3, 1 in A)  E_A = 3/6,  V = 1 * 5/5 * 3*3/36 = 0.25
        #   t=2: (2, 3, 1 in B)  E_A = 2/5,  V = 1 * 4/4 * 2*3/25 = 0.24
        #   t=3: (2, 2, 1 in A)  E_A = 2/4,  V = 1 * 3/3 * 2*2/16 = 0.25
        #   t=4: (1, 2, 1 in B)  E_A = 1/3,  V = 1 * 2/2 * 1*2/9  = 2/9
        #   t=6: (0, 1, 1 in B)  E_A = 0,    V = 0
        # O_A = 2, E_A = 26/15, O - E = 4/15, V = 433/450, chi2 = (4/15)^2 / (433/450) = 32/433
        df = pd.DataFrame({"t": [1, 3, 5, 2, 4, 6], "e": [1, 1, 0, 1, 1, 1], "arm": list("AAABBB")})
        result = logrank_test(df, time="t", event="e", group="arm")
        assert result.statistic == pytest.approx(32 / 433, rel=1e-12)
        assert result.groups[0].expected == pytest.approx(26 / 15, rel=1e-12)
        assert result.groups[1].expected == pytest.approx(5 - 26 / 15, rel=1e-12)  # 5 events in all
        assert result.variance[0, 0] == pytest.approx(433 / 450, rel=1e-12)
        assert result.z == pytest.approx((4 / 15) / np.sqrt(433 / 450), rel=1e-12)  # A: more events than expected
        assert result.df == 1 and result.p_value == pytest.approx(stats.chi2.sf(32 / 433, 1), rel=1e-12)

    def test_z_is_negative_when_the_first_group_has_fewer_events_than_expected(self):
        df = pd.DataFrame({"t": [1, 3, 5, 2, 4, 6], "e": [1, 1, 0, 1, 1, 1], "arm": list("AAABBB")})
        assert logrank_test(df, time="t", event="e", group="arm", groups=["B", "A"]).z < 0


class TestAgainstOtherSoftware:
    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_two_groups_match_lifelines(self, seed):
        df = _random(seed=seed, ties=seed == 2)
        result = logrank_test(df, time="t", event="e", group="g")
        a, b = df[df.g == 0], df[df.g == 1]
        expected = lifelines_logrank(a.t, b.t, a.e, b.e)
        assert result.statistic == pytest.approx(expected.test_statistic, rel=1e-8)
        assert result.p_value == pytest.approx(expected.p_value, rel=1e-8)

    def test_three_groups_match_lifelines_multivariate(self):
        df = _random(n=300, k=3, seed=3)
        result = logrank_test(df, time="t", event="e", group="g")
        expected = multivariate_logrank_test(df.t, df.g, df.e)
        assert result.statistic == pytest.approx(expected.test_statistic, rel=1e-8)
        assert result.df == 2 and result.z is None

    def test_tied_data_match_r_survdiff(self):
        result = logrank_test(ref.tied_data(), time="time", event="event", group="x1")
        assert result.statistic == pytest.approx(ref.LOGRANK_CHISQ, abs=1e-9)
        assert [g.observed for g in result.groups] == list(ref.LOGRANK_OBSERVED)
        assert [g.expected for g in result.groups] == pytest.approx(ref.LOGRANK_EXPECTED, abs=1e-9)
        assert result.variance[0, 0] == pytest.approx(ref.LOGRANK_VARIANCE, abs=1e-9)

    def test_stratified_tied_data_match_r_survdiff(self):
        result = logrank_test(ref.tied_data(), time="time", event="event", group="x1", strata="s")
        assert result.statistic == pytest.approx(ref.STRATIFIED_LOGRANK_CHISQ, abs=1e-9)
        assert result.n_strata == 2


class TestStratified:
    def test_stratified_statistic_is_the_sum_over_strata_of_o_minus_e_and_v(self):
        df = _random(n=200, seed=4, ties=True)
        result = logrank_test(df, time="t", event="e", group="g", strata="s")
        o_minus_e, v = 0.0, 0.0
        for _, part in df.groupby("s"):
            o, e, var = _loop_logrank(part.t.tolist(), part.e.tolist(), part.g.tolist(), [0, 1])
            o_minus_e += o[0] - e[0]
            v += var[0, 0]
        assert result.statistic == pytest.approx(o_minus_e**2 / v, rel=1e-10)
        assert result.z == pytest.approx(o_minus_e / np.sqrt(v), rel=1e-10)
        assert result.n_strata == 3

    def test_several_strata_columns_are_cross_classified(self):
        df = _random(n=200, seed=5).assign(s2=lambda d: (d.t > 5).astype(int) * 0 + np.arange(len(d)) % 2)
        result = logrank_test(df, time="t", event="e", group="g", strata=["s", "s2"])
        crossed = logrank_test(df.assign(c=df.s * 10 + df.s2), time="t", event="e", group="g", strata="c")
        assert result.n_strata == 6
        assert result.statistic == pytest.approx(crossed.statistic, rel=1e-12)

    def test_three_groups_stratified_use_the_summed_covariance(self):
        df = _random(n=300, k=3, seed=6)
        result = logrank_test(df, time="t", event="e", group="g", strata="s")
        o_e, v = np.zeros(3), np.zeros((3, 3))
        for _, part in df.groupby("s"):
            o, e, var = _loop_logrank(part.t.tolist(), part.e.tolist(), part.g.tolist(), [0, 1, 2])
            o_e, v = o_e + o - e, v + var
        assert result.statistic == pytest.approx(o_e[:2] @ np.linalg.solve(v[:2, :2], o_e[:2]), rel=1e-10)


class TestTrend:
    def test_trend_statistic_matches_the_weighted_sum_computed_by_hand(self):
        df = _random(n=300, k=4, seed=7, ties=True)
        scores = [1.0, 2.0, 3.0, 4.0]
        result = logrank_trend_test(df, time="t", event="e", group="g")
        o, e, v = _loop_logrank(df.t.tolist(), df.e.tolist(), df.g.tolist(), [0, 1, 2, 3])
        w = np.array(scores)
        u = w @ (o - e)
        assert result.u == pytest.approx(u, rel=1e-10)
        assert result.variance == pytest.approx(w @ v @ w, rel=1e-10)
        assert result.statistic == pytest.approx(u**2 / (w @ v @ w), rel=1e-10)
        assert result.p_value == pytest.approx(stats.chi2.sf(u**2 / (w @ v @ w), 1), rel=1e-8)

    def test_trend_detects_hazards_rising_with_the_score(self):
        rng = np.random.default_rng(8)
        g = np.repeat([1, 2, 3, 4], 150)
        t = rng.exponential(1 / (0.1 * 1.4**g))
        result = logrank_trend_test(
            pd.DataFrame({"t": t, "e": 1, "q": g}), time="t", event="e", group="q", scores=[1, 2, 3, 4]
        )
        assert result.z > 3 and result.p_value < 0.01

    def test_with_two_groups_the_trend_test_is_the_log_rank_test(self):
        df = _random(seed=9)
        trend = logrank_trend_test(df, time="t", event="e", group="g", scores=[0.0, 5.0])
        assert trend.statistic == pytest.approx(logrank_test(df, time="t", event="e", group="g").statistic, rel=1e-12)

    def test_stratified_trend_sums_over_strata(self):
        df = _random(n=300, k=3, seed=10)
        result = logrank_trend_test(df, time="t", event="e", group="g", strata="s", scores=[0, 1, 3])
        w, u, var = np.array([0.0, 1.0, 3.0]), 0.0, 0.0
        for _, part in df.groupby("s"):
            o, e, v = _loop_logrank(part.t.tolist(), part.e.tolist(), part.g.tolist(), [0, 1, 2])
            u, var = u + w @ (o - e), var + w @ v @ w
        assert result.z == pytest.approx(u / np.sqrt(var), rel=1e-10)

    def test_scores_must_match_the_groups(self):
        with pytest.raises(ValueError, match=r"scores=\[1, 2\] must hold one finite number per group \[0, 1, 2\]"):
            logrank_trend_test(_random(k=3), time="t", event="e", group="g", scores=[1, 2])


def test_result_serialises_to_stable_keys():
    d = logrank_test(_random(), time="t", event="e", group="g", strata="s").to_dict()
    assert set(d) == {"analysis", "group", "strata", "n_strata", "statistic", "df", "p_value", "z", "groups"}
    assert set(d["groups"][0]) == {"label", "n", "observed", "expected"}
