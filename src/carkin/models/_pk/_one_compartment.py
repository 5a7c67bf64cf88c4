"""One-compartment linear model: IV bolus, zero-order infusion and first-order absorption, closed form.

States: amount in the depot (oral models only) and in the central compartment, volume V, elimination rate
ke = CL / V, absorption rate ka. The unit responses (concentration per unit amount, ``dose_kernel`` with
K the dose's time course) are

    into the central compartment:   R = K(ke) / V                  (bolus: exp(-ke tau) / V)
    into the depot:                 R = ka * (-K[ke, ka]) / V      (bolus: ka / V * (exp(-ke tau) - exp(-ka tau))
                                                                    / (ka - ke), ka tau exp(-ke tau) / V at ka = ke)

evaluated as stable divided differences, so ka = ke is an ordinary point. Depot doses may be zero-order
inputs into the depot (duration > 0).
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ._doses import DoseEvents
from ._kernels import dose_kernel
from ._superposition import dose_terms, superpose

__all__ = ["one_compartment_terms", "one_compartment_concentration_from_terms"]


def one_compartment_terms(
    ke: Float[ArrayLike, "..."],
    v: Float[ArrayLike, "..."],
    doses: DoseEvents,
    *,
    ka: Float[ArrayLike, "..."] | None = None,
    tlag: Float[ArrayLike, "..."] | None = None,
) -> dict[str, Array]:
    """Per-patient terms of the one-compartment model (rates (...), dose terms (..., doses)).

    Parameters
    ----------
    ke : array (...), elimination rate constant, 1/time.
    v : array (...), volume, volume unit.
    doses, ka, tlag : the dosing history (..., doses), and the absorption rate (oral model; None: IV) and lag
        time of CMT 1 doses (...); see ``dose_terms``.

    Returns
    -------
    dict: ``ke``; for an oral model the sorted nodes ``lo = min(ke, ka)``, ``hi = max(ke, ka)``; and the
    ``dose_terms``.
    """
    ke = jnp.asarray(ke)
    terms = {"ke": ke, **dose_terms(doses, v, ka=ka, tlag=tlag)}
    if ka is not None:
        terms["lo"] = jnp.minimum(ke, ka)
        terms["hi"] = jnp.maximum(ke, ka)
    return terms


def one_compartment_concentration_from_terms(
    terms: dict[str, Array], t: Float[ArrayLike, "..."]
) -> Float[Array, "..."]:
    """Concentration (amount / volume) at ``t`` from ``one_compartment_terms`` (broadcastable against t)."""
    ke = terms["ke"][..., None]
    oral = "lo" in terms

    def response(a, b, ratio, depot):
        if not oral:
            return dose_kernel([ke], a, b, ratio)
        absorbed = dose_kernel([terms["lo"][..., None], terms["hi"][..., None]], a, b, ratio)
        return absorbed if depot is None else jnp.where(depot, absorbed, dose_kernel([ke], a, b, ratio))

    return superpose(terms, t, response)

