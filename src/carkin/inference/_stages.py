"""NUTS's two-stage warm-up: what the first stage hands to the second.

The first stage warms up in the spec's IIV parameterisation; from its second half ``second_stage`` builds each
patient's Gaussian (`carkin.population.likelihood_whitening`) and the whitened starting values of every chain.
Before that, the chains are compared patient by patient (``stranded_patients``): a chain that holds a patient
in a region far less dense than another chain does sits in a minor local mode it would not leave, and that
patient restarts from the better chain's draws (``restart_stranded``). Both stages' draws are warm-up, so
where the second stage starts changes how fast it mixes, not what it samples.
"""

from __future__ import annotations

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions import biject_to, constraints

from ..population import (
    PopulationSpec,
    Whitening,
    correlation_cholesky,
    correlation_sites,
    iiv_log_density,
    individual_means,
    likelihood_whitening,
    patient_log_likelihood,
    population_extras,
    population_sites,
    whitening_reference,
)

__all__ = ["second_stage", "patient_log_density", "stranded_patients", "restart_stranded", "whitened_start"]

STRANDED_GAP = 4.0  # nats of mean conditional log density by which a chain trails the best one for a patient
STRANDED_DRAWS = 25  # last first-stage draws per chain on which the patients' conditional densities are compared


def patient_log_density(spec: PopulationSpec, data, draws: dict) -> np.ndarray:
    """log p(y_i | phi_i) + log N(phi_i | loc_i, Omega) for every draw and patient: (chains, draws, patients).

    ``draws``: {site: (chains, draws, ...)}. Draws whose ODE solve failed give -inf for every patient.
    """
    names = [n for n, _ in population_sites(spec) if n in draws] + list(correlation_sites(spec)) + ["phi"]
    chains, n_draws = draws["phi"].shape[:2]
    flat = {n: jnp.asarray(draws[n].reshape(chains * n_draws, *draws[n].shape[2:])) for n in names}
    return np.asarray(_flat_patient_log_density(spec, data, flat)).reshape(chains, n_draws, -1)


@functools.partial(jax.jit, static_argnums=0)
def _flat_patient_log_density(spec: PopulationSpec, data, flat: dict):
    """`patient_log_density` on draws stacked on one leading axis; compiled once per spec and shapes, not per fit."""

    def one(d):
        beta = d.get("beta", jnp.zeros((0,)))
        loc = individual_means(spec, d["mu"], beta, data.covariate_z)
        prior = iiv_log_density(d["phi"], loc, d["omega"], correlation_cholesky(spec, d))
        sigma, sigma_add, log_scale, gamma = population_extras(spec, d)
        return patient_log_likelihood(spec, data, d["phi"], sigma, sigma_add, log_scale=log_scale, gamma=gamma) + prior

    return jax.lax.map(one, flat)


