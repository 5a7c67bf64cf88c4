"""GOF, NPDE, shrinkage and the convergence table on a posterior built from the simulation truth."""

import jax
import numpy as np
import pytest

from carkin.diagnostics import convergence_table, eta_shrinkage, goodness_of_fit, npde

from .helpers import with_patient_ids


@pytest.fixture(scope="module")
def setup(truth_setup):
    _, cohort, fit = truth_setup
    return cohort, fit


def test_npde_and_iwres_are_standard_normal_when_the_model_is_true(setup):
    cohort, fit = setup
    gof = goodness_of_fit(fit, cohort.dataset, key=jax.random.PRNGKey(0), replicates=300)
    s = gof.summary()
    assert abs(s["npde_mean"]) < 0.15 and 0.85 < s["npde_sd"] < 1.15
    assert abs(s["iwres_mean"]) < 0.1 and 0.9 < s["iwres_sd"] < 1.1
    assert s["records"] == cohort.dataset.n_observations
    assert np.all(np.isnan(gof.ires[gof.blq])) and np.all(np.isfinite(gof.npde))
    frame = gof.to_frame()
    assert list(frame.columns) == ["ID", "TIME", "DV", "BLQ", "PRED", "IPRED", "IRES", "IWRES", "NPDE"]


def test_npde_detects_a_residual_error_that_is_too_small(setup):
    cohort, fit = setup
    small = fit.idata.copy()
    small.posterior["sigma"] = small.posterior["sigma"] * 0.4
    narrow = fit.__class__(
        idata=small, spec=fit.spec, manifest=fit.manifest, table=fit.table, patient_ids=fit.patient_ids
    )
    values = npde(narrow, cohort.dataset, key=jax.random.PRNGKey(1), replicates=300)
    assert np.std(values) > 1.05  # still wider than N(0,1): the IIV dominates, but the shift is visible
    baseline = npde(fit, cohort.dataset, key=jax.random.PRNGKey(1), replicates=300)
    assert np.std(values) > np.std(baseline)


def test_shrinkage_is_near_zero_with_true_individual_parameters(setup):
    cohort, fit = setup
    table = eta_shrinkage(fit, cohort.dataset)
    assert list(table["parameter"]) == list(fit.spec.parameter_names)
    assert np.all(np.abs(table["shrinkage"]) < 0.25)


def test_shrinkage_is_one_when_individuals_sit_at_their_typical_values(setup):
    cohort, fit = setup
    from carkin.diagnostics._simulation import design, typical_phi

    idata = fit.idata.copy()
    typical = np.asarray(typical_phi(fit, design(cohort.dataset, fit.spec).data))
    idata.posterior["phi"] = idata.posterior["phi"] * 0 + typical[None, None]
    shrunk = fit.__class__(
        idata=idata, spec=fit.spec, manifest=fit.manifest, table=fit.table, patient_ids=fit.patient_ids
    )
    np.testing.assert_allclose(eta_shrinkage(shrunk, cohort.dataset)["shrinkage"], 1.0, atol=1e-9)


def test_convergence_table_lists_the_population_sites_only(setup):
    _, fit = setup
    table = convergence_table(fit)
    assert table["site"].str.startswith(("mu", "omega", "beta", "sigma")).all()
    assert not table["site"].str.startswith("phi").any()


def test_goodness_of_fit_refuses_data_of_other_patients(setup):
    cohort, fit = setup
    other = with_patient_ids(cohort.dataset, reversed(cohort.dataset.patient_ids))
    with pytest.raises(ValueError, match="pass the data the fit used"):
        goodness_of_fit(fit, other, key=jax.random.PRNGKey(0))
