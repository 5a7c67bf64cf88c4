"""Virtual populations from a population model: individual parameters, doses, co-medication, records per analyte.

The draws go through carkin's one generative model (`carkin.population.individual_parameters`,
`carkin.population.sample_analyte_observations`: each analyte's error model, BLQ below its LLOQ), and the
predictions through the likelihood's own (`carkin.population.record_log_predictions`: the patient's doses and
co-medication switches, each analyte's model output and scaling factor).

Everything is vectorised over patients and driven by an explicit ``jax.random`` key. Patient ``i`` (0-based)
draws from keys folded with ``i`` (`per_patient_normal`), so a patient's covariates, random effects,
co-medication and residuals do not depend on how many patients are simulated, nor on the device count or
sharding. Closed-form, PK and ODE models are all supported; an ODE model's inputs (e.g. baseline tumour burden)
come from the simulated covariates, and a failed solve raises ``SolverError`` naming the simulated patients.

The spec's ``[simulation]`` table (every key optional unless the model needs it)::

    [simulation]
    omega = { cmax = 0.8, ... }            # IIV SD of every parameter (transformed scale)
    effects = { beta_log_dose_cmax = 0.3 } # every covariate coefficient (spec.effect_names)
    gamma = { gamma_toci_expansion = -0.5 }  # every co-medication effect (spec.comedication_effect_names)
    sigma = 0.4                            # residual parameters, lloq and sampling times of every analyte
    sigma_add = 0.0                        #   (defaults of the [simulation.analytes.<name>] tables)
    lloq = 18.0                            # log-scale analytes: default 10; linear ones: default 0 (none)
    times = [2, 4, 7, 14, 28]              # sampling times, time unit of the data, from the first dose

    [simulation.analytes.flow]             # one table per analyte of [analytes.<name>] (optional)
    times = [7, 14, 28]
    lloq = 0.5
    sigma = 0.2                            # log SD, or the proportional coefficient (linear error models)
    sigma_add = 0.3                        # additive SD, the analyte's unit
    scale = 0.004                          # the true scaling factor (default: [analytes.flow.scale] typical)

    [simulation.doses]                     # the regimen (default: one dose of DOSE at time 0)
    amount = 320.0                         # or [a1, a2, ...], one per dose; default: each patient's DOSE
    interval = 12.0                        # every 12 time units ...
    number = 6                             # ... 6 doses (or times = [0, 12, 36]: explicit dose times)
    cmt = 1                                # dosing compartment (NONMEM CMT; oral models: 1 = depot)
    duration = 0.5                         # zero-order input over this time (0: bolus)

    [simulation.comedication.toci]         # one per [comedication.<name>] with a start_column
    probability = 0.4                      # share of patients who receive it
    start = { median = 4.0, log_sd = 0.5, low = 0.5, high = 21.0 }   # start, after the first dose

    [simulation.covariates.DOSE]           # every covariate column the model uses
    median = 400.0
    log_sd = 0.25
"""

from __future__ import annotations

