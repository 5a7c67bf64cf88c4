"""Virtual populations from a population model: individual parameters, CK records, LLOQ censoring.

The draws go through carkin's one generative model (`carkin.population.individual_parameters`,
`carkin.population.sample_observations`: residual error of the spec's error model, BLQ below the LLOQ).

Everything is vectorised over patients and driven by an explicit ``jax.random`` key. Patient ``i`` (0-based)
draws from keys folded with ``i`` (`per_patient_normal`), so a patient's covariates, random effects and
residuals do not depend on how many patients are simulated, nor on the device count or sharding. Closed-form and ODE
models are both supported; an ODE model's inputs (e.g. baseline tumour burden) come from the simulated
covariates, and a failed solve raises ``SolverError`` naming the simulated patients.
"""

from __future__ import annotations

import zlib

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ..data import Dataset
from ..errors import SolverError, SpecError
from ..models import result_message
from ..population import (
    PopulationSpec,
    individual_parameters,
    model_inputs,
    natural_parameters,
    sample_observations,
)
from ..population._spec import to_transformed

__all__ = ["PopulationParameters", "SimulatedCohort", "simulate_cohort", "truth_from_spec"]


class PopulationParameters(eqx.Module):
    """Population-level values (the truth of a simulation, or one posterior draw).

    Attributes
    ----------
    mu : Float[Array, " params"]  typical values, transformed scale (spec order)
    omega : Float[Array, " params"]  IIV SDs, transformed scale
    beta : Float[Array, " effects"]  covariate coefficients (``spec.effect_names`` order)
    sigma : Float[Array, ""]  residual SD, log scale
    sigma_add : Float[Array, ""]  additive residual SD, copies/ug (combined error only; else 0)
    """

    mu: Float[Array, " params"]
    omega: Float[Array, " params"]
    beta: Float[Array, " effects"]
    sigma: Float[Array, ""]
    sigma_add: Float[Array, ""]


def truth_from_spec(spec: PopulationSpec) -> PopulationParameters:
    """Population truth from the spec: typical values from [parameters], the rest from [simulation].

    Raises
    ------
    SpecError
        If [simulation] lacks an omega for some parameter or a coefficient for some covariate effect.
    """
    sim = spec.simulation
    omega_table = sim.get("omega", {})
    effects_table = sim.get("effects", {})
    missing = [p.name for p in spec.parameters if p.name not in omega_table]
    if missing:
        raise SpecError(f"{spec.source}: [simulation].omega has no value for {', '.join(missing)}")
    missing = [e for e in spec.effect_names if e not in effects_table]
    if missing:
        raise SpecError(f"{spec.source}: [simulation].effects has no value for {', '.join(missing)}")
    return PopulationParameters(
        mu=jnp.asarray([to_transformed(p.transform, p.typical) for p in spec.parameters]),
        omega=jnp.asarray([float(omega_table[p.name]) for p in spec.parameters]),
        beta=jnp.asarray([float(effects_table[e]) for e in spec.effect_names]),
        sigma=jnp.asarray(float(sim.get("sigma", 0.4))),
        sigma_add=jnp.asarray(float(sim.get("sigma_add", 0.0))),
    )


@dataclasses.dataclass(frozen=True)
class SimulatedCohort:
    """A simulated cohort: the dataset, the true individual parameters and the population truth.

    ``individual`` maps each parameter name to the natural-scale true values, shape (patients,).
    """

    dataset: Dataset
    individual: dict[str, np.ndarray]
    truth: PopulationParameters
    covariates: dict[str, np.ndarray]
    seed: int | None = None


#: LLOQ (copies/ug gDNA) of a spec whose [simulation] table gives none (the shipped specs give 10).
DEFAULT_SIMULATION_LLOQ = 10.0


def simulation_lloq(spec: PopulationSpec) -> float:
    """The assay LLOQ (copies/ug gDNA) a spec's simulations censor at: [simulation] lloq, else 10."""
    return float(spec.simulation.get("lloq", DEFAULT_SIMULATION_LLOQ))


def per_patient_normal(key: PRNGKeyArray, n: int, shape: tuple[int, ...] = ()) -> Float[Array, "n ..."]:
    """Standard normal draws (n, *shape); row i comes from ``jax.random.fold_in(key, i)`` alone."""
    return jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(key, i), shape))(jnp.arange(n))


def _draw_covariates(spec: PopulationSpec, key: PRNGKeyArray, n: int) -> dict[str, np.ndarray]:
    table = spec.simulation.get("covariates", {})
    needed = sorted(set(spec.data_columns) | set(table))
    out = {}
    for column in needed:
        k = jax.random.fold_in(key, zlib.crc32(column.encode()) & 0x7FFFFFFF)  # one stream per column, by name
        if column not in table:
            raise SpecError(
                f"{spec.source}: covariate column {column} has no distribution in [simulation.covariates.{column}]"
            )
        d = table[column]
        draw = float(d["median"]) * jnp.exp(float(d.get("log_sd", 0.0)) * per_patient_normal(k, n))
        out[column] = np.clip(np.asarray(draw), float(d.get("low", -np.inf)), float(d.get("high", np.inf)))
    return out


