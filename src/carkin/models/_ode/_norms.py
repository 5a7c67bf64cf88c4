"""Step-control norms that look at the state only, never at the forward sensitivities solved with it.

When the sensitivity equations are integrated together with the state, the step size is controlled on the
state alone: the step sequence then does not depend on the tangents, so the values equal those of the plain
solve to the last bit, and under ``vmap`` over tangent directions the state is solved once for all of them.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

__all__ = ["rms_of_first", "population_norm"]


def rms_of_first(z) -> Float[Array, ""]:
    """RMS norm of the state part of (state, sensitivities): step control on the solution only."""
    leaves = jax.tree_util.tree_leaves(z[0])
    total = sum(jnp.sum(jnp.square(x)) for x in leaves) / sum(x.size for x in leaves)
    return _safe_sqrt(total)


def population_norm(n_state: int) -> Callable:
    """Step-control norm over a population of flat states (patients, m): each patient's RMS over its first
    ``n_state`` entries (the solution; the rest are sensitivities), then the max over patients, so that
    every patient meets the tolerance on every step, as in its own solve."""

    def norm(z):
        part = z[:, :n_state]
        return _safe_sqrt(jnp.max(jnp.mean(jnp.square(part), axis=1)))

    return norm


def _safe_sqrt(x):
    positive = x > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)
