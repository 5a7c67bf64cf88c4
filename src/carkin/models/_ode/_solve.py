"""The solve entry points: one patient's (``solve_segment``, by adjoint) and a population's
(``population_solver``, by batching).

How patients are batched (``ODEOptions.batching``):

- ``"population"`` (default for explicit solvers): one solve of all patients with a shared sequence of
  steps, each step controlled so that every patient meets the tolerance, and each patient saved at its own
  times from the solver's dense output (``_population``; its derivatives: ``_sensitivities``).
- ``"patient"``: ``jax.vmap`` over one ``diffrax.diffeqsolve`` per patient (own steps, own result code;
  needed for implicit solvers and the reverse-mode adjoints).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ._options import ODEOptions
from ._patient import patient_solve
from ._sensitivities import population_segment, sensitivity_segment

__all__ = ["solve_segment", "population_solver"]


def solve_segment(
    options: ODEOptions,
    vector_field: Callable,
    y0,
    args,
    t0: Float[ArrayLike, ""],
    ts: Float[Array, " obs"],
):
    """One patient's solve from ``t0`` with ``y0``, saved at ``ts`` (non-decreasing, >= t0), per-patient steps.

    Parameters
    ----------
    options : ODEOptions
    vector_field : callable ``(t, y, args) -> dy/dt`` for one patient
    y0 : pytree of arrays, the state at ``t0``
    args : pytree of float arrays, structural parameters passed to the vector field
    t0 : start time, days
    ts : Float[Array, " obs"], saving times, days; the solve ends at ``ts[-1]``

    Returns
    -------
    (ys, code)
        ``ys`` the states at ``ts`` (leading axis ``obs``) and the diffrax result code (0 = success).
        Differentiable in ``y0``, ``args``, ``t0`` and ``ts``: in forward mode by the sensitivity equations
        (``adjoint="forward"``) or through the solver (``"forward_autodiff"``), in reverse mode through the
        solver (``"recursive_checkpoint"``, ``"direct"``).
    """
    t0 = jnp.asarray(t0, dtype=ts.dtype)
    if options.adjoint == "forward":
        return sensitivity_segment(options, vector_field)(y0, args, t0, ts)
    return patient_solve(options, options.make("adjoint"), vector_field, y0, args, t0, ts[-1], ts)


def population_solver(options: ODEOptions) -> Callable:
    """``solve(vector_field, y0, args, ts) -> (ys, codes)`` for a population, by ``options.batching``.

    ``vector_field(t, y, args)`` is one patient's; ``y0`` and ``args`` carry a leading patient axis and
    ``ts`` is (patients, obs), non-decreasing per row, every segment starting at t = 0. Returns the states
    at ``ts`` (leaves (patients, obs, ...)) and the result code per patient (under ``"population"``
    batching one code for the joint solve, repeated for every patient).
    """
    if options.resolved_batching == "population":
        if options.adjoint != "forward":  # guarded in ODEOptions; kept for a clear message
            raise ValueError('batching = "population" needs adjoint = "forward"')

        def solve(vector_field, y0, args, ts):
            ys, code = population_segment(options, vector_field)(y0, args, ts)
            return ys, jnp.broadcast_to(code, ts.shape[:1])

        return solve

    def solve(vector_field, y0, args, ts):
        return jax.vmap(lambda y, a, t: solve_segment(options, vector_field, y, a, 0.0, t))(y0, args, ts)

    return solve
