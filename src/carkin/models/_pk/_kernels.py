"""Stable divided differences of exponentials: the one piece of numerics every linear PK closed form shares.

The concentration of a linear compartment model after one dose is a divided difference, over the model's
rate constants (the *nodes*: ke; ke and ka; beta and alpha; beta, alpha and ka), of a function of the rate:

    C = amount / V * sum_i P(lambda_i) K(lambda_i) / prod_{j != i} (lambda_j - lambda_i)

with P a polynomial of the micro-constants and K(x) the dose's time course for one exponential
(``exp(-x tau)`` after a bolus). Written this way the textbook coefficients ``ka / (ka - ke)`` never appear, so
nothing divides by a vanishing difference of rates: ka = ke (or ka = alpha, ka = beta, alpha = beta) is an
ordinary point where the value and its gradient are smooth.

Everything reduces to one positive function of m + 1 real nodes, the divided difference of ``exp(-y)``
with the sign that makes it positive (the Hermite-Genocchi integral over the unit simplex),

    E(y_0, ..., y_m) = (-1)^m exp(-y)[y_0, ..., y_m] = integral over the simplex of exp(-sum_i w_i y_i) dw,

e.g. ``E(y) = exp(-y)`` and ``E(0, y) = (1 - exp(-y)) / y``. ``simplex_exp`` evaluates it on nodes sorted
ascending by the recurrence ``E(y_i..y_j) = (E(y_i..y_{j-1}) - E(y_{i+1}..y_j)) / (y_j - y_i)``, whose
denominator is the widest gap of the range (well conditioned once it exceeds ``NARROW``), with ``expm1`` for
two nodes and a Taylor series about the midpoint for ranges of three or more nodes narrower than ``NARROW``.
The branches are selected with the "double where" idiom (the unused branch never divides by zero), so
gradients are finite everywhere, including at coincident nodes.

``dose_kernel`` combines two such functions (Leibniz rule) into the divided difference of one dose's time
course for a bolus or a zero-order infusion; every term of that sum is positive, so it adds without
cancellation.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

__all__ = ["NARROW", "phi", "simplex_exp", "dose_kernel"]

# Ranges of three or more nodes narrower than this (dimensionless: rate x time) use the Taylor series. Each
# level of the recurrence amplifies its inputs' relative error by about m / span, so four nodes lose about
# 6 / NARROW^2 eps (3e-12; with 1e-3 it was 5e-9, measured); the series' first neglected term is
# (NARROW / 2)^6 / 6! (1.4e-15). Both branches are evaluated (where), so the order is what the series costs.
NARROW = 0.02
_TAYLOR_ORDER = 5
# phi (two nodes, exact through expm1 otherwise) uses its series below this; first neglected term y^5/720.
_PHI_NARROW = 1e-3


def phi(y: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
    """``(1 - exp(-y)) / y`` = E(0, y), with its limit 1 at y = 0 (value and gradient smooth there).

    Parameters
    ----------
    y : array, dimensionless, >= 0 (a rate times a time).

    Returns
    -------
    array of the shape of ``y``, in (0, 1].
    """
    y = jnp.asarray(y)
    narrow = jnp.abs(y) < _PHI_NARROW
    y_safe = jnp.where(narrow, 1.0, y)
    wide = -jnp.expm1(-y_safe) / y_safe
    series = 1.0 - y * 0.5 * (1.0 - y * (1 / 3) * (1.0 - y * 0.25 * (1.0 - y * 0.2)))
    return jnp.where(narrow, series, wide)


def _taylor(z: Sequence[Array]) -> Array:
    """E(z) by its Taylor series about the midpoint c of the range (for ranges narrower than NARROW):
    ``E(z) = exp(-c) sum_k (-1)^k h_k(z - c) / (m + k)!`` with h_k the complete homogeneous symmetric
    polynomials of the m + 1 shifted nodes."""
    m = len(z) - 1
    c = (z[0] + z[-1]) / 2.0
    h = [jnp.ones_like(c)] + [jnp.zeros_like(c)] * _TAYLOR_ORDER
    for node in z:  # h_k(u_0..u_l) = h_k(u_0..u_{l-1}) + u_l h_{k-1}(u_0..u_l)
        u = node - c
        for k in range(1, _TAYLOR_ORDER + 1):
            h[k] = h[k] + u * h[k - 1]
    series = sum(h[k] * ((-1) ** k / math.factorial(m + k)) for k in range(_TAYLOR_ORDER + 1))
    return jnp.exp(-c) * series


def simplex_exp(
    z: Sequence[Float[ArrayLike, "..."]],
    *,
    labels: Sequence[Hashable] | None = None,
    cache: dict | None = None,
) -> Float[Array, "..."]:
    """E(z_0, ..., z_m) = (-1)^m exp(-y)[z_0, ..., z_m], the positive divided difference of exp(-y).

    Parameters
    ----------
    z : sequence of m + 1 arrays (broadcastable), dimensionless, sorted ascending (``z[0] <= z[1] <= ...``;
        not checked: unsorted nodes lose the conditioning of the recurrence, not its value).

    Other parameters
    ----------------
    labels, cache : a name for each node and a dict shared between calls, so that calls on overlapping node
        sets (with the same labels for the same values) compute their common sub-ranges once.

    Returns
    -------
    array of the broadcast shape, > 0 (0 where exp underflows). Smooth in every node, also where nodes
    coincide (``E(y, y) = exp(-y)``, ``E(0, 0, 0) = 1/2``).
    """
    z = [jnp.asarray(v) for v in z]
    labels = tuple(range(len(z))) if labels is None else tuple(labels)
    cache = {} if cache is None else cache

    def e(i: int, j: int) -> Array:
        key = labels[i : j + 1]
        if key not in cache:
            if i == j:
                v = jnp.exp(-z[i])
            elif j == i + 1:
                v = e(i, i) * phi(z[j] - z[i])
            else:
                span = z[j] - z[i]
                narrow = span < NARROW
                wide = (e(i, j - 1) - e(i + 1, j)) / jnp.where(narrow, 1.0, span)
                v = jnp.where(narrow, _taylor(z[i : j + 1]), wide)
            cache[key] = v
        return cache[key]

    return e(0, len(z) - 1)


def dose_kernel(
    nodes: Sequence[Float[ArrayLike, "..."]],
    a: Float[ArrayLike, "..."],
    b: Float[ArrayLike, "..."] | None = None,
    ratio: Float[ArrayLike, "..."] | None = None,
) -> Float[Array, "..."]:
    """(-1)^n K[x_0, ..., x_n]: the divided difference over the nodes of one dose's exponential time course.

    For a dose of unit amount given at time 0 as a zero-order input of duration T (T = 0: a bolus), the
    time course of one exponential mode of rate x at time tau > 0 is

        K(x) = exp(-x a) * (1 - exp(-x b)) / (x T),    b = min(tau, T),  a = tau - b

    (``exp(-x tau)`` for a bolus). With ``psi(x) = (b / T) E(0, b x)`` the Leibniz rule gives

        (-1)^n K[x_0..x_n] = sum_j  a^j E(a x_0, .., a x_j)  *  (b / T) b^(n-j) E(0, b x_j, .., b x_n),

    a sum of positive terms; for a bolus only the last, ``a^n E(a x_0, .., a x_n)``.

    Parameters
    ----------
    nodes : sequence of n + 1 arrays, rate constants in 1/(time unit), > 0, sorted ascending.
    a : array, time since the end of the input (0 while it runs; tau for a bolus), time unit, >= 0.
    b : array, optional, time the input has run, ``min(tau, T)``, time unit, >= 0 (0 for a bolus). None:
        every dose is a bolus (the cheaper program).
    ratio : array, optional (given with ``b``), ``b / T`` for an infusion, 1 for a bolus (the fraction of
        the amount given so far).

    Returns
    -------
    array of the broadcast shape, >= 0, per unit amount (multiply by the amount).
    """
    n = len(nodes) - 1
    a = jnp.asarray(a)
    if b is None:
        return a**n * simplex_exp([a * x for x in nodes])
    b = jnp.asarray(b)
    ax, bx = [a * x for x in nodes], [jnp.zeros_like(b)] + [b * x for x in nodes]
    a_labels, b_labels = [("a", i) for i in range(n + 1)], ["0"] + [("b", i) for i in range(n + 1)]
    cache: dict = {}
    total = 0.0
    for j in range(n + 1):
        elapsed = a**j * simplex_exp(ax[: j + 1], labels=a_labels[: j + 1], cache=cache)
        given = b ** (n - j) * simplex_exp(bx[:1] + bx[j + 1 :], labels=b_labels[:1] + b_labels[j + 1 :], cache=cache)
        total = total + elapsed * given
    return ratio * total
