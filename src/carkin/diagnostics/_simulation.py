"""Record-level predictions and posterior predictive simulation shared by GOF, NPDE, VPC and the individual fits
(private).

Everything works on the flat record layout of ``Dataset.flat()`` (the likelihood's layout): one entry per
real observation record, in row-major order of the padded arrays. Predictions are the likelihood's own
(`carkin.population.record_log_predictions`): each patient's doses and co-medication switches
(`carkin.population.model_context`), each record's analyte's model output and scaling factor; a closed-form
model is evaluated record by record, an ODE model solved once per patient on ``PopulationData.padded_times``.
Simulated observations go through the one generative model with each analyte's error model
(`carkin.population.sample_analyte_observations`). Draws and replicates are batched with ``jax.vmap``.
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
    population_extras,
    prepare,
    record_analytes,
    record_log_predictions,
    sample_analyte_observations,
)
from ..simulate import posterior_population_draws

CHUNK = 50  # replicates or draws per compiled call

__all__ = [
    "Design", "design", "grid_data", "log_prediction_draws", "observation_draws", "record_log_prediction",
    "record_log_prediction_batch", "replicate_draws", "simulate_records", "typical_extras", "typical_phi",
]


@dataclasses.dataclass(frozen=True)
class Design:
    """A dataset's design in the flat record layout, with the model arrays the predictions need.

    Attributes
    ----------
    data : PopulationData
        ``carkin.population.prepare(dataset, spec)`` (covariates, model inputs, padded schedule, doses,
        co-medication, each record's analyte).
    patient : (records,) int, row of each record's patient
    times : (records,) time after the first dose (time unit of the data)
    dv : (records,) observed value in the analyte's unit (the LLOQ on BLQ records; may be <= 0 for a
        linear-scale analyte)
    log_dv : (records,) log of ``dv`` (log LLOQ on BLQ records; -inf or NaN where DV <= 0)
    blq : (records,) bool, censored records
    log_lloq : (records,) log LLOQ, analyte's unit (the observed DV on BLQ records when no LLOQ was given;
        -inf: a record that cannot be censored)
    analyte : (records,) int, index into ``spec.analytes`` of each record's analyte
    on_log : (records,) bool, the record's analyte's error model works on log DV
    """

    data: PopulationData
    patient: np.ndarray
    times: np.ndarray
    dv: np.ndarray
    log_dv: np.ndarray
    blq: np.ndarray
    log_lloq: np.ndarray
    analyte: np.ndarray
    on_log: np.ndarray


def design(dataset: Dataset, spec: PopulationSpec) -> Design:
    """The flat record design of ``dataset`` for ``spec`` (BLQ records are kept whatever ``spec.blq`` says)."""
    mask = np.asarray(dataset.obs_mask)
    rec = dataset.flat()
    lloq = np.asarray(dataset.lloq, dtype=float)[mask]
    dv = np.asarray(dataset.dv, dtype=float)[mask]
    blq = np.asarray(rec.blq)
    # A record without an LLOQ of its own: the censored DV is the LLOQ; a quantified one is not censorable.
    lloq = np.where(np.isfinite(lloq), lloq, np.where(blq, dv, 0.0))
    keeps_blq = spec if all(a.blq != "drop" for a in spec.analytes) else spec.replace(blq="m3")
    data = prepare(dataset, keeps_blq)
    analyte = record_analytes(dataset, spec)
    with np.errstate(divide="ignore"):
        log_lloq = np.log(lloq)
    return Design(
        data=data,
        patient=np.asarray(rec.patient),
        times=np.asarray(rec.times, dtype=float),
        dv=dv,
        log_dv=np.asarray(rec.log_dv, dtype=float),
        blq=blq,
        log_lloq=log_lloq,
        analyte=analyte,
        on_log=np.asarray([spec.analytes[k].log_scale for k in analyte], dtype=bool),
    )


def record_log_prediction(
    spec: PopulationSpec, data: PopulationData, phi: Float[Array, "patients params"], log_scale=None, gamma=None
) -> Float[Array, " records"]:
    """Predicted log value of every record (analyte's unit) for one set of individual parameters (transformed
    scale), with the analytes' log scaling factors ``log_scale`` (analytes,) and the co-medication effects
    ``gamma`` (effects,) where the spec has them.

    Batch over draws with ``jax.vmap``. An ODE solve that fails yields NaN for that patient's records.
    """
    return record_log_predictions(spec, data, phi, log_scale=log_scale, gamma=gamma)[0]


def observation_draws(spec: PopulationSpec, values: dict[str, np.ndarray]) -> dict[str, np.ndarray | None]:
    """The observation-level parameters of a batch of draws as arrays: ``sigma``, ``sigma_add`` (draws, analytes)
    (0 where an analyte's error model does not use it), ``log_scale`` (draws, analytes) or None, ``gamma``
    (draws, effects) or None. ``values``: site name -> (draws, ...), as `posterior_population_draws` gives."""
    n = np.shape(values["mu"])[0]
    sigma, sigma_add, log_scale, gamma = population_extras(spec, values)

    def per_analyte(x):
        return np.zeros((n, len(spec.analytes))) if x is None else np.asarray(x, dtype=float).reshape(n, -1)

    return {
        "sigma": per_analyte(sigma), "sigma_add": per_analyte(sigma_add),
        "log_scale": None if log_scale is None else np.asarray(log_scale, dtype=float).reshape(n, -1),
        "gamma": None if gamma is None else np.asarray(gamma, dtype=float).reshape(n, -1),
    }


def replicate_draws(fit, replicates: int) -> dict[str, np.ndarray]:
    """Population posterior values for ``replicates`` replicates: evenly spaced draws, cycled if too few.

    Returns ``mu``, ``omega`` (replicates, params), ``beta`` (replicates, effects), ``sigma``, ``sigma_add``
    (replicates, analytes), and ``log_scale`` (replicates, analytes), ``gamma`` (replicates, effects) where the
    spec has scaled analytes or co-medication (see `observation_draws`), and with correlated IIV ``chol``
    (replicates, params, params).
    """
    _, values = posterior_population_draws(fit)
    n_total = values["mu"].shape[0]
    if n_total >= replicates:
        idx = np.round(np.linspace(0, n_total - 1, replicates)).astype(int)
    else:
        idx = np.resize(np.arange(n_total), replicates)
    values = {k: np.asarray(v)[idx] for k, v in values.items()}
    extras = observation_draws(fit.spec, values)
    out = {k: values[k] for k in ("mu", "omega", "beta") + (("chol",) if "chol" in values else ())}
    out.update({k: v for k, v in extras.items() if v is not None})
    return out


def typical_phi(fit, data: PopulationData) -> Float[Array, "patients params"]:
    """Each patient's typical parameters (eta = 0, own covariates) at the posterior median of mu and beta."""
    _, values = posterior_population_draws(fit)
    mu = jnp.asarray(np.median(values["mu"], axis=0))
    beta = jnp.asarray(np.median(values["beta"], axis=0)) if values["beta"].shape[-1] else jnp.zeros((0,))
    return individual_means(fit.spec, mu, beta, data.covariate_z)


def typical_extras(fit) -> dict[str, np.ndarray | None]:
    """Posterior medians of the observation-level parameters (`observation_draws`, without the draws axis)."""
    _, values = posterior_population_draws(fit)
    return {k: None if v is None else np.median(v, axis=0) for k, v in observation_draws(fit.spec, values).items()}


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
    covariates, model inputs, doses, co-medication starts) from one posterior draw of the population values,
    then adds residual error with each record's analyte's error model and censors at each record's LLOQ,
    through the one generative model (`carkin.population.individual_parameters`,
    `carkin.population.sample_analyte_observations`). Replicate r uses the key ``jax.random.fold_in(key, r)``.

    Parameters
    ----------
    draws : dict
        ``mu``, ``omega``, ``beta``, ``sigma``, ``sigma_add`` (and ``log_scale``, ``gamma`` when the spec has
        them) with a leading replicates axis, as `replicate_draws` gives; ``sigma`` and ``sigma_add`` may be
        (replicates,) for a single analyte.
    log_lloq : Float[Array, " records"]
        Log LLOQ of each record, analyte's unit (``Design.log_lloq``; ``-inf``: never censored).

    Returns
    -------
    Observations
        Each field of shape (replicates, records): ``log_value``, ``value`` (uncensored), ``log_dv``, ``dv``,
        ``blq``.
    """
    n_rep = draws["mu"].shape[0]
    beta = draws["beta"] if draws["beta"].shape[-1] else np.zeros((n_rep, 0))
    values = [np.asarray(draws["mu"]), np.asarray(draws["omega"]), np.asarray(beta),
              np.asarray(draws["sigma"]).reshape(n_rep, -1),
              np.asarray(draws.get("sigma_add", np.zeros(n_rep))).reshape(n_rep, -1)]
    optional = [None if draws.get(name) is None else np.asarray(draws[name]).reshape(n_rep, -1)
                for name in ("log_scale", "gamma")]
    optional.append(None if draws.get("chol") is None else np.asarray(draws["chol"]))
    # Fixed-size chunks of replicates: one compilation serves every replicate count (VPC, NPDE), and
    # memory stays bounded. Replicate r keeps the key fold_in(key, r) whatever the chunking.
    out = []
    for start in range(0, n_rep, CHUNK):
        index = np.arange(start, start + CHUNK)
        take = np.minimum(index, n_rep - 1)
        sims = _simulate_batch(spec, data, key, jnp.asarray(log_lloq), jnp.asarray(index),
                               *(jnp.asarray(v[take]) for v in values),
                               *(None if v is None else jnp.asarray(v[take]) for v in optional))
        keep = min(CHUNK, n_rep - start)
        out.append(jax.tree_util.tree_map(lambda x, keep=keep: x[:keep], sims))
    return jax.tree_util.tree_map(lambda *x: jnp.concatenate(x, axis=0), *out)


def log_prediction_draws(
    spec: PopulationSpec, data: PopulationData, phi, log_scale=None, gamma=None
) -> Float[Array, "draws records"]:
    """`record_log_prediction` for a batch of parameter sets ``phi`` (draws, patients, params), with the draws'
    ``log_scale`` (draws, analytes) and ``gamma`` (draws, effects) where the spec has them, in fixed chunks."""
    phi = np.asarray(phi, dtype=float)
    n = phi.shape[0]
    extras = [None if x is None else np.asarray(x, dtype=float).reshape(n, -1) for x in (log_scale, gamma)]
    out = []
    for start in range(0, n, CHUNK):
        take = np.minimum(np.arange(start, start + CHUNK), n - 1)
        batch = record_log_prediction_batch(spec, data, jnp.asarray(phi[take]),
                                            *(None if x is None else jnp.asarray(x[take]) for x in extras))
        out.append(batch[: min(CHUNK, n - start)])
    return jnp.concatenate(out, axis=0)


def grid_data(dataset: Dataset, spec: PopulationSpec, patients, times) -> tuple[PopulationData, int]:
    """The model arrays of some patients of ``dataset`` observed at ``times`` for every analyte of ``spec``
    (their doses, covariates, inputs and co-medication kept): for curves. Records are laid out (patients,
    analytes, times) row-major; returns the data and the number of analytes."""
    idx = np.asarray(patients, dtype=int)
    times = np.asarray(times, dtype=float)
    n, g, n_analytes = idx.size, times.size, len(spec.analytes)
    codes = [a.code for a in spec.analytes]
    m = n_analytes * g

    def rows(x):
        return None if x is None else jax.tree_util.tree_map(lambda v: jnp.asarray(v)[idx], x)

    analyte = None if n_analytes == 1 and codes[0] is None else jnp.asarray(
        np.broadcast_to(np.repeat(np.asarray(codes, dtype=float), g), (n, m)))
    grid = Dataset(
        patient_ids=tuple(dataset.patient_ids[i] for i in idx),
        times=jnp.asarray(np.broadcast_to(np.tile(times, n_analytes), (n, m))),
        dv=jnp.ones((n, m)),
        blq=jnp.zeros((n, m), bool),
        lloq=jnp.full((n, m), jnp.nan),
        obs_mask=jnp.ones((n, m), bool),
        source_rows=jnp.zeros((n, m), int),
        dose=rows(dataset.dose),
        dose_time=rows(dataset.dose_time),
        covariates=rows(dataset.covariates),
        covariate_names=dataset.covariate_names,
        source=dataset.source,
        doses=rows(dataset.doses),
        analyte=analyte,
        steps=rows(dataset.steps),
    )
    return prepare(grid, spec), n_analytes


@eqx.filter_jit
def _simulate_batch(spec, data, key, log_lloq, index, mu, omega, beta, sigma, sigma_add, log_scale, gamma, chol):
    # The data arrays are arguments (traced), not closed-over constants: XLA compiles in a fraction of the
    # time, and one compilation serves every call with the same shapes.
    n_patients, n_params = data.covariate_z.shape[0], len(spec.parameters)

    def one(r, mu, omega, beta, sigma, sigma_add, log_scale, gamma, chol):
        k_eta, k_eps = jax.random.split(jax.random.fold_in(key, r))
        eta = jax.random.normal(k_eta, (n_patients, n_params))
        phi = individual_parameters(spec, mu, omega, beta, data.covariate_z, eta, chol)
        log_c = record_log_prediction(spec, data, phi, log_scale, gamma)
        return sample_analyte_observations(spec, data.record_analyte, log_c, jax.random.normal(k_eps, log_c.shape),
                                           sigma=sigma, sigma_add=sigma_add, log_lloq=log_lloq)

    return jax.vmap(one)(index, mu, omega, beta, sigma, sigma_add, log_scale, gamma, chol)


@eqx.filter_jit
def record_log_prediction_batch(spec, data, phi, log_scale=None, gamma=None):
    """`record_log_prediction` vmapped over a leading draws axis of ``phi`` (draws, patients, params) (and of
    ``log_scale``, ``gamma`` when given)."""
    return jax.vmap(lambda p, s, g: record_log_prediction(spec, data, p, s, g))(phi, log_scale, gamma)
