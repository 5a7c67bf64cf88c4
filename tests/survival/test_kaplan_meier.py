"""Kaplan-Meier curves, medians and their intervals, landmarks, at-risk counts and median follow-up."""

import numpy as np
import pandas as pd
import pytest
from lifelines import KaplanMeierFitter
from lifelines.utils import median_survival_times

from carkin.survival import kaplan_meier, median_followup, survival_at

from . import reference as ref


def _random(n=200, seed=0):
    rng = np.random.default_rng(seed)
    t = rng.exponential(10, n)
    c = rng.uniform(0, 25, n)
    return pd.DataFrame({"t": np.minimum(t, c).round(1), "e": (t <= c).astype(int), "g": rng.choice(["x", "y"], n)})


class TestAgainstLifelines:
    def test_curve_band_median_and_its_interval_match_kaplan_meier_fitter(self):
        df = _random()
        km = kaplan_meier(df, time="t", event="e", group="g")
        for label in ("x", "y"):
            part = df[df.g == label]
            kmf = KaplanMeierFitter().fit(part.t, part.e)
            curve = km[label]
            np.testing.assert_allclose(curve.timeline, kmf.survival_function_.index, rtol=0, atol=0)
            np.testing.assert_allclose(curve.survival, kmf.survival_function_.iloc[:, 0], rtol=1e-12)
            positive = curve.survival > 0
            np.testing.assert_allclose(
                curve.ci_low[positive], kmf.confidence_interval_.iloc[:, 0][positive], rtol=1e-12
            )
            np.testing.assert_allclose(
                curve.ci_high[positive], kmf.confidence_interval_.iloc[:, 1][positive], rtol=1e-12
            )
            assert curve.median == kmf.median_survival_time_
            low, high = median_survival_times(kmf.confidence_interval_).iloc[0]
            assert (curve.median_ci_low, curve.median_ci_high) == (low, high)
            assert curve.n == len(part) and curve.events == part.e.sum()

    def test_groups_keep_the_order_asked_for(self):
        km = kaplan_meier(_random(), time="t", event="e", group="g", groups=["y", "x"])
        assert km.labels == ("y", "x")


class TestAgainstR:
    @pytest.mark.parametrize("ci", ["log-log", "log", "plain"])
    def test_pointwise_intervals_match_survfit(self, ci):
        result = survival_at(ref.tied_data(), time="time", event="event", times=ref.SURVIVAL_TIMES, ci=ci)
        low, high = ref.SURVIVAL_BANDS[ci]
        np.testing.assert_allclose([e.survival for e in result.estimates], ref.SURVIVAL, atol=1e-9)
        np.testing.assert_allclose([e.ci_low for e in result.estimates], low, atol=1e-9)
        np.testing.assert_allclose([e.ci_high for e in result.estimates], high, atol=1e-9)

    @pytest.mark.parametrize("ci", ["log-log", "log", "plain"])
    def test_median_and_brookmeyer_crowley_interval_match_survfit(self, ci):
        curve = kaplan_meier(ref.tied_data(), time="time", event="event", ci=ci)["all"]
        assert (curve.median, curve.median_ci_low, curve.median_ci_high) == ref.MEDIAN

    def test_group_medians_match_survfit(self):
        km = kaplan_meier(ref.tied_data(), time="time", event="event", group="x1")
        for label, expected in ref.MEDIAN_BY_X1.items():
            assert (km[label].median, km[label].median_ci_low, km[label].median_ci_high) == expected

    def test_median_follow_up_matches_the_reverse_kaplan_meier_of_survfit(self):
        followup = median_followup(ref.tied_data(), time="time", event="event")
        assert followup.median == ref.MEDIAN_FOLLOWUP
        assert (followup.min, followup.max, followup.n) == (1.0, 11.0, 30)


class TestStatisticalBehaviour:
    def test_median_of_exponential_data_is_ln2_over_lambda(self):
        rate, n = 0.1, 4000
        rng = np.random.default_rng(1)
        t = rng.exponential(1 / rate, n)
        df = pd.DataFrame({"t": t, "e": 1})
        curve = kaplan_meier(df, time="t", event="e")["all"]
        # asymptotic SE of the sample median: sqrt(p(1-p)/n) / f(median) = 1 / (rate sqrt(n))
        se = 1 / (rate * np.sqrt(n))
        assert abs(curve.median - np.log(2) / rate) < 4 * se
        assert curve.median_ci_low < np.log(2) / rate < curve.median_ci_high
        # the interval is about +-1.96 SE wide
        assert 0.7 < (curve.median_ci_high - curve.median_ci_low) / (2 * 1.96 * se) < 1.3

    def test_a_curve_that_stays_above_one_half_has_no_median(self):
        df = pd.DataFrame({"t": [1.0, 2, 3, 4, 5, 6], "e": [1, 0, 0, 0, 0, 0]})
        curve = kaplan_meier(df, time="t", event="e")["all"]
        assert curve.median == np.inf
        assert curve.to_dict()["median"] is None

    def test_without_censoring_median_follow_up_is_not_reached(self):
        df = pd.DataFrame({"t": [1.0, 2, 3], "e": [1, 1, 1]})
        assert median_followup(df, time="t", event="e").median == np.inf

    def test_without_events_median_follow_up_is_the_median_time(self):
        df = pd.DataFrame({"t": [1.0, 2, 3, 4, 5], "e": 0})
        assert median_followup(df, time="t", event="e").median == 3.0


