"""The hierarchical numpyro model: fixed effects + covariates + IIV + residual error + M3 BLQ.

One function serves the prior predictive, the fit and the posterior predictive (house rule 8). The
log-likelihood is computed on flat arrays of the real records: the kinetic model is evaluated once per
record with the patient's parameters gathered, and the M3 term only on censored records (gathered
indices), which the prototype measured as the cheapest layout on CPU. An elementwise (closed-form) model
provides ``patient_terms`` (per-patient quantities, e.g. logarithms of its parameters, computed once per
patient) and ``log_concentration_from_terms`` (the per-record part), so that the per-record math is small.

ODE models (``kinetic_model.elementwise`` False) cannot be evaluated record by record: they are solved
once per patient on the padded (patients, obs) schedule ``PopulationData.padded_times`` (sorted times,
padded with the patient's last time) and the flat records are gathered from it (``record_slot``). A
patient whose solve fails (diffrax result code != 0) makes the log-likelihood of that draw -inf, so the
sampler rejects the draw (it counts as a divergence) instead of carrying a NaN into the posterior;
``check_solves`` names such patients in a ``SolverError``.

Model inputs (e.g. baseline tumour burden of the mechanistic model, ``[inputs.<name>]`` in the spec) are
per-patient values from data columns, passed to the kinetic model with the individual parameters. A model
that takes doses (``dosed``: the PK models) gets every patient's `DoseEvents`; a model that supports
re-infusion gets them when some patient has several doses. Co-medication effects reach the model as
``switches``: for each process (expansion, contraction), every co-medication's start time per patient and its
log multiplier.

Several analytes: each record belongs to one analyte (``PopulationData.record_analyte``), observes one of
the model's outputs, is scaled by the analyte's factor, and has the analyte's error model: normal on log DV
for the log-scale models, normal on DV for the linear ones, M3 on the same scale for censored records.

Sample sites (a stable contract with arviz and the manifest):

=========  ======================  ============================================================
site       shape                   meaning
=========  ======================  ============================================================
mu         (params,)               typical values on the transformed scale (log or logit)
omega      (params,)               IIV standard deviations on the transformed scale
corr_chol_<k>  (d_k, d_k)          lower Cholesky factor of the correlation matrix of the random effects
                                   of [iiv] block k (0-based, spec order; d_k its parameters),
                                   LKJCholesky(d_k, lkj_concentration) prior (only with [iiv]
                                   correlation or blocks; `carkin.population._correlation`)
beta       (effects,)              covariate coefficients (only if the spec has covariates)
phi        (patients, params)      individual parameters, transformed scale (centred IIV):
                                   N(loc_i, diag(omega) C diag(omega)), C = L L^T block-diagonal
                                   from the corr_chol_<k> (C = I without correlated IIV)
eta        (patients, params)      standardised random effects (non-centred IIV; phi is then
                                   a deterministic site, loc_i + omega * (L eta_i))
phi_raw    (patients, params)      mixed IIV ([iiv] noncentred = [...]): phi's column for a centred
                                   parameter, eta's for a non-centred one; phi is deterministic
gamma      (comed_effects,)        log multipliers of co-medication effects on kinetic rates
                                   (``spec.comedication_effect_names``; only with [comedication])
sigma      ()                      residual SD on the log scale, or the proportional coefficient
                                   (linear-scale error models); per analyte ``sigma_<analyte>``
                                   when the spec declares several analytes
sigma_add  ()                      additive residual SD in the analyte's unit (error models with
                                   an additive part); per analyte ``sigma_add_<analyte>``
log_scale_<analyte>  ()            log of an analyte's estimated scaling factor (observed =
                                   factor x the model output it observes)
phi_z      (patients, params)      whitened individual parameters (NUTS after its first warm-up
                                   stage, see `Whitening`); phi and the spec's site deterministic
=========  ======================  ============================================================
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jaxtyping import Array, Bool, Float, Int

from ..data import Dataset, DoseEvents, FlatObservations
from ..errors import SolverError, SpecError
from ..models import result_message
from ._correlation import CorrelatedNormal, correlation_cholesky, correlation_sites, iiv_log_density, solve_correlation
from ._generative import individual_means, residual_sd
from ._spec import PopulationSpec
from ._whitening import Whitening

__all__ = [
    "PopulationData", "prepare", "population_model", "natural_parameters", "covariate_design", "model_inputs",
    "padded_schedule", "check_solves", "log_likelihood", "patient_log_likelihood", "population_sites",
    "population_extras", "model_context", "record_analytes", "comedication_starts", "whitening_reference",
    "record_log_predictions",
]


class PopulationData(eqx.Module):
    """Arrays the numpyro model needs, built once from a Dataset and a spec (see ``prepare``).

    Attributes
    ----------
    records : FlatObservations
        Real records in flat layout (patient index, time in days, log DV, BLQ flags, index sets).
    covariate_z : Float[Array, "patients effects"]
        Standardised covariate value for each coefficient of the spec (``spec.effects`` order).
    n_patients : int, static
    inputs : dict of str -> Float[Array, " patients"]
        The kinetic model's inputs (``spec.inputs``), in the model's units; empty for the closed form.
    padded_times : Float[Array, "patients obs"]
        Each patient's record times in days, sorted, padded with the patient's last time (ODE models).
    record_slot : Int[Array, " records"]
        Flat index of each record of ``records`` into ``padded_times`` (row-major).
    record_weight : Float[Array, " records"] or None
        1 for real records, 0 for the padding records `shard_records` adds; None when unpadded.
    record_analyte : Int[Array, " records"] or None
        Index into ``spec.analytes`` of each record's analyte; None: one analyte.
    doses : DoseEvents (patients, doses) or None
        Every dose, times from the first: for models that take doses, or when some patient has several.
    comedication_start : Float[Array, "patients comedications"] or None
        Each co-medication's start per patient (days after the first dose; +inf: never), spec order.
    """

    records: FlatObservations
    covariate_z: Float[Array, "patients effects"]
    n_patients: int = eqx.field(static=True)
    inputs: dict = eqx.field(default_factory=dict)
    padded_times: Float[Array, "patients obs"] | None = None
    record_slot: Int[Array, " records"] | None = None
    record_weight: Float[Array, " records"] | None = None
    record_analyte: Int[Array, " records"] | None = None
    doses: DoseEvents | None = None
    comedication_start: Float[Array, "patients comedications"] | None = None


def _data_column(dataset: Dataset, spec: PopulationSpec, column: str, key: str, remedy: str = "") -> np.ndarray:
    """Per-patient values of a data column the spec's ``key`` uses; a SpecError naming both if it is missing or
    changes within a patient."""
    try:
        return np.asarray(dataset.covariate(column), dtype=float)
    except KeyError as err:
        raise SpecError(
            f"{spec.source}: {key} uses column {column!r}, which the data ({dataset.source}) does not have: "
            f"{err.args[0]}. Give a covariate table with that column (--covariates){remedy}."
        ) from None
    except ValueError as err:  # a time-varying column where one value per patient is needed
        raise SpecError(f"{spec.source}: {key} uses column {column!r} ({dataset.source}): {err}") from None


def covariate_design(dataset: Dataset, spec: PopulationSpec) -> np.ndarray:
    """Standardised covariates, one column per coefficient (``spec.effects`` order): shape (patients, effects).

    Raises
    ------
    SpecError
        If a covariate column named in the spec is missing from the dataset, or a log-transformed
        covariate has a non-positive value (naming the patient).
    """
    columns = []
    for cov in spec.covariates:
        x = _data_column(dataset, spec, cov.column, f"covariates.{cov.name}",
                         f" or remove [covariates.{cov.name}] from the spec")
        if cov.transform == "log" and np.any(x <= 0):
            bad = int(np.flatnonzero(x <= 0)[0])
            raise SpecError(
                f"{spec.source}: covariates.{cov.name} takes log({cov.column}), but patient "
                f"{dataset.patient_ids[bad]} has {cov.column} = {x[bad]:g} (must be > 0); use "
                f'transform = "linear" or fix the data ({dataset.source})'
            )
        z = cov.standardise(x)
        columns += [z] * len(cov.parameters)
    if not columns:
        return np.zeros((dataset.n_patients, 0))
    return np.stack(columns, axis=1)


def model_inputs(dataset: Dataset, spec: PopulationSpec) -> dict[str, np.ndarray]:
    """The kinetic model's per-patient inputs (``spec.inputs``) from the dataset's columns: name -> (patients,).

    Raises
    ------
    SpecError
        If an input's column is missing from the data, or a value is negative or not finite (naming the
        patient).
    """
    out = {}
    for inp in spec.inputs:
        x = _data_column(dataset, spec, inp.column, f"inputs.{inp.name}")
        bad = np.flatnonzero(~(np.isfinite(x) & (x >= 0)))
        if bad.size:
            i = int(bad[0])
            raise SpecError(
                f"{spec.source}: inputs.{inp.name} takes {inp.column}, but patient {dataset.patient_ids[i]} has "
                f"{inp.column} = {x[i]:g} (must be a finite number >= 0; {bad.size} patient(s) affected) "
                f"({dataset.source})"
            )
        out[inp.name] = inp.scale * x
    return out


def padded_schedule(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Each patient's record times sorted and padded with its last time, and the slot of every real record.

    Returns
    -------
    padded_times : (patients, obs) days, non-decreasing along each row (diffrax ``SaveAt(ts=...)`` needs it)
    slot : (records,) flat index into ``padded_times`` of each real record, in ``dataset.flat()`` order
    """
    times = np.asarray(dataset.times, dtype=float)
    mask = np.asarray(dataset.obs_mask)
    n, m = times.shape
    order = np.argsort(np.where(mask, times, np.inf), axis=1, kind="stable")  # real records first, by time
    count = mask.sum(axis=1)
    position = np.arange(m)[None, :]
    ordered = np.take_along_axis(times, order, axis=1)
    last = np.where(count > 0, ordered[np.arange(n), np.maximum(count - 1, 0)], 0.0)
    padded = np.where(position < count[:, None], ordered, last[:, None])
    slot_of = np.zeros((n, m), dtype=np.int64)
    np.put_along_axis(slot_of, order, np.arange(n)[:, None] * m + position, axis=1)
    return padded, slot_of[mask]