def _log_concentration(spec: PopulationSpec, stub: Dataset, individual: dict, times) -> Array:
    """log C (patients, obs) at the common sampling ``times``, for a closed-form or an ODE model."""
    model = spec.kinetic_model
    if model.elementwise:
        return model.log_concentration({k: v[:, None] for k, v in individual.items()}, times[None, :])
    values = {**individual, **{k: jnp.asarray(v) for k, v in model_inputs(stub, spec).items()}}
    n = next(iter(individual.values())).shape[0]
    order = jnp.argsort(times)
    sol = model.solve(values, jnp.broadcast_to(times[order], (n, times.shape[0])))
    failed = np.flatnonzero(~np.asarray(sol.ok))
    if failed.size:
        code = int(np.asarray(sol.code)[failed[0]])
        if spec.ode is not None and spec.ode.resolved_batching == "population":  # joint solve: find who fails
            alone = model.solve(values, jnp.broadcast_to(times[order], (n, times.shape[0])), batching="patient")
            if not np.all(np.asarray(alone.ok)):
                failed = np.flatnonzero(~np.asarray(alone.ok))
                code = int(np.asarray(alone.code)[failed[0]])
        shown = ", ".join(stub.patient_ids[i] for i in failed[:20]) + (" ..." if failed.size > 20 else "")
        raise SolverError(
            f"simulating {spec.model} ({spec.source}): the ODE solve failed for {failed.size} simulated "
            f"patient(s): {shown} ({result_message(code)}). Check [simulation] (omega, covariates) or [ode]."
        )
    return sol.log_concentration[:, jnp.argsort(order)]


def simulate_cohort(
    spec: PopulationSpec,
    *,
    key: PRNGKeyArray,
    n: int,
    truth: PopulationParameters | None = None,
    times: Float[Array, " obs"] | None = None,
    lloq: float | None = None,
    covariates: dict[str, np.ndarray] | None = None,
) -> SimulatedCohort:
    """Draw ``n`` virtual patients from a population model and simulate their CK records.

    Parameters
    ----------
    spec : PopulationSpec
        The population model; its [simulation] table supplies defaults for everything below.
    key : PRNGKeyArray
        The only source of randomness (split for covariates, random effects, residuals).
    n : int
        Number of patients.
    truth : PopulationParameters, optional
        Population values; default ``truth_from_spec(spec)``.
    times : Float[Array, " obs"], optional
        Sampling days after infusion, the same for every patient; default [simulation].times.
    lloq : float, optional
        Assay LLOQ, copies/ug gDNA; observations below it are censored (BLQ=1, DV=LLOQ).
    covariates : dict of column -> array (patients,), optional
        Covariate values (``DOSE`` in 10^6 cells and any columns the spec's covariates use); default:
        drawn from [simulation.covariates].

    Returns
    -------
    SimulatedCohort
    """
    if not (isinstance(n, int) and n >= 1):
        raise ValueError(f"n must be a positive integer number of patients, got {n!r}")
    sim = spec.simulation
    truth = truth if truth is not None else truth_from_spec(spec)
    times = jnp.asarray(times if times is not None else sim.get("times", [2, 4, 7, 9, 11, 14, 21, 28, 56, 90, 180, 365]), dtype=float)
    lloq = float(lloq if lloq is not None else simulation_lloq(spec))
    k_cov, k_eta, k_eps = jax.random.split(key, 3)
    if covariates is None:
        covariates = _draw_covariates(spec, k_cov, n)
    covariates = {c.upper(): np.asarray(v, dtype=float) for c, v in covariates.items()}
    if "DOSE" not in covariates:
        raise ValueError("covariates must include DOSE (10^6 CAR+ T cells)")
    names = tuple(sorted(c for c in covariates if c != "DOSE"))
    dataset_cov = np.stack([covariates[c] for c in names], axis=1) if names else np.zeros((n, 0))

    # Standardised covariates through the same code path as the fit.
    from ..population import covariate_design

    stub = Dataset(
        patient_ids=tuple(f"{i + 1}" for i in range(n)),
        times=jnp.zeros((n, 1)), dv=jnp.ones((n, 1)), blq=jnp.zeros((n, 1), bool), lloq=jnp.ones((n, 1)),
        obs_mask=jnp.ones((n, 1), bool), source_rows=jnp.zeros((n, 1), int),
        dose=jnp.asarray(covariates["DOSE"]), dose_time=jnp.zeros(n),
        covariates=jnp.asarray(dataset_cov), covariate_names=names, source="<simulated>",
    )
    z = jnp.asarray(covariate_design(stub, spec))
    eta = per_patient_normal(k_eta, n, (len(spec.parameters),))
    phi = individual_parameters(spec, truth.mu, truth.omega, truth.beta, z, eta)
    individual = natural_parameters(spec, phi)
    log_c = _log_concentration(spec, stub, individual, times)
    obs = sample_observations(
        log_c, per_patient_normal(k_eps, n, log_c.shape[1:]), residual=spec.residual, sigma=truth.sigma,
        sigma_add=truth.sigma_add, log_lloq=jnp.log(lloq),
    )
    blq = obs.blq
    dv = jnp.where(blq, lloq, jnp.exp(obs.log_value))  # the LLOQ itself, not exp(log LLOQ), on BLQ records
    m = times.shape[0]
    dataset = Dataset(
        patient_ids=tuple(f"{i + 1}" for i in range(n)),
        times=jnp.broadcast_to(times, (n, m)),
        dv=dv,
        blq=blq,
        lloq=jnp.full((n, m), lloq),
        obs_mask=jnp.ones((n, m), bool),
        source_rows=jnp.zeros((n, m), int),
        dose=jnp.asarray(covariates["DOSE"]),
        dose_time=jnp.zeros(n),
        covariates=jnp.asarray(dataset_cov),
        covariate_names=names,
        source="<simulated>",
        simulated=True,
    )
    return SimulatedCohort(
        dataset=dataset,
        individual={k: np.asarray(v) for k, v in individual.items()},
        truth=truth,
        covariates=covariates,
    )
