"""Record-level predictions and posterior predictive simulation shared by GOF, NPDE and VPC (private).

Everything works on the flat record layout of ``Dataset.flat()`` (the likelihood's layout): one entry per
real observation record, in row-major order of the padded arrays. A closed-form model is evaluated record by
record; an ODE model is solved once per patient on ``PopulationData.padded_times`` and gathered back with
``record_slot``, exactly as in the population likelihood. Draws and replicates are batched with ``jax.vmap``.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ..data import Dataset
from ..population import (
    Observations,
    PopulationData,
    PopulationSpec,
    individual_means,
    individual_parameters,
    natural_parameters,
    prepare,
    sample_observations,
)
from ..simulate import posterior_population_draws

CHUNK = 50  # replicates or draws per compiled call

__all__ = ["log_prediction_draws", "Design", "design", "record_log_prediction", "record_log_prediction_batch", "simulate_records", "replicate_draws", "typical_phi"]


@dataclasses.dataclass(frozen=True)
class Design:
    """A dataset's design in the flat record layout, with the model arrays the predictions need.

    Attributes
    ----------
    data : PopulationData
        ``carkin.population.prepare(dataset, spec)`` (covariates, model inputs, padded schedule).
    patient : (records,) int, row of each record's patient
    times : (records,) days after infusion
    log_dv : (records,) log of the observed level, copies/ug (log LLOQ on BLQ records)
    blq : (records,) bool, censored records
    log_lloq : (records,) log LLOQ, copies/ug (the observed DV on BLQ records when no LLOQ was given)
    """

    data: PopulationData
    patient: np.ndarray
    times: np.ndarray
    log_dv: np.ndarray
    blq: np.ndarray
    log_lloq: np.ndarray


def design(dataset: Dataset, spec: PopulationSpec) -> Design:
    """The flat record design of ``dataset`` for ``spec`` (BLQ records are kept whatever ``spec.blq`` says)."""
    mask = np.asarray(dataset.obs_mask)
    rec = dataset.flat()
    lloq = np.asarray(dataset.lloq, dtype=float)[mask]
    dv = np.asarray(dataset.dv, dtype=float)[mask]
    blq = np.asarray(rec.blq)
    # A record without an LLOQ of its own: the censored DV is the LLOQ; a quantified one is not censorable.
    lloq = np.where(np.isfinite(lloq), lloq, np.where(blq, dv, 0.0))
    data = prepare(dataset, spec if spec.blq != "drop" else spec.replace(blq="m3"))
    with np.errstate(divide="ignore"):
        log_lloq = np.log(lloq)
    return Design(
        data=data,
        patient=np.asarray(rec.patient),
        times=np.asarray(rec.times, dtype=float),
        log_dv=np.asarray(rec.log_dv, dtype=float),
        blq=blq,
        log_lloq=log_lloq,
    )


def record_log_prediction(spec: PopulationSpec, data: PopulationData, phi: Float[Array, "patients params"]) -> Float[Array, " records"]:
    """log C (copies/ug) of every record for one set of individual parameters (transformed scale).

    Batch over draws with ``jax.vmap``. An ODE solve that fails yields NaN for that patient's records.
    """
    rec = data.records
    model = spec.kinetic_model
    if model.elementwise:
        individual = natural_parameters(spec, phi[rec.patient])
        individual.update({k: v[rec.patient] for k, v in data.inputs.items()})
        return model.log_concentration(individual, rec.times)
    individual = natural_parameters(spec, phi)
    individual.update(data.inputs)
    sol = model.solve(individual, data.padded_times)
    log_c = sol.log_concentration.reshape(-1)[data.record_slot]
    return jnp.where(sol.ok[rec.patient], log_c, jnp.nan)


def replicate_draws(fit, replicates: int) -> dict[str, np.ndarray]:
    """Population posterior values for ``replicates`` replicates: evenly spaced draws, cycled if too few.

    Returns ``mu``, ``omega`` (replicates, params), ``beta`` (replicates, effects), ``sigma``, ``sigma_add``
    (replicates,), and with correlated IIV ``chol`` (replicates, params, params).
    """
    _, values = posterior_population_draws(fit)
    n_total = values["mu"].shape[0]
    if n_total >= replicates:
        idx = np.round(np.linspace(0, n_total - 1, replicates)).astype(int)
    else:
        idx = np.resize(np.arange(n_total), replicates)
    return {k: np.asarray(v)[idx] for k, v in values.items()}


def typical_phi(fit, data: PopulationData) -> Float[Array, "patients params"]:
    """Each patient's typical parameters (eta = 0, own covariates) at the posterior median of mu and beta."""
    _, values = posterior_population_draws(fit)
    mu = jnp.asarray(np.median(values["mu"], axis=0))
    beta = jnp.asarray(np.median(values["beta"], axis=0)) if values["beta"].shape[-1] else jnp.zeros((0,))
    return individual_means(fit.spec, mu, beta, data.covariate_z)