def record_analytes(dataset: Dataset, spec: PopulationSpec) -> np.ndarray:
    """Index into ``spec.analytes`` of every real record (``dataset.flat()`` order).

    Raises
    ------
    SpecError
        If a record's analyte code is not one the spec declares (naming the file's row), or a single-analyte
        spec meets several codes.
    """
    codes = dataset.analyte_codes[np.asarray(dataset.obs_mask)]
    rows = np.asarray(dataset.source_rows)[np.asarray(dataset.obs_mask)]
    if len(spec.analytes) == 1 and spec.analytes[0].code is None:
        if np.unique(codes).size > 1:
            raise SpecError(
                f"{spec.source}: declares one analyte, but the data ({dataset.source}) name several "
                f"(codes {', '.join(f'{c:g}' for c in np.unique(codes))}); declare each in [analytes.<name>]"
            )
        return np.zeros(codes.size, dtype=np.int32)
    known = {a.code: k for k, a in enumerate(spec.analytes)}
    index = np.asarray([known.get(c, -1) for c in codes], dtype=np.int32)
    if (index < 0).any():
        bad = int(np.flatnonzero(index < 0)[0])
        raise SpecError(
            f"{spec.source}: the data ({dataset.source}, row {rows[bad]}) have an observation of analyte code "
            f"{codes[bad]:g}, which the spec does not declare "
            f"({', '.join(f'{a.name} = {a.code:g}' for a in spec.analytes)})"
        )
    return index


