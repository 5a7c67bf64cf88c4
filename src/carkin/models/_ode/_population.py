"""One solve of a whole population with a shared sequence of steps, each patient saved at its own times.

Used by ``batching="population"`` (the default for explicit adaptive solvers with the forward adjoint). It
uses diffrax's pieces (Butcher tableau, PID controller, initial step, dense interpolation, result codes) in
a loop written out here, because on CPU ``vmap`` over per-patient ``diffeqsolve`` runs a batched loop that
masks every operation of every step, and diffrax's per-step stage loop dominates for small systems
(measured in benchmarks/ode_vs_closed_form.py: about 3x faster gradients). Each step is controlled so that
every patient meets the tolerance (per-patient RMS, max over patients). Under ``vmap`` (e.g. over posterior
draws) the batch joins the population (``batch_joins_population``). The derivatives of this solve are the
forward sensitivity equations (``_sensitivities.population_segment``).
"""

from __future__ import annotations

from typing import Callable

import diffrax
import jax
import jax.flatten_util
import jax.numpy as jnp

from ._norms import population_norm
from ._options import ODEOptions
from ._solution import result_code

__all__ = ["population_loop", "batch_joins_population", "population_plain"]

_tree_map = jax.tree_util.tree_map


def _prevbefore(t):
    """The floating-point number just below ``t`` (-tiny at 0, where ``nextafter`` would give a denormal that
    JAX's denormals-are-zero flushes to 0). Public-API twin of ``equinox.internal.prevbefore``, which diffrax
    uses for the same purpose (its custom JVP is not needed here: ``t`` is always under ``stop_gradient``)."""
    return jnp.where(t == 0, -jnp.finfo(t.dtype).tiny, jnp.nextafter(t, -jnp.inf))


def _erk_step(tableau, field: Callable, t0, t1, y0, f0, args):
    """One step of an explicit FSAL Runge-Kutta method from its diffrax Butcher tableau, unrolled.

    diffrax's own step runs the stages in a loop (it serves implicit and stochastic methods too); for a
    small explicit system on CPU that loop's overhead dominates, so the stages are written out here.
    Returns the solution, the error estimate, the dense-output information (diffrax's ``dense_info``:
    y0, y1 and the stages ``k`` stacked on a leading axis) and the last stage (= f(t1, y1), FSAL).
    """
    h = t1 - t0
    ks = [f0]
    yi = y0
    for c, row in zip(tableau.c, tableau.a_lower, strict=True):
        terms = [(float(a), k) for a, k in zip(row, ks, strict=True) if a != 0]
        yi = _tree_map(
            lambda y, *kk, terms=terms: y + h * sum(a * k for (a, _), k in zip(terms, kk, strict=True)),
            y0,
            *[k for _, k in terms],
        )
        ks.append(field(t0 + float(c) * h, yi, args))
    y1 = yi  # FSAL/SSAL tableaus: the last stage is evaluated at the solution
    errs = [(float(b), k) for b, k in zip(tableau.b_error, ks, strict=True) if b != 0]
    y_error = _tree_map(lambda *kk: h * sum(b * k for (b, _), k in zip(errs, kk, strict=True)), *[k for _, k in errs])
    k = _tree_map(lambda *kk: jnp.stack(kk) * h, *ks)  # diffrax's stage increments: f * dt
    return y1, y_error, {"y0": y0, "y1": y1, "k": k}, ks[-1]


