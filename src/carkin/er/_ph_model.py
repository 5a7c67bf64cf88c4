"""Bayesian proportional-hazards likelihoods for PFS in numpyro: piecewise-exponential or Weibull baseline.

Hazard of patient i at time t (months since the landmark):

    h_i(t) = h0(t) exp(lp_i),   lp_i = b x_i + g' z_i

with x_i the centred log2 exposure (b is the log hazard ratio per doubling) and z_i the standardised
adjustment covariates (their coefficients are converted back to the covariates' own units for reports).
The baselines, one dispatch table (`BASELINES`):

- ``"piecewise"`` (default): h0 constant on K intervals whose inner cut points are the 1/K, ..., (K-1)/K
  quantiles of the event times (so each holds about the same number of events); log h0_k ~ Normal(log of
  the crude event rate, 2). log-likelihood sum_i [d_i (log h0_k(i) + lp_i) - exp(lp_i) sum_k h0_k r_ik]
  with r_ik the time patient i spends at risk in interval k.
- ``"weibull"``: h0(t) = (k / s)(t / s)^(k - 1), log k ~ Normal(0, 1), log s ~ Normal(log median follow-up
  time of the events, 2); times are floored at 1e-6 months (an event at the landmark itself).

Priors: b ~ Normal(0, ``exposure_prior_sd``) per doubling (default 1: HR per doubling within 0.14-7 with 95%
prior probability); g ~ Normal(0, 1) per SD of each covariate.

Every site carries a leading ``batch`` shape: () for one model (the joint CK + PFS model), (M,) for M
independent copies fitted side by side (the two-stage analysis; see `carkin.er._two_stage`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Literal

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jaxtyping import Array, Float

from ._analysis_set import ERData

__all__ = ["SurvivalArrays", "survival_arrays", "ph_log_likelihood", "ph_init_values", "BASELINES", "Baseline",
           "HazardRatio", "piecewise_log_likelihood", "weibull_log_likelihood"]

Baseline = Literal["piecewise", "weibull"]
_WEIBULL_TIME_FLOOR = 1e-6  # months; an event exactly at the landmark would give log(0)


class SurvivalArrays(eqx.Module):
    """PFS data of the analysis set in the layout of the likelihoods (built by `survival_arrays`).

    Attributes
    ----------
    time : Float[Array, " patients"]
        Months since the landmark.
    event : Float[Array, " patients"]
        1 event, 0 censored.
    z : Float[Array, "patients covariates"]
        Standardised covariates.
    at_risk : Float[Array, "patients pieces"]
        Months at risk in each baseline interval (piecewise baseline).
    event_piece : Float[Array, "patients pieces"]
        One-hot interval of the event (zeros when censored).
    z_scale : tuple of float, static
        SD of each covariate (coefficients per unit = standardised coefficient / SD).
    breaks : tuple of float, static
        Interval edges in months (the last is inf).
    log_rate : float, static
        log of the crude event rate (events per month at risk): centre of the piecewise prior.
    log_time : float, static
        log of the median event time: centre of the Weibull scale prior.
    """

    time: Float[Array, " patients"]
    event: Float[Array, " patients"]
    z: Float[Array, "patients covariates"]
    at_risk: Float[Array, "patients pieces"]
    event_piece: Float[Array, "patients pieces"]
    z_scale: tuple[float, ...] = eqx.field(static=True)
    breaks: tuple[float, ...] = eqx.field(static=True)
    log_rate: float = eqx.field(static=True)
    log_time: float = eqx.field(static=True)


def survival_arrays(data: ERData, *, pieces: int = 5) -> SurvivalArrays:
    """Build the likelihood arrays of an analysis set (K = ``pieces`` baseline intervals).

    Raises
    ------
    ValueError
        If there is no event, ``pieces`` is not a positive integer, or a covariate is constant.
    """
    if not (isinstance(pieces, int) and pieces >= 1):
        raise ValueError(f"pieces must be a positive integer, got {pieces!r}")
    time = np.asarray(data.time, dtype=float)
    event = np.asarray(data.event, dtype=float)
    if event.sum() == 0:
        raise ValueError("no PFS events in the analysis set: a hazard model cannot be fitted")
    event_times = np.sort(time[event == 1])
    inner = np.quantile(event_times, np.arange(1, pieces) / pieces) if pieces > 1 else np.zeros(0)
    inner = np.unique(inner[inner > 0])
    breaks = np.concatenate([[0.0], inner, [np.inf]])
    lower, upper = breaks[:-1], breaks[1:]
    at_risk = np.clip(np.minimum(time[:, None], upper[None, :]) - lower[None, :], 0.0, None)
    piece = np.clip(np.searchsorted(breaks, time, side="left") - 1, 0, len(lower) - 1)
    event_piece = np.zeros_like(at_risk)
    event_piece[np.arange(time.size), piece] = event
    x = data.covariates.to_numpy(dtype=float)
    if x.shape[1]:
        scale = x.std(axis=0)
        constant = [c for c, s in zip(data.covariate_names, scale, strict=True) if not s > 0]
        if constant:
            raise ValueError(
                f"covariate(s) {constant} are constant in the analysis set; leave them out of the adjustment"
            )
        z = (x - x.mean(axis=0)) / scale
    else:
        scale = np.zeros(0)
        z = np.zeros((time.size, 0))
    return SurvivalArrays(
        time=jnp.asarray(time),
        event=jnp.asarray(event),
        z=jnp.asarray(z),
        at_risk=jnp.asarray(at_risk),
        event_piece=jnp.asarray(event_piece),
        z_scale=tuple(float(s) for s in scale),
        breaks=tuple(float(b) for b in breaks),
        log_rate=float(np.log(event.sum() / time.sum())),
        log_time=float(np.log(np.median(event_times) + 1e-3)),
    )


def piecewise_log_likelihood(arrays: SurvivalArrays, lp, log_baseline_hazard):
    """Per-patient log-likelihood, piecewise-exponential baseline: lp (..., patients), log h0 (..., K)."""
    log_h = log_baseline_hazard[..., None, :]
    event_term = jnp.sum(arrays.event_piece * log_h, axis=-1) + arrays.event * lp
    cumulative = jnp.exp(lp) * jnp.sum(jnp.exp(log_h) * arrays.at_risk, axis=-1)
    return event_term - cumulative


def weibull_log_likelihood(arrays: SurvivalArrays, lp, log_weibull_shape, log_weibull_scale):
    """Per-patient log-likelihood, Weibull baseline: lp (..., patients), log shape and log scale (...)."""
    log_t = jnp.log(jnp.maximum(arrays.time, _WEIBULL_TIME_FLOOR))
    log_k, log_s = log_weibull_shape[..., None], log_weibull_scale[..., None]
    shape = jnp.exp(log_k)
    log_hazard = log_k - log_s + (shape - 1.0) * (log_t - log_s) + lp
    cumulative = jnp.exp(shape * (log_t - log_s) + lp)
    return arrays.event * log_hazard - cumulative


def _sample_piecewise(arrays: SurvivalArrays, batch: tuple[int, ...]) -> dict:
    k = arrays.at_risk.shape[1]
    return {"log_baseline_hazard": numpyro.sample(
        "log_baseline_hazard", dist.Normal(jnp.full(batch + (k,), arrays.log_rate), 2.0).to_event(len(batch) + 1)
    )}


def _sample_weibull(arrays: SurvivalArrays, batch: tuple[int, ...]) -> dict:
    return {
        "log_weibull_shape": numpyro.sample(
            "log_weibull_shape", dist.Normal(jnp.zeros(batch), 1.0).to_event(len(batch))
        ),
        "log_weibull_scale": numpyro.sample(
            "log_weibull_scale", dist.Normal(jnp.full(batch, arrays.log_time), 2.0).to_event(len(batch))
        ),
    }


def _init_piecewise(arrays: SurvivalArrays, batch: tuple[int, ...]) -> dict:
    return {"log_baseline_hazard": jnp.full(batch + (arrays.at_risk.shape[1],), arrays.log_rate)}


def _init_weibull(arrays: SurvivalArrays, batch: tuple[int, ...]) -> dict:
    return {"log_weibull_shape": jnp.zeros(batch), "log_weibull_scale": jnp.full(batch, arrays.log_time)}


@dataclasses.dataclass(frozen=True)
class BaselineModel:
    """A baseline hazard: how its sites are sampled, its per-patient log-likelihood, its starting values."""

    sample: Callable
    log_likelihood: Callable
    init: Callable


#: Baseline name -> BaselineModel (sites, per-patient log-likelihood, starting values).
BASELINES: dict[str, BaselineModel] = {
    "piecewise": BaselineModel(_sample_piecewise, piecewise_log_likelihood, _init_piecewise),
    "weibull": BaselineModel(_sample_weibull, weibull_log_likelihood, _init_weibull),
}


def ph_init_values(arrays: SurvivalArrays, baseline: str, batch: tuple[int, ...] = ()) -> dict:
    """Starting values of the PH sites: HR 1, covariate coefficients 0, baseline at the crude rate."""
    out = {"log_hr": jnp.zeros(batch)}
    if arrays.z.shape[1]:
        out["coef"] = jnp.zeros(batch + (arrays.z.shape[1],))
    return out | BASELINES[check_baseline(baseline)].init(arrays, batch)


def check_baseline(baseline: str) -> str:
    if baseline not in BASELINES:
        raise ValueError(
            f"baseline={baseline!r} ({type(baseline).__name__}) is not valid; choose one of {', '.join(BASELINES)}"
        )
    return baseline


def ph_log_likelihood(
    arrays: SurvivalArrays,
    x: Float[Array, "... patients"],
    *,
    baseline: Baseline = "piecewise",
    exposure_prior_sd: float = 1.0,
) -> Float[Array, "..."]:
    """Sample the PH sites and return the PFS log-likelihood (call inside a numpyro model).

    Sites: ``log_hr`` (log hazard ratio per doubling of exposure), ``coef`` (standardised covariate
    coefficients, only with covariates) and the baseline's sites, each with the batch shape of ``x``
    minus its last axis.

    Parameters
    ----------
    arrays : SurvivalArrays
    x : array (..., patients)
        Centred log2 exposure.

    Returns
    -------
    array of the batch shape: the log-likelihood of each batch element.
    """
    batch = tuple(x.shape[:-1])
    log_hr = numpyro.sample(
        "log_hr", dist.Normal(jnp.zeros(batch), exposure_prior_sd).to_event(len(batch))
    )
    lp = log_hr[..., None] * x
    p = arrays.z.shape[1]
    if p:
        coef = numpyro.sample("coef", dist.Normal(jnp.zeros(batch + (p,)), 1.0).to_event(len(batch) + 1))
        lp = lp + jnp.einsum("...c,nc->...n", coef, arrays.z)
    model = BASELINES[check_baseline(baseline)]
    params = model.sample(arrays, batch)
    return jnp.sum(model.log_likelihood(arrays, lp, **params), axis=-1)


@dataclasses.dataclass(frozen=True)
class HazardRatio:
    """A hazard ratio with its interval (credible or confidence, at ``level``)."""

    label: str
    hr: float
    ci_low: float
    ci_high: float
    level: float

    @classmethod
    def from_log_draws(cls, label: str, draws: np.ndarray, level: float) -> "HazardRatio":
        draws = np.asarray(draws, dtype=float).reshape(-1)
        tail = (1.0 - level) / 2.0
        low, mid, high = np.quantile(draws, [tail, 0.5, 1.0 - tail])
        return cls(label, float(np.exp(mid)), float(np.exp(low)), float(np.exp(high)), level)

    @property
    def log_width(self) -> float:
        """Width of the interval on the log scale."""
        return float(np.log(self.ci_high) - np.log(self.ci_low))

    def to_dict(self) -> dict:
        from ..survival._result import json_float

        return {"hr": json_float(self.hr), "ci_low": json_float(self.ci_low), "ci_high": json_float(self.ci_high)}