def simulate_records(
    spec: PopulationSpec,
    data: PopulationData,
    draws: dict[str, np.ndarray],
    *,
    key: PRNGKeyArray,
    log_lloq: Float[Array, " records"],
) -> Observations:
    """Posterior predictive observations of every record, one replicate per draw.

    Each replicate draws new patients (new random effects) with the observed patients' design (times,
    covariates, model inputs) from one posterior draw of the population values, then adds residual error on
    the log scale and censors at each record's LLOQ, through the one generative model
    (`carkin.population.individual_parameters`, `carkin.population.sample_observations`). Replicate r uses the
    key ``jax.random.fold_in(key, r)``.

    Parameters
    ----------
    log_lloq : Float[Array, " records"]
        Log LLOQ of each record, log(copies/ug) (``Design.log_lloq``; ``-inf``: never censored).

    Returns
    -------
    Observations
        Each field of shape (replicates, records): ``log_value`` (uncensored), ``log_dv``, ``blq``.
    """
    n_rep = draws["mu"].shape[0]
    beta = draws["beta"] if draws["beta"].shape[-1] else np.zeros((n_rep, 0))
    values = [np.asarray(draws["mu"]), np.asarray(draws["omega"]), np.asarray(beta), np.asarray(draws["sigma"]),
              np.asarray(draws["sigma_add"])] + ([np.asarray(draws["chol"])] if "chol" in draws else [])
    # Fixed-size chunks of replicates: one compilation serves every replicate count (VPC, NPDE), and
    # memory stays bounded. Replicate r keeps the key fold_in(key, r) whatever the chunking.
    out = []
    for start in range(0, n_rep, CHUNK):
        index = np.arange(start, start + CHUNK)
        take = np.minimum(index, n_rep - 1)
        sims = _simulate_batch(spec, data, key, jnp.asarray(log_lloq), jnp.asarray(index),
                               *(jnp.asarray(v[take]) for v in values))
        keep = min(CHUNK, n_rep - start)
        out.append(jax.tree_util.tree_map(lambda x, keep=keep: x[:keep], sims))
    return jax.tree_util.tree_map(lambda *x: jnp.concatenate(x, axis=0), *out)


def log_prediction_draws(spec: PopulationSpec, data: PopulationData, phi) -> Float[Array, "draws records"]:
    """`record_log_prediction` for a batch of parameter sets ``phi`` (draws, patients, params), in fixed chunks."""
    phi = np.asarray(phi, dtype=float)
    n = phi.shape[0]
    out = []
    for start in range(0, n, CHUNK):
        take = np.minimum(np.arange(start, start + CHUNK), n - 1)
        out.append(record_log_prediction_batch(spec, data, jnp.asarray(phi[take]))[: min(CHUNK, n - start)])
    return jnp.concatenate(out, axis=0)


@eqx.filter_jit
def _simulate_batch(spec, data, key, log_lloq, index, mu, omega, beta, sigma, sigma_add, chol=None):
    # The data arrays are arguments (traced), not closed-over constants: XLA compiles in a fraction of the
    # time, and one compilation serves every call with the same shapes.
    n_patients, n_params = data.covariate_z.shape[0], len(spec.parameters)

    def one(r, mu, omega, beta, sigma, sigma_add, chol):
        k_eta, k_eps = jax.random.split(jax.random.fold_in(key, r))
        eta = jax.random.normal(k_eta, (n_patients, n_params))
        phi = individual_parameters(spec, mu, omega, beta, data.covariate_z, eta, chol)
        log_c = record_log_prediction(spec, data, phi)
        return sample_observations(log_c, jax.random.normal(k_eps, log_c.shape), residual=spec.residual,
                                   sigma=sigma, sigma_add=sigma_add, log_lloq=log_lloq)

    return jax.vmap(one)(index, mu, omega, beta, sigma, sigma_add, chol)


@eqx.filter_jit
def record_log_prediction_batch(spec, data, phi):
    """`record_log_prediction` vmapped over a leading draws axis of ``phi`` (draws, patients, params)."""
    return jax.vmap(lambda p: record_log_prediction(spec, data, p))(phi)
