"""Forward sensitivities: the solves whose forward-mode derivative integrates the sensitivity equations.

For ``adjoint="forward"`` the forward sensitivity equations dv/dt = f_y v + f_args dargs are integrated
with the state in the same loop, one direction per input, all directions in one solve, as the custom JVP
of a solve: ``sensitivity_segment`` for one patient (diffrax's solver, per-patient steps) and
``population_segment`` for a whole population (the shared-step loop of ``_population``). Step control
uses the state only (``_norms``), so values equal the plain solve's and, under ``vmap`` over tangent
directions, the state is solved once for all of them.
"""

from __future__ import annotations

from typing import Callable

import diffrax
import jax
import jax.extend.core
import jax.flatten_util
import jax.numpy as jnp
import numpy as np

from ._norms import rms_of_first
from ._options import ODEOptions
from ._patient import patient_solve
from ._population import batch_joins_population, population_loop, population_plain

__all__ = ["sensitivity_segment", "population_segment"]

_tree_map = jax.tree_util.tree_map


def _augmented_field(vector_field: Callable) -> Callable:
    """(y, v) -> (f(t, y, args), d_y f v + d_args f dargs): the state and one forward sensitivity."""

    def field(t, z, both):
        y, v = z
        args, dargs = both
        return jax.jvp(lambda yy, aa: vector_field(t, yy, aa), (y, args), (v, dargs))

    return field


def sensitivity_segment(options: ODEOptions, vector_field: Callable) -> Callable:
    """One patient's solve whose forward-mode derivative solves the forward sensitivity equations.

    For a tangent (dy0, dargs, dts) the JVP rule integrates, in one solve together with the state y,

        dv/dt = d_y f(t, y, args) v + d_args f(t, y, args) dargs,    v(t0) = dy0

    (one Jacobian-vector product of the vector field per stage) and returns v(ts) + f(ts, y(ts)) dts. Step
    control uses the state only, so the values are exactly those of the plain solve and, under ``vmap``
    over tangent directions, the state is solved once for all of them.
    """
    forward = diffrax.ForwardMode()

    @jax.custom_jvp
    def segment(y0, args, t0, ts):
        return patient_solve(options, forward, vector_field, y0, args, t0, ts[-1], ts)

    @segment.defjvp
    def rule(primals, tangents):
        y0, args, t0, ts = primals
        dy0, dargs, dt0, dts = tangents
        f0 = vector_field(t0, y0, args)
        v0 = jax.tree_util.tree_map(lambda d, f: d - f * dt0, dy0, f0)
        (ys, vs), code = patient_solve(
            options, forward, _augmented_field(vector_field), (y0, v0), (args, dargs), t0, ts[-1], ts,
            norm=rms_of_first,
        )
        fs = jax.vmap(lambda t, y: vector_field(t, y, args))(ts, ys)
        dys = jax.tree_util.tree_map(lambda v, f: v + f * _expand(dts, f), vs, fs)
        return (ys, code), (dys, np.zeros(np.shape(code), dtype=jax.dtypes.float0))

    return segment


def _expand(x, like):
    """``x`` with trailing singleton axes to broadcast against ``like`` (same leading axes)."""
    return x.reshape(x.shape + (1,) * (like.ndim - x.ndim))


def _sensitivity_field(vector_field: Callable) -> Callable:
    """One patient's (y, V) -> (f, d_y f V + d_args f dA), with the directions on the last axis of V, dA."""

    def field(t, z, both):
        y, v = z
        args, dargs = both
        f = vector_field(t, y, args)
        dv = jax.vmap(
            lambda vv, dd: jax.jvp(lambda yy, aa: vector_field(t, yy, aa), (y, args), (vv, dd))[1],
            in_axes=(-1, -1),
            out_axes=-1,
        )(v, dargs)
        return f, dv

    return field


def _population_sensitivities(options: ODEOptions, vector_field: Callable) -> Callable:
    """``(y0, args, ts, dY0, dA) -> (ys, Vs, code)``: the state and D forward sensitivities in one loop.

    The D directions sit on the last axis of every tangent leaf (``population_segment`` passes a fixed basis
    over the segment's inputs, so they are never batched by ``vmap``); under ``vmap`` over states the batch
    joins the population.
    """
    field = _sensitivity_field(vector_field)

    def solve(y0, args, ts, dy0, dargs):
        n_state = jax.flatten_util.ravel_pytree(_tree_map(lambda y: y[0], y0))[0].shape[0]
        (ys, vs), code = population_loop(options, field, (y0, dy0), (args, dargs), ts, n_state=n_state)
        return ys, vs, code

    return batch_joins_population(solve)


