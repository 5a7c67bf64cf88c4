"""Superposition over a dosing history: per-dose terms once per patient, then a masked sum per time.

A linear model's concentration is the sum over doses of each dose's response,

    C(t) = sum_d  s_d * R(t - t_d),     s_d = amount_d / V (times ka for a depot dose),

where t_d is the dose time (plus the lag time for doses into CMT 1) and R the unit response of the model,
route and dose shape (``dose_kernel``). A dose contributes exactly 0 for t <= t_d (also when masked); the
response is evaluated at a clamped, finite time there ("double where"), so gradients are finite and exactly 0
with respect to a dose that has not started, including at t = t_d.

``dose_terms`` computes the per-dose quantities from a patient's parameters and doses; they carry the doses
axis last, so gathering the terms of patients to records (``terms[k][patient_index]``) gathers the doses
with them and ``superpose`` evaluates any number of times. Which keys are present is static structure: a
history without infusions has no ``dose_duration`` and compiles the bolus-only program.
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
    """Per-dose terms of shape (..., doses): effective time, scaled amount, mask (and duration, depot flag).

    Parameters
    ----------
    doses : DoseEvents (..., doses)
    volume : array (...), central volume, volume unit of the data.
    ka : array (...), optional, absorption rate, 1/time; given for an oral model (CMT 1 = depot,
        CMT 2 = central), None for an IV model (CMT 1 = central).
    tlag : array (...), optional, lag time of CMT 1 doses, time unit.

    Returns
    -------
    dict with ``dose_time`` (dose time + lag for CMT 1), ``dose_amount`` (amount / volume, times ka for
    depot doses) and ``dose_mask``; ``dose_duration`` only if the doses may hold an infusion
    (``doses.has_infusions``), and for an oral model ``dose_depot`` (bool) unless every dose is known to go
    into the depot. The keys present are the static structure that selects the program (bolus-only, one
    route) in ``superpose`` and the models' responses.

    Raises
    ------
    ValueError
        If the doses' (concrete) compartments include one the route does not have.
    equinox's runtime error (also under jit), for the same problem where the compartments are traced.
    """
    oral = ka is not None
    allowed = (1, 2) if oral else (1,)
    known = doses.compartments
    if known is not None and not set(known) <= set(allowed):
        raise ValueError(
            f"dose compartment(s) {sorted(set(known) - set(allowed))} do not exist in an "
            f"{'oral' if oral else 'IV'} model (CMT {' or '.join(map(str, allowed))}: "
            f"{'1 depot, 2 central' if oral else '1 central'}); fix the CMT column or choose the route"
        )
    inv_v = 1.0 / jnp.asarray(volume)[..., None]
    first = doses.cmt == 1
    amount = doses.amount * (jnp.where(first, jnp.asarray(ka)[..., None] * inv_v, inv_v) if oral else inv_v)
    if known is None:
        invalid = doses.mask & ~(first | (doses.cmt == 2) if oral else first)
        amount = eqx.error_if(
            amount, jnp.any(invalid),
            "a dose has a compartment the model does not have (oral models: cmt 1 depot, 2 central; IV models: "
            "cmt 1); fix the CMT column or choose the route",
        )
    time = doses.time if tlag is None else doses.time + jnp.where(first, jnp.asarray(tlag)[..., None], 0.0)
    terms = {"dose_time": time, "dose_amount": amount, "dose_mask": doses.mask}
    if doses.has_infusions:
        terms["dose_duration"] = doses.duration
    if oral and known != (1,) and known != ():
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
        far (1 for a bolus), each (..., doses), ``b`` and ``ratio`` None where every dose is a bolus;
        ``depot`` the depot flags (None where the route has one dosing compartment or every dose goes into
        the depot); see ``dose_kernel``.

    Returns
    -------
    array (...): the concentration, amount / volume, exactly 0 before the first (active) dose.
    """
    tau = jnp.asarray(t)[..., None] - terms["dose_time"]
    active = terms["dose_mask"] & (tau > 0)
    tau = jnp.where(active, tau, 0.0)
    if "dose_duration" in terms:
        duration = terms["dose_duration"]
        infusion = duration > 0
        b = jnp.minimum(tau, duration)
        a, ratio = tau - b, jnp.where(infusion, b / jnp.where(infusion, duration, 1.0), 1.0)
    else:
        a, b, ratio = tau, None, None
    each = response(a, b, ratio, terms.get("dose_depot"))
    return jnp.sum(jnp.where(active, terms["dose_amount"] * each, 0.0), axis=-1)
