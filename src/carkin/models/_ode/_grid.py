"""``log_concentration_grid``: any kinetic model (closed form or ODE) evaluated on a broadcast grid of times."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import ArrayLike, Float

__all__ = ["log_concentration_grid"]


def log_concentration_grid(model, individual: dict[str, Float[ArrayLike, "..."]], t: Float[ArrayLike, "..."]):
    """Evaluate any kinetic model with the closed form's broadcasting convention.

    The last axis of ``t`` is the time axis; the parameters carry a size-1 last axis and batch axes that
    broadcast against ``t``'s (e.g. parameters (patients, 1) with times (1, obs), or (draws, patients, 1)
    with (1, 1, grid)). A closed-form model is called directly; an ODE model is solved once per
    broadcast batch element, with the times sorted for the solve and the result put back in the given order.

    Returns
    -------
    Float[Array, "... obs"]: log C (log copies/ug gDNA), NaN for batch elements whose ODE solve failed.
    """
    if getattr(model, "elementwise", True):
        return model.log_concentration(individual, t)
    t = jnp.asarray(t)
    values = {k: jnp.asarray(v) for k, v in individual.items()}
    for k, v in values.items():
        if v.ndim and v.shape[-1] != 1:
            raise ValueError(
                f"log_concentration_grid: parameter {k!r} has shape {v.shape}; give it a size-1 last (time) axis"
            )
    batch = jnp.broadcast_shapes(t.shape[:-1], *[v.shape[:-1] for v in values.values() if v.ndim])
    n_obs = t.shape[-1]
    times = jnp.broadcast_to(t, batch + (n_obs,)).reshape(-1, n_obs)
    flat = {k: jnp.broadcast_to(v[..., 0] if v.ndim else v, batch).reshape(-1) for k, v in values.items()}
    order = jnp.argsort(times, axis=-1)
    sorted_times = jnp.take_along_axis(times, order, axis=-1)
    out_sorted = model.log_concentration(flat, sorted_times)
    out = jnp.zeros_like(out_sorted)
    out = jax.vmap(lambda o, idx, v: o.at[idx].set(v))(out, order, out_sorted)
    return out.reshape(batch + (n_obs,))
