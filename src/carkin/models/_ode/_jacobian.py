"""Derivatives of a population solve with respect to the patients' parameters, by forward passes.

``forward_jacobian`` wraps the model-level solve ``(theta, ts, context) -> (values, codes)`` for the forward adjoints
(``"forward"``: sensitivity equations; ``"forward_autodiff"``: ``diffrax.ForwardMode`` through the solver).
The Jacobian is handed to reverse mode as a linear map, so ``jax.grad`` never runs backwards through a
solver loop; ``jax.hessian`` (the Laplace approximation) gets the Gauss-Newton curvature of the
predictions under ``"forward"`` and the exact Hessian under ``"forward_autodiff"`` (slower). The
reverse-mode adjoints (``"recursive_checkpoint"``, ``"direct"``) are not wrapped: they serve NUTS, SVI and
MAP, not ``method="laplace"``.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["forward_jacobian"]


def forward_jacobian(fn: Callable, *, second_order: bool) -> Callable:
    """Wrap ``fn(theta, ts, context) -> (values, codes)`` (theta (patients, params), values (patients, obs, ...))
    so derivatives use forward mode.

    ``context`` is a pytree of data arrays with a leading patient axis (dose times, co-medication starts):
    constants, never differentiated (the wrapper stops their gradient; anything that needs a derivative, e.g.
    a co-medication's log multiplier, travels in ``theta``).

    Patients are independent (patient i's values depend on theta[i] only), so one forward pass per
    parameter, perturbing that parameter of every patient at once, gives every patient's Jacobian: the
    rule computes J (params, patients, obs, ...) that way and returns the linear map ``dtheta -> J dtheta``,
    which reverse mode transposes. So ``jax.grad`` never runs backwards through a solver loop. Patients
    whose solve failed get a zero Jacobian, so that no NaN can leak into a gradient (the log-likelihood
    rejects the draw through the result code). Derivatives with respect to ``ts`` are exact too (one more
    forward pass, only when ``ts`` has a tangent).

    Second derivatives (``jax.hessian``, i.e. the Laplace approximation): with ``second_order`` the rule
    itself is differentiated (exact, through the solver). Without it, J is held constant, which gives the
    Gauss-Newton curvature of the predictions (second derivatives of the ODE solution with respect to the
    parameters are neglected; first derivatives are exact): cheap, and what FOCE-type methods use.
    """

    @jax.custom_jvp
    def wrapped(theta, ts, context):
        return fn(theta, ts, context)

    def jacobian(theta, ts, context):
        zero_ts = jnp.zeros_like(ts)

        def push(k):
            v = jnp.zeros_like(theta).at[:, k].set(1.0)
            return jax.jvp(lambda th, t: fn(th, t, context), (theta, ts), (v, zero_ts), has_aux=True)

        values, jac, code = jax.vmap(push)(jnp.arange(theta.shape[-1]))
        values, code = values[0], code[0]  # identical across directions
        return values, jnp.where(_per_patient(code == 0, jac, 1), jac, 0.0), code

    def rule(primals, tangents):
        theta, ts, context = primals  # the context's tangents are zero (stopped below)
        dtheta, dts, _ = tangents
        if second_order:
            values, jac, code = jacobian(theta, ts, context)
        else:
            fixed = jax.lax.stop_gradient(theta)
            values, jac, code = jax.lax.stop_gradient(jacobian(fixed, jax.lax.stop_gradient(ts), context))
            # Same values; first derivatives J for any outer transformation; no second derivatives.
            values = values + jnp.einsum("pk,kp...->p...", theta - fixed, jac)
        out = jnp.zeros_like(values)
        if not isinstance(dtheta, jax.custom_derivatives.SymbolicZero):
            out = out + jnp.einsum("pk,kp...->p...", dtheta, jac)
        if not isinstance(dts, jax.custom_derivatives.SymbolicZero):
            _, dvalues, _ = jax.jvp(lambda th, t: fn(th, t, context), (theta, ts), (jnp.zeros_like(theta), dts),
                                    has_aux=True)
            out = out + jnp.where(_per_patient(code == 0, dvalues, 0), dvalues, 0.0)
        return (values, code), (out, np.zeros(np.shape(code), dtype=jax.dtypes.float0))

    wrapped.defjvp(rule, symbolic_zeros=True)

    def call(theta, ts, context=None):
        return wrapped(theta, ts, jax.lax.stop_gradient({} if context is None else context))

    return call


def _per_patient(flags, like, axis: int):
    """``flags`` (patients,) shaped to broadcast against ``like``, whose patient axis is ``axis``."""
    return flags.reshape((1,) * axis + flags.shape + (1,) * (like.ndim - axis - 1))