def stranded_patients(density: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which chain holds each patient where the posterior is far less dense than another chain does.

    ``density``: (chains, draws, patients) conditional log densities (`patient_log_density`). A chain whose
    mean trails the best chain's by more than ``STRANDED_GAP`` nats for a patient sits in a minor local mode
    of that patient's parameters, which NUTS leaves rarely if ever; the population parameters' R-hat then
    fails (seen on the mechanistic model: a patient's memory persistence read as near zero in one chain).
    Returns ``stranded`` (chains, patients) bool and ``best`` (patients,) chain index.
    """
    finite = np.isfinite(density)  # a draw whose solve failed is -inf for every patient: left out of the mean
    mean = np.where(finite, density, 0.0).sum(axis=1) / np.maximum(finite.sum(axis=1), 1)
    mean = np.where(finite.any(axis=1), mean, -np.inf)
    best = np.argmax(mean, axis=0)
    with np.errstate(invalid="ignore"):  # -inf - -inf where every chain failed: nan, not stranded
        gap = mean[best, np.arange(mean.shape[1])][None, :] - mean
    return gap > STRANDED_GAP, best


def whitened_start(draws: dict, spec: PopulationSpec, data, whitening: Whitening, chains: int) -> dict:
    """Unconstrained starting values of the second stage: each chain's last first-stage draw, phi whitened.

    ``draws``: the first stage's warm-up draws by chain, {site: (chains, draws, ...)}.
    """
    last = {name: values[:, -1] for name, values in draws.items()}
    start = {name: np.log(last[name]) if positive else last[name] for name, positive in population_sites(spec)}
    to_corr_cholesky = biject_to(constraints.corr_cholesky)
    start.update({name: np.asarray(to_corr_cholesky.inv(jnp.asarray(last[name]))) for name in correlation_sites(spec)})
    beta = last.get("beta", np.zeros((chains, 0)))
    sigma, sigma_add, _, _ = population_extras(spec, last)
    reference = np.asarray(whitening_reference(spec, sigma, sigma_add))  # (chains,)
    chol = correlation_cholesky(spec, last)  # (chains, params, params), or None
    start["phi_z"] = np.asarray(_whiten_chains(spec, whitening, data.covariate_z, last["mu"], beta, last["omega"],
                                               reference, last["phi"], chol))
    return start if chains > 1 else {name: value[0] for name, value in start.items()}


@functools.partial(jax.jit, static_argnums=0)
def _whiten_chains(spec: PopulationSpec, whitening: Whitening, covariate_z, mu, beta, omega, sigma, phi, chol=None):
    """Each chain's phi (chains, patients, params) whitened; compiled once per spec and shapes, not per fit."""

    def whiten(mu, beta, omega, sigma, phi, chol):
        return whitening.whiten(individual_means(spec, mu, beta, covariate_z), omega, sigma, phi, chol)

    return jax.vmap(whiten)(mu, beta, omega, sigma, phi, chol)


def restart_stranded(settled: dict, draws: dict, stranded: np.ndarray, best: np.ndarray, patient_ids) -> tuple:
    """Move stranded patients (`stranded_patients`) to the best chain's region before the second stage.

    Still warm-up, so the second stage's chains target the posterior wherever they start: a stranded patient's
    start becomes one of the best chain's recent draws (a different one per chain, to keep the chains apart),
    and its Gaussian is centred on the mean of the chains that are not stranded for it.
    Returns the whitening centre (patients, params), the draws with the new starts, and what was moved.
    """
    chain_means = settled["phi"].mean(axis=1)  # (chains, patients, params)
    keep = (~stranded)[:, :, None]
    phi_hat = (chain_means * keep).sum(0) / keep.sum(0)
    phi = draws["phi"].copy()
    restarted = []
    for chain, patient in zip(*np.nonzero(stranded), strict=True):
        source = settled["phi"][best[patient]]
        phi[chain, -1, patient] = source[-1 - chain % source.shape[0], patient]
        restarted.append({"chain": int(chain), "patient": patient_ids[patient], "from_chain": int(best[patient])})
    by_chain = {}
    for r in restarted:
        by_chain.setdefault(r["chain"], []).append(f"{r['patient']} (from chain {r['from_chain']})")
    warnings.warn(
        f"NUTS, end of the first warm-up stage: the posterior was over {STRANDED_GAP:g} nats less dense (on "
        "average) where these chains held these patients than in another chain, a minor local mode they would "
        "not leave; the second stage starts them from the better chain's draws (manifest: restarted_patients): "
        + "; ".join(f"chain {chain}: patients {', '.join(names)}" for chain, names in by_chain.items()),
        stacklevel=5,  # restart_stranded < second_stage < _run_nuts < fit < the caller
    )
    return phi_hat, {**draws, "phi": phi}, restarted


def second_stage(spec: PopulationSpec, data, patient_ids, draws: dict) -> tuple[Whitening, dict, list]:
    """The whitening, the second stage's starting values and the restarted patients, from the first stage.

    ``draws``: the first stage's warm-up draws by chain, {site: (chains, draws, ...)}; its second half has
    settled enough to place each patient's Gaussian (at the mean over chains) and the residual SD.
    """
    chains, n_draws = draws["phi"].shape[:2]
    settled = {k: v[:, n_draws // 2:] for k, v in draws.items()}
    phi_hat = settled["phi"].mean(axis=(0, 1))
    restarted = []
    if chains > 1:
        recent = {k: v[:, -min(STRANDED_DRAWS, v.shape[1]):] for k, v in settled.items()}
        stranded, best = stranded_patients(patient_log_density(spec, data, recent))
        if stranded.any():
            phi_hat, draws, restarted = restart_stranded(settled, draws, stranded, best, patient_ids)
    means = {name: settled[name].mean(axis=(0, 1)) for name, _ in population_sites(spec)}
    sigma, sigma_add, log_scale, gamma = population_extras(spec, means)
    whitening = likelihood_whitening(spec, data, phi_hat, sigma, sigma_add, log_scale=log_scale, gamma=gamma)
    return whitening, whitened_start(draws, spec, data, whitening, chains), restarted
