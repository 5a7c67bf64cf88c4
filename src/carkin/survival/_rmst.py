"""Restricted mean survival time (RMST) with its standard error, and the difference between two groups."""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from lifelines import KaplanMeierFitter
from lifelines.utils import restricted_mean_survival_time
from scipy import stats

from ..data import DataTable
from ._kaplan_meier import check_alpha, fit_groups
from ._result import json_float, json_label
from ._validate import Where, prepare_survival_data

__all__ = ["RMSTDifference", "RMSTEstimate", "RMSTResult", "rmst", "rmst_difference"]


@dataclasses.dataclass(frozen=True)
class RMSTEstimate:
    """Restricted mean survival time of one group up to ``tau``, its standard error and normal interval."""

    label: Hashable
    tau: float
    rmst: float
    se: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": json_label(self.label),
            "tau": self.tau,
            "rmst": json_float(self.rmst),
            "se": json_float(self.se),
            "ci_low": json_float(self.ci_low),
            "ci_high": json_float(self.ci_high),
        }


@dataclasses.dataclass(frozen=True)
class RMSTResult:
    """RMST per group, in analysis order."""

    estimates: tuple[RMSTEstimate, ...]
    group: str | None
    alpha: float

    def __getitem__(self, label: Hashable) -> RMSTEstimate:
        for estimate in self.estimates:
            if estimate.label == label or json_label(estimate.label) == label:
                return estimate
        raise KeyError(f"no group {label!r}; groups: {[e.label for e in self.estimates]!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "analysis": "rmst",
            "group": self.group,
            "alpha": self.alpha,
            "estimates": {json_label(e.label): e.to_dict() for e in self.estimates},
        }


@dataclasses.dataclass(frozen=True)
class RMSTDifference:
    """RMST of the first group minus that of the second, with standard error, interval and Wald test."""

    first: RMSTEstimate
    second: RMSTEstimate
    difference: float
    se: float
    ci_low: float
    ci_high: float
    z: float
    p_value: float
    alpha: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "analysis": "rmst-difference",
            "tau": self.first.tau,
            "alpha": self.alpha,
            "first": self.first.to_dict(),
            "second": self.second.to_dict(),
            "difference": json_float(self.difference),
            "se": json_float(self.se),
            "ci_low": json_float(self.ci_low),
            "ci_high": json_float(self.ci_high),
            "z": json_float(self.z),
            "p_value": json_float(self.p_value),
        }


def rmst(
    df: pd.DataFrame | DataTable,
    *,
    time: str,
    event: str,
    tau: float,
    group: str | None = None,
    groups: Sequence[Hashable] | None = None,
    alpha: float = 0.05,
    source: str | None = None,
    rows: Mapping[Hashable, int] | None = None,
) -> RMSTResult:
    """Restricted mean survival time, the area under the Kaplan-Meier curve from 0 to ``tau``.

    The mean comes from lifelines (``restricted_mean_survival_time``, an exact step-function integral).
    Its variance is the standard Greenwood-type estimate (Klein & Moeschberger 2003, section 4.5; what R's
    ``print(survfit(...), rmean=tau)`` reports)::

        Var = sum over event times t_i <= tau of  A_i^2 d_i / (Y_i (Y_i - d_i)),   A_i = integral_{t_i}^{tau} S(u) du

    with d_i events and Y_i at risk at t_i (a term with Y_i = d_i has A_i = 0 and is dropped). The interval
    is RMST +- z_{1-alpha/2} SE. (lifelines' ``return_variance=True`` gives the variance of min(T, tau)
    in the population, not the variance of the estimate.)

    Parameters
    ----------
    df, time, event, group, groups, alpha, source, rows
        As in `kaplan_meier`.
    tau : float
        Restriction time (> 0), in the unit of the time column. It must not exceed any group's largest
        observed time, where the Kaplan-Meier curve ends (unless the curve has fallen to 0 there).

    Returns
    -------
    RMSTResult
        One `RMSTEstimate` per group.

    Raises
    ------
    ValueError
        ``tau`` <= 0 or beyond a group's follow-up; and the data errors of `kaplan_meier`.
    """
    check_alpha(alpha)
    clean, where = prepare_survival_data(df, time=time, event=event, group=group, source=source, rows=rows)
    return RMSTResult(_estimates(clean, where, time, event, tau, group, groups, alpha), group=group, alpha=alpha)


