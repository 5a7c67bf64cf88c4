"""Virtual populations: known distributions, censoring, determinism."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from carkin.errors import SpecError
from carkin.population import load_spec
from carkin.simulate import PopulationParameters, simulate_cohort, truth_from_spec

from ..helpers import multiphasic_spec_as_at_9913582, piecewise_concentration


@pytest.fixture(scope="module")
def spec():
    return load_spec("multiphasic")


def test_same_key_gives_identical_cohorts_and_other_keys_differ(spec):
    a = simulate_cohort(spec, key=jax.random.PRNGKey(7), n=20)
    b = simulate_cohort(spec, key=jax.random.PRNGKey(7), n=20)
    c = simulate_cohort(spec, key=jax.random.PRNGKey(8), n=20)
    np.testing.assert_array_equal(a.dataset.dv, b.dataset.dv)
    assert not np.allclose(a.dataset.dv, c.dataset.dv)


def test_a_patient_draws_the_same_values_whatever_the_cohort_size(spec):
    """Per-patient keys (fold_in of the patient index): the first 10 of 25 patients are the 10-patient cohort."""
    small = simulate_cohort(spec, key=jax.random.PRNGKey(7), n=10)
    large = simulate_cohort(spec, key=jax.random.PRNGKey(7), n=25)
    np.testing.assert_array_equal(np.asarray(large.dataset.dv)[:10], np.asarray(small.dataset.dv))
    np.testing.assert_array_equal(np.asarray(large.dataset.dose)[:10], np.asarray(small.dataset.dose))
    np.testing.assert_array_equal(np.asarray(large.dataset.covariates)[:10], np.asarray(small.dataset.covariates))
    for name, values in small.individual.items():
        np.testing.assert_array_equal(large.individual[name][:10], values)
    assert not np.allclose(np.asarray(large.dataset.dv)[10:20], np.asarray(small.dataset.dv))


def test_without_variability_records_are_the_typical_curve(spec):
    truth = truth_from_spec(spec)
    truth = PopulationParameters(mu=truth.mu, omega=jnp.zeros(6), beta=jnp.zeros(2), sigma=jnp.asarray(0.0),
                                 sigma_add=jnp.asarray(0.0))
    cohort = simulate_cohort(spec, key=jax.random.PRNGKey(0), n=3, truth=truth, lloq=1e-9)
    typical = {p.name: p.typical for p in spec.parameters}
    typical["alpha"] = typical["beta"] + typical["delta"]
    expected = piecewise_concentration(typical, np.asarray(cohort.dataset.times[0]))
    np.testing.assert_allclose(np.asarray(cohort.dataset.dv), np.broadcast_to(expected, (3, expected.size)), rtol=1e-10)


def test_individual_parameters_follow_the_population_distribution(spec):
    cohort = simulate_cohort(spec, key=jax.random.PRNGKey(1), n=4000)
    truth = cohort.truth
    log_tmax = np.log(cohort.individual["tmax"])  # no covariate on tmax: N(mu, omega)
    assert log_tmax.mean() == pytest.approx(float(truth.mu[1]), abs=4 * float(truth.omega[1]) / np.sqrt(4000))
    assert log_tmax.std() == pytest.approx(float(truth.omega[1]), rel=0.05)
    # cmax carries two covariates: residual of log cmax after the known effects is N(mu, omega)
    z_dose = np.log(cohort.covariates["DOSE"] / 450.0)
    z_tb = np.log(cohort.covariates["TUMOR_BURDEN"] / 30.0)
    resid = np.log(cohort.individual["cmax"]) - float(truth.beta[0]) * z_dose - float(truth.beta[1]) * z_tb
    assert resid.mean() == pytest.approx(float(truth.mu[0]), abs=4 * float(truth.omega[0]) / np.sqrt(4000))


def test_records_below_lloq_are_censored_at_the_lloq(spec):
    cohort = simulate_cohort(spec, key=jax.random.PRNGKey(2), n=200, lloq=50.0)
    ds = cohort.dataset
    blq = np.asarray(ds.blq)
    assert 0 < blq.mean() < 1
    np.testing.assert_array_equal(np.asarray(ds.dv)[blq], 50.0)
    assert np.all(np.asarray(ds.dv)[~blq] >= 50.0)


def test_missing_simulation_values_are_reported(spec):
    broken = spec.replace(covariates={"weight": {"column": "WT", "transform": "linear", "reference": 70.0,
                                                  "parameters": ["cmax"], "prior_sd": 1.0}})
    with pytest.raises(SpecError, match=r"multiphasic.toml: \[simulation.effects\] has no value for beta_weight_cmax"):
        simulate_cohort(broken, key=jax.random.PRNGKey(0), n=5)


def test_simulation_table_keys_and_covariates_are_checked(spec):
    import json

    from carkin.population import spec_from_dict

    data = json.loads(spec.raw)
    data["simulation"]["sigmaa"] = 0.3
    with pytest.raises(
        SpecError,
        match=r"t.toml: \[simulation\] sigmaa is not a valid key; valid keys: omega, correlation, effects, sigma",
    ):
        simulate_cohort(spec_from_dict(data, source="t.toml"), key=jax.random.PRNGKey(0), n=5)
    data = json.loads(spec.raw)
    del data["simulation"]["covariates"]["TUMOR_BURDEN"]
    with pytest.raises(
        SpecError,
        match=r"t.toml: \[simulation.covariates\] has no distribution for the covariate column "
        r"TUMOR_BURDEN; add \[simulation.covariates.TUMOR_BURDEN\]",
    ):
        simulate_cohort(spec_from_dict(data, source="t.toml"), key=jax.random.PRNGKey(0), n=5)


def test_n_must_be_a_positive_integer(spec):
    with pytest.raises(ValueError, match="n must be a positive integer"):
        simulate_cohort(spec, key=jax.random.PRNGKey(0), n=0)


# Same key, same numbers as the cohort simulator gave before its draws went through the shared generative model
# (carkin.population): values computed with the code of main at 9913582. Per error model: the row of DV checked,
# its values, the sum of log DV over the cohort and the number of BLQ records.
BEFORE = {
    "additive_log": (0, [12.375520668175682, 60.55764252252993, 921.4177847855947, 5230.95647097288,
                         40179.15540751834, 13470.834111513377, 4992.329357729007, 1252.909523220602,
                         56.7805377506769, 84.5150422938754, 16.04163103525495, 10.0], 419.50929923019476, 7),
    "combined": (1, [249.88796930020166, 613.6705701074497, 7214.238248705716, 7375.594719566325,
                     11485.834847909711, 6703.159928148976, 1552.5814657402116, 513.4062421958449,
                     163.8832994965155, 220.52535757394844, 180.05987753193477, 85.82193821315553],
                 474.8440441476855, 7),
}


@pytest.mark.parametrize("residual", sorted(BEFORE))
def test_the_same_key_gives_the_same_numbers_as_before(residual):
    spec = multiphasic_spec_as_at_9913582()
    if residual == "combined":
        model = spec.replace(residual="combined")
        t = truth_from_spec(model)
        truth = PopulationParameters(mu=t.mu, omega=t.omega, beta=t.beta, sigma=t.sigma, sigma_add=jnp.asarray(30.0))
        cohort = simulate_cohort(model, key=jax.random.PRNGKey(4), n=6, truth=truth, lloq=20.0)
    else:
        cohort = simulate_cohort(spec, key=jax.random.PRNGKey(3), n=6)
    row, values, log_sum, n_blq = BEFORE[residual]
    dv = np.asarray(cohort.dataset.dv)
    np.testing.assert_allclose(dv[row], values, rtol=1e-12)
    assert np.log(dv).sum() == pytest.approx(log_sum, rel=1e-12)
    assert int(np.asarray(cohort.dataset.blq).sum()) == n_blq


@pytest.mark.parametrize(("table", "name", "what"), [("analytes", "flow", "analyte"),
                                                      ("comedication", "toci", "co-medication")])
def test_simulation_subtables_must_name_what_the_model_declares(spec, table, name, what):
    import json

    from carkin.population import spec_from_dict

    raw = json.loads(spec.raw)
    raw["simulation"][table] = {name: {}}
    with pytest.raises(SpecError, match=rf"\[simulation\.{table}\].*names {what}\(s\) {name}, which the model does "
                                        "not declare"):
        simulate_cohort(spec_from_dict(raw, source="t.toml"), key=jax.random.PRNGKey(0), n=2)