import dataclasses
import math
import zlib

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._toml import Table
from ..data import Dataset, DoseEvents
from ..errors import SolverError
from ..models import result_message
from ..population import (
    PopulationSpec,
    correlation_pairs,
    individual_parameters,
    model_context,
    natural_parameters,
    prepare,
    record_log_predictions,
    sample_analyte_observations,
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
    sigma : Float[Array, ""] or Float[Array, " analytes"]
        Residual SD on the log scale, or the proportional coefficient (linear-scale error models); one per
        analyte (``spec.analytes`` order, 0 where unused) when the spec declares several.
    sigma_add : Float[Array, ""] or Float[Array, " analytes"]
        Additive residual SD, in the analyte's unit (0 where the error model has no additive part).
    log_scale : Float[Array, " analytes"] or None
        Logs of the analytes' scaling factors (0 for an analyte without one); None: no scaled analyte.
    gamma : Float[Array, " comedication_effects"] or None
        Co-medication log multipliers (``spec.comedication_effect_names``); None: no co-medication.
    chol : Float[Array, "params params"] or None
        Lower Cholesky factor of the random effects' correlation matrix (spec order; [simulation.correlation]);
        None: independent random effects.
    """

    mu: Float[Array, " params"]
    omega: Float[Array, " params"]
    beta: Float[Array, " effects"]
    sigma: Float[Array, "..."]
    sigma_add: Float[Array, "..."]
    log_scale: Float[Array, " analytes"] | None = None
    gamma: Float[Array, " comedication_effects"] | None = None
    chol: Float[Array, "params params"] | None = None

    @property
    def correlation(self) -> Float[Array, "params params"] | None:
        """The random effects' correlation matrix ``chol chol^T`` (None: independent)."""
        return None if self.chol is None else self.chol @ self.chol.T


SIMULATION_KEYS: tuple[str, ...] = ("omega", "correlation", "effects", "sigma", "sigma_add", "lloq", "times",
                                    "covariates", "analytes", "doses", "comedication", "gamma")
"""The keys of a spec's [simulation] table."""

ANALYTE_KEYS: tuple[str, ...] = ("times", "lloq", "sigma", "sigma_add", "scale")
"""The keys of a [simulation.analytes.<name>] table."""

DOSE_KEYS: tuple[str, ...] = ("amount", "times", "interval", "number", "cmt", "duration")
"""The keys of the [simulation.doses] table."""

DEFAULT_TIMES: tuple[float, ...] = (2.0, 4.0, 7.0, 9.0, 11.0, 14.0, 21.0, 28.0, 56.0, 90.0, 180.0, 365.0)
"""Sampling days after infusion of a spec whose [simulation] table gives no times."""


def _simulation(spec: PopulationSpec) -> Table:
    """The spec's [simulation] table (the population truth of simulated cohorts), its keys checked."""
    sim = Table(spec.simulation, file=spec.source, path="simulation")
    sim.check_keys(SIMULATION_KEYS)
    return sim


def _declared_subtables(sim: Table, key: str, names: list[str], what: str, choices: str) -> Table:
    """[simulation.<key>], checked to name only sub-tables the model declares (``names``)."""
    parent = sim.table(key)
    unknown = [name for name in parent if name not in names]
    if unknown:
        raise parent.fail(None, f"names {what} {', '.join(unknown)}, which the model does not declare",
                          f"name one of {choices}")
    return parent


def _analyte_tables(spec: PopulationSpec, sim: Table) -> list[Table]:
    """Each analyte's [simulation.analytes.<name>] table (empty when absent), keys checked, in spec order."""
    names = [a.name for a in spec.analytes]
    parent = _declared_subtables(sim, "analytes", names, "analyte(s)", ", ".join(names))
    tables = [parent.table(name) for name in names]
    for t in tables:
        t.check_keys(ANALYTE_KEYS)
    return tables


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
        If [simulation] lacks an omega for some parameter, a coefficient for some covariate effect or a gamma
        for some co-medication effect, or holds an unknown key or an invalid value; if
        [simulation.correlation] names a pair outside the [iiv] blocks (or has a correlation without them), a
        value outside (-1, 1), or correlations that together are not a correlation matrix (not positive
        definite).
    """
    sim = _simulation(spec)
    omega, effects = sim.table("omega"), sim.table("effects")
    for table, names, what in ((omega, spec.parameter_names, "IIV SD"), (effects, spec.effect_names, "coefficient")):
        missing = [name for name in names if name not in table]
        if missing:
            raise table.fail(
                None, f"has no value for {', '.join(missing)}", f"add {missing[0]} = <{what}> (and the others)"
            )
    return PopulationParameters(
        mu=jnp.asarray([to_transformed(p.transform, p.typical) for p in spec.parameters]),
        omega=jnp.asarray([omega.number(name, ge=0) for name in spec.parameter_names]),
        beta=jnp.asarray([effects.number(name) for name in spec.effect_names]),
        **_observation_truth(spec, sim),
        chol=_true_correlation(spec, sim),
    )


def _observation_truth(spec: PopulationSpec, sim: Table) -> dict:
    """sigma, sigma_add, log_scale (per analyte) and gamma of the truth, in `population_extras`' form."""
    sigma, sigma_add, scales = [], [], []
    for analyte, t in zip(spec.analytes, _analyte_tables(spec, sim), strict=True):
        sigma.append(t.number("sigma", sim.number("sigma", 0.4, ge=0), ge=0))
        sigma_add.append(t.number("sigma_add", sim.number("sigma_add", 0.0, ge=0), ge=0))
        if "scale" in t and not analyte.scaled:
            raise t.fail("scale", f"is given, but analyte {analyte.name!r} has no estimated scaling factor",
                         f"remove it, or add [analytes.{analyte.name}.scale] to the model")
        scales.append(math.log(t.number("scale", analyte.scale_typical, gt=0)) if analyte.scaled else 0.0)
    gamma = None
    if spec.comedications:
        table = sim.table("gamma")
        names = spec.comedication_effect_names
        missing = [name for name in names if name not in table]
        if missing:
            raise table.fail(None, f"has no value for {', '.join(missing)}",
                             f"add {missing[0]} = <log multiplier> (and the others)")
        gamma = jnp.asarray([table.number(name) for name in names])
    single = len(spec.analytes) == 1
    return {
        "sigma": jnp.asarray(sigma[0] if single else sigma),
        "sigma_add": jnp.asarray(sigma_add[0] if single else sigma_add),
        "log_scale": jnp.asarray(scales) if any(a.scaled for a in spec.analytes) else None,
        "gamma": gamma,
    }


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

    ``individual`` maps each parameter name to the natural-scale true values, shape (patients,). ``covariates``
    maps each per-patient column to its values (patients,): ``DOSE`` (the first dose), the covariates the model
    uses and each co-medication's start column (time after the first dose, +inf: never received).
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


def _stream(key: PRNGKeyArray, name: str) -> PRNGKeyArray:
    """A named random stream (one per covariate column or co-medication), independent of the others."""
    return jax.random.fold_in(key, zlib.crc32(name.encode()) & 0x7FFFFFFF)


def _draw_covariates(
    spec: PopulationSpec, key: PRNGKeyArray, n: int, given: frozenset[str] = frozenset()
) -> dict[str, np.ndarray]:
    """Every covariate column the model uses and [simulation.covariates] lists, except the ``given`` ones."""
    table = _simulation(spec).table("covariates")
    needed = sorted((set(spec.data_columns) | set(table)) - given)
    out = {}
    for column in needed:
        k = _stream(key, column)  # one stream per column, by name
        if column not in table:
            raise table.fail(None, f"has no distribution for the covariate column {column}",
                             f"add [simulation.covariates.{column}] with median, log_sd, low, high (or value)")
        d = covariate_distribution(table.table(column))
        draw = d.median * jnp.exp(d.log_sd * per_patient_normal(k, n))
        out[column] = np.clip(np.asarray(draw), d.low, d.high)
    return out


def _draw_comedication(spec: PopulationSpec, sim: Table, key: PRNGKeyArray, n: int) -> dict[str, np.ndarray]:
    """Each co-medication's start per patient (start column -> (n,), time after the first dose; +inf: never)."""
    names = [c.name for c in spec.comedications]
    parent = _declared_subtables(sim, "comedication", names, "co-medication(s)",
                                 ", ".join(names) or "(none: the model has no [comedication] table)")
    out = {}
    for c in spec.comedications:
        if c.start_column is None:
            raise parent.fail(
                None,
                f"cannot simulate co-medication {c.name!r}: the model reads its start from the "
                f"0/1 indicator column {c.indicator_column}, which simulated CK files do not carry",
                f'give [comedication.{c.name}] start_column = "<COLUMN>" (time after the first dose) instead',
            )
        if c.name not in parent:
            raise parent.fail(None, f"has no table for co-medication {c.name!r}",
                              f"add [simulation.comedication.{c.name}] with probability = <share of patients> and "
                              "start = { median = ..., log_sd = ..., low = ..., high = ... }")
        t = parent.table(c.name)
        t.check_keys(("probability", "start"))
        probability = t.number("probability", ge=0, le=1, hint="the share of patients who receive it")
        d = covariate_distribution(t.table("start", required=True, hint="the start time's distribution"))
        k_who, k_when = jax.random.split(_stream(key, f"comedication.{c.name}"))
        receives = (
            jax.vmap(lambda i, k=k_who: jax.random.uniform(jax.random.fold_in(k, i)))(jnp.arange(n)) < probability
        )
        start = np.clip(np.asarray(d.median * jnp.exp(d.log_sd * per_patient_normal(k_when, n))), d.low, d.high)
        out[c.start_column] = np.where(np.asarray(receives), np.maximum(start, 0.0), np.inf)
    return out


@dataclasses.dataclass(frozen=True)
class _Regimen:
    """The [simulation.doses] table: dose times, amounts (None: each patient's DOSE), route compartment, duration."""

    times: np.ndarray
    amount: np.ndarray | None
    cmt: int
    duration: float

    def events(self, dose: np.ndarray) -> DoseEvents:
        """The regimen of every patient (patients, doses), given each patient's DOSE (patients,)."""
        n, k = dose.shape[0], self.times.size
        amount = dose[:, None] * np.ones(k) if self.amount is None else np.broadcast_to(self.amount, (n, k))
        return DoseEvents(time=np.broadcast_to(self.times, (n, k)), amount=amount, duration=self.duration, cmt=self.cmt)


def _regimen(sim: Table) -> _Regimen | None:
    """[simulation.doses], checked; None without the table."""
    if "doses" not in sim:
        return None
    t = sim.table("doses")
    t.check_keys(DOSE_KEYS)
    if "times" in t and ("interval" in t or "number" in t):
        raise t.fail("times", "is given with interval/number", "give the dose times, or interval and number")
    if "times" in t:
        times = np.asarray(t.numbers("times", ge=0, increasing=True, starts_at=0.0, hint="time after the first dose"))
    elif "interval" in t or "number" in t:
        interval = t.number("interval", gt=0, hint="time between doses, time unit of the data")
        times = interval * np.arange(t.integer("number", ge=1, hint="the number of doses"))
    else:
        times = np.zeros(1)
    amount = None
    if isinstance(t.get("amount"), list):
        amount = np.asarray(t.numbers("amount", gt=0))
        if amount.size != times.size:
            raise t.fail("amount", f"has {amount.size} values for {times.size} doses",
                         "give one amount per dose, or one amount for all", value=list(amount))
    elif "amount" in t:
        amount = np.full(times.size, t.number("amount", gt=0))
    return _Regimen(
        times=times,
        amount=amount,
        cmt=t.integer("cmt", 1, ge=1, hint="the dosing compartment (NONMEM CMT)"),
        duration=t.number("duration", 0.0, ge=0, hint="infusion duration, 0 for a bolus"),
    )


def _first_doses(doses: DoseEvents, n: int) -> DoseEvents:
    """Given DoseEvents (patients, doses) or (doses,), checked: every patient's first real dose at time 0."""
    if not isinstance(doses, DoseEvents):
        raise TypeError(f"doses must be a carkin.data.DoseEvents, got {type(doses).__name__}")
    if doses.time.ndim == 1:
        doses = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (n, *x.shape)), doses)
    if doses.time.ndim != 2 or doses.time.shape[0] != n:
        raise ValueError(f"doses must have shape (doses,) or (patients, doses) = ({n}, ...), got {doses.shape}")
    time, mask = np.asarray(doses.time), np.asarray(doses.mask)
    first = np.where(mask, time, np.inf).min(axis=1)
    bad = np.flatnonzero(first != 0)
    if bad.size:
        raise ValueError(
            f"doses: times run from each patient's first dose, but patient {bad[0] + 1} (index {bad[0]}) has its "
            f"first real dose at {first[bad[0]]:g} ({bad.size} patient(s)); shift each patient's doses so that the "
            "first is at 0"
        )
    return doses


