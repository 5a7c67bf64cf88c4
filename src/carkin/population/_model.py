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
per-patient values from data columns, passed to the kinetic model with the individual parameters.

Sample sites (a stable contract with arviz and the manifest):

=========  ======================  ============================================================
site       shape                   meaning
=========  ======================  ============================================================
mu         (params,)               typical values on the transformed scale (log or logit)
omega      (params,)               IIV standard deviations on the transformed scale
beta       (effects,)              covariate coefficients (only if the spec has covariates)
phi        (patients, params)      individual parameters, transformed scale (centred IIV)
eta        (patients, params)      standardised random effects (non-centred IIV; phi is then
                                   a deterministic site)
phi_raw    (patients, params)      mixed IIV ([iiv] noncentred = [...]): phi's column for a centred
                                   parameter, eta's for a non-centred one; phi is deterministic
sigma      ()                      residual SD on the log scale
sigma_add  ()                      additive residual SD, copies/ug ("combined" error only)
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

from ..data import Dataset, FlatObservations
from ..errors import SolverError, SpecError
from ..models import result_message
from ._generative import individual_means, residual_sd
from ._spec import PopulationSpec
from ._whitening import Whitening

__all__ = [
    "PopulationData", "prepare", "population_model", "natural_parameters", "covariate_design", "model_inputs",
    "padded_schedule", "check_solves", "log_likelihood", "patient_log_likelihood",
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
    """

    records: FlatObservations
    covariate_z: Float[Array, "patients effects"]
    n_patients: int = eqx.field(static=True)
    inputs: dict = eqx.field(default_factory=dict)
    padded_times: Float[Array, "patients obs"] | None = None
    record_slot: Int[Array, " records"] | None = None
    record_weight: Float[Array, " records"] | None = None


def _data_column(dataset: Dataset, spec: PopulationSpec, column: str, key: str, remedy: str = "") -> np.ndarray:
    """Per-patient values of a data column the spec's ``key`` uses; a SpecError naming both if it is missing."""
    try:
        return np.asarray(dataset.covariate(column), dtype=float)
    except KeyError as err:
        raise SpecError(
            f"{spec.source}: {key} uses column {column!r}, which the data ({dataset.source}) does not have: "
            f"{err.args[0]}. Give a covariate table with that column (--covariates){remedy}."
        ) from None


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


def prepare(dataset: Dataset, spec: PopulationSpec) -> PopulationData:
    """Build the model's arrays from a dataset and a spec (outside ``jit``; concrete index sets)."""
    records = dataset.flat()
    padded_times, record_slot = padded_schedule(dataset)
    if spec.blq == "drop":
        keep = np.flatnonzero(~np.asarray(records.blq))
        record_slot = record_slot[keep]
        records = FlatObservations(
            patient=records.patient[keep],
            times=records.times[keep],
            log_dv=records.log_dv[keep],
            blq=records.blq[keep],
            quantified_index=jnp.arange(keep.size, dtype=jnp.int32),
            censored_index=jnp.zeros((0,), dtype=jnp.int32),
        )
    return PopulationData(
        records=records,
        covariate_z=jnp.asarray(covariate_design(dataset, spec)),
        n_patients=dataset.n_patients,
        inputs={k: jnp.asarray(v) for k, v in model_inputs(dataset, spec).items()},
        padded_times=jnp.asarray(padded_times),
        record_slot=jnp.asarray(record_slot, dtype=jnp.int32),
    )


def natural_parameters(spec: PopulationSpec, phi: Float[Array, "... params"]) -> dict[str, Float[Array, "..."]]:
    """Transformed-scale parameters (last axis in spec order) -> dict of natural-scale arrays."""
    out = {}
    for k, p in enumerate(spec.parameters):
        out[p.name] = jnp.exp(phi[..., k]) if p.transform == "log" else jax.nn.sigmoid(phi[..., k])
    return out


def _record_predictions(spec: PopulationSpec, data: PopulationData, phi):
    """Predicted log concentration of every record, and which patients' solves succeeded (None: closed form).

    Failed patients get a finite placeholder prediction so that no NaN reaches a sum or its gradient.
    """
    rec = data.records
    model = spec.kinetic_model
    individual = natural_parameters(spec, phi)
    individual.update(data.inputs)
    if model.elementwise:
        # Transform per patient, then gather to the records: the per-record math is what the gradient costs.
        terms = model.patient_terms(individual)
        return model.log_concentration_from_terms({k: v[rec.patient] for k, v in terms.items()}, rec.times), None
    sol = model.solve(individual, data.padded_times)
    log_pred = jnp.where(sol.ok[rec.patient], sol.log_concentration.reshape(-1)[data.record_slot], 0.0)
    return log_pred, sol.ok


def log_likelihood(spec: PopulationSpec, data: PopulationData, phi, sigma, sigma_add=None) -> Float[Array, ""]:
    """Sum of the record log-likelihoods: normal on log DV for quantified records, M3 for censored ones.

    For ODE models, -inf if any patient's solve failed (see the module docstring).
    """
    log_pred, ok = _record_predictions(spec, data, phi)
    ll = _record_log_likelihood(spec, data.records, log_pred, sigma, sigma_add, data.record_weight)
    return ll if ok is None else jnp.where(jnp.all(ok), ll, -jnp.inf)


def patient_log_likelihood(
    spec: PopulationSpec, data: PopulationData, phi, sigma, sigma_add=None
) -> Float[Array, " patients"]:
    """Each patient's log-likelihood (its records' terms summed), shape (patients,).

    An ODE model's population is solved as one system (shared step control), so a failed solve makes every
    patient's value -inf. Sums to `log_likelihood` where the solve succeeds. Not on the sampler's path (the
    total is computed without the scatter this needs); used where patients are compared, e.g. between chains.
    """
    rec = data.records
    log_pred, ok = _record_predictions(spec, data, phi)
    sd = residual_sd(spec.residual, log_pred, sigma, sigma_add)
    censored = jnp.zeros(rec.log_dv.shape, bool).at[rec.censored_index].set(True)
    z = (rec.log_dv - log_pred) / sd
    terms = jnp.where(censored, jax.scipy.special.log_ndtr(z), dist.Normal(log_pred, sd).log_prob(rec.log_dv))
    if data.record_weight is not None:
        terms = data.record_weight * terms
    per_patient = jax.ops.segment_sum(terms, rec.patient, num_segments=data.n_patients)
    return per_patient if ok is None else jnp.where(ok, per_patient, -jnp.inf)


def _record_log_likelihood(spec: PopulationSpec, rec: FlatObservations, log_pred, sigma, sigma_add, weight=None):
    sd = residual_sd(spec.residual, log_pred, sigma, sigma_add)

    def total(terms, index):  # padding records (weight 0) of shard_records add nothing
        return jnp.sum(terms if weight is None else weight[index] * terms)

    q = rec.quantified_index
    sd_q = sd if jnp.ndim(sd) == 0 else sd[q]
    ll = total(dist.Normal(log_pred[q], sd_q).log_prob(rec.log_dv[q]), q)
    c = rec.censored_index
    if c.shape[0] > 0:
        sd_c = sd if jnp.ndim(sd) == 0 else sd[c]
        ll = ll + total(jax.scipy.special.log_ndtr((rec.log_dv[c] - log_pred[c]) / sd_c), c)
    return ll


@functools.partial(jax.jit, static_argnames=("model", "batching"))
def _solve_codes(model, individual, times, batching=None):
    """Result codes of an ODE model's solve (jitted once per model, batching and shapes)."""
    return model.solve(individual, times, batching=batching).code


def check_solves(spec: PopulationSpec, dataset: Dataset, individual: dict, *, data: PopulationData | None = None) -> None:
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
    code = np.asarray(_solve_codes(model, flat, times)).reshape(n_sets, dataset.n_patients)
    joint = None
    if (code != 0).any() and spec.ode is not None and spec.ode.resolved_batching == "population":
        # One joint solve per parameter set: re-solve patient by patient to find who fails.
        joint = int(code[code != 0][0])
        code = np.asarray(_solve_codes(model, flat, times, batching="patient")).reshape(n_sets, dataset.n_patients)
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
    if whitening is not None:
        _whitened_individuals(data, spec, whitening, loc, omega)
        return
    with numpyro.plate("patients", data.n_patients, dim=-1):
        if spec.iiv == "centred":
            phi = numpyro.sample("phi", dist.Normal(loc, omega[None, :]).to_event(1))
        elif spec.iiv == "noncentred":
            eta = numpyro.sample("eta", dist.Normal(jnp.zeros(n_params), 1.0).to_event(1))
            phi = numpyro.deterministic("phi", loc + omega[None, :] * eta)
        elif spec.iiv == "mixed":
            noncentred = _noncentred_columns(spec)
            raw_loc = jnp.where(noncentred, 0.0, loc)
            raw_scale = jnp.where(noncentred, 1.0, omega[None, :])
            raw = numpyro.sample("phi_raw", dist.Normal(raw_loc, raw_scale).to_event(1))
            phi = numpyro.deterministic("phi", jnp.where(noncentred, loc + omega[None, :] * raw, raw))
        else:  # validated in the spec; kept for a clear message if a spec is built by hand
            raise SpecError(f"unknown IIV parameterization {spec.iiv!r}")
    sigma, sigma_add = _residual_sds(spec)
    numpyro.factor("log_likelihood", log_likelihood(spec, data, phi, sigma, sigma_add))


def _noncentred_columns(spec: PopulationSpec) -> Bool[Array, " params"]:
    """Which columns of phi a mixed IIV spec samples non-centred."""
    return jnp.asarray([p in spec.noncentred for p in spec.parameter_names])


def _residual_sds(spec: PopulationSpec):
    sigma = numpyro.sample("sigma", dist.HalfNormal(spec.sigma_scale))
    sigma_add = numpyro.sample("sigma_add", dist.HalfNormal(spec.sigma_add_scale)) if spec.residual == "combined" else None
    return sigma, sigma_add


def _whitened_individuals(data: PopulationData, spec: PopulationSpec, whitening: Whitening, loc, omega) -> None:
    """The individual parameters and the likelihood in the whitened parameterisation (see `Whitening`)."""
    sigma, sigma_add = _residual_sds(spec)
    standard = dist.Normal(jnp.zeros(len(spec.parameters)), 1.0).to_event(1)
    with numpyro.plate("patients", data.n_patients, dim=-1):
        z = numpyro.sample("phi_z", standard)  # its N(0, 1) density is replaced by the model's just below
    phi, log_jacobian = whitening.individuals(loc, omega, sigma, z)
    numpyro.factor(
        "phi_density", dist.Normal(loc, omega).log_prob(phi).sum() + log_jacobian - standard.log_prob(z).sum()
    )
    numpyro.deterministic("phi", phi)
    if spec.individual_site != "phi":  # what the spec's own parameterisation would have sampled
        eta = (phi - loc) / omega
        if spec.iiv == "mixed":
            noncentred = _noncentred_columns(spec)
            eta = jnp.where(noncentred, eta, phi)
        numpyro.deterministic(spec.individual_site, eta)
    numpyro.factor("log_likelihood", log_likelihood(spec, data, phi, sigma, sigma_add))