def comedication_starts(dataset: Dataset, spec: PopulationSpec) -> np.ndarray:
    """Each co-medication's start per patient, days after the first dose (+inf: never): (patients, comedications)."""
    starts = []
    for c in spec.comedications:
        key = f"comedication.{c.name}"
        if c.start_column is not None:
            x = _data_column(dataset, spec, c.start_column, key)
            x = np.where(np.isnan(x), np.inf, x)
        else:
            if dataset.steps is None or c.indicator_column not in dataset.steps.names:
                raise SpecError(
                    f"{spec.source}: [{key}] indicator_column = {c.indicator_column!r} is not a time-varying column "
                    f"of the data ({dataset.source}); load the data with this spec (load_dataset(..., spec=spec)) so "
                    "that the column is read as a step function"
                )
            x = dataset.steps.first_time_above(c.indicator_column)
        starts.append(np.maximum(x, 0.0))  # a co-medication started before the first dose acts from time 0
    return np.stack(starts, axis=1) if starts else np.zeros((dataset.n_patients, 0))


def _check_doses(dataset: Dataset, spec: PopulationSpec, model) -> DoseEvents | None:
    """The doses the model gets (None: the single infusion is all it needs); a SpecError for a history it cannot
    represent."""
    if getattr(model, "dosed", False):
        return dataset.dose_events
    several = dataset.n_doses > 1
    if dataset.doses is None or not several.any():
        return None
    if not getattr(model, "reinfusion", False):
        p = int(np.flatnonzero(several)[0])
        raise SpecError(
            f"{spec.source}: the {spec.model} model takes one infusion per patient, but patient "
            f"{dataset.patient_ids[p]!r} of {dataset.source} has {int(dataset.n_doses[p])} doses "
            f"({int(several.sum())} patient(s) with several); use a model that represents re-infusion"
        )
    return dataset.dose_events


def prepare(dataset: Dataset, spec: PopulationSpec) -> PopulationData:
    """Build the model's arrays from a dataset and a spec (outside ``jit``; concrete index sets).

    Raises
    ------
    SpecError
        If the data do not fit the spec: a missing or time-varying covariate column, an undeclared analyte, a
        dosing history the model cannot represent, an observation the analyte's error model cannot take (DV <= 0
        on the log scale), naming the file's row where there is one.
    """
    records = dataset.flat()
    padded_times, record_slot = padded_schedule(dataset)
    analyte = record_analytes(dataset, spec)
    log_scale = np.asarray([spec.analytes[k].log_scale for k in analyte], dtype=bool)
    quantified = ~np.asarray(records.blq)
    bad = quantified & log_scale & ~(np.asarray(records.dv) > 0)
    if bad.any():
        rows = np.asarray(dataset.source_rows)[np.asarray(dataset.obs_mask)]
        i = int(np.flatnonzero(bad)[0])
        raise SpecError(
            f"{spec.source}: analyte {spec.analytes[analyte[i]].name!r} has a log-scale error model "
            f"({spec.analytes[analyte[i]].residual}), but the data ({dataset.source}, row {rows[i]}) have DV = "
            f"{float(np.asarray(records.dv)[i]):g} on a quantified observation ({int(bad.sum())} in all); flag such "
            "records BLQ, or use a linear-scale error model (additive, proportional, additive_proportional)"
        )
    drop = np.asarray([spec.analytes[k].blq == "drop" for k in analyte], dtype=bool) & np.asarray(records.blq)
    if drop.any():
        keep = np.flatnonzero(~drop)
        record_slot, analyte = record_slot[keep], analyte[keep]
        blq = np.asarray(records.blq)[keep]
        records = FlatObservations(
            patient=records.patient[keep],
            times=records.times[keep],
            log_dv=records.log_dv[keep],
            blq=records.blq[keep],
            quantified_index=jnp.asarray(np.flatnonzero(~blq), dtype=jnp.int32),
            censored_index=jnp.asarray(np.flatnonzero(blq), dtype=jnp.int32),
            dv=records.dv[keep],
            analyte_code=records.analyte_code[keep],
        )
    model = spec.kinetic_model
    starts = comedication_starts(dataset, spec)
    return PopulationData(
        records=records,
        covariate_z=jnp.asarray(covariate_design(dataset, spec)),
        n_patients=dataset.n_patients,
        inputs={k: jnp.asarray(v) for k, v in model_inputs(dataset, spec).items()},
        padded_times=jnp.asarray(padded_times),
        record_slot=jnp.asarray(record_slot, dtype=jnp.int32),
        record_analyte=None if len(spec.analytes) == 1 else jnp.asarray(analyte, dtype=jnp.int32),
        doses=_check_doses(dataset, spec, model),
        comedication_start=jnp.asarray(starts) if spec.comedications else None,
    )