def _schedule(spec: PopulationSpec, sim: Table, times, lloq) -> tuple[list[np.ndarray], list[float]]:
    """Each analyte's sampling times and LLOQ (0: none), from the arguments or [simulation]."""
    default_times = sim.numbers("times", DEFAULT_TIMES, ge=0, hint="time after the first dose")
    given_lloq = sim.number("lloq", None, ge=0, hint="the analyte's unit")
    out_times, out_lloq = [], []
    for analyte, t in zip(spec.analytes, _analyte_tables(spec, sim), strict=True):
        arg_t = times.get(analyte.name) if isinstance(times, dict) else times
        if arg_t is None:
            arg_t = t.numbers("times", default_times, ge=0, hint="time after the first dose")
        out_times.append(np.asarray(arg_t, dtype=float).reshape(-1))
        arg_l = lloq.get(analyte.name) if isinstance(lloq, dict) else lloq
        if arg_l is None:
            default = given_lloq if given_lloq is not None else (DEFAULT_SIMULATION_LLOQ if analyte.log_scale else 0.0)
            arg_l = t.number("lloq", default, ge=0, hint="the analyte's unit; 0: no LLOQ")
        out_lloq.append(float(arg_l))
    for name, arg in (("times", times), ("lloq", lloq)):
        if isinstance(arg, dict):
            unknown = set(arg) - {a.name for a in spec.analytes}
            if unknown:
                raise ValueError(f"{name} names analyte(s) {sorted(unknown)}, which {spec.source} does not declare "
                                 f"({', '.join(a.name for a in spec.analytes)})")
    return out_times, out_lloq