def _field_inputs(vector_field: Callable, y0, args, ts) -> list[bool]:
    """For each leaf of ``args`` (leading patient axis), whether one patient's vector field reads it.

    A backward pass over the field's jaxpr (dead-code elimination): an equation is live if one of its outputs
    is, and then all its inputs are. Conservative: an equation with effects counts as live.
    """
    leaves, treedef = jax.tree_util.tree_flatten(args)
    one_patient = lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype)  # noqa: E731  (shapes only: no tracer leaks in)

    def field(t, y, *one):
        return vector_field(t, y, treedef.unflatten(one))

    jaxpr = jax.make_jaxpr(field)(jax.ShapeDtypeStruct((), ts.dtype), _tree_map(one_patient, y0),
                                  *map(one_patient, leaves)).jaxpr
    n_skip = 1 + len(jax.tree_util.tree_leaves(y0))  # t and the state come first among the invars
    live = {v for v in jaxpr.outvars if isinstance(v, jax.extend.core.Var)}
    for eqn in reversed(jaxpr.eqns):
        if eqn.effects or any(v in live for v in eqn.outvars):
            live.update(v for v in eqn.invars if isinstance(v, jax.extend.core.Var))
    return [v in live for v in jaxpr.invars[n_skip:]]


def _is_zero(tangent) -> bool:
    return isinstance(tangent, jax.custom_derivatives.SymbolicZero)


def population_segment(options: ODEOptions, vector_field: Callable) -> Callable:
    """``(y0, args, ts) -> (ys, code)`` for a whole population in one loop, with sensitivity-equation JVPs.

    The JVP rule integrates the forward sensitivity equations with the state (see ``sensitivity_segment``)
    with respect to the segment's own inputs: the K scalars per patient of the initial state (unless its
    tangent is zero) and of the ``args`` leaves that the vector field reads. The tangent is then
    ``S (dy0, dargs) + f dts``. Under ``vmap`` over tangent directions (the Jacobian's D forward passes) S is
    computed once, so the loop carries K directions instead of D: for the E/M twin's contraction, K = 3
    (alpha, beta, k) where D = 6 model parameters (measured: the gradient about twice as fast). Step control
    uses the state only, so the step sequence does not depend on the tangents and every patient's
    derivatives depend on its own parameters only.
    """
    plain = population_plain(options, vector_field)
    multi = _population_sensitivities(options, vector_field)

    @jax.custom_jvp
    def segment(y0, args, ts):
        return plain(y0, args, ts)

    def rule(primals, tangents):
        y0, args, ts = primals
        dy0, dargs, dts = tangents
        n_patients = ts.shape[0]
        y_leaves, y_def = jax.tree_util.tree_flatten(y0)
        a_leaves, a_def = jax.tree_util.tree_flatten(args)
        dy_leaves = y_def.flatten_up_to(dy0) if not _is_zero(dy0) else [dy0] * len(y_leaves)
        da_leaves = a_def.flatten_up_to(dargs) if not _is_zero(dargs) else [dargs] * len(a_leaves)
        read = _field_inputs(vector_field, y0, args, ts)
        # The inputs to differentiate: state leaves with a nonzero tangent, args leaves the field reads.
        y_chosen = [i for i, dx in enumerate(dy_leaves) if not _is_zero(dx)]
        a_chosen = [i for i, (dx, r) in enumerate(zip(da_leaves, read, strict=True)) if r and not _is_zero(dx)]
        chosen = [y_leaves[i] for i in y_chosen] + [a_leaves[i] for i in a_chosen]
        chosen_tangents = [dy_leaves[i] for i in y_chosen] + [da_leaves[i] for i in a_chosen]
        sizes = [int(np.prod(x.shape[1:], dtype=int)) for x in chosen]
        k = sum(sizes)
        if k == 0:
            ys, code = plain(y0, args, ts)
            vs = _tree_map(jnp.zeros_like, ys)
        else:
            # The identity basis over the chosen scalars (K directions on the last axis), zeros elsewhere.
            eye = jnp.eye(k, dtype=ts.dtype)
            offsets = np.cumsum([0] + sizes)
            blocks = [jnp.broadcast_to(eye[o:o + n].reshape(x.shape[1:] + (k,)), x.shape + (k,))
                      for x, o, n in zip(chosen, offsets[:-1], sizes, strict=True)]

            def basis(leaves, picked, first):
                out = [jnp.zeros(x.shape + (k,), x.dtype) for x in leaves]
                for j, i in enumerate(picked):
                    out[i] = blocks[first + j]
                return out

            dy_basis = y_def.unflatten(basis(y_leaves, y_chosen, 0))
            da_basis = a_def.unflatten(basis(a_leaves, a_chosen, len(y_chosen)))
            ys, s, code = multi(y0, args, ts, dy_basis, da_basis)
            coefficients = jnp.concatenate([dx.reshape(n_patients, -1) for dx in chosen_tangents], axis=1)  # (P, K)
            vs = _tree_map(lambda leaf: jnp.einsum("po...k,pk->po...", leaf, coefficients), s)
        if not _is_zero(dts):
            fs = jax.vmap(jax.vmap(vector_field, in_axes=(0, 0, None)))(ts, ys, args)
            vs = _tree_map(lambda v, f: v + f * _expand(dts, f), vs, fs)
        return (ys, code), (vs, np.zeros(np.shape(code), dtype=jax.dtypes.float0))

    segment.defjvp(rule, symbolic_zeros=True)
    return segment
