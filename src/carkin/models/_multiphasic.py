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

Co-medication (``switches``, see ``_comedication.py``; [Stein2019] multiplies rho by Ftoci / Fster after the
first dose during expansion). cmax, tmax and rho describe the curve *without* co-medication, so
R0 = cmax exp(-rho tmax) is the infused level whatever happens later. From a co-medication's start s on:

- expansion: the rate on [0, tmax] becomes rho exp(G(t)), G the cumulative log multiplier of the switches
  that have happened (several co-medications multiply); the peak at tmax moves with it:

      log E(t) = log R0 + rho I(min(t, tmax)),    I(u) = integral_0^u exp(G(v)) dv   (exact, piecewise)

- contraction: the effector's decay rate becomes alpha exp(H(t)) from max(s, tmax) on, H the cumulative log
  multiplier of the contraction switches; the transfer to memory k = fb (alpha - beta) and the memory decay
  beta stay as they are. On each segment [c_j, c_{j+1}] of constant effector rate a_j the E/M system
  dE/dt = -a_j E, dM/dt = k E - beta M has the exact solution below. Written in memory's frame
  (q = E exp(beta s) / E(tmax), n = M exp(beta s) / E(tmax), s = t - tmax, x_j = a_j - beta):

      q(c_{j+1}) = q(c_j) exp(-x_j tau_j),   n(c_{j+1}) = n(c_j) + k q(c_j) tau_j phi(x_j tau_j),
      tau_j = c_{j+1} - c_j,   phi(y) = (1 - exp(-y)) / y   (``_pk._kernels.phi``: smooth at y = 0)

  so that log C(t) = log E(tmax) + log(q + n) - beta s. Nothing divides by a_j - beta (a_j = beta, e.g. a
  contraction rate lowered onto memory's, is an ordinary point), and neither q nor n underflows before
  exp(-beta s) itself would. Without contraction switches this is the bi-exponential above.

Re-infusion (``doses``, see ``_reinfusion.py``): each infusion d (time t_d, amount A_d) is a cohort that runs
the same kinetic programme on its own clock, scaled by dose,

    C(t) = sum_{d: t_d <= t} (A_d / A_1) C_1(t - t_d),

which is exact for the linear E/M system with one (E, M) pair per infusion, i.e. assuming that a later
infusion's cells expand as the first did, independently of the cells already there (the mechanistic
``CarTumor`` drops this assumption: there antigen is shared). Co-medication start times stay absolute (days
from the first infusion) for every cohort: cohort d sees them at s - t_d on its own clock. The sum is taken
as a log-sum-exp of the cohorts' logs.

Without ``doses`` or ``switches`` (``patient_terms(individual)``) the single-infusion formula above is
evaluated as it always was: which keys ``patient_terms`` returns selects the program, statically.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ..data._doses import DoseEvents
from ._comedication import rate_integral, sorted_switches
from ._pk._kernels import phi
from ._reinfusion import infusion_weights

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
    """log C(t) from ``log_terms`` (fields broadcastable against ``t``), or from ``Multiphasic.patient_terms``
    with doses and switches (their trailing doses / co-medications axes after ``t``'s shape)."""
    if not any(k in terms for k in _CONTEXT_KEYS):
        t = jnp.asarray(t)
        dt = t - terms["tmax"]
        before = jnp.minimum(dt, 0.0)
        after = jnp.maximum(dt, 0.0)
        decline = jnp.logaddexp(terms["log_1m_fb"] - terms["alpha"] * after, terms["log_fb"] - terms["beta"] * after)
        return terms["log_cmax"] + terms["rho"] * before + decline
    return _log_concentration_with_context(terms, t)


# Keys that ``Multiphasic.patient_terms`` adds for a dosing history and for co-medication switches.
_SWITCH_KEYS = {process: (f"{process}_start", f"{process}_log_factor") for process in ("expansion", "contraction")}
_DOSE_KEYS = ("dose_time", "dose_log_weight")
_CONTEXT_KEYS = _DOSE_KEYS + tuple(k for pair in _SWITCH_KEYS.values() for k in pair)


