"""Empirical multiphasic CAR-T kinetic model (Stein et al. 2019; Mueller et al. 2017), closed form.

Transgene level (copies/ug genomic DNA) after a single infusion at time 0:

    t <  tmax:  C(t) = cmax * exp(rho * (t - tmax))                       (exponential expansion)
    t >= tmax:  C(t) = cmax * [(1 - fb) exp(-alpha (t - tmax)) + fb exp(-beta (t - tmax))]
                                                                          (contraction, persistence)

so that C(0) = R0 = cmax / foldx with foldx = exp(rho * tmax). This is the closed form of the
effector/memory system of Stein et al. 2019 (CPT Pharmacometrics Syst Pharmacol 8:285, doi:10.1002/psp4.12388;
``[Stein2019]`` in docs/references.md, section 1.1): E expands at rate rho until tmax, then decays at alpha
and converts to memory M at k = fb (alpha - beta), M decays at beta.

The curve is evaluated on the log scale as one expression without branches,

    log C = log cmax + rho * min(t - tmax, 0)
            + logaddexp(log(1 - fb) - alpha * max(t - tmax, 0), log(fb) - beta * max(t - tmax, 0)),

which is finite and differentiable on both sides of tmax (at t < tmax the logaddexp term is
log((1 - fb) + fb) = 0) and has no NaN in its gradient at the kink itself: both branches are always
finite, so nothing like ``where(t < tmax, huge, ...)`` can leak an inf into a gradient.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

__all__ = ["MultiphasicParams", "Multiphasic", "multiphasic_log_concentration"]


class MultiphasicParams(eqx.Module):
    """Parameters of the multiphasic model for one patient (or any broadcastable batch of them).

    Attributes
    ----------
    cmax : peak transgene level, copies/ug gDNA (> 0).
    tmax : time of the peak, days after infusion (> 0).
    rho : expansion rate, 1/day (> 0); fold expansion R0 -> cmax is ``exp(rho * tmax)``.
    alpha : fast contraction rate after tmax, 1/day (> beta).
    beta : slow persistence rate after tmax, 1/day (> 0).
    fb : fraction of cmax in the slow (persistence) phase, dimensionless in (0, 1).

    Every field is an array of the same broadcastable shape; a batch over patients or posterior draws is a
    leading axis (use ``jax.vmap`` or broadcasting).
    """

    cmax: Float[ArrayLike, "..."]
    tmax: Float[ArrayLike, "..."]
    rho: Float[ArrayLike, "..."]
    alpha: Float[ArrayLike, "..."]
    beta: Float[ArrayLike, "..."]
    fb: Float[ArrayLike, "..."]

    @property
    def foldx(self) -> Float[Array, "..."]:
        """Fold expansion from the infused level R0 to cmax, ``exp(rho * tmax)``."""
        return jnp.exp(jnp.asarray(self.rho) * jnp.asarray(self.tmax))


def multiphasic_log_concentration(
    params: MultiphasicParams, t: Float[ArrayLike, "..."]
) -> Float[Array, "..."]:
    """Natural log of the transgene level (log copies/ug gDNA) at time ``t`` (days after infusion).

    Parameters
    ----------
    params : MultiphasicParams
        Fields broadcastable against ``t``.
    t : array, days after infusion (>= 0).

    Returns
    -------
    array of the broadcast shape of ``t`` and the parameter fields: log C(t).

    Examples
    --------
    >>> p = MultiphasicParams(cmax=24000.0, tmax=9.3, rho=0.89, alpha=0.16, beta=0.0032, fb=0.0079)
    >>> float(jnp.exp(multiphasic_log_concentration(p, 9.3)))  # doctest: +ELLIPSIS
    24000.0...
    """
    return log_concentration_from_terms(log_terms(params), t)


def log_terms(params: MultiphasicParams) -> dict[str, Float[Array, "..."]]:
    """The per-patient logarithms of the closed form (log cmax, log fb, log(1 - fb)) and its rates.

    Computing these once per patient and gathering them to the records (``log_concentration_from_terms``)
    keeps the transcendental math per record to one logaddexp (the gradient's main cost).
    """
    fb = jnp.asarray(params.fb)
    return {
        "log_cmax": jnp.log(params.cmax),
        "tmax": jnp.asarray(params.tmax),
        "rho": jnp.asarray(params.rho),
        "alpha": jnp.asarray(params.alpha),
        "beta": jnp.asarray(params.beta),
        "log_fb": jnp.log(fb),
        "log_1m_fb": jnp.log1p(-fb),
    }


def log_concentration_from_terms(
    terms: dict[str, Float[ArrayLike, "..."]], t: Float[ArrayLike, "..."]
) -> Float[Array, "..."]:
    """log C(t) from ``log_terms`` (fields broadcastable against ``t``)."""
    t = jnp.asarray(t)
    dt = t - terms["tmax"]
    before = jnp.minimum(dt, 0.0)
    after = jnp.maximum(dt, 0.0)
    decline = jnp.logaddexp(terms["log_1m_fb"] - terms["alpha"] * after, terms["log_fb"] - terms["beta"] * after)
    return terms["log_cmax"] + terms["rho"] * before + decline


class Multiphasic(eqx.Module):
    """The closed-form multiphasic model as a carkin kinetic model.

    A kinetic model maps *individual parameters* (the quantities that carry between-patient variability,
    on their natural scale) to a transgene curve. For this model they are

    ========  =============================================  ===========  =========
    name      meaning                                        unit         transform
    ========  =============================================  ===========  =========
    cmax      peak level                                     copies/ug    log
    tmax      time of peak                                   day          log
    rho       expansion rate                                 1/day        log
    beta      persistence rate                               1/day        log
    delta     alpha - beta, gap between the decline rates    1/day        log
    fb        fraction of cmax in the persistence phase      -            logit
    ========  =============================================  ===========  =========

    The contraction rate is ``alpha = beta + delta``: alpha > beta holds for every patient by
    construction, which removes the label switching of (alpha, beta, fb) <-> (beta, alpha, 1 - fb)
    (the alpha/beta swap of [Stein2019]'s bi-exponential; docs/references.md, section 1.1).
    """

    individual_parameters: ClassVar[tuple[str, ...]] = ("cmax", "tmax", "rho", "beta", "delta", "fb")
    # The closed form can be evaluated record by record (parameters gathered per observation); ODE
    # models cannot and are evaluated on each patient's padded schedule instead.
    elementwise: ClassVar[bool] = True
    # What the model predicts (the analytes of a spec observe these), and the rates co-medication can switch.
    outputs: ClassVar[tuple[str, ...]] = ("transgene",)
    switch_processes: ClassVar[tuple[str, ...]] = ()

    def structural(self, individual: dict[str, Float[Array, "..."]]) -> MultiphasicParams:
        """Structural parameters from individual parameters (natural scale, any batch shape)."""
        return MultiphasicParams(
            cmax=individual["cmax"],
            tmax=individual["tmax"],
            rho=individual["rho"],
            alpha=individual["beta"] + individual["delta"],
            beta=individual["beta"],
            fb=individual["fb"],
        )

    def log_concentration(
        self, individual: dict[str, Float[Array, "..."]], t: Float[ArrayLike, "..."]
    ) -> Float[Array, "..."]:
        """log C(t) (log copies/ug) from individual parameters broadcastable against ``t`` (days)."""
        return log_concentration_from_terms(self.patient_terms(individual), t)

    def patient_terms(self, individual: dict[str, Float[Array, "..."]]) -> dict[str, Float[Array, "..."]]:
        """Per-patient quantities that ``log_concentration_from_terms`` needs (see ``log_terms``): the population
        likelihood computes them per patient and gathers them to the records."""
        return log_terms(self.structural(individual))

    @staticmethod
    def log_concentration_from_terms(terms: dict, t: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """log C(t) from ``patient_terms`` gathered to the records (elementwise models provide both)."""
        return log_concentration_from_terms(terms, t)

    def derived(self, individual: dict[str, Float[Array, "..."]]) -> dict[str, Float[Array, "..."]]:
        """Quantities users report that are not sampled directly: alpha (1/day) and foldx."""
        p = self.structural(individual)
        return {"alpha": jnp.asarray(p.alpha), "foldx": p.foldx}
