"""Cox score residuals and the Lin-Wei robust (sandwich) covariance, for Breslow and Efron ties.

lifelines' own sandwich ignores tied event times (its score residuals assume none; lifelines 0.15 release
note: "This does not handle ties"), so with ties its robust SEs differ from R's. These residuals follow
Therneau & Grambsch (2000, section 3.7 and R's ``coxscore``). For one stratum, at each distinct event time
t_k with d_k deaths D_k, risk-set sums S0, S1 and death sums e0, e1 (weights w = exp(x' beta)), Efron's
approximation uses the d_k partial risk sets r = 0..d_k-1 with

    den_r = S0 - (r/d_k) e0,     a_r = (S1 - (r/d_k) e1) / den_r
    h_k   = sum_r 1/den_r                   (baseline hazard increment)
    m1_k  = sum_r a_r / den_r               (hazard-weighted mean for subjects still at risk)
    g_k   = sum_r (1 - r/d_k) / den_r,  m2_k = sum_r (1 - r/d_k) a_r / den_r   (for the tied deaths)
    m3_k  = mean_r a_r                      (the mean a death is compared with)

and the score residual of subject i is

    L_i = delta_i (x_i - m3_k(i)) - w_i sum_{t_k before i leaves} (x_i h_k - m1_k) - delta_i w_i (x_i g_k(i) - m2_k(i))

where a death leaves just before its own time (handled by the last term) and a censored subject at its
own time. Breslow's approximation is the case d_k = 1 term repeated: den_r = S0 for every r.
The robust covariance is D'D with dfbeta residuals D = L I^-1 (no clustering).
"""

from __future__ import annotations

from typing import Literal

import numpy as np


def score_residuals(
    times: np.ndarray,
    events: np.ndarray,
    x: np.ndarray,
    strata: np.ndarray,
    beta: np.ndarray,
    ties: Literal["efron", "breslow"],
) -> np.ndarray:
    """Score residuals, shape (subjects, covariates), in input order.

    Parameters
    ----------
    times : array, shape (subjects,)
    events : array of 0/1, shape (subjects,)
    x : array, shape (subjects, covariates)
    strata : array of int, shape (subjects,)
    beta : array, shape (covariates,)
    ties : {"efron", "breslow"}
    """
    x = x - x.mean(axis=0)  # residuals do not depend on centring; exp() stays in range
    out = np.zeros_like(x, dtype=float)
    for code in np.unique(strata):
        rows = np.flatnonzero(strata == code)
        out[rows] = _stratum_residuals(times[rows], events[rows].astype(bool), x[rows], beta, ties == "efron")
    return out


def robust_covariance(residuals: np.ndarray, covariance: np.ndarray) -> np.ndarray:
    """Lin-Wei sandwich: D'D with D = residuals @ covariance (the model-based inverse information)."""
    dfbeta = residuals @ covariance
    return dfbeta.T @ dfbeta


def _stratum_residuals(times, died, x, beta, efron):
    n, p = x.shape
    w = np.exp(x @ beta)
    event_times = np.unique(times[died])
    if event_times.size == 0:
        return np.zeros((n, p))
    order = np.argsort(times, kind="stable")
    sorted_times = times[order]
    # risk-set sums S0, S1 at each event time: subjects with time >= t (reverse cumulative sums)
    tail_w = np.cumsum(w[order][::-1])[::-1]
    tail_wx = np.cumsum((w[:, None] * x)[order][::-1], axis=0)[::-1]
    first = np.searchsorted(sorted_times, event_times, side="left")
    s0, s1 = tail_w[first], tail_wx[first]
    # death sums at each event time
    k_death = np.searchsorted(event_times, times[died])
    deaths = np.bincount(k_death, minlength=event_times.size).astype(float)
    e0 = np.bincount(k_death, weights=w[died], minlength=event_times.size)
    e1 = np.zeros((event_times.size, p))
    np.add.at(e1, k_death, w[died, None] * x[died])

    h = np.zeros(event_times.size)
    m1 = np.zeros((event_times.size, p))
    g = np.zeros(event_times.size)
    m2 = np.zeros((event_times.size, p))
    m3 = np.zeros((event_times.size, p))
    for r in range(int(deaths.max())):
        active = deaths > r
        frac = np.where(active, r / deaths, 0.0) if efron else np.zeros_like(deaths)
        den = s0 - frac * e0
        a = (s1 - frac[:, None] * e1) / den[:, None]
        on = active.astype(float)
        h += on / den
        m1 += on[:, None] * a / den[:, None]
        g += on * (1 - frac) / den
        m2 += on[:, None] * (1 - frac)[:, None] * a / den[:, None]
        m3 += on[:, None] * a / deaths[:, None]

    cum_h = np.concatenate([[0.0], np.cumsum(h)])
    cum_m1 = np.concatenate([np.zeros((1, p)), np.cumsum(m1, axis=0)])
    # event times a subject is fully at risk for: <= own time if censored, < own time if died
    k_end = np.where(
        died, np.searchsorted(event_times, times, side="left"), np.searchsorted(event_times, times, side="right")
    )
    residuals = -w[:, None] * (x * cum_h[k_end][:, None] - cum_m1[k_end])
    own = np.flatnonzero(died)
    k = k_death
    residuals[own] += (x[own] - m3[k]) - w[own, None] * (x[own] * g[k][:, None] - m2[k])
    return residuals
