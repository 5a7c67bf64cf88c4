"""Two-compartment linear model: IV bolus, zero-order infusion and first-order absorption, closed form.

Micro-constants k10 = CL / V1, k12 = Q / V1, k21 = Q / V2; hybrid rates alpha > k21 > beta > 0, the roots of
s^2 - (k10 + k12 + k21) s + k10 k21. With K a dose's time course for one exponential (``dose_kernel``), the
unit responses (concentration per unit amount) are divided differences of ``(k21 - x) K(x)``:

    into the central compartment:  R = [(k21 - beta) (-K[beta, alpha]) + K(alpha)] / V1
    into the depot:                R = ka [(k21 - beta) K[beta, alpha, ka] - K[alpha, ka]] / V1

(the Leibniz rule with beta first), in which every term is positive: no cancellation, and ka = alpha,
ka = beta or alpha = beta are ordinary points. The depot response is the classic sum of three exponentials.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ._doses import DoseEvents
from ._kernels import dose_kernel
from ._superposition import dose_terms, superpose

__all__ = [
    "hybrid_rates", "two_compartment_terms", "two_compartment_concentration_from_terms",
]


def hybrid_rates(
    cl: Float[ArrayLike, "..."], v1: Float[ArrayLike, "..."], q: Float[ArrayLike, "..."], v2: Float[ArrayLike, "..."]
) -> dict[str, Float[Array, "..."]]:
    """Micro-constants and hybrid rates of the two-compartment model, without cancellation.

    ``alpha = (s + r) / 2`` and ``beta = k10 k21 / alpha`` with ``s = k10 + k12 + k21`` and
    ``r = sqrt((k10 + k12 - k21)^2 + 4 k12 k21) = alpha - beta``; ``k21 - beta`` is ``(r - x) / 2`` or
    ``2 k12 k21 / (x + r)`` (x = k10 + k12 - k21), whichever adds positives.

    Parameters
    ----------
    cl : clearance, volume/time. v1 : central volume. q : intercompartmental clearance, volume/time (> 0).
    v2 : peripheral volume. All arrays (...), positive.

    Returns
    -------
    dict of arrays (...): ``k10``, ``k12``, ``k21`` and ``alpha``, ``beta`` (1/time), ``k21_minus_beta``.
    """
    cl, v1, q, v2 = (jnp.asarray(x) for x in (cl, v1, q, v2))
    k10, k12, k21 = cl / v1, q / v1, q / v2
    x = k10 + k12 - k21
    r = jnp.sqrt(x * x + 4.0 * k12 * k21)
    alpha = (k10 + k12 + k21 + r) / 2.0
    positive = x >= 0
    k21_minus_beta = jnp.where(
        positive, 2.0 * k12 * k21 / jnp.where(positive, x + r, 1.0), (r - x) / 2.0
    )
    return {"k10": k10, "k12": k12, "k21": k21, "alpha": alpha, "beta": k10 * k21 / alpha,
            "k21_minus_beta": k21_minus_beta}


def two_compartment_terms(
    cl: Float[ArrayLike, "..."],
    v1: Float[ArrayLike, "..."],
    q: Float[ArrayLike, "..."],
    v2: Float[ArrayLike, "..."],
    doses: DoseEvents,
    *,
    ka: Float[ArrayLike, "..."] | None = None,
    tlag: Float[ArrayLike, "..."] | None = None,
) -> dict[str, Array]:
    """Per-patient terms of the two-compartment model (rates (...), dose terms (..., doses)).

    Parameters
    ----------
    cl, v1, q, v2 : arrays (...), see ``hybrid_rates``.
    doses, ka, tlag : as for ``one_compartment_terms`` (see ``dose_terms``).

    Returns
    -------
    dict: ``alpha``, ``beta``, ``k21_minus_beta``; for an oral model the sorted nodes ``lo <= mid <= hi``
    of (beta, alpha, ka) and ``pair_lo <= pair_hi`` of (alpha, ka); and the ``dose_terms``.
    """
    rates = hybrid_rates(cl, v1, q, v2)
    terms = {k: rates[k] for k in ("alpha", "beta", "k21_minus_beta")}
    terms.update(dose_terms(doses, v1, ka=ka, tlag=tlag))
    if ka is not None:
        alpha, beta = rates["alpha"], rates["beta"]
        terms["lo"] = jnp.minimum(beta, ka)
        terms["mid"] = jnp.clip(ka, beta, alpha)
        terms["hi"] = jnp.maximum(alpha, ka)
        terms["pair_lo"] = jnp.minimum(alpha, ka)
        terms["pair_hi"] = terms["hi"]
    return terms


def two_compartment_concentration_from_terms(
    terms: dict[str, Array], t: Float[ArrayLike, "..."]
) -> Float[Array, "..."]:
    """Concentration (amount / volume) at ``t`` from ``two_compartment_terms`` (broadcastable against t)."""
    per = {k: v[..., None] for k, v in terms.items() if not k.startswith("dose_")}
    oral = "lo" in terms

    def central(a, b, ratio):
        beta_alpha = dose_kernel([per["beta"], per["alpha"]], a, b, ratio)
        return per["k21_minus_beta"] * beta_alpha + dose_kernel([per["alpha"]], a, b, ratio)

    def response(a, b, ratio, depot):
        if not oral:
            return central(a, b, ratio)
        three = dose_kernel([per["lo"], per["mid"], per["hi"]], a, b, ratio)
        absorbed = per["k21_minus_beta"] * three + dose_kernel([per["pair_lo"], per["pair_hi"]], a, b, ratio)
        return absorbed if depot is None else jnp.where(depot, absorbed, central(a, b, ratio))

    return superpose(terms, t, response)

