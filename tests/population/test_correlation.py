"""Correlated random effects ([iiv] correlation / blocks): the LKJ-Cholesky construction and its density
against scipy and the LKJ normaliser, the whitened and non-centred forms, simulated random effects with the
intended covariance, the [simulation.correlation] truth, and recovery of a correlation from simulated data."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
import scipy.special
import scipy.stats
from numpyro.handlers import condition, seed, trace
from numpyro.infer.util import log_density

from carkin.diagnostics._simulation import design, replicate_draws, simulate_records
from carkin.errors import SpecError
from carkin.inference import SamplerSettings, fit
from carkin.population import (
    Whitening,
    correlation_cholesky,
    correlation_pairs,
    correlation_sites,
    iiv_log_density,
    individual_means,
    individual_parameters,
    load_spec,
    log_likelihood,
    population_model,
    prepare,
    spec_from_dict,
    to_transformed,
)
from carkin.population._correlation import CorrelatedNormal
from carkin.simulate import posterior_population_draws, simulate_cohort, truth_from_spec, write_simulated_cohort

BLOCKS = [["cmax", "tmax", "rho"], ["beta", "delta"]]  # a 3 x 3 and a 2 x 2 block; fb independent


def _spec(iiv: dict, correlation: dict | None = None, omega: dict | None = None):
    raw = json.loads(load_spec("multiphasic").raw)
    raw["iiv"] = iiv
    if correlation is not None:
        raw["simulation"]["correlation"] = correlation
    if omega is not None:
        raw["simulation"]["omega"].update(omega)
    return spec_from_dict(raw, source="t.toml")


def _factors(spec, key, concentration=2.0):
    keys = jax.random.split(key, len(spec.iiv_blocks))
    return {site: dist.LKJCholesky(len(block), concentration).sample(k)
            for site, block, k in zip(correlation_sites(spec), spec.iiv_blocks, keys, strict=True)}


def _lkj_log_density(chol: np.ndarray, concentration: float) -> float:
    """log LKJ density of a Cholesky factor's free entries (rows of L below the diagonal), independently of
    numpyro: p(C) = det(C)^(eta - 1) / c_d with c_d of Lewandowski, Kurowicka & Joe (2009, J Multivar Anal
    100:1989, eq. 16), times the Jacobian |dC / dL| = prod_i L_ii^(d - 1 - i) (i from 0) of C = L L^T."""
    d, eta = chol.shape[0], concentration
    log_c = sum((2 * eta - 2 + d - k) * (d - k) * np.log(2) + (d - k) * scipy.special.betaln(
        eta + (d - k - 1) / 2, eta + (d - k - 1) / 2) for k in range(1, d))
    diagonal = np.diag(chol)
    log_det = 2 * np.log(diagonal).sum()
    log_jacobian = sum((d - 1 - i) * np.log(diagonal[i]) for i in range(d))
    return (eta - 1) * log_det + log_jacobian - log_c


def test_block_factors_scatter_into_the_cholesky_factor_of_a_block_diagonal_correlation_matrix():
    spec = _spec({"blocks": BLOCKS})
    factors = _factors(spec, jax.random.PRNGKey(0))
    chol = np.asarray(correlation_cholesky(spec, factors))
    correlation = chol @ chol.T
    assert np.allclose(np.triu(chol, 1), 0.0) and (np.diag(chol) > 0).all()
    np.testing.assert_allclose(np.diag(correlation), 1.0, rtol=1e-12)
    names = spec.parameter_names
    block_of = {name: k for k, block in enumerate(spec.iiv_blocks) for name in block}
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            if i != j and (a not in block_of or block_of.get(a) != block_of.get(b)):
                assert correlation[i, j] == 0.0, (a, b)
    # the first block's correlation matrix is its factor's L L^T
    index = [names.index(n) for n in spec.iiv_blocks[0]]
    f = np.asarray(factors["corr_chol_0"])
    np.testing.assert_allclose(correlation[np.ix_(index, index)], f @ f.T, rtol=1e-12)
    assert correlation_pairs(spec) == (("cmax", "tmax"), ("cmax", "rho"), ("tmax", "rho"), ("beta", "delta"))
    assert correlation_cholesky(load_spec("multiphasic"), {}) is None


@pytest.mark.parametrize("d, concentration", [(2, 1.0), (2, 3.5), (3, 2.0), (4, 0.7)])
def test_lkj_cholesky_density_matches_the_published_normaliser(d, concentration):
    for k in range(3):
        chol = np.asarray(dist.LKJCholesky(d, concentration).sample(jax.random.PRNGKey(10 + k)))
        got = float(dist.LKJCholesky(d, concentration).log_prob(jnp.asarray(chol)))
        assert got == pytest.approx(_lkj_log_density(chol, concentration), rel=1e-10, abs=1e-10)
    if d == 2:  # and for a pair: r = 2B - 1 with B ~ Beta(eta, eta)
        r = float(chol[1, 0])
        assert got == pytest.approx(scipy.stats.beta(concentration, concentration).logpdf((r + 1) / 2) - np.log(2))


def test_iiv_density_matches_scipy_multivariate_normal():
    spec = _spec({"blocks": BLOCKS})
    chol = correlation_cholesky(spec, _factors(spec, jax.random.PRNGKey(1)))
    k1, k2 = jax.random.split(jax.random.PRNGKey(2))
    loc = jax.random.normal(k1, (7, 6))
    phi = loc + jax.random.normal(k2, (7, 6))
    omega = jnp.asarray([0.8, 0.25, 0.3, 0.5, 0.4, 0.6])
    covariance = np.asarray(omega[:, None] * (chol @ chol.T) * omega[None, :])
    expected = [
        scipy.stats.multivariate_normal(np.asarray(loc[i]), covariance).logpdf(np.asarray(phi[i])) for i in range(7)
    ]
    np.testing.assert_allclose(iiv_log_density(phi, loc, omega, chol), expected, rtol=1e-11)
    np.testing.assert_allclose(CorrelatedNormal(loc, omega, chol).log_prob(phi), expected, rtol=1e-11)
    # independent random effects: the product of normals, with chol None or the identity
    independent = [
        scipy.stats.norm(np.asarray(loc[i]), np.asarray(omega)).logpdf(np.asarray(phi[i])).sum() for i in range(7)
    ]
    np.testing.assert_allclose(iiv_log_density(phi, loc, omega), independent, rtol=1e-12)
    np.testing.assert_allclose(iiv_log_density(phi, loc, omega, jnp.eye(6)), independent, rtol=1e-12)


@pytest.fixture(scope="module")
def small():
    spec = _spec({"blocks": BLOCKS})
    cohort = simulate_cohort(spec, key=jax.random.PRNGKey(3), n=5)
    return spec, prepare(cohort.dataset, spec), cohort


def _population_values(spec, key):
    k1, k2, k3 = jax.random.split(key, 3)
    values = {"mu": jnp.asarray([p.prior_loc for p in spec.parameters]) + 0.1 * jax.random.normal(k1, (6,)),
              "omega": jnp.asarray([0.8, 0.25, 0.3, 0.5, 0.4, 0.6]),
              "beta": jnp.asarray([0.3, 0.5]), "sigma": jnp.asarray(0.45)}
    values.update(_factors(spec, k2))
    return values, k3


def test_model_log_density_is_the_sum_of_independent_references(small):
    spec, data, cohort = small
    values, key = _population_values(spec, jax.random.PRNGKey(4))
    loc = individual_means(spec, values["mu"], values["beta"], data.covariate_z)
    phi = loc + 0.3 * jax.random.normal(key, loc.shape)
    got, _ = log_density(population_model, (data, spec), {}, {**values, "phi": phi})
    chol = np.asarray(correlation_cholesky(spec, values))
    omega = np.asarray(values["omega"])
    covariance = omega[:, None] * (chol @ chol.T) * omega[None, :]
    expected = (
        scipy.stats.norm([p.prior_loc for p in spec.parameters], [p.prior_sd for p in spec.parameters])
        .logpdf(values["mu"])
        .sum()
        + scipy.stats.halfnorm(scale=[p.omega_scale for p in spec.parameters]).logpdf(omega).sum()
        + scipy.stats.norm(0.0, [c.prior_sd for c in spec.covariates for _ in c.parameters])
        .logpdf(values["beta"])
        .sum()
        + sum(_lkj_log_density(np.asarray(values[site]), spec.lkj_concentration) for site in correlation_sites(spec))
        + sum(
            scipy.stats.multivariate_normal(np.asarray(loc[i]), covariance).logpdf(np.asarray(phi[i]))
            for i in range(data.n_patients)
        )
        + scipy.stats.halfnorm(scale=spec.sigma_scale).logpdf(0.45)
        + float(log_likelihood(spec, data, phi, values["sigma"], None))
    )
    assert float(got) == pytest.approx(expected, rel=1e-10)


def test_noncentred_and_whitened_forms_are_exact_reparameterisations(small):
    spec, data, _ = small
    values, key = _population_values(spec, jax.random.PRNGKey(5))
    chol = correlation_cholesky(spec, values)
    loc = individual_means(spec, values["mu"], values["beta"], data.covariate_z)
    omega = values["omega"]
    n, p = loc.shape
    eta = jax.random.normal(key, (n, p))
    # non-centred: phi = loc + A eta with A A^T = Omega (A = diag(omega) L is Omega's Cholesky factor)
    noncentred = spec.replace(iiv="noncentred")
    assert noncentred.iiv == "noncentred" and noncentred.iiv_blocks == spec.iiv_blocks
    lp_eta, tr = log_density(population_model, (data, noncentred), {}, {**values, "eta": eta})
    covariance = np.asarray(omega[:, None] * (chol @ chol.T) * omega[None, :])
    np.testing.assert_allclose(tr["phi"]["value"], loc + eta @ np.linalg.cholesky(covariance).T, rtol=1e-10)
    phi = tr["phi"]["value"]
    lp_phi, _ = log_density(population_model, (data, spec), {}, {**values, "phi": phi})
    # densities differ by the Jacobian of eta -> phi: n * log det A
    jacobian = n * np.log(np.diag(np.linalg.cholesky(covariance))).sum()
    assert float(lp_eta) == pytest.approx(float(lp_phi) + jacobian, rel=1e-10)
    # whitened: phi = T(z) with a full-precision prior; its density is the centred one times |dT/dz|
    k1, k2 = jax.random.split(key)
    a = jax.random.normal(k1, (n, p, p))
    whitening = Whitening(precision=5.0 * jnp.einsum("nij,nkj->nik", a, a), shift=3.0 * jax.random.normal(k2, (n, p)),
                          sigma_ref=jnp.asarray(0.4))
    z = jax.random.normal(jax.random.PRNGKey(6), (n, p))
    for form in (spec, noncentred):
        lp_z, tr = log_density(population_model, (data, form, whitening), {}, {**values, "phi_z": z})
        phi_z = tr["phi"]["value"]
        lp_phi, _ = log_density(population_model, (data, spec), {}, {**values, "phi": phi_z})
        jac = jax.jacfwd(
            lambda flat: whitening.individuals(loc, omega, values["sigma"], flat.reshape(n, p), chol)[0].ravel()
        )(z.ravel())
        assert float(lp_z) == pytest.approx(float(lp_phi) + float(jnp.linalg.slogdet(jac)[1]), rel=1e-10)
        np.testing.assert_allclose(whitening.whiten(loc, omega, values["sigma"], phi_z, chol), z, rtol=1e-8, atol=1e-10)
    # the non-centred spec's eta, recorded beside phi_z, maps back to the same phi
    np.testing.assert_allclose(loc + omega * (tr["eta"]["value"] @ chol.T), phi_z, rtol=1e-10, atol=1e-12)
    # no information: a non-centred form, phi = loc + B z with B B^T = Omega (B = L_Q^{-T}, upper triangular)
    empty = Whitening(precision=jnp.zeros((n, p, p)), shift=jnp.zeros((n, p)), sigma_ref=jnp.asarray(0.4))
    np.testing.assert_allclose(empty.individuals(loc, omega, 0.4, jnp.zeros((n, p)), chol)[0], loc, rtol=1e-10)
    jac = jax.jacfwd(lambda z0: empty.individuals(loc[:1], omega, 0.4, z0[None, :], chol)[0][0])(z[0])
    np.testing.assert_allclose(jac @ jac.T, covariance, rtol=1e-9, atol=1e-12)


def test_diagonal_specs_have_no_correlation_sites_and_the_same_individual_parameters():
    spec = load_spec("multiphasic")
    assert not spec.iiv_blocks and correlation_sites(spec) == ()
    cohort = simulate_cohort(spec, key=jax.random.PRNGKey(7), n=4)
    data = prepare(cohort.dataset, spec)
    tr = trace(seed(population_model, jax.random.PRNGKey(0))).get_trace(data, spec)
    assert not [name for name in tr if name.startswith("corr")]
    mu, omega = jnp.zeros(6), jnp.full(6, 0.5)
    eta = jax.random.normal(jax.random.PRNGKey(1), (4, 6))
    z = data.covariate_z
    beta = jnp.asarray([0.3, 0.5])
    np.testing.assert_array_equal(individual_parameters(spec, mu, omega, beta, z, eta),
                                  individual_means(spec, mu, beta, z) + omega * eta)


def _sample_covariance_within(x, covariance, n_se=5.0):
    """Every entry of the sample covariance of x (n, p) within n_se standard errors of ``covariance``
    (SE of a sample covariance of normal data: sqrt((S_ii S_jj + S_ij^2) / n))."""
    n = x.shape[0]
    sample = np.cov(np.asarray(x), rowvar=False)
    se = np.sqrt((np.outer(np.diag(covariance), np.diag(covariance)) + covariance**2) / n)
    assert np.all(np.abs(sample - covariance) < n_se * se), (sample, covariance)


def test_simulated_random_effects_have_the_intended_covariance():
    spec = _spec({"blocks": BLOCKS}, correlation={"cmax,tmax": 0.6, "rho,cmax": -0.3, "beta,delta": 0.7})
    truth = truth_from_spec(spec)
    correlation = np.asarray(truth.correlation)
    assert correlation[0, 1] == pytest.approx(0.6) and correlation[2, 0] == pytest.approx(-0.3)
    assert correlation[3, 4] == pytest.approx(0.7) and correlation[0, 3] == 0.0 and correlation[5, 1] == 0.0
    omega = np.asarray(truth.omega)
    covariance = omega[:, None] * correlation * omega[None, :]
    # the generative model (every simulator calls it)
    n = 100_000
    eta = jax.random.normal(jax.random.PRNGKey(8), (n, 6))
    z = jnp.zeros((n, 2))
    phi = individual_parameters(spec, truth.mu, truth.omega, truth.beta, z, eta, truth.chol)
    _sample_covariance_within(phi, covariance)
    # the numpyro model's prior draws of phi given the population values, centred and non-centred
    cohort = simulate_cohort(spec, key=jax.random.PRNGKey(9), n=4000)
    data = prepare(cohort.dataset, spec)
    factors = {"corr_chol_0": truth.chol[:3, :3], "corr_chol_1": truth.chol[3:5, 3:5]}
    given = {"mu": truth.mu, "omega": truth.omega, "beta": truth.beta, "sigma": 0.4, **factors}
    loc = individual_means(spec, truth.mu, truth.beta, data.covariate_z)
    for form in (spec, spec.replace(iiv="noncentred")):
        tr = trace(seed(condition(population_model, given), jax.random.PRNGKey(10))).get_trace(data, form)
        _sample_covariance_within(tr["phi"]["value"] - loc, covariance)
    # a simulated cohort's true individual parameters (tmax, rho, beta, delta carry no covariate effects)
    phi = np.stack([np.asarray(to_transformed(p.transform, cohort.individual[p.name])) for p in spec.parameters], -1)
    keep = [1, 2, 3, 4]
    _sample_covariance_within(phi[:, keep], covariance[np.ix_(keep, keep)])


@pytest.mark.parametrize(
    "iiv, correlation, match",
    [
        ({}, {"cmax,tmax": 0.5}, r"gives correlations, but the model's random effects are independent"),
        (
            {"blocks": BLOCKS},
            {"cmax,beta": 0.5},
            r"\[simulation.correlation\] cmax,beta = 0.5 is not a pair of parameters in one \[iiv\] block",
        ),
        ({"blocks": BLOCKS}, {"cmax,tmax": 0.5, "tmax,cmax": 0.2}, r"gives the pair 'cmax,tmax' again"),
        ({"blocks": BLOCKS}, {"cmax,tmax": 1.0}, r"cmax,tmax = 1.0 is outside \(-1, 1\)"),
        ({"blocks": BLOCKS}, {"cmax,tmax": 0.9, "cmax,rho": 0.9, "tmax,rho": -0.9}, r"is not a correlation matrix"),
    ],
)
def test_bad_simulation_correlations_are_refused(iiv, correlation, match):
    with pytest.raises(SpecError, match=match):
        truth_from_spec(_spec(iiv, correlation))


def test_mixed_iiv_is_refused_with_correlation_but_noncentred_is_not():
    with pytest.raises(SpecError, match=r"is not available with correlated random effects"):
        _spec({"blocks": BLOCKS, "noncentred": ["fb"]})
    assert _spec({"correlation": "full", "parameterization": "noncentred"}).iiv == "noncentred"


RECOVERY_TRUTH = 0.7


def _recovery_fit(key, seed, n=60, settings=None):
    spec = _spec({"blocks": [["cmax", "tmax"]]}, correlation={"cmax,tmax": RECOVERY_TRUTH})
    cohort = simulate_cohort(spec, key=key, n=n)
    settings = settings or SamplerSettings(chains=2, warmup=150, samples=150, progress_bar=False)
    return fit(cohort.dataset, spec, seed=seed, settings=settings), cohort


@pytest.fixture(scope="module")
def recovery():
    import warnings

    from carkin.errors import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # short chains: the gates are not the point here
        return _recovery_fit(jax.random.PRNGKey(12), seed=3)


@pytest.mark.slow  # a NUTS fit: minutes on 2 cores
def test_a_strong_correlation_is_recovered_and_reported(recovery):
    recovery, _ = recovery
    row = recovery.table.set_index("parameter").loc["corr_cmax_tmax"]
    draws = np.asarray(recovery.idata.posterior["corr_chol_0"].values)[..., 1, 0].ravel()
    low, high = np.quantile(draws, [0.025, 0.975])
    assert low < RECOVERY_TRUTH < high and low > 0  # truth in the 95% interval, the sign right
    assert row["q05"] > 0 and row["q50"] == pytest.approx(np.median(draws))
    assert np.isfinite(row["r_hat"]) and row["ess_bulk"] > 0
    assert [p for p in recovery.table.parameter if p.startswith("corr_")] == ["corr_cmax_tmax"]
    matrix = recovery.correlation(prob=0.95)
    assert matrix["mean"].loc["cmax", "tmax"] == pytest.approx(draws.mean())
    assert matrix["mean"].loc["tmax", "cmax"] == pytest.approx(draws.mean())
    assert matrix["low"].loc["cmax", "tmax"] == pytest.approx(low)
    assert matrix["mean"].loc["beta", "delta"] == 0.0 and (np.diag(matrix["mean"]) == 1.0).all()


@pytest.mark.slow  # a NUTS fit: minutes on 2 cores
def test_posterior_predictive_and_written_truth_carry_the_correlation(recovery, tmp_path):
    result, cohort = recovery
    _, values = posterior_population_draws(result)
    draws = np.asarray(result.idata.posterior["corr_chol_0"].values)[..., 1, 0].ravel()
    chol = values["chol"]  # (draws, params, params), chains x draws flattened as the other sites
    np.testing.assert_allclose((chol @ np.swapaxes(chol, -1, -2))[:, 0, 1], draws, rtol=1e-12)
    replicates = replicate_draws(result, 4)
    assert replicates["chol"].shape == (4, 6, 6)
    des = design(cohort.dataset, result.spec)
    key = jax.random.PRNGKey(13)
    sims = simulate_records(result.spec, des.data, replicates, key=key, log_lloq=des.log_lloq)
    assert sims.log_value.shape == (4, des.log_dv.size) and np.isfinite(np.asarray(sims.log_value)).all()
    # the replicates use the correlation: the same key without it gives other patients
    independent = simulate_records(result.spec, des.data, {**replicates, "chol": np.broadcast_to(np.eye(6), (4, 6, 6))},
                                   key=key, log_lloq=des.log_lloq)
    assert not np.allclose(sims.log_value, independent.log_value)
    truth = write_simulated_cohort(cohort, result.spec, tmp_path / "cohort")
    assert json.loads((tmp_path / "cohort" / "truth.json").read_text())["correlation"] == pytest.approx(
        {"cmax,tmax": RECOVERY_TRUTH}, rel=1e-12
    )
    assert truth["correlation"] == pytest.approx({"cmax,tmax": RECOVERY_TRUTH}, rel=1e-12)


@pytest.mark.slow
def test_correlation_intervals_cover_the_truth_over_replicates():
    """90% intervals of corr(cmax, tmax) over 16 simulated cohorts: at least 11 cover 0.7 (P(X <= 10) = 0.002
    for 16 independent 90% intervals); and the posterior medians centre on the truth."""
    import warnings

    from carkin.errors import ConvergenceWarning

    covered, medians = 0, []
    settings = SamplerSettings(chains=2, warmup=400, samples=400, progress_bar=False)
    for r in range(16):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            result, _ = _recovery_fit(jax.random.fold_in(jax.random.PRNGKey(100), r), seed=r, settings=settings)
        row = result.table.set_index("parameter").loc["corr_cmax_tmax"]
        covered += row["q05"] < RECOVERY_TRUTH < row["q95"]
        medians.append(row["q50"])
    assert covered >= 11, (covered, medians)
    assert abs(np.mean(medians) - RECOVERY_TRUTH) < 0.15, medians
