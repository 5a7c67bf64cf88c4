"""pcVPC: calibration on data from the model itself, and visible misfit on data from a misspecified model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from carkin.diagnostics import assign_bins, auto_bins, vpc
from carkin.simulate import truth_from_spec

from .helpers import resimulate, truth_fit


@pytest.mark.slow  # minutes on 2 cores (a NUTS or joint fit); run with pytest -m slow
def test_observed_percentiles_fall_inside_the_bands_at_the_nominal_rate(truth_setup):
    _, cohort, fit = truth_setup
    coverages = []
    for seed, data in enumerate(resimulate(fit, cohort.dataset, key=jax.random.PRNGKey(11), replicates=3)):
        # three independent studies from the model itself, with the cohort's design
        result = vpc(fit, data, key=jax.random.PRNGKey(seed), replicates=200)
        coverages.append(result.coverage())
        assert result.blq_coverage() >= 0.6
    assert 0.78 <= np.mean(coverages) <= 0.99, coverages


def test_a_monophasic_truth_shows_as_misfit_in_the_late_percentiles(truth_setup):
    spec, cohort, fit = truth_setup
    truth = truth_from_spec(spec)
    names = list(spec.parameter_names)
    # fb -> ~0: no persistence phase, levels keep falling at the contraction rate (monophasic decline)
    mono = truth.__class__(
        mu=truth.mu.at[names.index("fb")].set(jnp.log(1e-5 / (1 - 1e-5))),
        omega=truth.omega.at[names.index("fb")].set(0.01),
        beta=truth.beta,
        sigma=truth.sigma,
        sigma_add=truth.sigma_add,
    )
    (data,) = resimulate(truth_fit(spec, cohort, truth=mono), cohort.dataset, key=jax.random.PRNGKey(5))
    result = vpc(fit, data, key=jax.random.PRNGKey(6), replicates=200)
    late = result.time[0] > 60
    # observed BLQ fraction far above the simulated band late, and the shown medians below their bands
    assert np.all(result.blq_observed[0, late] > result.blq_upper[0, late])
    median = result.observed[0, late, 1]
    lower = result.simulated_lower[0, late, 1]
    shown = np.isfinite(median)
    assert np.all(median[shown] < lower[shown])
    assert result.inside()[0, late].mean() < 0.5


def test_stratified_vpc_has_one_panel_per_dose_tertile(truth_setup):
    _, cohort, fit = truth_setup
    result = vpc(fit, cohort.dataset, key=jax.random.PRNGKey(0), replicates=50, stratify="DOSE")
    assert len(result.strata) == 3 and all(s.startswith("DOSE") for s in result.strata)
    assert result.observed.shape == (3, result.edges.size - 1, 3)
    assert result.count.sum() == cohort.dataset.n_observations
    frame = result.to_frame()
    assert set(frame["stratum"]) == set(result.strata)


def test_percentiles_below_the_blq_fraction_are_hidden(truth_setup):
    _, cohort, fit = truth_setup
    result = vpc(fit, cohort.dataset, key=jax.random.PRNGKey(0), replicates=50, prediction_corrected=False)
    q = np.asarray(result.quantiles)
    hidden = q[None, None, :] <= result.blq_observed[..., None]
    assert hidden.any()  # the first days are more than 5% BLQ
    assert np.all(np.isnan(result.observed[hidden])) and np.all(np.isnan(result.simulated_lower[hidden]))


def test_the_same_key_gives_the_same_vpc(truth_setup):
    _, cohort, fit = truth_setup
    a = vpc(fit, cohort.dataset, key=jax.random.PRNGKey(3), replicates=60)
    b = vpc(fit, cohort.dataset, key=jax.random.PRNGKey(3), replicates=60)
    np.testing.assert_array_equal(a.simulated_upper, b.simulated_upper)


def test_auto_bins_follow_the_nominal_schedule():
    nominal = np.array([3, 5, 8, 10, 12, 15, 18, 22, 61, 91, 122, 213, 304])
    rng = np.random.default_rng(0)
    times = np.repeat(nominal, 40) * np.exp(rng.uniform(-0.02, 0.02, nominal.size * 40))
    edges = auto_bins(times)
    assert edges.size - 1 == nominal.size
    np.testing.assert_array_equal(assign_bins(nominal, edges), np.arange(nominal.size))


def test_auto_bins_merge_sparse_late_visits_and_cap_the_bin_count():
    times = np.concatenate([np.repeat(np.arange(1, 41), 30), [900.0] * 3])
    edges = auto_bins(times, max_bins=10)
    counts = np.bincount(assign_bins(times, edges))
    assert counts.size <= 10 and counts.min() >= 20


def test_vpc_rejects_bad_settings_with_a_clear_message(truth_setup):
    _, cohort, fit = truth_setup
    with pytest.raises(ValueError, match="replicates must be an integer >= 2"):
        vpc(fit, cohort.dataset, key=jax.random.PRNGKey(0), replicates=1)
    with pytest.raises(ValueError, match="level must lie in"):
        vpc(fit, cohort.dataset, key=jax.random.PRNGKey(0), level=1.5)
    with pytest.raises(ValueError, match="non-empty array of finite days"):
        auto_bins([-1.0])
    with pytest.raises(KeyError, match="available"):
        vpc(fit, cohort.dataset, key=jax.random.PRNGKey(0), stratify="WEIGHT")
