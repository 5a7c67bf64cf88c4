"""Co-medication switches: piecewise-constant rate multipliers from each patient's start times.

A co-medication (tocilizumab, corticosteroids) multiplies a kinetic process's rate by exp(gamma) from its start
time s in each patient on; ``carkin.population.model_context`` hands a model, for each process it switches,

    switches[process] = (starts (patients, C) days after the first dose (+inf: never), log_factors (C,) or
                         (patients, C))

with C co-medications (a co-medication that does not act on the process has log factor 0). With several
co-medications the multipliers multiply: after the switches at s_(1) <= ... <= s_(j) have happened, the rate is
rate * exp(G_j) with G_j = g_(1) + ... + g_(j) (sorted by start). Everything here is exact for piecewise-constant
rates: the models integrate them analytically (the closed form, the ODE twin's expansion) or solve the ODE in
segments whose boundaries are the switch times (``_ode/_segments.py``).

Start times are data (no derivative is taken with respect to them); the log factors carry derivatives. A start
at +inf stays finite in every difference taken here (it is clipped to the interval first), so gradients are
finite for patients who never receive the co-medication.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

__all__ = ["sort_events", "sorted_switches", "rate_integral"]


def sort_events(times: Float[ArrayLike, "... events"], *payloads: Float[ArrayLike, "... events"]):
    """Events sorted by time along the last axis (stable: ties keep their order), their payloads with them.

    Parameters
    ----------
    times : array (..., events), days (+inf: never).
    payloads : arrays broadcastable to ``times``' shape, e.g. log factors or dose weights.

    Returns
    -------
    tuple of (..., events) arrays: the sorted times, then each payload in the same order.
    """
    times = jnp.asarray(times)
    order = jnp.argsort(times, axis=-1, stable=True)
    out = [jnp.take_along_axis(times, order, axis=-1)]
    out += [jnp.take_along_axis(jnp.broadcast_to(jnp.asarray(p, dtype=times.dtype), times.shape), order, axis=-1)
            for p in payloads]
    return tuple(out)


def sorted_switches(
    starts: Float[ArrayLike, "patients C"], log_factors: Float[ArrayLike, "... C"]
) -> tuple[Float[Array, "patients C"], Float[Array, "patients C"]]:
    """Start times sorted per patient and the cumulative log multiplier after each.

    Parameters
    ----------
    starts : (patients, C), days after the first dose, +inf where a patient never receives the co-medication.
    log_factors : (C,) or (patients, C), the log multiplier of each co-medication (spec order).

    Returns
    -------
    (sorted starts, G) of shape (patients, C): G[:, j] is the log multiplier in force after the (j+1)-th switch,
    i.e. the cumulative sum of the sorted log factors.
    """
    times, factors = sort_events(starts, log_factors)
    return times, jnp.cumsum(factors, axis=-1)


def rate_integral(
    u: Float[ArrayLike, "..."], starts: Float[ArrayLike, "... C"], cumulative: Float[ArrayLike, "... C"]
) -> Float[Array, "..."]:
    """The integral from 0 to ``u`` of the multiplier exp(G(v)), exact for the piecewise-constant G.

    G is 0 before the first start, ``cumulative[..., j]`` from ``starts[..., j]`` on (starts sorted ascending,
    on the same clock as ``u``; negative starts act from 0, +inf never):

        integral = sum_j exp(G_j) (a_{j+1} - a_j),    a_0 = 0, a_j = clip(s_j, 0, u), a_{C+1} = u

    (each term is a non-negative length, so nothing cancels). Without switches it is ``u``.

    Parameters
    ----------
    u : array, days, >= 0.
    starts, cumulative : arrays (..., C) from ``sorted_switches`` (shifted to ``u``'s clock).

    Returns
    -------
    array of the broadcast shape of ``u`` and the leading axes of ``starts``: days.
    """
    u = jnp.asarray(u)
    starts, cumulative = jnp.asarray(starts), jnp.asarray(cumulative)
    edges = jnp.clip(starts, 0.0, u[..., None])
    total = edges[..., 0]  # from 0 to the first start: multiplier 1
    for j in range(starts.shape[-1]):
        end = edges[..., j + 1] if j + 1 < starts.shape[-1] else u
        total = total + jnp.exp(cumulative[..., j]) * (end - edges[..., j])
    return total
