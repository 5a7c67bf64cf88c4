"""Superposition over a dosing history: per-dose terms once per patient, then a masked sum per time.

A linear model's concentration is the sum over doses of each dose's response,

    C(t) = sum_d  s_d * R(t - t_d),     s_d = amount_d / V (times ka for a depot dose),

where t_d is the dose time (plus the lag time for doses into CMT 1) and R the unit response of the model,
route and dose shape (``dose_kernel``). A dose contributes exactly 0 for t <= t_d (also when masked); the
response is evaluated at a clamped, finite time there ("double where"), so gradients are finite and exactly 0
with respect to a dose that has not started, including at t = t_d.

``dose_terms`` computes the per-dose quantities from a patient's parameters and doses; they carry the doses
axis last, so gathering the terms of patients to records (``terms[k][patient_index]``) gathers the doses
with them and ``superpose`` evaluates any number of times.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ._doses import DoseEvents

__all__ = ["dose_terms", "superpose"]


def dose_terms(
    doses: DoseEvents,
    volume: Float[ArrayLike, "..."],
    *,
    ka: Float[ArrayLike, "..."] | None = None,
    tlag: Float[ArrayLike, "..."] | None = None,
) -> dict[str, Array]:
    """Per-dose terms of shape (..., doses): effective time, scaled amount, duration, mask (and depot flag).

    Parameters
    ----------
    doses : DoseEvents (..., doses)
    volume : array (...), central volume, volume unit of the data.
    ka : array (...), optional, absorption rate, 1/time; given for an oral model (CMT 1 = depot,
        CMT 2 = central), None for an IV model (CMT 1 = central).
    tlag : array (...), optional, lag time of CMT 1 doses, time unit.

    Returns
    -------
    dict with ``dose_time`` (dose time + lag), ``dose_amount`` (amount / volume, times ka for depot doses),
    ``dose_duration``, ``dose_mask`` and, for an oral model, ``dose_depot`` (bool).

    Raises
    ------
    equinox's runtime error (also under jit), if a real dose has a compartment the route does not have or a
    negative duration.
    """
    oral = ka is not None
    inv_v = 1.0 / jnp.asarray(volume)[..., None]
    first = doses.cmt == 1
    valid = (first | (doses.cmt == 2)) if oral else first
    invalid = doses.mask & (~valid | (doses.duration < 0))
    if oral:
        scale = jnp.where(first, jnp.asarray(ka)[..., None] * inv_v, inv_v)
    else:
        scale = jnp.broadcast_to(inv_v, jnp.broadcast_shapes(inv_v.shape, first.shape))
    time = doses.time if tlag is None else doses.time + jnp.where(first, jnp.asarray(tlag)[..., None], 0.0)
    amount = eqx.error_if(
        doses.amount * scale,
        jnp.any(invalid),
        "a dose has a compartment the model does not have (oral models: cmt 1 depot, 2 central; IV models: "
        "cmt 1) or a negative duration; check the CMT and duration/RATE columns",
    )
    terms = {"dose_time": time, "dose_amount": amount, "dose_duration": doses.duration, "dose_mask": doses.mask}
    if oral:
        terms["dose_depot"] = first
    return terms


def superpose(
    terms: dict[str, Array],
    t: Float[ArrayLike, "..."],
    response: Callable[[Array, Array, Array, Array | None], Array],
) -> Float[Array, "..."]:
    """Sum over the doses axis of ``dose_amount * response`` for the doses given before ``t``.

    Parameters
    ----------
    terms : dict from ``dose_terms`` (fields (..., doses)), broadcastable against ``t[..., None]``.
    t : array (...), time of the data's unit.
    response : callable ``(a, b, ratio, depot) -> (..., doses)`` with ``a`` the time since the end of the
        input (0 while it runs), ``b`` the time it has run (0 for a bolus), ``ratio`` the fraction given so
        far (1 for a bolus), ``depot`` the depot flags (None for IV models); see ``dose_kernel``.

    Returns
    -------
    array (...): the concentration, amount / volume, exactly 0 before the first (active) dose.
    """
    tau = jnp.asarray(t)[..., None] - terms["dose_time"]
    active = terms["dose_mask"] & (tau > 0)
    tau = jnp.where(active, tau, 0.0)
    duration = terms["dose_duration"]
    infusion = duration > 0
    b = jnp.minimum(tau, duration)
    a = tau - b
    ratio = jnp.where(infusion, b / jnp.where(infusion, duration, 1.0), 1.0)
    each = response(a, b, ratio, terms.get("dose_depot"))
    return jnp.sum(jnp.where(active, terms["dose_amount"] * each, 0.0), axis=-1)