def natural_parameters(spec: PopulationSpec, phi: Float[Array, "... params"]) -> dict[str, Float[Array, "..."]]:
    """Transformed-scale parameters (last axis in spec order) -> dict of natural-scale arrays."""
    out = {}
    for k, p in enumerate(spec.parameters):
        out[p.name] = jnp.exp(phi[..., k]) if p.transform == "log" else jax.nn.sigmoid(phi[..., k])
    return out


def model_context(spec: PopulationSpec, data: PopulationData, gamma=None) -> dict:
    """The keyword arguments a kinetic model gets beside the individual parameters: ``doses`` (a dosed model,
    or several doses per patient) and ``switches`` (co-medication effects: process -> (start times
    (patients, comedications), log multipliers (comedications,)))."""
    context = {}
    if data.doses is not None:
        context["doses"] = data.doses
    if spec.comedications:
        if gamma is None:
            raise ValueError(f"{spec.source} has co-medication effects: pass their log multipliers gamma")
        context["switches"] = {process: (data.comedication_start, factors)
                               for process, factors in _switch_factors(spec, jnp.asarray(gamma)).items()}
    return context


def _switch_factors(spec: PopulationSpec, gamma: Float[Array, "... effects"]) -> dict:
    """Each switched process's log multipliers, one per co-medication in spec order (0 where a co-medication does
    not act on the process): process -> (..., comedications), from gamma (..., effects) in
    ``spec.comedication_effects`` order."""
    names = spec.comedication_effects
    zero = jnp.zeros(gamma.shape[:-1], gamma.dtype)
    return {
        process: jnp.stack([gamma[..., names.index((c.name, process))] if (c.name, process) in names else zero
                            for c in spec.comedications], axis=-1)
        for process in dict.fromkeys(p for _, p in names)
    }


def _record_predictions(spec: PopulationSpec, data: PopulationData, phi, log_scale=None, gamma=None):
    """Predicted log value of every record (the model output its analyte observes, times the analyte's scaling
    factor), and which patients' solves succeeded (None: closed form).

    Failed patients get a finite placeholder prediction so that no NaN reaches a sum or its gradient.
    """
    rec = data.records
    model = spec.kinetic_model
    individual = natural_parameters(spec, phi)
    individual.update(data.inputs)
    context = model_context(spec, data, gamma)
    outputs = tuple(getattr(model, "outputs", ("concentration",)))
    output_of = [outputs.index(a.output) for a in spec.analytes]
    if model.elementwise:
        # Transform per patient, then gather to the records: the per-record math is what the gradient costs.
        terms = model.patient_terms(individual, **context)
        gathered = jax.tree_util.tree_map(lambda v: v[rec.patient], terms)
        log_pred, ok = model.log_concentration_from_terms(gathered, rec.times), None
    else:
        sol = model.solve(individual, data.padded_times, **context)
        if len(outputs) > 1:
            flat = sol.log_outputs.reshape(-1, len(outputs))[data.record_slot]  # (records, outputs)
            column = jnp.asarray(output_of)[data.record_analyte] if data.record_analyte is not None else output_of[0]
            log_pred = jnp.take_along_axis(flat, jnp.broadcast_to(jnp.asarray(column), rec.times.shape)[:, None],
                                           axis=1)[:, 0]
        else:
            log_pred = sol.log_concentration.reshape(-1)[data.record_slot]
        ok = sol.ok
        log_pred = jnp.where(ok[rec.patient], log_pred, 0.0)
    if log_scale is not None and any(a.scaled for a in spec.analytes):
        log_scale = jnp.reshape(jnp.asarray(log_scale), (-1,))
        log_pred = log_pred + (log_scale[data.record_analyte] if data.record_analyte is not None else log_scale[0])
    return log_pred, ok


