"""Likelihood-informed whitening: the affine map against autodiff, its limits, the Hessian, the model's density."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.handlers import seed, trace
from numpyro.infer.util import log_density

from carkin.population import (
    Whitening,
    individual_means,
    likelihood_whitening,
    load_spec,
    log_likelihood,
    population_model,
    prepare,
    to_transformed,
)
from carkin.simulate import simulate_cohort

from ..helpers import small_dataset


def _random_whitening(key, n_patients, n_params, sigma_ref=0.4):
    k1, k2 = jax.random.split(key)
    a = jax.random.normal(k1, (n_patients, n_params, n_params))
    precision = jnp.einsum("nij,nkj->nik", a, a) * 5.0  # positive semi-definite, well away from the prior's scale
    shift = jax.random.normal(k2, (n_patients, n_params)) * 3.0
    return Whitening(precision=precision, shift=shift, sigma_ref=jnp.asarray(sigma_ref))


def test_no_information_gives_the_noncentred_parameterisation():
    n, p = 4, 3
    loc = jax.random.normal(jax.random.PRNGKey(0), (n, p))
    omega, z = jnp.asarray([0.3, 0.8, 1.5]), jax.random.normal(jax.random.PRNGKey(1), (n, p))
    empty = Whitening(precision=jnp.zeros((n, p, p)), shift=jnp.zeros((n, p)), sigma_ref=jnp.asarray(0.4))
    phi, log_jacobian = empty.individuals(loc, omega, 0.7, z)
    np.testing.assert_allclose(phi, loc + omega * z, rtol=1e-12, atol=1e-12)
    assert float(log_jacobian) == pytest.approx(n * float(jnp.log(omega).sum()), rel=1e-12)


def test_log_jacobian_and_inverse_match_autodiff():
    n, p = 5, 4
    whitening = _random_whitening(jax.random.PRNGKey(2), n, p)
    loc = jax.random.normal(jax.random.PRNGKey(3), (n, p))
    omega, sigma = jnp.asarray([0.2, 0.5, 1.0, 2.0]), 0.55
    z = jax.random.normal(jax.random.PRNGKey(4), (n, p))
    phi, log_jacobian = whitening.individuals(loc, omega, sigma, z)
    jacobian = jax.jacfwd(lambda flat: whitening.individuals(loc, omega, sigma, flat.reshape(n, p))[0].ravel())(
        z.ravel()
    )
    assert float(log_jacobian) == pytest.approx(float(jnp.linalg.slogdet(jacobian)[1]), rel=1e-10)
    np.testing.assert_allclose(whitening.whiten(loc, omega, sigma, phi), z, rtol=1e-9, atol=1e-10)
    # The Gaussian it encodes: at z = 0, phi is the mode of prior x likelihood approximation, whose
    # precision is H (sigma_ref / sigma)^2 + diag(1 / omega^2).
    scale = (0.4 / sigma) ** 2
    precision = whitening.precision * scale + jnp.diag(1 / omega**2)
    mode = jnp.linalg.solve(precision, (loc / omega**2 + whitening.shift * scale)[..., None])[..., 0]
    np.testing.assert_allclose(whitening.individuals(loc, omega, sigma, jnp.zeros((n, p)))[0], mode, rtol=1e-9)
    covariance = jnp.einsum("ij,kj->ik", jacobian, jacobian)[:p, :p]  # patient 0's block of J J^T
    np.testing.assert_allclose(covariance, jnp.linalg.inv(precision[0]), rtol=1e-8)


def _cohort(n=6):
    spec = load_spec("multiphasic")
    cohort = simulate_cohort(spec, key=jax.random.PRNGKey(11), n=n)
    return spec, cohort, prepare(cohort.dataset, spec)


def test_precision_is_the_block_of_the_exact_hessian_of_the_log_likelihood():
    spec, cohort, data = _cohort()
    # the simulation's true individual parameters, transformed scale
    phi = jnp.stack([jnp.asarray(to_transformed(p.transform, cohort.individual[p.name])) for p in spec.parameters], -1)
    sigma = 0.4
    whitening = likelihood_whitening(spec, data, phi, sigma)
    n, p = phi.shape
    full = jax.hessian(lambda flat: log_likelihood(spec, data, flat.reshape(n, p), sigma))(phi.ravel())
    full = full.reshape(n, p, n, p)
    blocks = -jnp.stack([full[i, :, i, :] for i in range(n)])
    off_block = full.at[jnp.arange(n), :, jnp.arange(n), :].set(0.0)
    assert float(jnp.abs(off_block).max()) == 0.0  # patients are independent: the Hessian is block-diagonal
    eigenvalues, vectors = jnp.linalg.eigh(blocks)
    expected = jnp.einsum("nij,nj,nkj->nik", vectors, jnp.clip(eigenvalues, 0.0), vectors)
    scale = float(jnp.abs(expected).max())
    np.testing.assert_allclose(whitening.precision, expected, atol=1e-5 * scale)
    gradient = jax.grad(lambda x: log_likelihood(spec, data, x, sigma))(phi)
    np.testing.assert_allclose(whitening.shift, jnp.einsum("nij,nj->ni", expected, phi) + gradient, atol=1e-5 * scale)
    assert float(whitening.sigma_ref) == sigma


@pytest.mark.parametrize("iiv", ["centred", "noncentred", "mixed"])
def test_whitened_model_density_is_the_centred_density_plus_the_log_jacobian(iiv):
    spec = load_spec("multiphasic")
    spec = spec.replace(iiv={"centred": "centred", "noncentred": "noncentred",
                             "mixed": {"parameterization": "centred", "noncentred": ["cmax"]}}[iiv])
    ds = small_dataset()
    data = prepare(ds, spec)
    whitening = _random_whitening(jax.random.PRNGKey(6), ds.n_patients, len(spec.parameters))
    tr = trace(seed(population_model, jax.random.PRNGKey(7))).get_trace(data, spec, whitening)
    assert tr["phi_z"]["type"] == "sample" and tr["phi"]["type"] == "deterministic"
    values = {k: tr[k]["value"] for k in ("mu", "omega", "beta", "sigma", "phi_z")}
    phi = tr["phi"]["value"]
    loc = individual_means(spec, values["mu"], values["beta"], data.covariate_z)
    expected_phi, log_jacobian = whitening.individuals(loc, values["omega"], values["sigma"], values["phi_z"])
    np.testing.assert_allclose(phi, expected_phi, rtol=1e-12)
    if spec.individual_site != "phi":  # the spec's own site is recorded, as its sampler would have drawn it
        eta = (np.asarray(phi) - np.asarray(loc)) / np.asarray(values["omega"])
        site = np.asarray(tr[spec.individual_site]["value"])
        noncentred = np.isin(spec.parameter_names, spec.noncentred) if iiv == "mixed" else np.ones(6, bool)
        np.testing.assert_allclose(site[:, noncentred], eta[:, noncentred], rtol=1e-10)
        np.testing.assert_allclose(site[:, ~noncentred], np.asarray(phi)[:, ~noncentred], rtol=1e-12)
    centred_spec = load_spec("multiphasic")
    lp_whitened, _ = log_density(population_model, (data, spec, whitening), {}, values)
    centred = {**{k: v for k, v in values.items() if k != "phi_z"}, "phi": phi}
    lp_centred, _ = log_density(population_model, (prepare(ds, centred_spec), centred_spec), {}, centred)
    assert float(lp_whitened) == pytest.approx(float(lp_centred) + float(log_jacobian), rel=1e-10)


def test_a_failed_ode_solve_at_the_expansion_point_falls_back_to_the_noncentred_form():
    spec = load_spec("cart_tumor").replace(ode={"max_steps": 200})
    cohort = simulate_cohort(load_spec("cart_tumor"), key=jax.random.PRNGKey(2), n=3)
    data = prepare(cohort.dataset, spec)
    phi = jnp.tile(jnp.asarray([p.prior_loc for p in spec.parameters]), (3, 1))
    phi = phi.at[1, spec.parameter_names.index("beta")].set(jnp.log(5000.0))  # stiff: patient 2 cannot be solved
    assert not np.isfinite(float(log_likelihood(spec, data, phi, 0.4)))
    whitening = likelihood_whitening(spec, data, phi, 0.4)
    assert float(jnp.abs(whitening.precision).max()) == 0.0 and float(jnp.abs(whitening.shift).max()) == 0.0