def _check_failed(spec: PopulationSpec, data, values: dict, ok, ids: tuple[str, ...], context: dict) -> None:
    """A SolverError naming the simulated patients whose ODE solve failed (re-solved patient by patient when the
    population was solved as one system)."""
    if ok is None or bool(np.all(np.asarray(ok))):
        return
    model = spec.kinetic_model
    sol = model.solve(values, data.padded_times, **context)
    failed = np.flatnonzero(~np.asarray(sol.ok))
    code = int(np.asarray(sol.code)[failed[0]]) if failed.size else 1
    if spec.ode is not None and spec.ode.resolved_batching == "population":  # joint solve: find who fails
        alone = model.solve(values, data.padded_times, batching="patient", **context)
        if not np.all(np.asarray(alone.ok)):
            failed = np.flatnonzero(~np.asarray(alone.ok))
            code = int(np.asarray(alone.code)[failed[0]])
    if failed.size == 0:
        failed = np.flatnonzero(~np.asarray(ok))
    shown = ", ".join(ids[i] for i in failed[:20]) + (" ..." if failed.size > 20 else "")
    raise SolverError(
        f"simulating {spec.model} ({spec.source}): the ODE solve failed for {failed.size} simulated "
        f"patient(s): {shown} ({result_message(code)}). Check [simulation] (omega, covariates) or [ode]."
    )