def record_log_predictions(
    spec: PopulationSpec, data: PopulationData, phi, *, log_scale=None, gamma=None
) -> tuple[Float[Array, " records"], Bool[Array, " patients"] | None]:
    """The likelihood's prediction of every record: log of (the model output its analyte observes x the analyte's
    scaling factor), with the patients' doses and co-medication switches (`model_context`).

    Parameters
    ----------
    phi : Float[Array, "patients params"]
        Individual parameters, transformed scale. Batch over draws with ``jax.vmap``.
    log_scale, gamma : arrays (analytes,), (comedication effects,), optional
        As in `log_likelihood`.

    Returns
    -------
    log_pred : Float[Array, " records"]
        In the analyte's unit (log); NaN on the records of a patient whose ODE solve failed; -inf where the
        prediction is exactly 0 (e.g. a PK concentration before the first dose).
    ok : Bool[Array, " patients"] or None
        Which patients' solves succeeded (None: a closed form).
    """
    log_pred, ok = _record_predictions(spec, data, phi, log_scale, gamma)
    if ok is not None:
        log_pred = jnp.where(ok[data.records.patient], log_pred, jnp.nan)
    return log_pred, ok


def log_likelihood(
    spec: PopulationSpec, data: PopulationData, phi, sigma, sigma_add=None, *, log_scale=None, gamma=None
) -> Float[Array, ""]:
    """Sum of the record log-likelihoods: normal on log DV (log-scale error models) or on DV (linear ones) for
    quantified records, M3 for censored ones.

    Parameters
    ----------
    phi : Float[Array, "patients params"]
        Individual parameters, transformed scale.
    sigma, sigma_add : scalars (one analyte) or arrays (analytes,)
        Residual parameters (`residual_sd`); an analyte's unused entries are ignored.
    log_scale : array (analytes,), optional
        Logs of the analytes' scaling factors (0 for an analyte without one).
    gamma : array (comedication effects,), optional
        Co-medication log multipliers (``spec.comedication_effect_names``).

    For ODE models, -inf if any patient's solve failed (see the module docstring).
    """
    log_pred, ok = _record_predictions(spec, data, phi, log_scale, gamma)
    terms = _record_terms(spec, data, log_pred, sigma, sigma_add)
    ll = _weighted_sum(terms, data.records, data.record_weight)
    return ll if ok is None else jnp.where(jnp.all(ok), ll, -jnp.inf)


def patient_log_likelihood(
    spec: PopulationSpec, data: PopulationData, phi, sigma, sigma_add=None, *, log_scale=None, gamma=None
) -> Float[Array, " patients"]:
    """Each patient's log-likelihood (its records' terms summed), shape (patients,).

    An ODE model's population is solved as one system (shared step control), so a failed solve makes every
    patient's value -inf. Sums to `log_likelihood` where the solve succeeds. Not on the sampler's path (the
    total is computed without the scatter this needs); used where patients are compared, e.g. between chains.
    """
    rec = data.records
    log_pred, ok = _record_predictions(spec, data, phi, log_scale, gamma)
    quantified, censored = _record_terms(spec, data, log_pred, sigma, sigma_add)
    terms = jnp.zeros(rec.log_dv.shape, dtype=log_pred.dtype)
    terms = terms.at[rec.quantified_index].set(quantified)
    if censored is not None:
        terms = terms.at[rec.censored_index].set(censored)
    if data.record_weight is not None:
        terms = data.record_weight * terms
    per_patient = jax.ops.segment_sum(terms, rec.patient, num_segments=data.n_patients)
    return per_patient if ok is None else jnp.where(ok, per_patient, -jnp.inf)


def _weighted_sum(terms, rec: FlatObservations, weight):
    """Total of the quantified and censored records' terms (padding records of shard_records weigh 0)."""
    quantified, censored = terms

    def total(values, index):
        return jnp.sum(values if weight is None else weight[index] * values)

    ll = total(quantified, rec.quantified_index)
    return ll if censored is None else ll + total(censored, rec.censored_index)


def _per_record(value, data: PopulationData):
    """An analyte-indexed parameter ((analytes,)) at every record."""
    return jnp.asarray(value)[data.record_analyte]


def _record_terms(spec: PopulationSpec, data: PopulationData, log_pred, sigma, sigma_add):
    """Log-likelihood terms of the quantified records and of the censored ones (None when there are none)."""
    rec = data.records
    q, c = rec.quantified_index, rec.censored_index
    analytes = spec.analytes
    if len(analytes) == 1:  # one error model: its own formula (the path every single-analyte spec takes)
        residual = analytes[0].residual
        sd = residual_sd(residual, log_pred, _scalar(sigma), _scalar(sigma_add))
        if analytes[0].log_scale:
            return _normal_terms(rec.log_dv, log_pred, sd, q, c)
        return _normal_terms(rec.dv, jnp.exp(log_pred), sd, q, c)
    # several analytes: sd from the general formulas, unused parameters 0 (see the module docstring)
    sigma_r = _per_record(_filled(sigma, analytes, "sigma"), data)
    add_r = _per_record(_filled(sigma_add, analytes, "sigma_add"), data)
    is_log = np.asarray([a.log_scale for a in analytes])
    terms = []
    if is_log.any():
        sd_log = jnp.sqrt(sigma_r**2 + (add_r * jnp.exp(-log_pred)) ** 2)
        terms.append(_normal_terms(rec.log_dv, log_pred, sd_log, q, c))
    if not is_log.all():
        pred = jnp.exp(log_pred)
        sd_lin = jnp.sqrt(add_r**2 + (sigma_r * pred) ** 2)
        terms.append(_normal_terms(rec.dv, pred, sd_lin, q, c))
    if len(terms) == 1:
        return terms[0]
    on_log = jnp.asarray(is_log)[data.record_analyte]
    quantified = jnp.where(on_log[q], terms[0][0], terms[1][0])
    censored = None if terms[0][1] is None else jnp.where(on_log[c], terms[0][1], terms[1][1])
    return quantified, censored


