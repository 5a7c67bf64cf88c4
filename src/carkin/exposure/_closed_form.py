"""Exact exposure metrics of the multiphasic model ([Stein2019] form; docs/references.md, section 1.1).

With s = t - tmax, the curve is cmax exp(rho s) for s < 0 and cmax [(1 - fb) exp(-alpha s) + fb exp(-beta s)]
for s >= 0, so every metric has a closed form:

- Cmax = cmax and Tmax = tmax (the expansion rises and both decline terms fall, so the peak is at tmax).
- AUC over [a, b]: the window is split at tmax; each exponential piece is integrated exactly,

      int_l^u cmax exp(rho (t - tmax)) dt = cmax exp(rho (l - tmax)) expm1(rho (u - l)) / rho
      int_{s1}^{s2} exp(-k s) ds         = exp(-k s1) (-expm1(-k (s2 - s1))) / k

  with l = min(a, tmax), u = min(b, tmax), s1 = max(a - tmax, 0), s2 = max(b - tmax, 0): a window wholly
  before tmax has no decline part (s1 = s2 = 0), one wholly after has no expansion part (l = u = tmax),
  and a window that straddles tmax has both. ``expm1`` keeps short pieces accurate.
- Level at day d: the model's log concentration.
- Time above the LLOQ L within [0, H]: the curve crosses L once on the way up, at
  t_up = tmax + log(L / cmax) / rho (0 if C(0) > L), and once on the way down, at tmax + s* where s* solves
  log[(1 - fb) exp(-alpha s) + fb exp(-beta s)] = log(L / cmax). That root lies in
  [log(cmax / L) / alpha, log(cmax / L) / beta] (the decline is squeezed between exp(-alpha s) and
  exp(-beta s), alpha > beta); 100 bisection steps pin it to double precision, and one Newton step on
  the bisection result carries the implicit-function derivative, so gradients are exact as well. The
  metric is the length of [t_up, t_down] within [0, H], and 0 when cmax <= L.

Every function is elementwise over broadcastable arrays (any batch of draws and patients), jit-, vmap-
and grad-safe.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ..models import MultiphasicParams, multiphasic_log_concentration

__all__ = ["multiphasic_auc", "multiphasic_time_above", "multiphasic_metric"]

_BISECTION_STEPS = 100


def multiphasic_auc(
    params: MultiphasicParams, start: Float[ArrayLike, "..."], end: Float[ArrayLike, "..."]
) -> Float[Array, "..."]:
    """Exact AUC of the multiphasic curve from ``start`` to ``end`` days (copies/ug x day).

    Parameters
    ----------
    params : MultiphasicParams
        Fields broadcastable against ``start`` and ``end``.
    start, end : arrays, days after infusion, 0 <= start <= end.

    Returns
    -------
    array of the broadcast shape.
    """
    cmax, tmax, rho = (jnp.asarray(params.cmax), jnp.asarray(params.tmax), jnp.asarray(params.rho))
    alpha, beta, fb = (jnp.asarray(params.alpha), jnp.asarray(params.beta), jnp.asarray(params.fb))
    a, b = jnp.asarray(start), jnp.asarray(end)
    lower = jnp.minimum(a, tmax)
    upper = jnp.minimum(b, tmax)
    expansion = jnp.exp(rho * (lower - tmax)) * jnp.expm1(rho * (upper - lower)) / rho
    s1 = jnp.maximum(a - tmax, 0.0)
    s2 = jnp.maximum(b - tmax, 0.0)
    span = s2 - s1
    decline = (1.0 - fb) * jnp.exp(-alpha * s1) * -jnp.expm1(-alpha * span) / alpha + fb * jnp.exp(
        -beta * s1
    ) * -jnp.expm1(-beta * span) / beta
    return cmax * (expansion + decline)


def _decline_log_level(params: MultiphasicParams, s):
    """log of the decline factor (1 - fb) exp(-alpha s) + fb exp(-beta s) at s >= 0."""
    fb = jnp.asarray(params.fb)
    return jnp.logaddexp(jnp.log1p(-fb) - params.alpha * s, jnp.log(fb) - params.beta * s)


def multiphasic_time_above(
    params: MultiphasicParams, lloq: Float[ArrayLike, "..."], horizon: Float[ArrayLike, "..."]
) -> Float[Array, "..."]:
    """Days during which the multiphasic curve is above ``lloq`` (copies/ug), within [0, ``horizon``] days."""
    cmax = jnp.asarray(params.cmax)
    lloq = jnp.asarray(lloq)
    above = cmax > lloq
    # log(cmax / L) > 0 where the curve ever exceeds L; a positive stand-in elsewhere keeps the math finite
    drop = jnp.where(above, jnp.log(cmax) - jnp.log(lloq), 1.0)
    t_up = jnp.maximum(params.tmax - drop / params.rho, 0.0)
    target = -drop

    def g(s):
        return _decline_log_level(params, s) - target

    lo = drop / params.alpha
    hi = drop / params.beta
    lo, hi = jnp.broadcast_arrays(lo, hi, g(lo))[:2]

    def step(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        go_right = g(mid) > 0  # still above L at mid: the crossing is later
        return jnp.where(go_right, mid, lo), jnp.where(go_right, hi, mid)

    lo, hi = jax.lax.fori_loop(0, _BISECTION_STEPS, step, (jax.lax.stop_gradient(lo), jax.lax.stop_gradient(hi)))
    root = jax.lax.stop_gradient(0.5 * (lo + hi))
    slope = jax.grad(lambda s: jnp.sum(g(s)))(root)
    root = root - g(root) / slope  # ~0 in value; carries d root / d params by the implicit function theorem
    t_down = params.tmax + root
    horizon = jnp.asarray(horizon)
    length = jnp.minimum(t_down, horizon) - jnp.minimum(t_up, horizon)
    return jnp.where(above, jnp.maximum(length, 0.0), 0.0)


def multiphasic_metric(
    kind: str, params: MultiphasicParams, *, start: float, end: float, lloq=None
) -> Float[Array, "..."]:
    """One metric of the multiphasic model by kind (see `carkin.exposure.Metric`), elementwise."""
    if kind == "cmax":
        return jnp.asarray(params.cmax) * jnp.ones_like(jnp.asarray(params.tmax))
    if kind == "tmax":
        return jnp.asarray(params.tmax) * jnp.ones_like(jnp.asarray(params.cmax))
    if kind == "auc":
        return multiphasic_auc(params, start, end)
    if kind == "conc":
        return jnp.exp(multiphasic_log_concentration(params, end))
    if kind == "time_above_lloq":
        return multiphasic_time_above(params, lloq, end)
    raise ValueError(f"unknown metric kind {kind!r}")
