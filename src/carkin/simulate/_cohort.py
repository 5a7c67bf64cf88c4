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

from .._toml import Table
from ..data import Dataset
from ..errors import SolverError
from ..models import result_message
from ..population import (
    PopulationSpec,
    correlation_pairs,
    individual_parameters,
    model_inputs,
    natural_parameters,
    sample_observations,
)
from ..population._spec import to_transformed
from ._scenario import covariate_distribution

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
    chol : Float[Array, "params params"] or None  lower Cholesky factor of the random effects' correlation
        matrix (spec order; [simulation.correlation]); None: independent random effects
    """

    mu: Float[Array, " params"]
    omega: Float[Array, " params"]
    beta: Float[Array, " effects"]
    sigma: Float[Array, ""]
    sigma_add: Float[Array, ""]
    chol: Float[Array, "params params"] | None = None

    @property
    def correlation(self) -> Float[Array, "params params"] | None:
        """The random effects' correlation matrix ``chol chol^T`` (None: independent)."""
        return None if self.chol is None else self.chol @ self.chol.T


SIMULATION_KEYS: tuple[str, ...] = (
    "omega", "correlation", "effects", "sigma", "sigma_add", "lloq", "times", "covariates",
)
"""The keys of a spec's [simulation] table."""


def _simulation(spec: PopulationSpec) -> Table:
    """The spec's [simulation] table (the population truth of simulated cohorts), its keys checked."""
    sim = Table(spec.simulation, file=spec.source, path="simulation")
    sim.check_keys(SIMULATION_KEYS)
    return sim


def truth_from_spec(spec: PopulationSpec) -> PopulationParameters:
    """Population truth from the spec: typical values from [parameters], the rest from [simulation].

    The true correlations of the random effects (a spec with [iiv] correlation or blocks) are given pair by
    pair, each pair in one [iiv] block, in either order; pairs not given are 0::

        [simulation.correlation]
        "cmax,tmax" = 0.6
        "beta,delta" = -0.4

    Raises
    ------
    SpecError
        If [simulation] lacks an omega for some parameter or a coefficient for some covariate effect, or
        holds an unknown key or an invalid value; if [simulation.correlation] names a pair outside the [iiv]
        blocks (or has a correlation without them), a value outside (-1, 1), or correlations that together
        are not a correlation matrix (not positive definite).
    """
    sim = _simulation(spec)
    omega, effects = sim.table("omega"), sim.table("effects")
    for table, names, what in ((omega, spec.parameter_names, "IIV SD"), (effects, spec.effect_names, "coefficient")):
        missing = [name for name in names if name not in table]
        if missing:
            raise table.fail(None, f"has no value for {', '.join(missing)}", f"add {missing[0]} = <{what}> (and the others)")
    return PopulationParameters(
        mu=jnp.asarray([to_transformed(p.transform, p.typical) for p in spec.parameters]),
        omega=jnp.asarray([omega.number(name, ge=0) for name in spec.parameter_names]),
        beta=jnp.asarray([effects.number(name) for name in spec.effect_names]),
        sigma=jnp.asarray(sim.number("sigma", 0.4, ge=0)),
        sigma_add=jnp.asarray(sim.number("sigma_add", 0.0, ge=0)),
        chol=_true_correlation(spec, sim),
    )


def _true_correlation(spec: PopulationSpec, sim: Table) -> Float[Array, "params params"] | None:
    """The Cholesky factor of the true correlation matrix from [simulation.correlation]; None without blocks."""
    table = sim.table("correlation")
    if not spec.iiv_blocks:
        if len(table):
            raise table.fail(None, "gives correlations, but the model's random effects are independent",
                             'add [iiv] correlation = "full" or blocks = [[...]], or remove [simulation.correlation]')
        return None
    names = spec.parameter_names
    allowed = {frozenset(pair) for pair in correlation_pairs(spec)}
    matrix, seen = np.eye(len(names)), {}
    for key in table:
        pair = tuple(name.strip() for name in key.split(","))
        if len(pair) != 2 or frozenset(pair) not in allowed or pair[0] == pair[1]:
            blocks = "; ".join(", ".join(block) for block in spec.iiv_blocks)
            raise table.fail(key, "is not a pair of parameters in one [iiv] block",
                             f'name two parameters of one block (blocks: {blocks}) as "a,b", e.g. '
                             f'"{spec.iiv_blocks[0][0]},{spec.iiv_blocks[0][1]}" = 0.5', value=table.get(key))
        if frozenset(pair) in seen:
            raise table.fail(key, f"gives the pair {seen[frozenset(pair)]!r} again", "give each pair once")
        seen[frozenset(pair)] = key
        i, j = names.index(pair[0]), names.index(pair[1])
        matrix[i, j] = matrix[j, i] = table.number(key, gt=-1, lt=1, hint="a correlation")
    smallest = float(np.linalg.eigvalsh(matrix)[0])
    if not smallest > 1e-10:
        raise table.fail(None, f"is not a correlation matrix (positive definite): its smallest eigenvalue is "
                               f"{smallest:.3g}", "make the correlations of each block consistent (smaller in size)")
    return jnp.asarray(np.linalg.cholesky(matrix))


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
    return _simulation(spec).number("lloq", DEFAULT_SIMULATION_LLOQ, gt=0, hint="copies/ug gDNA")


def per_patient_normal(key: PRNGKeyArray, n: int, shape: tuple[int, ...] = ()) -> Float[Array, "n ..."]:
    """Standard normal draws (n, *shape); row i comes from ``jax.random.fold_in(key, i)`` alone."""
    return jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(key, i), shape))(jnp.arange(n))


def _draw_covariates(spec: PopulationSpec, key: PRNGKeyArray, n: int) -> dict[str, np.ndarray]:
    table = _simulation(spec).table("covariates")
    needed = sorted(set(spec.data_columns) | set(table))
    out = {}
    for column in needed:
        k = jax.random.fold_in(key, zlib.crc32(column.encode()) & 0x7FFFFFFF)  # one stream per column, by name
        if column not in table:
            raise table.fail(None, f"has no distribution for the covariate column {column}",
                             f"add [simulation.covariates.{column}] with median, log_sd, low, high (or value)")
        d = covariate_distribution(table.table(column))
        draw = d.median * jnp.exp(d.log_sd * per_patient_normal(k, n))
        out[column] = np.clip(np.asarray(draw), d.low, d.high)
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
    sim = _simulation(spec)
    truth = truth if truth is not None else truth_from_spec(spec)
    if times is None:
        times = sim.numbers("times", (2.0, 4.0, 7.0, 9.0, 11.0, 14.0, 21.0, 28.0, 56.0, 90.0, 180.0, 365.0), ge=0,
                            hint="days after infusion")
    times = jnp.asarray(times, dtype=float)
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
    phi = individual_parameters(spec, truth.mu, truth.omega, truth.beta, z, eta, truth.chol)
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