def _normal_terms(y, mean, sd, q, c):
    """Normal log-density of the quantified records and M3 log P(Y < LLOQ) of the censored ones (y holds the
    LLOQ there), on the scale of ``y``."""
    sd_q = sd if jnp.ndim(sd) == 0 else sd[q]
    quantified = dist.Normal(mean[q], sd_q).log_prob(y[q])
    if c.shape[0] == 0:
        return quantified, None
    sd_c = sd if jnp.ndim(sd) == 0 else sd[c]
    return quantified, jax.scipy.special.log_ndtr((y[c] - mean[c]) / sd_c)


def _scalar(value):
    """A residual parameter of a single-analyte spec as a scalar (None stays None)."""
    if value is None:
        return None
    value = jnp.asarray(value)
    return value if value.ndim == 0 else value.reshape(-1)[0]


def _filled(value, analytes, name):
    """(analytes,) parameter vector from a scalar/vector, 0 where an analyte does not use the parameter."""
    uses = np.asarray([a.uses_sigma if name == "sigma" else a.uses_sigma_add for a in analytes])
    if value is None:
        if uses.any():
            raise ValueError(
                f"{name} is needed by analyte(s) {[a.name for a, u in zip(analytes, uses, strict=True) if u]}"
            )
        return jnp.zeros(len(analytes))
    value = jnp.broadcast_to(jnp.asarray(value), (len(analytes),))
    return jnp.where(jnp.asarray(uses), value, 0.0)


@functools.partial(jax.jit, static_argnames=("model", "batching"))
def _solve_codes(model, individual, times, context, batching=None):
    """Result codes of an ODE model's solve (jitted once per model, batching, shapes and context structure)."""
    return model.solve(individual, times, batching=batching, **context).code


def _tiled_context(spec: PopulationSpec, data: PopulationData, sets: tuple[int, ...], gamma) -> dict:
    """``model_context`` for parameter sets of batch shape ``sets``, stacked set-major along the patient axis (as
    ``check_solves`` stacks them): doses and co-medication starts repeated per set, each set's log multipliers
    repeated per patient. gamma: (effects,) or (*sets, effects); None: 0 (no co-medication effect)."""
    n_sets = int(np.prod(sets, dtype=int))
    context = {}
    if data.doses is not None:
        context["doses"] = jax.tree_util.tree_map(lambda v: jnp.tile(v, (n_sets,) + (1,) * (v.ndim - 1)), data.doses)
    if spec.comedications:
        n_effects = len(spec.comedication_effects)
        gamma = jnp.zeros(n_effects) if gamma is None else jnp.asarray(gamma, dtype=float)
        gamma = jnp.broadcast_to(gamma, sets + (n_effects,)).reshape(n_sets, n_effects)
        starts = jnp.tile(data.comedication_start, (n_sets, 1))
        context["switches"] = {process: (starts, jnp.repeat(factors, data.n_patients, axis=0))
                               for process, factors in _switch_factors(spec, gamma).items()}
    return context


def check_solves(
    spec: PopulationSpec, dataset: Dataset, individual: dict, *, data: PopulationData | None = None, gamma=None
) -> None:
    """Solve an ODE model for every patient of ``dataset`` and raise if any solve fails.

    Parameters
    ----------
    spec : PopulationSpec
    dataset : Dataset
        Supplies each patient's times and the model inputs.
    individual : dict of name -> array (..., patients)
        Natural-scale individual parameters; leading axes (e.g. draws) are all checked.
    data : PopulationData, optional
        ``prepare(dataset, spec)``, if already built.
    gamma : array (..., comedication effects), optional
        Co-medication log multipliers (``spec.comedication_effect_names``), with the leading axes of
        ``individual`` (one set per parameter set) or none (shared); default 0. Each patient is solved with its
        doses and co-medication switches, as the likelihood solves it.

    Raises
    ------
    SolverError
        Naming every patient ID whose solve failed (with the number of failed parameter sets and diffrax's
        message) and what to try. Does nothing for a closed-form model.
    """
    model = spec.kinetic_model
    if model.elementwise:
        return
    data = data if data is not None else prepare(dataset, spec)
    values = {k: jnp.asarray(individual[k]) for k in spec.parameter_names}
    batch = jnp.broadcast_shapes(*[v.shape for v in values.values()])
    if not batch or batch[-1] != dataset.n_patients:
        raise ValueError(
            f"check_solves: individual parameters must have shape (..., patients) with patients = "
            f"{dataset.n_patients}; got {batch}"
        )
    flat = {k: jnp.broadcast_to(v, batch).reshape(-1) for k, v in values.items()}
    n_sets = int(np.prod(batch[:-1], dtype=int))
    flat.update({k: jnp.tile(v, n_sets) for k, v in data.inputs.items()})
    times = jnp.tile(data.padded_times, (n_sets, 1))
    context = _tiled_context(spec, data, tuple(batch[:-1]), gamma)
    code = np.asarray(_solve_codes(model, flat, times, context)).reshape(n_sets, dataset.n_patients)
    joint = None
    if (code != 0).any() and spec.ode is not None and spec.ode.resolved_batching == "population":
        # One joint solve per parameter set: re-solve patient by patient to find who fails.
        joint = int(code[code != 0][0])
        code = np.asarray(_solve_codes(model, flat, times, context, batching="patient"))
        code = code.reshape(n_sets, dataset.n_patients)
    failed = np.flatnonzero((code != 0).any(axis=0))
    if failed.size == 0:
        if joint is None:
            return
        raise SolverError(
            f"ODE solve failed for the joint solve of all {dataset.n_patients} patients of {dataset.source} with "
            f"the {spec.model} model ({spec.source}) ({result_message(joint)}), although each patient solves "
            'alone: the shared steps need more than [ode] max_steps. Increase max_steps or use batching = "patient".'
        )
    lines = []
    for i in failed:
        codes = code[:, i][code[:, i] != 0]
        first = int(codes[0])
        lines.append(
            f"patient {dataset.patient_ids[i]}: {codes.size} of {n_sets} parameter set(s) failed "
            f"({result_message(first)})"
        )
    raise SolverError(
        f"ODE solve failed for {failed.size} patient(s) of {dataset.source} with the {spec.model} model "
        f"({spec.source}):\n  " + "\n  ".join(lines) + "\nTry a larger [ode] max_steps, looser rtol/atol, "
        'solver = "kvaerno5" if the system is stiff, or check these patients\' data and the priors.'
    )


