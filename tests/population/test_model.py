"""The population log-likelihood against an independent scipy computation; sites and covariates."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.handlers import seed, trace
from scipy.stats import norm

from carkin.errors import SpecError
from carkin.population import (
    covariate_design,
    load_spec,
    log_likelihood,
    patient_log_likelihood,
    population_model,
    prepare,
)

from ..helpers import one_patient_dataset, piecewise_concentration, small_dataset


def test_log_likelihood_equals_normal_plus_m3_computed_with_scipy():
    spec = load_spec("multiphasic")
    ds = small_dataset()
    phi = jnp.asarray(np.log([[2e4, 10.0, 0.8, 0.004, 0.15, 0.01], [5e3, 12.0, 0.7, 0.002, 0.2, 0.02]]))
    phi = phi.at[:, 5].set(jnp.log(jnp.asarray([0.01, 0.02]) / (1 - jnp.asarray([0.01, 0.02]))))
    sigma = 0.45
    got = float(log_likelihood(spec, prepare(ds, spec), phi, sigma))
    expected = 0.0
    for i in range(2):
        natural = dict(cmax=np.exp(phi[i, 0]), tmax=np.exp(phi[i, 1]), rho=np.exp(phi[i, 2]),
                       beta=np.exp(phi[i, 3]), alpha=np.exp(phi[i, 3]) + np.exp(phi[i, 4]), fb=[0.01, 0.02][i])
        m = np.asarray(ds.obs_mask[i])
        t, dv, blq = np.asarray(ds.times[i])[m], np.asarray(ds.dv[i])[m], np.asarray(ds.blq[i])[m]
        log_c = np.log(piecewise_concentration(natural, t))
        expected += norm.logpdf(np.log(dv[~blq]), log_c[~blq], sigma).sum()
        expected += norm.logcdf(np.log(dv[blq]), log_c[blq], sigma).sum()
    assert got == pytest.approx(expected, rel=1e-12)


def test_drop_method_ignores_blq_records_entirely():
    spec = load_spec("multiphasic")
    ds = small_dataset()
    data_m3, data_drop = prepare(ds, spec), prepare(ds, spec.replace(blq="drop"))
    assert int(data_m3.records.censored_index.shape[0]) == int(np.asarray(ds.blq).sum()) > 0
    assert data_drop.records.censored_index.shape[0] == 0
    assert data_drop.records.times.shape[0] == ds.n_observations - ds.n_blq


def test_centred_and_noncentred_models_expose_the_same_phi_site():
    spec = load_spec("multiphasic")
    ds = small_dataset()
    for iiv, latent in (("centred", "phi"), ("noncentred", "eta")):
        s = spec.replace(iiv=iiv)
        tr = trace(seed(population_model, jax.random.PRNGKey(0))).get_trace(prepare(ds, s), s)
        assert tr[latent]["type"] == "sample" and not tr[latent]["is_observed"]
        assert tr["phi"]["value"].shape == (2, 6)
        assert tr["mu"]["value"].shape == (6,) and tr["beta"]["value"].shape == (2,)


def test_covariate_design_standardises_dose_and_tumor_burden():
    spec = load_spec("multiphasic")
    ds = small_dataset()
    z = covariate_design(ds, spec)
    np.testing.assert_allclose(z[:, 0], np.log(np.asarray(ds.dose) / 450.0))
    np.testing.assert_allclose(z[:, 1], np.log(np.asarray(ds.covariate("TUMOR_BURDEN")) / 30.0))


def test_missing_covariate_column_is_a_spec_error_naming_the_column():
    spec = load_spec("multiphasic")
    ds = small_dataset(with_tumor_burden=False)
    with pytest.raises(SpecError, match="uses column 'TUMOR_BURDEN', which the data"):
        prepare(ds, spec)


def test_log_covariate_must_be_positive():
    spec = load_spec("multiphasic")
    ds = small_dataset(tumor_burden=(0.0, 20.0))
    with pytest.raises(SpecError, match="patient A has TUMOR_BURDEN = 0"):
        prepare(ds, spec)


def test_combined_error_log_likelihood_uses_the_delta_method_sd():
    spec = load_spec("multiphasic").replace(residual="combined")
    ds = small_dataset()
    phi = jnp.asarray(np.log([[2e4, 10.0, 0.8, 0.004, 0.15, 0.01 / 0.99]] * 2))
    sigma, sigma_add = 0.3, 25.0
    got = float(log_likelihood(spec, prepare(ds, spec), phi, sigma, sigma_add))
    natural = dict(cmax=2e4, tmax=10.0, rho=0.8, beta=0.004, alpha=0.154, fb=0.01)
    expected = 0.0
    for i in range(2):
        m = np.asarray(ds.obs_mask[i])
        t, dv, blq = np.asarray(ds.times[i])[m], np.asarray(ds.dv[i])[m], np.asarray(ds.blq[i])[m]
        c = piecewise_concentration(natural, t)
        sd = np.sqrt(sigma**2 + (sigma_add / c) ** 2)
        expected += norm.logpdf(np.log(dv[~blq]), np.log(c[~blq]), sd[~blq]).sum()
        expected += norm.logcdf(np.log(dv[blq]), np.log(c[blq]), sd[blq]).sum()
    assert got == pytest.approx(expected, rel=1e-12)


def test_a_mixed_parameterization_samples_the_listed_parameters_non_centred_with_the_same_density():
    """phi_raw holds phi's columns for centred parameters and eta's for non-centred ones; the density of phi
    is the same model: the log joint of the mixed and the centred parameterizations differ by the Jacobian
    of phi = loc + omega eta on the non-centred columns only (sum of log omega over them)."""
    from numpyro.infer.util import log_density

    spec = load_spec("multiphasic")
    ds = small_dataset()
    mixed = spec.replace(iiv={"parameterization": "centred", "noncentred": ["cmax", "tmax"]})
    assert mixed.iiv == "mixed" and mixed.noncentred == ("cmax", "tmax") and mixed.individual_site == "phi_raw"
    data = prepare(ds, mixed)
    tr = trace(seed(population_model, jax.random.PRNGKey(3))).get_trace(data, mixed)
    assert tr["phi_raw"]["type"] == "sample" and tr["phi"]["type"] == "deterministic"
    phi, mu, omega, beta = (tr[k]["value"] for k in ("phi", "mu", "omega", "beta"))
    columns = np.isin(spec.parameter_names, ["cmax", "tmax"])
    raw = np.asarray(tr["phi_raw"]["value"])
    np.testing.assert_allclose(raw[:, ~columns], np.asarray(phi)[:, ~columns])
    loc = np.asarray(phi) - np.asarray(omega) * raw  # on the non-centred columns phi = loc + omega eta
    np.testing.assert_allclose(
        raw[:, columns], (np.asarray(phi)[:, columns] - loc[:, columns]) / np.asarray(omega)[columns], rtol=1e-12
    )
    values = {k: tr[k]["value"] for k in ("mu", "omega", "beta", "sigma", "phi_raw")}
    centred = {**{k: v for k, v in values.items() if k != "phi_raw"}, "phi": phi}
    lp_mixed, _ = log_density(population_model, (data, mixed), {}, values)
    lp_centred, _ = log_density(population_model, (prepare(ds, spec), spec), {}, centred)
    n_patients = phi.shape[0]
    jacobian = n_patients * float(np.sum(np.log(np.asarray(omega)[columns])))
    assert float(lp_mixed) == pytest.approx(float(lp_centred) + jacobian, rel=1e-10)
    assert mu.shape == (6,) and beta.shape == (2,)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            {"parameterization": "centred", "noncentred": ["kdeath"]},
            r"\[iiv\] noncentred = \['kdeath'\] names 'kdeath', which is not a parameter; choose among cmax",
        ),
        ({"parameterization": "noncentred", "noncentred": ["cmax"]}, "already samples every parameter non-centred"),
        (
            {"parameterization": "centred", "noncentred": "cmax"},
            r"\[iiv\] noncentred = 'cmax' is a string, not a list of strings",
        ),
        (
            {"parameterization": "centred", "partial": True},
            r"\[iiv\] partial is not a valid key; valid keys: parameterization, noncentred",
        ),
    ],
)
def test_bad_iiv_tables_are_spec_errors(table, message):
    with pytest.raises(SpecError, match=message):
        load_spec("multiphasic").replace(iiv=table)


@pytest.mark.parametrize("residual", ["additive_log", "combined"])
def test_patient_log_likelihood_splits_the_total_by_patient_as_one_patient_datasets_would(residual):
    spec = load_spec("multiphasic").replace(residual=residual)
    ds = small_dataset()
    phi = jnp.asarray(np.log([[2e4, 10.0, 0.8, 0.004, 0.15, 0.01 / 0.99], [5e3, 12.0, 0.7, 0.002, 0.2, 0.02 / 0.98]]))
    sigma, sigma_add = 0.45, (25.0 if residual == "combined" else None)
    per_patient = np.asarray(patient_log_likelihood(spec, prepare(ds, spec), phi, sigma, sigma_add))
    assert per_patient.shape == (2,)
    for i in range(2):
        alone = one_patient_dataset(ds, i)
        expected = float(log_likelihood(spec, prepare(alone, spec), phi[i:i + 1], sigma, sigma_add))
        assert per_patient[i] == pytest.approx(expected, rel=1e-12)
    total = float(log_likelihood(spec, prepare(ds, spec), phi, sigma, sigma_add))
    assert per_patient.sum() == pytest.approx(total, rel=1e-12)


def test_patient_log_likelihood_of_an_ode_model_matches_one_patient_solves_and_is_minus_infinity_on_a_failed_solve():
    spec = load_spec("cart_tumor").replace(ode={"max_steps": 200})
    ds = small_dataset()
    phi = jnp.tile(jnp.asarray([p.prior_loc for p in spec.parameters]), (2, 1))
    data = prepare(ds, spec)
    solved = np.asarray(patient_log_likelihood(spec, data, phi, 0.4))
    assert np.all(np.isfinite(solved))
    assert solved.sum() == pytest.approx(float(log_likelihood(spec, data, phi, 0.4)), rel=1e-12)
    alone = float(log_likelihood(spec, prepare(one_patient_dataset(ds, 1), spec), phi[1:], 0.4))
    assert solved[1] == pytest.approx(alone, abs=1e-4)  # a solve on another padded schedule: solver tolerance
    failed = phi.at[1, spec.parameter_names.index("beta")].set(jnp.log(5000.0))  # stiff: patient B cannot be solved
    got = np.asarray(patient_log_likelihood(spec, data, failed, 0.4))
    assert np.all(got == -np.inf)  # the population is one solve (step control shared), so it fails as a whole