def _log_concentration_with_context(terms: dict, t: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
    """log C(t) summed over the infusions' cohorts (if any), each with the co-medication switches."""
    t = jnp.asarray(t)
    if "dose_time" not in terms:
        return _cohort_log_concentration(terms, t, {p: (terms[s], terms[g]) for p, (s, g) in _SWITCH_KEYS.items()
                                                    if s in terms})
    dose_time, log_weight = terms["dose_time"], terms["dose_log_weight"]
    tau = t[..., None] - dose_time  # (..., doses): each cohort's own clock
    scalars = {k: jnp.asarray(v)[..., None] for k, v in terms.items() if k not in _CONTEXT_KEYS}
    shifted = {p: (terms[s][..., None, :] - dose_time[..., :, None], terms[g][..., None, :])
               for p, (s, g) in _SWITCH_KEYS.items() if s in terms}  # absolute starts on each cohort's clock
    log_c = _cohort_log_concentration(scalars, jnp.maximum(tau, 0.0), shifted)
    active = (tau >= 0.0) & (log_weight > -jnp.inf)
    return jax.nn.logsumexp(jnp.where(active, log_weight + log_c, -jnp.inf), axis=-1)


def _cohort_log_concentration(terms: dict, tau: Float[Array, "..."], switches: dict) -> Float[Array, "..."]:
    """log C of one infusion's cohort at ``tau`` days after it, with switches (sorted starts on the cohort's clock
    and cumulative log factors, trailing axis C) for the processes present (module docstring)."""
    tmax, rho = terms["tmax"], terms["rho"]
    dt = tau - tmax
    if "expansion" in switches:
        starts, cumulative = switches["expansion"]
        growth = rho * (rate_integral(jnp.minimum(tau, tmax), starts, cumulative) - tmax)
    else:
        growth = rho * jnp.minimum(dt, 0.0)
    after = jnp.maximum(dt, 0.0)
    if "contraction" in switches:
        starts, cumulative = switches["contraction"]
        decline = _switched_decline(terms, after, starts - jnp.asarray(tmax)[..., None], cumulative)
    else:
        decline = jnp.logaddexp(terms["log_1m_fb"] - terms["alpha"] * after, terms["log_fb"] - terms["beta"] * after)
    return terms["log_cmax"] + growth + decline


def _switched_decline(terms: dict, after, starts, cumulative) -> Float[Array, "..."]:
    """log(C(tmax + after) / C(tmax)) with the effector's decay rate switched at ``starts`` (days after tmax,
    sorted; clipped to [0, after]), by the exact segment recursion of the module docstring."""
    alpha, beta = terms["alpha"], terms["beta"]
    k = jnp.exp(terms["log_fb"]) * (alpha - beta)
    edges = jnp.clip(starts, 0.0, after[..., None])
    q, n, previous = jnp.ones_like(after), jnp.zeros_like(after), jnp.zeros_like(after)
    for j in range(starts.shape[-1] + 1):
        end = edges[..., j] if j < starts.shape[-1] else after
        tau = end - previous
        x = (alpha if j == 0 else alpha * jnp.exp(cumulative[..., j - 1])) - beta
        n = n + k * q * tau * phi(x * tau)
        q = q * jnp.exp(-x * tau)
        previous = end
    return jnp.log(q + n) - beta * after


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
    switch_processes: ClassVar[tuple[str, ...]] = ("expansion", "contraction")
    # Several infusions per patient: one cohort per infusion, superposed (module docstring).
    reinfusion: ClassVar[bool] = True

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
        self,
        individual: dict[str, Float[Array, "..."]],
        t: Float[ArrayLike, "..."],
        *,
        doses: DoseEvents | None = None,
        switches: dict | None = None,
    ) -> Float[Array, "..."]:
        """log C(t) (log copies/ug) from individual parameters broadcastable against ``t`` (days after the first
        infusion); ``doses`` and ``switches`` as for ``patient_terms`` (their leading axes broadcast like the
        parameters')."""
        return log_concentration_from_terms(self.patient_terms(individual, doses=doses, switches=switches), t)

    def patient_terms(
        self,
        individual: dict[str, Float[Array, "..."]],
        *,
        doses: DoseEvents | None = None,
        switches: dict | None = None,
    ) -> dict[str, Float[Array, "..."]]:
        """Per-patient quantities that ``log_concentration_from_terms`` needs (see ``log_terms``): the population
        likelihood computes them per patient and gathers them to the records.

        Parameters
        ----------
        individual : dict of name -> array (patients,) (or any batch shape without context)
        doses : DoseEvents (patients, doses), optional
            Every infusion, the first at index 0 and time 0 (days); adds ``dose_time`` and ``dose_log_weight``
            (log(A_d / A_1), -inf for padding), (patients, doses).
        switches : dict, optional
            process ("expansion", "contraction") -> (starts (patients, C) days after the first infusion, +inf
            never; log multipliers (C,) or (patients, C)); adds ``<process>_start`` (sorted per patient) and
            ``<process>_log_factor`` (cumulative), (patients, C).

        Raises
        ------
        ValueError
            If ``switches`` names a process the model does not switch.
        """
        terms = log_terms(self.structural(individual))
        for process, (starts, log_factors) in (switches or {}).items():
            if process not in self.switch_processes:
                raise ValueError(
                    f"Multiphasic: co-medication switches for {process!r} (type {type(process).__name__}); the "
                    f"model switches {', '.join(self.switch_processes)}"
                )
            start_key, factor_key = _SWITCH_KEYS[process]
            terms[start_key], terms[factor_key] = sorted_switches(starts, log_factors)
        if doses is not None:
            terms["dose_time"], terms["dose_log_weight"] = infusion_weights(doses)
        return terms

    @staticmethod
    def log_concentration_from_terms(terms: dict, t: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """log C(t) from ``patient_terms`` gathered to the records (elementwise models provide both)."""
        return log_concentration_from_terms(terms, t)

    def derived(self, individual: dict[str, Float[Array, "..."]]) -> dict[str, Float[Array, "..."]]:
        """Quantities users report that are not sampled directly: alpha (1/day) and foldx."""
        p = self.structural(individual)
        return {"alpha": jnp.asarray(p.alpha), "foldx": p.foldx}