def population_model(data: PopulationData, spec: PopulationSpec, whitening: Whitening | None = None) -> None:
    """numpyro model of the hierarchical CK population (see the module docstring for the sites).

    With ``whitening`` (a `Whitening`, built by NUTS's first warm-up stage), the individual parameters are
    sampled as ``phi_z`` and ``phi`` (and the spec's own individual site, ``eta`` or ``phi_raw``) become
    deterministic; the posterior is the same.
    """
    n_params = len(spec.parameters)
    prior_loc = jnp.asarray([p.prior_loc for p in spec.parameters])
    prior_sd = jnp.asarray([p.prior_sd for p in spec.parameters])
    omega_scale = jnp.asarray([p.omega_scale for p in spec.parameters])
    mu = numpyro.sample("mu", dist.Normal(prior_loc, prior_sd).to_event(1))
    omega = numpyro.sample("omega", dist.HalfNormal(omega_scale).to_event(1))
    if spec.effects:
        beta_sd = jnp.asarray([c.prior_sd for c in spec.covariates for _ in c.parameters])
        beta = numpyro.sample("beta", dist.Normal(jnp.zeros_like(beta_sd), beta_sd).to_event(1))
    else:
        beta = jnp.zeros((0,))
    loc = individual_means(spec, mu, beta, data.covariate_z)
    chol = _sample_correlation(spec)
    if whitening is not None:
        _whitened_individuals(data, spec, whitening, loc, omega, chol)
        return
    with numpyro.plate("patients", data.n_patients, dim=-1):
        if spec.iiv == "centred" and chol is not None:
            phi = numpyro.sample("phi", CorrelatedNormal(loc, omega, chol))
        elif spec.iiv == "centred":
            phi = numpyro.sample("phi", dist.Normal(loc, omega[None, :]).to_event(1))
        elif spec.iiv == "noncentred":
            eta = numpyro.sample("eta", dist.Normal(jnp.zeros(n_params), 1.0).to_event(1))
            deviation = eta if chol is None else eta @ chol.T  # correlated: eta_i -> L eta_i
            phi = numpyro.deterministic("phi", loc + omega[None, :] * deviation)
        elif spec.iiv == "mixed" and chol is None:  # the spec refuses mixed IIV with correlated random effects
            noncentred = _noncentred_columns(spec)
            raw_loc = jnp.where(noncentred, 0.0, loc)
            raw_scale = jnp.where(noncentred, 1.0, omega[None, :])
            raw = numpyro.sample("phi_raw", dist.Normal(raw_loc, raw_scale).to_event(1))
            phi = numpyro.deterministic("phi", jnp.where(noncentred, loc + omega[None, :] * raw, raw))
        else:  # validated in the spec; kept for a clear message if a spec is built by hand
            raise SpecError(f"unknown IIV parameterization {spec.iiv!r}")
    sigma, sigma_add, log_scale, gamma = _population_extras(spec)
    numpyro.factor(
        "log_likelihood", log_likelihood(spec, data, phi, sigma, sigma_add, log_scale=log_scale, gamma=gamma)
    )


def _sample_correlation(spec: PopulationSpec) -> Float[Array, "params params"] | None:
    """Sample each correlated block's Cholesky factor (``corr_chol_<k>``, LKJ prior) and return the whole
    correlation matrix's factor (`correlation_cholesky`); None without correlated IIV."""
    values = {site: numpyro.sample(site, dist.LKJCholesky(len(block), spec.lkj_concentration))
              for site, block in zip(correlation_sites(spec), spec.iiv_blocks, strict=True)}
    return correlation_cholesky(spec, values)