def simulate_cohort(
    spec: PopulationSpec,
    *,
    key: PRNGKeyArray,
    n: int,
    truth: PopulationParameters | None = None,
    times: Float[Array, " obs"] | dict | None = None,
    lloq: float | dict | None = None,
    covariates: dict[str, np.ndarray] | None = None,
    doses: DoseEvents | None = None,
) -> SimulatedCohort:
    """Draw ``n`` virtual patients from a population model and simulate their records.

    Main arguments
    --------------
    spec : PopulationSpec
        The population model; its [simulation] table (see the module docstring) supplies defaults for
        everything below.
    key : PRNGKeyArray
        The only source of randomness (split for covariates and co-medication, random effects, residuals).
    n : int
        Number of patients.

    Other arguments
    ---------------
    truth : PopulationParameters, optional
        Population values; default ``truth_from_spec(spec)``.
    times : Float[Array, " obs"] or dict of analyte name -> array, optional
        Sampling times after the first dose (time unit of the data: days for the CAR-T models), the same for
        every patient: one array for every analyte, or one per analyte; default [simulation] (per analyte:
        [simulation.analytes.<name>] times, else [simulation] times).
    lloq : float or dict of analyte name -> float, optional
        Assay LLOQ in the analyte's unit (copies/ug gDNA for the transgene); observations below it are
        censored (BLQ=1, DV=LLOQ); 0: none. Default [simulation] (log-scale analytes 10, linear ones none).
    covariates : dict of column -> array (patients,), optional
        Covariate values (``DOSE``, the first dose, and any columns the model uses, co-medication start
        columns included); default: drawn from [simulation.covariates] (and [simulation.comedication]).
    doses : DoseEvents (patients, doses) or (doses,), optional
        Every patient's doses, times from the first (at 0); default: [simulation.doses], else one dose of
        ``DOSE`` at time 0 (the CAR-T infusion).

    Returns
    -------
    SimulatedCohort
        Its dataset carries the doses (``Dataset.doses``; None for the default single dose), each record's
        analyte code (``Dataset.analyte``, the spec's DVID codes; None for a single analyte without one) and
        the co-medication start columns, so that `carkin.data.write_ck` and `carkin.data.write_covariates`
        write files that ``load_dataset(..., spec=spec)`` reads back unchanged.

    Raises
    ------
    SpecError
        For a [simulation] table that lacks what the model needs (naming the key), or a model that cannot take
        the regimen (e.g. several doses for a model without re-infusion).
    SolverError
        If an ODE solve fails for a simulated patient.
    """
    if not (isinstance(n, int) and n >= 1):
        raise ValueError(f"n must be a positive integer number of patients, got {n!r}")
    sim = _simulation(spec)
    truth = truth if truth is not None else truth_from_spec(spec)
    analyte_times, analyte_lloq = _schedule(spec, sim, times, lloq)
    k_cov, k_eta, k_eps = jax.random.split(key, 3)
    regimen = _regimen(sim) if doses is None else None
    if doses is not None:
        doses = _first_doses(doses, n)
        first = np.argmin(np.where(np.asarray(doses.mask), np.asarray(doses.time), np.inf), axis=1)
        fixed_dose = np.asarray(doses.amount)[np.arange(n), first]
    elif regimen is not None and regimen.amount is not None:
        fixed_dose = np.full(n, regimen.amount[0])
    else:
        fixed_dose = None  # each patient's DOSE is drawn (or given)
    event_columns = tuple(c.start_column for c in spec.comedications if c.start_column is not None)
    if covariates is None:
        if fixed_dose is not None and "DOSE" in sim.table("covariates"):
            raise sim.table("covariates").fail(
                "DOSE", "is given together with the doses' amounts ([simulation.doses] amount, or doses=...)",
                "remove [simulation.covariates.DOSE], or the amount (then each dose is the patient's DOSE)")
        covariates = _draw_covariates(spec, k_cov, n, frozenset({"DOSE"} if fixed_dose is not None else ()))
        covariates.update(_draw_comedication(spec, sim, k_cov, n))  # also checks [simulation.comedication]
    covariates = {c.upper(): np.asarray(v, dtype=float) for c, v in covariates.items()}
    if fixed_dose is not None:
        if "DOSE" in covariates and not np.array_equal(covariates["DOSE"], fixed_dose):
            raise ValueError("covariates['DOSE'] differs from each patient's first dose; leave DOSE out (it is the "
                             "first dose's amount)")
        covariates["DOSE"] = fixed_dose
    if "DOSE" not in covariates:
        raise ValueError("covariates must include DOSE (10^6 CAR+ T cells)")
    if regimen is not None:
        doses = regimen.events(covariates["DOSE"])
    missing = [c for c in event_columns if c not in covariates]
    if missing:
        raise ValueError(f"covariates must include the co-medication start column(s) {', '.join(missing)} "
                         "(time after the first dose, inf: never)")
    names = tuple(sorted(c for c in covariates if c != "DOSE" and c not in event_columns)) + event_columns

    # The design: every analyte's sampling times, merged in time order (as a CK file is read back).
    record_times = np.concatenate(analyte_times)
    record_analyte = np.concatenate([np.full(t.size, k) for k, t in enumerate(analyte_times)])
    order = np.argsort(record_times, kind="stable")
    record_times, record_analyte = record_times[order], record_analyte[order]
    m = record_times.size
    record_lloq = np.asarray(analyte_lloq)[record_analyte]
    codes = [a.code for a in spec.analytes]
    analyte_field = None if codes[0] is None and len(codes) == 1 else jnp.asarray(
        np.broadcast_to(np.asarray(codes, dtype=float)[record_analyte], (n, m)))
    ids = tuple(f"{i + 1}" for i in range(n))
    common = dict(
        patient_ids=ids, times=jnp.broadcast_to(jnp.asarray(record_times), (n, m)),
        lloq=jnp.broadcast_to(jnp.asarray(np.where(record_lloq > 0, record_lloq, np.nan)), (n, m)),
        obs_mask=jnp.ones((n, m), bool), source_rows=jnp.zeros((n, m), int), dose=jnp.asarray(covariates["DOSE"]),
        dose_time=jnp.zeros(n),
        covariates=jnp.asarray(np.stack([covariates[c] for c in names], axis=1) if names else np.zeros((n, 0))),
        covariate_names=names, source="<simulated>", doses=doses, analyte=analyte_field,
    )
    design = Dataset(dv=jnp.ones((n, m)), blq=jnp.zeros((n, m), bool), **common)
    data = prepare(design, spec)  # covariates, model inputs, doses, co-medication: the fit's own code path

    eta = per_patient_normal(k_eta, n, (len(spec.parameters),))
    phi = individual_parameters(spec, truth.mu, truth.omega, truth.beta, data.covariate_z, eta, truth.chol)
    individual = natural_parameters(spec, phi)
    log_c, ok = record_log_predictions(spec, data, phi, log_scale=truth.log_scale, gamma=truth.gamma)
    _check_failed(spec, data, {**individual, **data.inputs}, ok, ids, model_context(spec, data, truth.gamma))
    log_c = log_c.reshape(n, m)  # every record is real: the flat records are the (patients, obs) grid
    log_lloq = jnp.broadcast_to(jnp.log(jnp.asarray(record_lloq)), (n, m))
    obs = sample_analyte_observations(
        spec, None if data.record_analyte is None else data.record_analyte.reshape(n, m), log_c,
        per_patient_normal(k_eps, n, (m,)), sigma=truth.sigma, sigma_add=truth.sigma_add, log_lloq=log_lloq,
    )
    lloq_grid = jnp.broadcast_to(jnp.asarray(record_lloq), (n, m))
    on_log = jnp.asarray(np.asarray([a.log_scale for a in spec.analytes])[record_analyte])
    # the LLOQ itself, not exp(log LLOQ), on BLQ records; log-scale values from the log scale exactly
    dv = jnp.where(obs.blq, lloq_grid, jnp.where(on_log, jnp.exp(obs.log_value), obs.value))
    dataset = Dataset(dv=dv, blq=obs.blq, simulated=True, **common)
    return SimulatedCohort(
        dataset=dataset,
        individual={k: np.asarray(v) for k, v in individual.items()},
        truth=truth,
        covariates=covariates,
    )
