"""Dose events: a patient's explicit, padded dosing history, and the expansion of ADDL/II records into it.

Conventions (NONMEM's ADVAN models):

- ``cmt`` is the dosing compartment: for an oral (first-order absorption) model CMT 1 is the depot and CMT 2
  the central compartment; for an IV model CMT 1 is the central compartment.
- ``duration`` 0 is a bolus (an instantaneous input: into the central compartment an IV bolus, into the
  depot an oral dose); ``duration`` > 0 is a zero-order input at rate ``amount / duration`` from ``time`` to
  ``time + duration`` (NONMEM's RATE column is ``amount / duration``).
- ``mask`` marks real events; padded events (mask False) contribute exactly nothing.

The data loader expands each record's ADDL/II into explicit events (``expand_additional_doses``) and pads the
patients to one length (``pad_doses``); the models only ever see explicit events.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int

__all__ = ["DoseEvents", "expand_additional_doses", "pad_doses"]


def _concrete(x: Array) -> np.ndarray | None:
    """``x`` as numpy, or None if it is traced (inside jit/vmap/grad)."""
    return None if isinstance(x, jax.core.Tracer) else np.asarray(x)


class DoseEvents(eqx.Module):
    """Explicit dose events, all fields of one shape ``(..., doses)`` (a leading axis per patient, if any).

    Attributes
    ----------
    time : Float[Array, "... doses"]
        Dose time, in the time unit of the data (the model adds the lag time to CMT 1 doses).
    amount : Float[Array, "... doses"]
        Amount given, in the amount unit of the data (concentration = amount / volume).
    duration : Float[Array, "... doses"]
        0 for a bolus (or an oral dose into the depot), > 0 for a zero-order input over that time.
    cmt : Int[Array, "... doses"]
        Dosing compartment, NONMEM ADVAN numbering (oral models: 1 depot, 2 central; IV models: 1 central).
    mask : Bool[Array, "... doses"]
        True for real events, False for padding.
    has_infusions : bool, static
        Whether a real event has ``duration`` > 0 (True where unknown). Read at construction: a history of
        boluses compiles a smaller, faster program. Build a new DoseEvents rather than editing the arrays
        of one (``eqx.tree_at``), or these flags go stale.
    compartments : tuple of int or None, static
        The CMT values of the real events (None where unknown); checked against the model when traced.

    Examples
    --------
    >>> d = DoseEvents(time=[0.0, 12.0], amount=[100.0, 100.0])   # two boluses into CMT 1
    >>> d.shape
    (2,)
    """

    time: Float[Array, "... doses"]
    amount: Float[Array, "... doses"]
    duration: Float[Array, "... doses"]
    cmt: Int[Array, "... doses"]
    mask: Bool[Array, "... doses"]
    # What the real events hold, read from concrete values at construction (None: unknown, e.g. built from
    # traced arrays). Static: a history of boluses compiles a smaller program than one with infusions.
    has_infusions: bool = eqx.field(static=True)
    compartments: tuple[int, ...] | None = eqx.field(static=True)

    def __init__(
        self,
        *,
        time: Float[ArrayLike, "... doses"],
        amount: Float[ArrayLike, "... doses"],
        duration: Float[ArrayLike, "... doses"] | None = None,
        cmt: Int[ArrayLike, "... doses"] | None = None,
        mask: Bool[ArrayLike, "... doses"] | None = None,
        has_infusions: bool | None = None,
        compartments: Sequence[int] | None = None,
    ):
        """Fields default to boluses (``duration`` 0) into CMT 1, all real (``mask`` True).

        ``has_infusions`` and ``compartments`` are read from concrete values; pass them to promise them for
        traced values (inside ``jit``/``vmap``, e.g. simulated regimens), so that the smaller program is
        compiled there too (a promise broken by traced values is not detected).

        Raises
        ------
        ValueError
            If the fields are scalars (no doses axis); if a real event has a negative or non-finite duration,
            a non-finite time or amount (naming the event's index); or if concrete values contradict
            ``has_infusions`` or ``compartments``.
        """
        self.time = jnp.asarray(time, dtype=float)
        self.amount = jnp.asarray(amount, dtype=float)
        shape = jnp.broadcast_shapes(self.time.shape, self.amount.shape)
        if len(shape) == 0:
            raise ValueError(
                "DoseEvents: fields need a trailing doses axis, got scalars; wrap a single dose as [value]"
            )
        self.time = jnp.broadcast_to(self.time, shape)
        self.amount = jnp.broadcast_to(self.amount, shape)
        self.duration = jnp.broadcast_to(jnp.asarray(0.0 if duration is None else duration, dtype=float), shape)
        self.cmt = jnp.broadcast_to(jnp.asarray(1 if cmt is None else cmt, dtype=int), shape)
        self.mask = jnp.broadcast_to(jnp.asarray(True if mask is None else mask, dtype=bool), shape)
        promised = None if compartments is None else tuple(sorted({int(c) for c in compartments}))
        values = [_concrete(x) for x in (self.time, self.amount, self.duration, self.cmt, self.mask)]
        if any(v is None for v in values):
            self.has_infusions = True if has_infusions is None else bool(has_infusions)
            self.compartments = promised
            return
        t, amt, dur, cmt_, real = values
        bad = real & ~(np.isfinite(t) & np.isfinite(amt) & np.isfinite(dur) & (dur >= 0))
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"DoseEvents: {int(bad.sum())} real event(s) with a non-finite time/amount/duration or a negative "
                f"duration, first at index {first}: time={t[first]}, amount={amt[first]}, duration={dur[first]}; "
                "fix the dose records or mask them out"
            )
        self.has_infusions = bool(np.any(dur[real] > 0))
        self.compartments = tuple(int(c) for c in np.unique(cmt_[real]))
        if has_infusions is not None and self.has_infusions and not has_infusions:
            raise ValueError("DoseEvents: has_infusions=False, but a real event has duration > 0")
        if promised is not None and not set(self.compartments) <= set(promised):
            raise ValueError(f"DoseEvents: compartments={promised}, but the real events use {self.compartments}")
        if promised is not None:
            self.compartments = promised

    @property
    def shape(self) -> tuple[int, ...]:
        """``(..., doses)``."""
        return self.time.shape


def expand_additional_doses(
    time: Float[ArrayLike, " records"],
    amount: Float[ArrayLike, " records"],
    addl: Int[ArrayLike, " records"] | None = None,
    ii: Float[ArrayLike, " records"] | None = None,
    *,
    duration: Float[ArrayLike, " records"] | float = 0.0,
    cmt: Int[ArrayLike, " records"] | int = 1,
) -> DoseEvents:
    """One patient's dose records with ADDL/II -> explicit events (pure numpy, for the data loader).

    A record with ``addl = n`` and ``ii = tau`` stands for n + 1 doses at ``time, time + tau, ...,
    time + n tau``, each with the record's amount, duration and compartment (NONMEM's ADDL/II).

    Parameters
    ----------
    time : array (records,), dose times, time unit of the data.
    amount : array (records,), amounts.
    addl : array of int (records,), optional, additional doses per record (>= 0; default 0).
    ii : array (records,), optional, interdose interval, time unit (> 0 where ``addl`` > 0).
    duration : array (records,) or float, infusion duration (0 = bolus); copied to the additional doses.
    cmt : array of int (records,) or int, dosing compartment; copied to the additional doses.

    Returns
    -------
    DoseEvents of shape (events,), sorted by time (stable: records at one time keep their order), all
    ``mask`` True.

    Raises
    ------
    ValueError
        If a record has a negative ``addl``, or ``addl`` > 0 with a missing or non-positive ``ii``, naming the
        (0-based) record and its values.

    Examples
    --------
    >>> d = expand_additional_doses([0.0], [100.0], addl=[2], ii=[24.0])
    >>> d.time.tolist()
    [0.0, 24.0, 48.0]
    """
    time = np.atleast_1d(np.asarray(time, dtype=float))
    n = time.shape[0]
    amount = np.broadcast_to(np.asarray(amount, dtype=float), (n,))
    addl = np.zeros(n) if addl is None else np.broadcast_to(np.asarray(addl, dtype=float), (n,))
    ii = np.zeros(n) if ii is None else np.broadcast_to(np.asarray(ii, dtype=float), (n,))
    duration = np.broadcast_to(np.asarray(duration, dtype=float), (n,))
    cmt = np.broadcast_to(np.asarray(cmt, dtype=int), (n,))
    bad_addl = ~np.isfinite(addl) | (addl < 0) | (addl != np.round(addl))
    bad_ii = ~bad_addl & (addl > 0) & ~(ii > 0)
    problems = [f"record {r}: addl = {addl[r]:g} (expected an integer >= 0)" for r in np.flatnonzero(bad_addl)]
    problems += [f"record {r}: addl = {int(addl[r])} needs ii > 0, got ii = {ii[r]:g}" for r in np.flatnonzero(bad_ii)]
    if problems:
        raise ValueError("expand_additional_doses: " + "; ".join(problems) + ". Fix the ADDL/II columns.")
    addl = addl.astype(int)
    repeat = addl + 1
    record = np.repeat(np.arange(n), repeat)
    k = np.arange(repeat.sum()) - np.repeat(np.cumsum(repeat) - repeat, repeat)  # 0..addl within each record
    t = time[record] + k * ii[record]
    order = np.argsort(t, kind="stable")
    record, t = record[order], t[order]
    return DoseEvents(time=t, amount=amount[record], duration=duration[record], cmt=cmt[record])


def pad_doses(patients: Sequence[DoseEvents], size: int | None = None) -> DoseEvents:
    """Stack one-dimensional DoseEvents (one per patient) into ``(patients, doses)``, padding with mask False.

    Parameters
    ----------
    patients : sequence of DoseEvents of shape (events_i,).
    size : int, optional
        Length of the doses axis (default: the longest history).

    Returns
    -------
    DoseEvents of shape (patients, size); padded events are boluses of amount 0 at time 0 into CMT 1 with
    ``mask`` False (they add exactly 0).

    Raises
    ------
    ValueError
        If ``size`` is shorter than a patient's history (naming the patient's position and its length), or
        an element is not one-dimensional.
    """
    lengths = [p.time.shape[0] if p.time.ndim == 1 else -1 for p in patients]
    bad = [i for i, n in enumerate(lengths) if n < 0]
    if bad:
        raise ValueError(f"pad_doses: patients at positions {bad} are not one-dimensional DoseEvents")
    size = max(lengths, default=0) if size is None else size
    long = [(i, n) for i, n in enumerate(lengths) if n > size]
    if long:
        raise ValueError(
            f"pad_doses: size = {size} is shorter than the history of patient(s) (position, events) {long}; "
            "increase size or leave it out"
        )
    out = {}
    for name, fill, dtype in [("time", 0.0, float), ("amount", 0.0, float), ("duration", 0.0, float),
                              ("cmt", 1, int), ("mask", False, bool)]:
        arr = np.full((len(patients), size), fill, dtype=dtype)
        for i, p in enumerate(patients):
            arr[i, : lengths[i]] = np.asarray(getattr(p, name))
        out[name] = arr
    return DoseEvents(**out)
