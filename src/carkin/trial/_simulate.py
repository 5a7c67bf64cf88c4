"""Vectorised simulation of two-arm group-sequential time-to-event trials.

One replicate (``simulate_patients`` then ``analyse_looks``), all in JAX:

1. **randomisation**: ``fixed`` puts exactly round(n r / (1 + r)) patients in the experimental arm (the
   first ones: every other draw is independent of the patient index, so this is a random allocation in
   law, without the cost of a permutation); ``simple`` draws each patient's arm independently. Stratification
   factors are independent Bernoulli draws; a patient's stratum is the binary number of its factors.
2. **entry** (calendar months from the first randomisation) from the accrual curve (`Accrual`).
3. **PFS** (months from randomisation) from the arm's piecewise-exponential hazard times
   ``exp(offset)``, where the offset sums the factors' prognostic log hazard ratios and an optional
   per-patient hook ``log_hazard_offset(key, arm, stratum)`` (e.g. an exposure-response effect,
   `exposure_log_hazard_offsets`); **dropout** (censoring other than the analysis cut-off) is an
   independent exponential time per arm.
4. **analyses at event counts**: the calendar time of look k is the time at which the D_k-th event occurs
   (events counted in calendar time, both arms); at that time each randomised patient is followed up to
   the cut-off (administrative censoring), dropout or event, and patients randomised later are left out.
   If fewer than D_k events ever occur, the look happens at the last event and ``reached`` is False.
5. the (stratified) log-rank Z (positive favours the experimental arm) at each look.

``simulate_trials`` maps this over replicates with ``jax.vmap`` in batches; replicate i always uses the key
``jax.random.fold_in(key, i)``, so results do not depend on the batch size. Decisions (efficacy if
Z >= b_k, futility if Z < a_k; the first crossing stops the trial) are taken on the per-look statistics
afterwards, both obeying the non-binding futility boundary and ignoring it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .._chunks import map_chunks
from .._hazards import inverse_cumulative_hazard
from ._analytic import schoenfeld_power
from ._boundaries import GroupSequentialBounds
from ._design import TrialDesign
from ._logrank import logrank

__all__ = [
    "DesignArrays",
    "LogHazardOffset",
    "TrialLooks",
    "TrialPatients",
    "TrialSimulation",
    "analyse_looks",
    "simulate_patients",
    "simulate_trials",
]

LogHazardOffset = Callable[[PRNGKeyArray, Int[Array, " n"], Int[Array, " n"]], Float[Array, " n"]]
"""``log_hazard_offset(key, arm, stratum) -> offsets``: per-patient log-hazard offsets (pure JAX)."""


class TrialPatients(eqx.Module):
    """The patients of one simulated trial (times in months).

    Attributes
    ----------
    entry : Float[Array, " n"]  randomisation time, months from the first randomisation
    arm : Int[Array, " n"]  1 experimental, 0 control
    stratum : Int[Array, " n"]  stratum label (binary number of the factors)
    pfs : Float[Array, " n"]  time from randomisation to progression or death, months
    dropout : Float[Array, " n"]  time from randomisation to dropout (censoring), months (inf if none)
    log_hazard : Float[Array, " n"]  the patient's log-hazard offset (factors + hook)
    """

    entry: Float[Array, " n"]
    arm: Int[Array, " n"]
    stratum: Int[Array, " n"]
    pfs: Float[Array, " n"]
    dropout: Float[Array, " n"]
    log_hazard: Float[Array, " n"]


class TrialLooks(eqx.Module):
    """Per-look results of one trial (leading replicate axis under ``vmap``).

    Attributes
    ----------
    z, score, variance : Float[Array, " looks"]  log-rank Z (positive favours experimental), U, V
    events : Float[Array, " looks"]  events counted at the look
    time : Float[Array, " looks"]  calendar time of the look, months from the first randomisation
    enrolled : Float[Array, " looks"]  patients randomised by the look
    reached : Bool[Array, " looks"]  whether the look's event count was reached
    """

    z: Float[Array, " looks"]
    score: Float[Array, " looks"]
    variance: Float[Array, " looks"]
    events: Float[Array, " looks"]
    time: Float[Array, " looks"]
    enrolled: Float[Array, " looks"]
    reached: Bool[Array, " looks"]


class DesignArrays(eqx.Module):
    """The numbers of a design as arrays, so that one compiled simulator serves designs of the same shape.

    Row 0 is the control arm, row 1 the experimental arm; both arms' hazards are written on the union of
    their break points. Static fields change the compiled graph.
    """

    breaks: Float[Array, "2 pieces"]
    cumulative: Float[Array, "2 pieces"]
    hazards: Float[Array, "2 pieces"]
    dropout: Float[Array, " 2"]
    accrual_times: Float[Array, " knots"]
    accrual_fraction: Float[Array, " knots"]
    strata_probability: Float[Array, " factors"]
    strata_log_hr: Float[Array, " factors"]
    allocation: Float[Array, ""]
    n_patients: int = eqx.field(static=True)
    n_experimental: int = eqx.field(static=True)
    simple_randomisation: bool = eqx.field(static=True)

    @classmethod
    def from_design(cls, design: TrialDesign) -> DesignArrays:
        union = np.union1d(design.control.pfs.breaks, design.experimental.pfs.breaks)
        knots = [arm.pfs.on_breaks(union).knots for arm in (design.control, design.experimental)]
        times, fraction = design.accrual.knots(design.n_patients)
        return cls(
            breaks=jnp.asarray(np.stack([k[0] for k in knots])),
            cumulative=jnp.asarray(np.stack([k[1] for k in knots])),
            hazards=jnp.asarray(np.stack([k[2] for k in knots])),
            dropout=jnp.asarray([design.control.dropout_per_month, design.experimental.dropout_per_month], dtype=float),
            accrual_times=jnp.asarray(times),
            accrual_fraction=jnp.asarray(fraction),
            strata_probability=jnp.asarray([f.probability for f in design.strata], dtype=float).reshape(-1),
            strata_log_hr=jnp.asarray([f.log_hazard_ratio for f in design.strata], dtype=float).reshape(-1),
            allocation=jnp.asarray(design.allocation, dtype=float),
            n_patients=design.n_patients,
            n_experimental=design.n_experimental,
            simple_randomisation=design.randomisation == "simple",
        )


def _patients(arrays: DesignArrays, key: PRNGKeyArray, log_hazard_offset: LogHazardOffset | None) -> TrialPatients:
    d = arrays
    n = d.n_patients
    k_arm, k_strata, k_entry, k_pfs, k_drop, k_hook = jax.random.split(key, 6)
    if d.simple_randomisation:
        arm = jax.random.bernoulli(k_arm, d.allocation, (n,)).astype(jnp.int32)
    else:
        # patients are exchangeable (every other draw is independent of the index), so giving the first
        # round(n p) patients the experimental arm is the same in law as a random permutation, and cheaper
        arm = (jnp.arange(n) < d.n_experimental).astype(jnp.int32)
    n_factors = d.strata_probability.shape[0]
    if n_factors:
        bits = jax.random.uniform(k_strata, (n, n_factors)) < d.strata_probability[None, :]
        stratum = bits.astype(jnp.int32) @ (2 ** jnp.arange(n_factors, dtype=jnp.int32))
        offset = bits.astype(float) @ d.strata_log_hr
    else:
        stratum = jnp.zeros((n,), jnp.int32)
        offset = jnp.zeros((n,))
    if log_hazard_offset is not None:
        offset = offset + jnp.asarray(log_hazard_offset(k_hook, arm, stratum), dtype=float)
    entry = jnp.interp(jax.random.uniform(k_entry, (n,)), d.accrual_fraction, d.accrual_times)
    e = jax.random.exponential(k_pfs, (n,)) * jnp.exp(-offset)
    pfs = jnp.where(
        arm == 1,
        inverse_cumulative_hazard(d.breaks[1], d.cumulative[1], d.hazards[1], e),
        inverse_cumulative_hazard(d.breaks[0], d.cumulative[0], d.hazards[0], e),
    )
    rate = d.dropout[arm]
    dropout = jnp.where(rate > 0, jax.random.exponential(k_drop, (n,)) / jnp.where(rate > 0, rate, 1.0), jnp.inf)
    return TrialPatients(entry=entry, arm=arm, stratum=stratum, pfs=pfs, dropout=dropout, log_hazard=offset)


def simulate_patients(
    design: TrialDesign, *, key: PRNGKeyArray, log_hazard_offset: LogHazardOffset | None = None
) -> TrialPatients:
    """Draw the patients of one trial (see the module docstring, steps 1-3).

    Parameters
    ----------
    design : TrialDesign
    key : PRNGKeyArray
        The replicate's key (split here for arms, strata, entry, PFS, dropout and the hook).
    log_hazard_offset : LogHazardOffset, optional
        Extra per-patient log-hazard offsets, ``fn(key, arm, stratum) -> (n,)``.

    Returns
    -------
    TrialPatients
    """
    return _patients_jit(DesignArrays.from_design(design), key, log_hazard_offset)


_patients_jit = jax.jit(_patients, static_argnums=2)


@functools.partial(jax.jit, static_argnames="stratified")
def analyse_looks(patients: TrialPatients, look_events: Int[Array, " looks"], *, stratified: bool) -> TrialLooks:
    """Analyse one trial when its event counts reach ``look_events`` (module docstring, steps 4-5).

    Parameters
    ----------
    patients : TrialPatients
    look_events : Int[Array, " looks"]
        Events (both arms, counted in calendar time) that trigger each look.
    stratified : bool
        Stratified (by ``patients.stratum``) or unstratified log-rank test.

    Returns
    -------
    TrialLooks
    """
    p = patients
    calendar = jnp.where(p.pfs <= p.dropout, p.entry + p.pfs, jnp.inf)
    ordered = jnp.sort(calendar)
    total = jnp.sum(jnp.isfinite(calendar))
    last = jnp.where(total > 0, ordered[jnp.maximum(total - 1, 0)], jnp.max(p.entry))

    def one(d):
        at = ordered[d - 1]
        reached = jnp.isfinite(at)
        cut = jnp.where(reached, at, last)
        enrolled = p.entry <= cut
        event = calendar <= cut
        time = jnp.where(event, p.pfs, jnp.minimum(p.dropout, cut - p.entry))
        lr = logrank(time, event, p.arm, p.stratum if stratified else None, mask=enrolled)
        return TrialLooks(
            z=lr.z, score=lr.score, variance=lr.variance, events=lr.events, time=cut,
            enrolled=jnp.sum(enrolled).astype(float), reached=reached,
        )

    return jax.vmap(one)(jnp.asarray(look_events))


@functools.lru_cache(maxsize=16)
def _replicate_function(stratified: bool, log_hazard_offset: LogHazardOffset | None):
    """The jitted batch simulator (cached, and jit keys on the arrays' shapes and static fields: designs that
    differ only in their numbers, e.g. a design and ``design.under_null()``, share one compilation)."""

    def one(arrays, look_events, key):
        patients = _patients(arrays, key, log_hazard_offset)
        return analyse_looks(patients, look_events, stratified=stratified)

    @jax.jit
    def batch(arrays, look_events, key, indices):
        keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(indices)
        return jax.vmap(one, in_axes=(None, None, 0))(arrays, look_events, keys)

    return batch


@dataclasses.dataclass(frozen=True, eq=False)
class TrialSimulation:
    """Simulated replicates of a design, with the decisions and their Monte Carlo summaries.

    Attributes
    ----------
    design : TrialDesign
    bounds : GroupSequentialBounds
        The boundaries applied (computed from the design's information fractions).
    looks : TrialLooks
        Per replicate and look (arrays of shape (replicates, looks)), as numpy arrays.
    seed : int or None
        Seed of the key, when the caller gave one (recorded in outputs).
    hypothesis : str
        "H0" when both arms have the same PFS (e.g. ``design.under_null()``), else "H1"; the analytic
        probabilities reported next to the simulated ones are computed under this hypothesis.
    log_hazard_offset : bool
        Whether a per-patient log-hazard hook was used (the analytic values then ignore it).
    """

    design: TrialDesign
    bounds: GroupSequentialBounds
    looks: TrialLooks
    seed: int | None = None
    hypothesis: str = "H1"
    log_hazard_offset: bool = False

    @property
    def replicates(self) -> int:
        return int(self.looks.z.shape[0])

    def decisions(self) -> dict[str, np.ndarray]:
        """Per replicate: ``stop_look`` (0-based), ``reject`` (futility obeyed), ``reject_nonbinding``, ``futility``."""
        z = np.asarray(self.looks.z)
        cross_e = z >= self.bounds.efficacy[None, :]
        cross_f = (z < self.bounds.futility[None, :]) & ~cross_e
        stop = cross_e | cross_f
        stop[:, -1] = True
        first = np.argmax(stop, axis=1)
        rows = np.arange(z.shape[0])
        return {
            "stop_look": first,
            "reject": cross_e[rows, first],
            "futility": cross_f[rows, first],
            "reject_nonbinding": cross_e.any(axis=1),
        }

    def summary(self) -> dict[str, Any]:
        """Power, stopping probabilities per look, expected events and duration, each with its MC SE."""
        r = self.replicates
        dec = self.decisions()
        rows = np.arange(r)
        first = dec["stop_look"]

        def prop(x) -> dict[str, float]:
            p = float(np.mean(x))
            return {"estimate": p, "mc_se": math.sqrt(p * (1 - p) / r)}

        def mean(x) -> dict[str, float]:
            x = np.asarray(x, float)
            return {"estimate": float(x.mean()), "mc_se": float(x.std(ddof=1) / math.sqrt(r)) if r > 1 else None}

        d = self.design
        b = self.bounds
        analytic = b.null if self.hypothesis == "H0" else b.alternative
        looks = []
        for k, events in enumerate(d.look_events):
            looks.append(
                {
                    "look": k + 1,
                    "events": int(events),
                    "information": float(b.information[k]),
                    "efficacy_z": float(b.efficacy[k]) if np.isfinite(b.efficacy[k]) else None,
                    "efficacy_p": float(b.efficacy_p[k]) if np.isfinite(b.efficacy[k]) else None,
                    "futility_z": float(b.futility[k]) if np.isfinite(b.futility[k]) else None,
                    "futility_p": float(b.futility_p[k]) if np.isfinite(b.futility[k]) else None,
                    "prob_stop_efficacy": prop((first == k) & dec["reject"]),
                    "prob_stop_futility": prop((first == k) & dec["futility"]),
                    "prob_stop": prop(first == k),
                    "analytic_prob_stop_efficacy": float(analytic["efficacy"][k]),
                    "analytic_prob_stop_futility": float(analytic["futility"][k]),
                    "mean_time_months": mean(np.asarray(self.looks.time)[:, k]),
                    "mean_enrolled": mean(np.asarray(self.looks.enrolled)[:, k]),
                    "prob_events_reached": prop(np.asarray(self.looks.reached)[:, k]),
                }
            )
        hr = d.hazard_ratio if self.hypothesis != "H0" else 1.0
        return {
            "design": d.describe(),
            "hypothesis": self.hypothesis,
            "spending": b.spending.describe(),
            "futility_rule": None if b.futility_rule is None else b.futility_rule.describe(),
            "log_hazard_offset_hook": self.log_hazard_offset,
            "replicates": r,
            "seed": self.seed,
            "power": prop(dec["reject"]),
            "power_nonbinding": prop(dec["reject_nonbinding"]),
            "looks": looks,
            "expected_events": mean(np.asarray(self.looks.events)[rows, first]),
            "expected_duration_months": mean(np.asarray(self.looks.time)[rows, first]),
            "expected_enrolled": mean(np.asarray(self.looks.enrolled)[rows, first]),
            "analytic": {
                "note": "recursive integration and Schoenfeld's approximation under proportional hazards"
                + ("; the log-hazard hook is not included" if self.log_hazard_offset else ""),
                "hazard_ratio": hr,
                "schoenfeld_power_fixed": schoenfeld_power(hr, d.events, allocation=d.allocation, alpha=d.alpha),
                "group_sequential_power": float(analytic["efficacy"].sum()),
                "group_sequential_power_nonbinding": float(analytic["efficacy_nonbinding"].sum()),
            },
        }


def simulate_trials(
    design: TrialDesign,
    *,
    key: PRNGKeyArray,
    replicates: int,
    batch_size: int = 2000,
    log_hazard_offset: LogHazardOffset | None = None,
    progress: bool = False,
    shard: bool = True,
    seed: int | None = None,
    hypothesis: str | None = None,
) -> TrialSimulation:
    """Simulate ``replicates`` trials of a design, vectorised with ``jax.vmap`` in batches.

    Main arguments
    --------------
    design : TrialDesign
        From `load_design` (use ``design.under_null()`` for type I error).
    key : PRNGKeyArray
        Replicate i uses ``jax.random.fold_in(key, i)``: the result does not depend on ``batch_size``.
    replicates : int
        Number of simulated trials.

    Other arguments
    ---------------
    batch_size : int, default 2000
        Replicates per compiled call (memory ~ batch_size x patients x looks); the last batch is padded.
    log_hazard_offset : LogHazardOffset, optional
        Per-patient log-hazard offsets (the exposure-response hook, see `exposure_log_hazard_offsets`).
    progress : bool, default False
        Show a rich progress bar over batches (on stderr).
    shard : bool, default True
        Split each batch over the local devices (``jax.sharding``; on CPU, host devices made with
        ``XLA_FLAGS=--xla_force_host_platform_device_count=N``). The numbers do not change.
    seed : int, optional
        Recorded in the result.
    hypothesis : str, optional
        Label of the simulated hypothesis; default "H0" if both arms have the same PFS, else "H1".

    Returns
    -------
    TrialSimulation

    Raises
    ------
    ValueError
        If ``replicates`` or ``batch_size`` is not a positive integer.
    """
    for name, value in (("replicates", replicates), ("batch_size", batch_size)):
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            raise ValueError(f"{name} must be a positive integer, got {value!r} ({type(value).__name__})")
    arrays = DesignArrays.from_design(design)
    look_events = jnp.asarray(design.look_events)
    batch = _replicate_function(design.stratified, log_hazard_offset)
    devices = jax.local_devices() if shard else jax.local_devices()[:1]
    size = min(batch_size, replicates)
    size = -(-size // len(devices)) * len(devices)  # a multiple of the device count (the last batch is padded)
    sharding = None
    if len(devices) > 1:
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        sharding = NamedSharding(Mesh(np.asarray(devices), ("replicates",)), PartitionSpec("replicates"))
    def run(start):
        idx = np.arange(start, start + size, dtype=np.int32)
        idx = jax.device_put(idx, sharding) if sharding is not None else jnp.asarray(idx)
        out = batch(arrays, look_events, key, idx)
        keep = min(size, replicates - start)
        return jax.tree_util.tree_map(lambda x: np.asarray(x)[:keep], out)

    looks = map_chunks(run, replicates, size, label="simulating trials", progress=progress)
    if hypothesis is None:
        hypothesis = "H0" if design.experimental.pfs == design.control.pfs else "H1"
    return TrialSimulation(
        design=design, bounds=design.bounds(), looks=looks, seed=seed, hypothesis=hypothesis,
        log_hazard_offset=log_hazard_offset is not None,
    )