def rmst_difference(
    df: pd.DataFrame | DataTable,
    *,
    time: str,
    event: str,
    group: str,
    tau: float,
    groups: Sequence[Hashable] | None = None,
    alpha: float = 0.05,
    source: str | None = None,
    rows: Mapping[Hashable, int] | None = None,
) -> RMSTDifference:
    """Difference in restricted mean survival time, first group minus second, up to ``tau``.

    The two estimates are independent, so SE = sqrt(SE_1^2 + SE_2^2); interval difference +- z SE and a
    two-sided Wald p-value. ``groups=(treatment, control)`` fixes the order (default: sorted values).

    Raises
    ------
    ValueError
        If the group column does not hold exactly two groups; and the errors of `rmst`.
    """
    check_alpha(alpha)
    clean, where = prepare_survival_data(df, time=time, event=event, group=group, source=source, rows=rows)
    estimates = _estimates(clean, where, time, event, tau, group, groups, alpha)
    if len(estimates) != 2:
        raise where.fail(
            group,
            f"the RMST difference needs exactly two groups, found {len(estimates)}: {[e.label for e in estimates]!r}",
        )
    first, second = estimates
    difference = first.rmst - second.rmst
    se = float(np.hypot(first.se, second.se))
    z_crit = stats.norm.ppf(1 - alpha / 2)
    z = difference / se if se > 0 else np.nan
    p_value = float(2 * stats.norm.sf(abs(z))) if se > 0 else np.nan
    return RMSTDifference(
        first=first,
        second=second,
        difference=difference,
        se=se,
        ci_low=difference - z_crit * se,
        ci_high=difference + z_crit * se,
        z=float(z),
        p_value=p_value,
        alpha=alpha,
    )


def _estimates(
    clean: pd.DataFrame,
    where: Where,
    time: str,
    event: str,
    tau: float,
    group: str | None,
    groups: Sequence[Hashable] | None,
    alpha: float,
) -> tuple[RMSTEstimate, ...]:
    tau = float(tau)
    if not tau > 0:
        raise ValueError(f"tau={tau!r} must be > 0")
    z_crit = stats.norm.ppf(1 - alpha / 2)
    estimates = []
    for label, fitter in fit_groups(
        clean, time=time, event=event, group=group, groups=groups, alpha=alpha, where=where
    ):
        last = float(fitter.durations.max())
        if tau > last and fitter.survival_function_.iloc[-1, 0] > 0:
            raise where.fail(
                time,
                f"tau={tau:g} is beyond the last observed time {last:g} of group {json_label(label)!r}, where the "
                "Kaplan-Meier curve ends (censored); choose tau <= the shortest group's follow-up",
            )
        mean = float(restricted_mean_survival_time(fitter, t=tau))
        se = float(np.sqrt(rmst_variance(fitter, tau)))
        estimates.append(RMSTEstimate(label, tau, mean, se, mean - z_crit * se, mean + z_crit * se))
    return tuple(estimates)


def rmst_variance(fitter: KaplanMeierFitter, tau: float) -> float:
    """Greenwood-type variance of the Kaplan-Meier RMST up to ``tau`` (formula in `rmst`)."""
    table = fitter.event_table
    times = table.index.to_numpy(dtype=float)
    survival = fitter.survival_function_.iloc[:, 0].to_numpy()
    keep = times <= tau
    times, survival = times[keep], survival[keep]
    at_risk = table["at_risk"].to_numpy(dtype=float)[keep]
    deaths = table["observed"].to_numpy(dtype=float)[keep]
    widths = np.diff(np.append(times, tau))
    # area under S from each knot to tau
    area = np.cumsum((survival * widths)[::-1])[::-1]
    informative = (deaths > 0) & (at_risk > deaths)
    terms = (
        area[informative] ** 2
        * deaths[informative]
        / (at_risk[informative] * (at_risk[informative] - deaths[informative]))
    )
    return float(terms.sum())
