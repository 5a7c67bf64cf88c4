"""The vectorised trial simulator: patients, analyses at event counts, power and type I error."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from lifelines.statistics import logrank_test as lifelines_logrank

from carkin.trial import (
    analyse_looks,
    design_from_dict,
    exposure_log_hazard_offsets,
    schoenfeld_power,
    simulate_patients,
    simulate_trials,
)

from .helpers import design_dict


@pytest.fixture(scope="module")
def design():
    return design_from_dict(design_dict(), source="test")


class TestPatients:
    def test_patients_follow_the_design(self):
        d = design_from_dict(design_dict(**{"randomisation.n_patients": 20_000, "analysis.events": 100,
                                            "strata": [{"name": "A", "probability": 0.3, "log_hazard_ratio": 0.0}]}))
        p = simulate_patients(d, key=jax.random.PRNGKey(0))
        arm = np.asarray(p.arm)
        assert arm.sum() == 10_000  # fixed 1:1 allocation
        entry = np.asarray(p.entry)
        assert entry.min() >= 0 and entry.max() <= 20.0 and np.mean(entry) == pytest.approx(10.0, abs=0.2)
        pfs = np.asarray(p.pfs)
        assert np.median(pfs[arm == 1]) == pytest.approx(10.0, rel=0.04)
        assert np.median(pfs[arm == 0]) == pytest.approx(7.0, rel=0.04)
        assert np.mean(np.asarray(p.dropout)) == pytest.approx(200.0, rel=0.04)  # 1 / 0.005 per month
        assert np.mean(np.asarray(p.stratum) == 1) == pytest.approx(0.3, abs=0.015)

    def test_piecewise_accrual_and_hazards(self):
        d = design_from_dict(design_dict(**{
            "randomisation.n_patients": 20_000, "analysis.events": 100,
            "accrual": {"type": "piecewise", "rates": [500.0, 2000.0], "durations": [4.0]},
            "arms.control": {"breaks": [0.0, 3.0], "hazards": [0.3, 0.05]}, "analysis.hazard_ratio": 0.7,
        }))
        p = simulate_patients(d, key=jax.random.PRNGKey(1))
        entry = np.asarray(p.entry)
        # 2000 patients in the first 4 months, then 2000 per month until 20,000: accrual ends at month 13
        assert np.mean(entry < 4.0) == pytest.approx(0.1, abs=0.01) and entry.max() <= 13.0 + 1e-9
        pfs = np.asarray(p.pfs)[np.asarray(p.arm) == 0]
        assert np.mean(pfs > 3.0) == pytest.approx(np.exp(-0.9), abs=0.015)
        assert np.mean(pfs > 10.0) == pytest.approx(np.exp(-0.9 - 0.35), abs=0.015)


class TestAnalyses:
    def test_each_look_happens_at_its_event_count_and_matches_lifelines(self):
        d = design_from_dict(
            design_dict(**{"analysis.looks": [{"information": 0.4}, {"information": 0.75}, {"information": 1.0}]})
        )
        p = simulate_patients(d, key=jax.random.PRNGKey(3))
        looks = analyse_looks(p, jnp.asarray(d.look_events), stratified=False)
        assert np.asarray(looks.events).tolist() == d.look_events.tolist() == [80, 150, 200]
        entry, pfs, drop, arm = (np.asarray(x) for x in (p.entry, p.pfs, p.dropout, p.arm))
        calendar = np.where(pfs <= drop, entry + pfs, np.inf)
        for k, events in enumerate(d.look_events):
            cut = np.sort(calendar)[events - 1]  # calendar time of the k-th event, computed independently
            assert float(looks.time[k]) == cut
            on = entry <= cut
            event = (calendar <= cut)[on]
            time = np.minimum.reduce([pfs, drop, cut - entry])[on]
            a = arm[on] == 1
            chi2 = lifelines_logrank(time[a], time[~a], event[a], event[~a]).test_statistic
            assert float(looks.z[k]) ** 2 == pytest.approx(chi2, rel=1e-9)
            assert float(looks.enrolled[k]) == on.sum()

    def test_results_do_not_depend_on_the_batch_size_or_the_sharding(self, design):
        a = simulate_trials(design, key=jax.random.PRNGKey(7), replicates=40, batch_size=40)  # over 4 host devices
        b = simulate_trials(design, key=jax.random.PRNGKey(7), replicates=40, batch_size=15, shard=False)
        # the same numbers up to floating-point rounding (XLA may fuse the sums differently per shape)
        np.testing.assert_allclose(a.looks.z, b.looks.z, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(a.looks.time, b.looks.time, rtol=1e-12)
        np.testing.assert_array_equal(a.looks.events, b.looks.events)

    def test_unreachable_event_counts_are_flagged(self):
        d = design_from_dict(design_dict(**{"dropout.per_month": 0.3}))
        sim = simulate_trials(d, key=jax.random.PRNGKey(0), replicates=40)
        assert not sim.looks.reached.any()  # heavy dropout: 200 events of 300 patients never happen
        assert sim.summary()["looks"][0]["prob_events_reached"]["estimate"] == 0.0

    def test_bad_replicates_are_rejected(self, design):
        with pytest.raises(ValueError, match="replicates must be a positive integer, got 0"):
            simulate_trials(design, key=jax.random.PRNGKey(0), replicates=0)


class TestOperatingCharacteristics:
    def test_power_agrees_with_schoenfeld_within_monte_carlo_error(self, design):
        sim = simulate_trials(design, key=jax.random.PRNGKey(11), replicates=3000)
        s = sim.summary()
        expected = schoenfeld_power(0.7, 200, allocation=0.5, alpha=0.025)
        assert s["analytic"]["schoenfeld_power_fixed"] == pytest.approx(expected)
        assert abs(s["power"]["estimate"] - expected) < 3 * s["power"]["mc_se"]
        assert s["expected_events"]["estimate"] == 200

    def test_type_i_error_under_the_null_is_the_nominal_alpha(self, design):
        sim = simulate_trials(design.under_null(), key=jax.random.PRNGKey(12), replicates=3000, hypothesis="H0")
        s = sim.summary()
        assert abs(s["power"]["estimate"] - 0.025) < 3 * np.sqrt(0.025 * 0.975 / 3000)
        assert s["analytic"]["group_sequential_power"] == pytest.approx(0.025, abs=1e-9)

    def test_exposure_hook_shifts_the_experimental_hazard(self, design):
        # every experimental patient at twice the reference exposure with HR 0.5 per doubling: HR 0.7 -> 0.35
        hook = exposure_log_hazard_offsets(np.full(10, 2.0), log_hr_per_doubling=np.log(0.5), reference=1.0)
        offsets = hook(jax.random.PRNGKey(0), jnp.array([0, 1, 1]), jnp.zeros(3, int))
        assert np.asarray(offsets) == pytest.approx([0.0, np.log(0.5), np.log(0.5)])
        p = simulate_patients(
            design_from_dict(design_dict(**{"randomisation.n_patients": 20_000, "analysis.events": 100})),
            key=jax.random.PRNGKey(2),
            log_hazard_offset=hook,
        )
        pfs, arm = np.asarray(p.pfs), np.asarray(p.arm)
        assert np.median(pfs[arm == 1]) == pytest.approx(20.0, rel=0.05)

    def test_exposure_hook_rejects_bad_exposures(self):
        with pytest.raises(ValueError, match="positive finite"):
            exposure_log_hazard_offsets(np.array([1.0, -2.0]), log_hr_per_doubling=-0.1, reference=1.0)


@pytest.mark.slow
class TestGroupSequentialSimulation:
    def test_stopping_probabilities_agree_with_the_recursive_integration(self):
        d = design_from_dict(design_dict(**{
            "randomisation.n_patients": 600, "analysis.events": 400, "arms.experimental.median": 9.0,
            "analysis.looks": [{"information": 0.33, "efficacy": False, "futility": True}, {"information": 0.66},
                               {"information": 1.0}],
            "analysis.futility": {"rule": "beta_spending", "spending": "obf", "beta": 0.1},
        }))
        for dd, hypothesis in ((d, "H1"), (d.under_null(), "H0")):
            s = simulate_trials(dd, key=jax.random.PRNGKey(5), replicates=20_000, hypothesis=hypothesis).summary()
            for look in s["looks"]:
                for what in ("efficacy", "futility"):
                    sim = look[f"prob_stop_{what}"]
                    assert abs(sim["estimate"] - look[f"analytic_prob_stop_{what}"]) < 4 * max(sim["mc_se"], 1e-3)
            assert (
                abs(s["power_nonbinding"]["estimate"] - s["analytic"]["group_sequential_power_nonbinding"])
                < 4 * s["power_nonbinding"]["mc_se"] + 0.005
            )
