"""The JAX log-rank statistic against lifelines (ties), carkin.survival (strata), and by its definition."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from lifelines.statistics import logrank_test as lifelines_logrank

from carkin.survival import logrank_test as survival_logrank
from carkin.trial import logrank


def random_data(seed, n=200, ties=False, strata=1):
    rng = np.random.default_rng(seed)
    arm = rng.integers(0, 2, n)
    t = rng.exponential(6.0 * (1 + 0.4 * arm))
    c = rng.uniform(0, 20, n)
    time = np.minimum(t, c)
    if ties:
        time = np.ceil(time)  # integer times: many tied events, and events tied with censorings
    return time, t <= c, arm, rng.integers(0, strata, n)


def lifelines_chi2(time, event, arm):
    a = arm == 1
    return lifelines_logrank(time[a], time[~a], event[a], event[~a]).test_statistic


class TestAgainstLifelines:
    @pytest.mark.parametrize("seed", range(6))
    @pytest.mark.parametrize("ties", [False, True])
    def test_chi_square_equals_lifelines_to_1e8(self, seed, ties):
        time, event, arm, _ = random_data(seed, ties=ties)
        r = logrank(time, event, arm)
        assert float(r.z) ** 2 == pytest.approx(lifelines_chi2(time, event, arm), abs=1e-8, rel=1e-10)

    def test_small_tied_sets_with_single_subjects_at_risk(self):
        time = np.array([1.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 5.0])
        event = np.array([1, 1, 0, 1, 0, 1, 1, 1], bool)
        arm = np.array([1, 0, 1, 0, 1, 1, 0, 1])
        assert float(logrank(time, event, arm).z) ** 2 == pytest.approx(lifelines_chi2(time, event, arm), abs=1e-10)

    def test_z_is_positive_when_the_experimental_arm_has_fewer_events(self):
        time, event, arm, _ = random_data(3)  # arm 1 lives 40% longer
        r = logrank(time, event, arm)
        observed = event[arm == 1].sum()
        assert float(r.z) > 0
        # U = E - O for arm 1, from carkin.survival's O and E (tested against R)
        df = pd.DataFrame({"t": time, "e": event.astype(int), "g": arm})
        ref = survival_logrank(df, time="t", event="e", group="g", groups=(1, 0))
        assert float(r.score) == pytest.approx(ref.groups[0].expected - observed, abs=1e-9)
        assert float(r.z) == pytest.approx(-ref.z, abs=1e-9)


class TestStratified:
    @pytest.mark.parametrize("seed", range(4))
    @pytest.mark.parametrize("ties", [False, True])
    def test_stratified_statistic_equals_carkin_survival(self, seed, ties):
        time, event, arm, stratum = random_data(seed, ties=ties, strata=4)
        r = logrank(time, event, arm, stratum=stratum)
        df = pd.DataFrame({"t": time, "e": event.astype(int), "g": arm, "s": stratum})
        ref = survival_logrank(df, time="t", event="e", group="g", strata="s", groups=(1, 0))
        assert float(r.z) ** 2 == pytest.approx(ref.statistic, abs=1e-8, rel=1e-10)
        assert float(r.z) == pytest.approx(-ref.z, abs=1e-9)

    @pytest.mark.parametrize("ties", [False, True])
    def test_stratified_statistic_is_the_sum_over_strata_of_lifelines_per_stratum_tests(self, ties):
        time, event, arm, stratum = random_data(11, ties=ties, strata=3)
        score = variance = 0.0
        for s in range(3):
            m = stratum == s
            part = logrank(time, event, arm, mask=m)  # the stratum alone (same shapes: one compilation)
            # per stratum, U_s^2 / V_s is lifelines' chi-square of that stratum
            assert float(part.score) ** 2 / float(part.variance) == pytest.approx(
                lifelines_chi2(time[m], event[m], arm[m]), abs=1e-8, rel=1e-10
            )
            score += float(part.score)
            variance += float(part.variance)
        r = logrank(time, event, arm, stratum=stratum)
        assert float(r.score) == pytest.approx(score, abs=1e-9)
        assert float(r.variance) == pytest.approx(variance, abs=1e-9)
        assert float(r.z) == pytest.approx(score / np.sqrt(variance), abs=1e-10)

    def test_stratum_labels_need_not_be_contiguous(self):
        time, event, arm, stratum = random_data(5, strata=3)
        a = logrank(time, event, arm, stratum=stratum)
        b = logrank(time, event, arm, stratum=stratum * 7 - 3)
        assert float(a.z) == pytest.approx(float(b.z), abs=1e-12)


class TestShapesAndMasks:
    def test_masked_subjects_are_left_out(self):
        time, event, arm, stratum = random_data(2, ties=True, strata=2)
        keep = np.random.default_rng(0).uniform(size=200) < 0.6
        full = logrank(time[keep], event[keep], arm[keep], stratum=stratum[keep])
        masked = logrank(time, event, arm, stratum=stratum, mask=keep)
        assert float(masked.z) == pytest.approx(float(full.z), abs=1e-12)
        assert float(masked.events) == event[keep].sum()

    def test_vmap_over_replicates_equals_one_at_a_time(self):
        data = [random_data(s, ties=True, strata=2) for s in range(5)]
        stacked = [jnp.asarray(np.stack(x)) for x in zip(*data, strict=True)]
        batched = jax.jit(jax.vmap(logrank))(*stacked)
        assert batched.z.shape == (5,)
        for i, (time, event, arm, stratum) in enumerate(data):
            assert float(batched.z[i]) == pytest.approx(float(logrank(time, event, arm, stratum).z), abs=1e-12)

    def test_no_events_gives_zero(self):
        r = logrank(np.arange(5.0), np.zeros(5, bool), np.array([0, 1, 0, 1, 0]))
        assert float(r.z) == 0.0 and float(r.variance) == 0.0