def population_loop(options: ODEOptions, vector_field: Callable, y0, args, ts, *, n_state: int | None = None):
    """Integrate every patient with one shared sequence of steps, saving each at its own times.

    ``y0`` and ``args`` have a leading patient axis, ``ts`` is (patients, obs), non-decreasing per row, from
    t0 = 0 to the latest time of all patients. The pieces are diffrax's (the solver's Butcher tableau and
    dense interpolation, the PID step-size controller and its initial step, the result codes); the loop
    is written out so that the step sequence is shared: one loop whose every operation is vectorised over
    patients, where ``vmap`` over per-patient solves runs a batched loop that masks every operation of
    every step. Each patient's state is raveled into one row of a (patients, m) array, so that every
    stage and every save is one operation whatever the number of state variables. Each accepted step
    saves, from the dense output, the patients whose times it covers. Step control uses the first
    ``n_state`` entries of each row (default all).
    """
    n_patients, n_obs = ts.shape
    solver = options.make("solver")
    tableau = type(solver).tableau
    first = _tree_map(lambda y: y[0], y0)
    flat0, unravel = jax.flatten_util.ravel_pytree(first)
    m = flat0.shape[0]
    n_state = m if n_state is None else n_state
    z0 = jax.vmap(lambda y: jax.flatten_util.ravel_pytree(y)[0])(y0)

    def field(t, z, a):
        return jax.vmap(lambda zi, ai: jax.flatten_util.ravel_pytree(vector_field(t, unravel(zi), ai))[0])(z, a)

    term = diffrax.ODETerm(field)
    controller = diffrax.PIDController(rtol=options.rtol, atol=options.atol, norm=population_norm(n_state))
    error_order = solver.error_order(term)
    t0 = jnp.zeros((), ts.dtype)
    t1 = jax.lax.stop_gradient(jnp.max(ts))
    t1_floor = _prevbefore(t1)
    tnext, controller_state = controller.init(term, t0, t1, z0, options.dt0, args, solver.func, error_order)
    tnext = jnp.minimum(tnext, t1)
    f0 = field(t0, z0, args)
    saved = jnp.broadcast_to(z0[:, None, :], (n_patients, n_obs, m))
    pointer = jnp.sum(ts <= t0, axis=1)  # times at t0 hold y0 already
    dense_axes = {"y0": 0, "y1": 0, "k": 1}  # stages lead ``k``
    obs_index = jnp.arange(n_obs)

    def cond(state):
        t, _, _, _, _, _, _, steps, code = state
        return (t < t1) & (steps < options.max_steps) & (code == 0)

    def body(state):
        t, tn, z, f, controller_state, saved, pointer, steps, code = state
        z1, z_error, dense, f1 = _erk_step(tableau, field, t, tn, z, f, args)
        z_error = jnp.where(jnp.isnan(z_error), jnp.inf, z_error)
        keep, tprev, tnext, _, new_controller_state, controller_result = controller.adapt_step_size(
            t, tn, z, z1, args, z_error, error_order, controller_state
        )
        tprev = jnp.minimum(tprev, t1)
        tnext = jnp.where(tnext > t1_floor, jnp.where(keep, t1, tprev + 0.5 * (t1 - tprev)), tnext)

        # Save every time of every patient that this step covers: a patient's times are sorted, so a
        # pointer to its next unsaved time suffices; each pass saves at most one time per patient (one
        # dense evaluation each), and passes repeat while some patient has another time in the step.
        def due(pointer):
            index = jnp.minimum(pointer, n_obs - 1)
            tau = jnp.take_along_axis(ts, index[:, None], axis=1)[:, 0]
            return keep & (pointer < n_obs) & (tau <= tn), index, tau

        def save_body(carry):
            pointer, saved = carry
            active, index, tau = due(pointer)
            values = jax.vmap(
                lambda d, tt: solver.interpolation_cls(t0=t, t1=tn, **d).evaluate(tt), in_axes=(dense_axes, 0)
            )(dense, tau)
            slot = active[:, None] & (index[:, None] == obs_index[None, :])
            saved = jnp.where(slot[:, :, None], values[:, None, :], saved)
            return pointer + active.astype(pointer.dtype), saved

        pointer, saved = jax.lax.while_loop(lambda c: jnp.any(due(c[0])[0]), save_body, (pointer, saved))
        z = jnp.where(keep, z1, z)
        f = jnp.where(keep, f1, f)
        code = jnp.where(code == 0, result_code(controller_result), code)
        return (tprev, tnext, z, f, new_controller_state, saved, pointer, steps + 1, code)

    init = (t0, tnext, z0, f0, controller_state, saved, pointer, jnp.asarray(0), jnp.zeros((), jnp.int32))
    t_end, _, _, _, _, saved, _, _, code = jax.lax.while_loop(cond, body, init)
    unfinished = result_code(diffrax.RESULTS.max_steps_reached)
    code = jnp.where(code != 0, code, jnp.where(t_end < t1, unfinished, 0))
    return jax.vmap(jax.vmap(unravel))(saved), code


def _fold(tree, in_batched, axis_size):
    """Broadcast unbatched leaves to the batch axis and merge it into the patient axis: (B, P, ...) -> (B P, ...)."""

    def fold(x, batched):
        x = x if batched else jnp.broadcast_to(x, (axis_size,) + x.shape)
        return x.reshape((axis_size * x.shape[1],) + x.shape[2:])

    return _tree_map(fold, tree, in_batched)


def _unfold(tree, axis_size):
    return _tree_map(lambda x: x.reshape((axis_size, x.shape[0] // axis_size) + x.shape[1:]), tree)


def _flags(tree, value: bool):
    return _tree_map(lambda _: value, tree)


def batch_joins_population(solve: Callable) -> Callable:
    """``solve(*inputs) -> (*outputs, code)`` (patient-leading arrays, one code) with a ``vmap`` rule that folds
    the batch into the population: one shared solve of axis_size x patients, outputs unfolded, the code repeated."""
    solve = jax.custom_batching.custom_vmap(solve)

    @solve.def_vmap
    def rule(axis_size, in_batched, *inputs):
        *outputs, code = solve(*_fold(inputs, tuple(in_batched), axis_size))
        out = (*(_unfold(o, axis_size) for o in outputs), jnp.broadcast_to(code, (axis_size,)))
        return out, _flags(out, True)

    return solve


def population_plain(options: ODEOptions, vector_field: Callable) -> Callable:
    """``(y0, args, ts) -> (ys, code)``; under ``vmap`` the batch joins the population (one shared solve)."""

    def solve(y0, args, ts):
        return population_loop(options, vector_field, y0, args, ts)

    return batch_joins_population(solve)