def _noncentred_columns(spec: PopulationSpec) -> Bool[Array, " params"]:
    """Which columns of phi a mixed IIV spec samples non-centred."""
    return jnp.asarray([p in spec.noncentred for p in spec.parameter_names])


def population_sites(spec: PopulationSpec) -> tuple[tuple[str, bool], ...]:
    """(site, positive?) of every population-level sample site, in sampling order (the individual site aside):
    mu, omega, beta, then per analyte its residual and scaling sites, then gamma."""
    sites = [("mu", False), ("omega", True)] + ([("beta", False)] if spec.effects else [])
    for analyte in spec.analytes:
        sites += [(name, True) for name in spec.residual_sites(analyte) if name]
        if spec.scale_site(analyte):
            sites.append((spec.scale_site(analyte), False))
    if spec.comedications:
        sites.append(("gamma", False))
    return tuple(sites)


def population_extras(spec: PopulationSpec, values: dict):
    """(sigma, sigma_add, log_scale, gamma) in the form `log_likelihood` takes, from site values (one draw).

    ``values``: site name -> value (e.g. a posterior draw; leading batch axes allowed). Scalars (or None) for a
    single-analyte spec, (..., analytes) arrays (0 where unused) for several; log_scale and gamma None when the
    spec has none.
    """
    sigmas, adds, scales = [], [], []
    for analyte in spec.analytes:
        sigma_site, add_site = spec.residual_sites(analyte)
        sigmas.append(values[sigma_site] if sigma_site else None)
        adds.append(values[add_site] if add_site else None)
        site = spec.scale_site(analyte)
        scales.append(values[site] if site else None)

    def stacked(xs):  # the analytes' axis last (site values may carry leading batch axes)
        given = [jnp.asarray(x) for x in xs if x is not None]
        if not given:
            return None
        return jnp.stack([jnp.zeros_like(given[0]) if x is None else jnp.asarray(x) for x in xs], axis=-1)

    gamma = values["gamma"] if spec.comedications else None
    if len(spec.analytes) == 1:
        return sigmas[0], adds[0], stacked(scales), gamma
    return stacked(sigmas), stacked(adds), stacked(scales), gamma


def _population_extras(spec: PopulationSpec):
    """Sample the residual parameters, the analytes' scaling factors and the co-medication effects, and return
    them as `population_extras` does."""
    values = {}
    for analyte in spec.analytes:
        sigma_site, add_site = spec.residual_sites(analyte)
        if sigma_site:
            values[sigma_site] = numpyro.sample(sigma_site, dist.HalfNormal(analyte.sigma_scale))
        if add_site:
            values[add_site] = numpyro.sample(add_site, dist.HalfNormal(analyte.sigma_add_scale))
        site = spec.scale_site(analyte)
        if site:
            values[site] = numpyro.sample(site, dist.Normal(np.log(analyte.scale_typical), analyte.scale_prior_sd))
    if spec.comedications:
        gamma_sd = jnp.asarray([c.prior_sd for c in spec.comedications for _ in c.processes])
        values["gamma"] = numpyro.sample("gamma", dist.Normal(jnp.zeros_like(gamma_sd), gamma_sd).to_event(1))
    return population_extras(spec, values)


def whitening_reference(spec: PopulationSpec, sigma, sigma_add):
    """The residual scale the whitening's curvature follows (the likelihood's curvature goes as 1 / scale^2):
    the first analyte's sigma, or its sigma_add when its error model has no sigma. Batch axes lead."""
    value = jnp.asarray(sigma if spec.analytes[0].uses_sigma else sigma_add)
    return value if len(spec.analytes) == 1 else value[..., 0]


def _whitened_individuals(data: PopulationData, spec: PopulationSpec, whitening: Whitening, loc, omega, chol) -> None:
    """The individual parameters and the likelihood in the whitened parameterisation (see `Whitening`); ``chol``
    the IIV correlation's Cholesky factor (None: independent)."""
    sigma, sigma_add, log_scale, gamma = _population_extras(spec)
    standard = dist.Normal(jnp.zeros(len(spec.parameters)), 1.0).to_event(1)
    with numpyro.plate("patients", data.n_patients, dim=-1):
        z = numpyro.sample("phi_z", standard)  # its N(0, 1) density is replaced by the model's just below
    phi, log_jacobian = whitening.individuals(loc, omega, whitening_reference(spec, sigma, sigma_add), z, chol)
    numpyro.factor(
        "phi_density", (dist.Normal(loc, omega).log_prob(phi).sum() if chol is None
                        else iiv_log_density(phi, loc, omega, chol).sum()) + log_jacobian - standard.log_prob(z).sum()
    )
    numpyro.deterministic("phi", phi)
    if spec.individual_site != "phi":  # what the spec's own parameterisation would have sampled
        eta = (phi - loc) / omega if chol is None else solve_correlation(chol, (phi - loc) / omega)
        if spec.iiv == "mixed":
            noncentred = _noncentred_columns(spec)
            eta = jnp.where(noncentred, eta, phi)
        numpyro.deterministic(spec.individual_site, eta)
    numpyro.factor(
        "log_likelihood", log_likelihood(spec, data, phi, sigma, sigma_add, log_scale=log_scale, gamma=gamma)
    )
