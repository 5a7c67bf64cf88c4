"""Cox regression with Breslow's approximation for tied event times (lifelines fits Efron's only).

The Breslow partial log-likelihood of one stratum, over its distinct event times t with d_t events in D(t)
and risk set R(t) = {j : T_j >= t}::

    l(beta) = sum_t [ sum_{i in D(t)} x_i' beta  -  d_t log sum_{j in R(t)} exp(x_j' beta) ]

summed over strata, maximised by Newton-Raphson with step halving. The model-based covariance is the
inverse information; the robust one is Lin & Wei's (1989) sandwich (`_cox_residuals`), as R's
``coxph(..., ties="breslow", robust=TRUE)`` computes.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import ConvergenceError
from ._cox_residuals import robust_covariance, score_residuals

_MAX_ITER = 50
_TOL = 1e-10


@dataclasses.dataclass(frozen=True)
class BreslowFit:
    """Estimates of a Breslow fit: coefficients, model-based and robust covariance, final log-likelihood."""

    beta: np.ndarray
    covariance: np.ndarray
    robust_covariance: np.ndarray
    log_likelihood: float
    iterations: int


def fit_breslow(times: np.ndarray, events: np.ndarray, x: np.ndarray, strata: np.ndarray) -> BreslowFit:
    """Maximise the Breslow partial likelihood.

    Parameters
    ----------
    times : array, shape (subjects,)
    events : array of 0/1, shape (subjects,)
    x : array, shape (subjects, covariates)
    strata : array of int, shape (subjects,)
        Stratum code of each subject (all zeros without strata).
    """
    centred = x - x.mean(axis=0)  # centring changes no coefficient, only the numerics
    blocks = [_Stratum.build(times[s], events[s], centred[s]) for s in (strata == code for code in np.unique(strata))]
    beta = np.zeros(x.shape[1])
    loglik, score, info = _totals(blocks, beta)
    for iteration in range(1, _MAX_ITER + 1):  # noqa: B007 (read after the loop: the steps taken)
        step = np.linalg.solve(info, score)
        for _ in range(30):
            candidate = beta + step
            new_loglik, new_score, new_info = _totals(blocks, candidate)
            if np.isfinite(new_loglik) and new_loglik >= loglik - 1e-12:
                break
            step = step / 2
        else:
            raise ConvergenceError(
                "the Breslow Cox fit could not increase the partial likelihood; check for separation"
            )
        converged = abs(new_loglik - loglik) < _TOL * (1 + abs(loglik)) and np.max(np.abs(step)) < 1e-7
        beta, loglik, score, info = candidate, new_loglik, new_score, new_info
        if converged:
            break
    else:
        raise ConvergenceError(
            f"the Breslow Cox fit did not converge in {_MAX_ITER} Newton steps; check for separation"
        )
    covariance = np.linalg.inv(info)
    residuals = score_residuals(times, events, x, strata, beta, "breslow")
    return BreslowFit(beta, covariance, robust_covariance(residuals, covariance), float(loglik), iteration)


def _totals(blocks, beta):
    parts = [b.derivatives(beta) for b in blocks]
    return sum(p[0] for p in parts), sum(p[1] for p in parts), sum(p[2] for p in parts)


@dataclasses.dataclass(frozen=True)
class _Stratum:
    """One stratum sorted by descending time, with its distinct event times located in that order."""

    x: np.ndarray  # (n, p), descending time
    event_times: np.ndarray  # distinct event times, ascending
    last_at_risk: np.ndarray  # for each event time, the last sorted position with time >= t
    deaths: np.ndarray  # events at each event time
    sum_x_events: np.ndarray  # (event times, p): sum of x over those events

    @classmethod
    def build(cls, times, events, x):
        order = np.argsort(-times, kind="stable")
        times, events, x = times[order], events[order], x[order]
        event_times = np.unique(times[events == 1])
        # times descending: subjects with time >= t are the positions before searchsorted(-times, -t, "right")
        last = np.searchsorted(-times, -event_times, side="right") - 1
        where = np.searchsorted(event_times, times[events == 1])
        deaths = np.bincount(where, minlength=event_times.size).astype(float)
        sum_x = np.zeros((event_times.size, x.shape[1]))
        np.add.at(sum_x, where, x[events == 1])
        return cls(x, event_times, last, deaths, sum_x)

    def derivatives(self, beta):
        if self.event_times.size == 0:
            p = self.x.shape[1]
            return 0.0, np.zeros(p), np.zeros((p, p))
        w = np.exp(self.x @ beta)
        s0 = np.cumsum(w)[self.last_at_risk]
        s1 = np.cumsum(w[:, None] * self.x, axis=0)[self.last_at_risk]
        s2 = np.cumsum(w[:, None, None] * self.x[:, :, None] * self.x[:, None, :], axis=0)[self.last_at_risk]
        xbar = s1 / s0[:, None]
        loglik = float(np.sum(self.sum_x_events @ beta) - np.sum(self.deaths * np.log(s0)))
        score = (self.sum_x_events - self.deaths[:, None] * xbar).sum(axis=0)
        info = np.einsum("k,kij->ij", self.deaths, s2 / s0[:, None, None] - xbar[:, :, None] * xbar[:, None, :])
        return loglik, score, info
