"""Restricted mean survival time: closed forms, the uncensored identity, R's values, the two-group difference."""

import numpy as np
import pandas as pd
import pytest
from lifelines import KaplanMeierFitter
from lifelines.utils import restricted_mean_survival_time

from carkin.errors import DataError
from carkin.survival import rmst, rmst_difference

from . import reference as ref


def _exponential(rate, n, seed, censor_max=None):
    rng = np.random.default_rng(seed)
    t = rng.exponential(1 / rate, n)
    if censor_max is None:
        return pd.DataFrame({"t": t, "e": 1})
    c = rng.uniform(0, censor_max, n)
    return pd.DataFrame({"t": np.minimum(t, c), "e": (t <= c).astype(int)})


def _restricted_moments(rate, tau):
    """E[min(T, tau)] and Var[min(T, tau)] for T ~ exponential(rate), by integration by hand."""
    mean = (1 - np.exp(-rate * tau)) / rate
    second = 2 * (1 - np.exp(-rate * tau) * (1 + rate * tau)) / rate**2  # 2 * int_0^tau t exp(-rate t) dt
    return mean, second - mean**2


class TestMean:
    def test_rmst_of_exponential_data_is_the_closed_form(self):
        rate, tau, n = 0.2, 4.0, 3000
        estimate = rmst(_exponential(rate, n, seed=2, censor_max=20), time="t", event="e", tau=tau)["all"]
        mean, _ = _restricted_moments(rate, tau)
        assert abs(estimate.rmst - mean) < 4 * estimate.se
        assert estimate.ci_low < mean < estimate.ci_high

    def test_the_mean_is_lifelines_restricted_mean_survival_time(self):
        df = _exponential(0.3, 100, seed=3, censor_max=8)
        kmf = KaplanMeierFitter().fit(df.t, df.e)
        assert rmst(df, time="t", event="e", tau=3.0)["all"].rmst == pytest.approx(
            restricted_mean_survival_time(kmf, t=3.0), rel=1e-12
        )


class TestVariance:
    def test_without_censoring_the_variance_is_that_of_the_sample_mean_of_min_t_tau(self):
        # with no censoring the KM RMST is the sample mean of min(T, tau), and the Greenwood-type variance
        # equals its plug-in variance sum (x - mean)^2 / n^2 exactly
        df = _exponential(0.5, 50, seed=4)
        tau = 3.0
        estimate = rmst(df, time="t", event="e", tau=tau)["all"]
        x = np.minimum(df.t, tau)
        assert estimate.rmst == pytest.approx(x.mean(), rel=1e-12)
        assert estimate.se**2 == pytest.approx(x.var(ddof=0) / len(x), rel=1e-10)

    def test_the_se_of_exponential_data_is_the_closed_form(self):
        rate, tau, n = 0.2, 4.0, 4000
        estimate = rmst(_exponential(rate, n, seed=5), time="t", event="e", tau=tau)["all"]
        _, variance = _restricted_moments(rate, tau)
        assert estimate.se == pytest.approx(np.sqrt(variance / n), rel=0.05)

    def test_mean_and_se_match_r_print_survfit_rmean(self):
        data = ref.tied_data()
        estimate = rmst(data, time="time", event="event", tau=10)["all"]
        assert (estimate.rmst, estimate.se) == pytest.approx(ref.RMST_10, abs=1e-10)
        by_group = rmst(data, time="time", event="event", tau=10, group="x1")
        for label, expected in ref.RMST_10_BY_X1.items():
            assert (by_group[label].rmst, by_group[label].se) == pytest.approx(expected, abs=1e-10)


class TestDifference:
    def test_difference_is_first_minus_second_with_independent_variances(self):
        data = ref.tied_data()
        diff = rmst_difference(data, time="time", event="event", group="x1", tau=10, groups=[1, 0])
        (m1, s1), (m0, s0) = ref.RMST_10_BY_X1[1], ref.RMST_10_BY_X1[0]
        assert diff.difference == pytest.approx(m1 - m0, abs=1e-10)
        assert diff.se == pytest.approx(np.hypot(s1, s0), abs=1e-10)
        assert diff.ci_low == pytest.approx(m1 - m0 - 1.959963984540054 * np.hypot(s1, s0), abs=1e-9)
        assert diff.z < 0 and 0 < diff.p_value < 0.05
        assert diff.to_dict()["first"]["label"] == "1"

    def test_difference_recovers_a_known_gap_between_exponentials(self):
        tau = 5.0
        a = _exponential(0.1, 2000, seed=6, censor_max=15).assign(g="a")
        b = _exponential(0.3, 2000, seed=7, censor_max=15).assign(g="b")
        diff = rmst_difference(pd.concat([a, b], ignore_index=True), time="t", event="e", group="g", tau=tau)
        truth = _restricted_moments(0.1, tau)[0] - _restricted_moments(0.3, tau)[0]
        assert abs(diff.difference - truth) < 4 * diff.se

    def test_difference_needs_two_groups(self):
        df = _exponential(0.3, 30, seed=8).assign(g=np.repeat(["a", "b", "c"], 10))
        with pytest.raises(DataError, match=r"column g: the RMST difference needs exactly two groups, found 3"):
            rmst_difference(df, time="t", event="e", group="g", tau=0.5)


class TestTau:
    def test_tau_beyond_a_censored_last_time_is_rejected(self):
        df = pd.DataFrame({"t": [1.0, 2, 3], "e": [1, 0, 0]})
        with pytest.raises(DataError, match=r"column t: tau=4 is beyond the last observed time 3 of group 'all'"):
            rmst(df, time="t", event="e", tau=4)

    def test_tau_beyond_a_curve_that_reached_zero_is_allowed(self):
        df = pd.DataFrame({"t": [1.0, 2, 3], "e": [1, 1, 1]})
        assert rmst(df, time="t", event="e", tau=10)["all"].rmst == pytest.approx(2.0)

    def test_tau_must_be_positive(self):
        with pytest.raises(ValueError, match=r"tau=0\.0 must be > 0"):
            rmst(pd.DataFrame({"t": [1.0, 2], "e": [1, 1]}), time="t", event="e", tau=0)