class TestLandmarksAndAtRisk:
    def test_survival_at_a_time_is_the_step_value_there(self):
        df = pd.DataFrame({"t": [1.0, 2, 2, 3, 5, 5, 8], "e": [1, 1, 0, 1, 0, 1, 0]})
        # by hand: S(1) = 6/7; S(2) = 6/7 * 5/6 = 5/7; S(3) = 5/7 * 3/4 = 15/28; S(5) = 15/28 * 2/3 = 5/14
        result = survival_at(df, time="t", event="e", times=[0, 1, 1.5, 2, 3, 4.9, 5, 8])
        expected = [1, 6 / 7, 6 / 7, 5 / 7, 15 / 28, 15 / 28, 5 / 14, 5 / 14]
        np.testing.assert_allclose([e.survival for e in result.estimates], expected, rtol=1e-12)

    def test_survival_beyond_the_last_time_is_not_estimable(self):
        df = pd.DataFrame({"t": [1.0, 2, 3], "e": [1, 0, 0]})
        estimate = survival_at(df, time="t", event="e", times=[4]).estimates[0]
        assert np.isnan(estimate.survival) and estimate.to_dict()["survival"] is None
        assert estimate.at_risk == 0

    def test_number_at_risk_counts_subjects_still_followed(self):
        df = pd.DataFrame({"t": [1.0, 2, 2, 3, 5, 5, 8], "e": [1, 1, 0, 1, 0, 1, 0]})
        curve = kaplan_meier(df, time="t", event="e")["all"]
        times = [0, 1, 1.5, 2, 2.5, 5, 6, 8, 9]
        expected = [(df.t >= t).sum() for t in times]
        assert curve.number_at_risk(times).tolist() == expected

    @pytest.mark.parametrize("ci", ["log-log", "log", "plain"])
    def test_bands_stay_within_zero_one_and_around_the_estimate(self, ci):
        curve = kaplan_meier(_random(n=40, seed=3), time="t", event="e", ci=ci)["all"]
        defined = ~np.isnan(curve.ci_low)
        assert np.all(curve.ci_high[defined] <= 1) and np.all(curve.ci_low[defined] >= 0)
        assert np.all(curve.ci_low[defined] <= curve.survival[defined]) and np.all(
            curve.survival[defined] <= curve.ci_high[defined]
        )
        assert curve.ci_high[1] == 1.0 or ci == "log-log"  # the log and plain bands are clipped at 1 after one death

    def test_the_band_is_missing_where_the_curve_reaches_zero(self):
        df = pd.DataFrame({"t": [1.0, 2, 3], "e": [1, 1, 1]})
        curve = kaplan_meier(df, time="t", event="e")["all"]
        assert curve.survival[-1] == 0 and np.isnan(curve.ci_low[-1]) and np.isnan(curve.ci_high[-1])


class TestOptions:
    def test_an_unknown_interval_lists_the_valid_ones(self):
        with pytest.raises(
            ValueError,
            match=r"ci='arcsine' \(str\) is not a known interval; choose one of \['log', 'log-log', 'plain'\]",
        ):
            kaplan_meier(_random(), time="t", event="e", ci="arcsine")

    def test_alpha_outside_zero_one_is_rejected(self):
        with pytest.raises(ValueError, match=r"alpha=1\.5 must be between 0 and 1"):
            kaplan_meier(_random(), time="t", event="e", alpha=1.5)

    def test_results_are_immutable_and_serialise_to_stable_keys(self):
        km = kaplan_meier(_random(), time="t", event="e", group="g")
        with pytest.raises(AttributeError):
            km.curves[0].median = 1.0  # type: ignore[misc]
        with pytest.raises(ValueError):
            km.curves[0].survival[0] = 0.5
        d = km.to_dict()
        assert set(d) == {"analysis", "group", "alpha", "ci", "curves"}
        assert set(d["curves"]["x"]) == {"label", "n", "events", "median", "median_ci_low", "median_ci_high"}
