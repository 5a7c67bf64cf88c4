"""Kaplan-Meier survival at landmark times (e.g. PFS at 6 and 12 months), with intervals and numbers at risk."""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import pandas as pd

from ..data import DataTable
from ._kaplan_meier import CIMethod, kaplan_meier
from ._result import json_float, json_label

__all__ = ["LandmarkSurvival", "SurvivalAtResult", "survival_at"]


@dataclasses.dataclass(frozen=True)
class LandmarkSurvival:
    """Kaplan-Meier survival of one group at one time.

    ``survival``, ``ci_low`` and ``ci_high`` are NaN when ``time`` lies beyond the group's last observed
    time (not estimable); ``at_risk`` counts subjects with follow-up >= ``time``.
    """

    label: Hashable
    time: float
    survival: float
    ci_low: float
    ci_high: float
    at_risk: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": json_label(self.label),
            "time": self.time,
            "survival": json_float(self.survival),
            "ci_low": json_float(self.ci_low),
            "ci_high": json_float(self.ci_high),
            "at_risk": self.at_risk,
        }


@dataclasses.dataclass(frozen=True)
class SurvivalAtResult:
    """Survival at each landmark time for each group (group-major order)."""

    estimates: tuple[LandmarkSurvival, ...]
    group: str | None
    alpha: float
    ci: CIMethod

    def get(self, label: Hashable, time: float) -> LandmarkSurvival:
        for estimate in self.estimates:
            if (estimate.label == label or json_label(estimate.label) == label) and estimate.time == float(time):
                return estimate
        raise KeyError(f"no estimate for group {label!r} at time {time!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "analysis": "survival-at",
            "group": self.group,
            "alpha": self.alpha,
            "ci": self.ci,
            "estimates": [e.to_dict() for e in self.estimates],
        }


def survival_at(
    df: pd.DataFrame | DataTable,
    *,
    time: str,
    event: str,
    times: float | Sequence[float],
    group: str | None = None,
    groups: Sequence[Hashable] | None = None,
    alpha: float = 0.05,
    ci: CIMethod = "log-log",
    source: str | None = None,
    rows: Mapping[Hashable, int] | None = None,
) -> SurvivalAtResult:
    """Kaplan-Meier survival at given times with pointwise confidence intervals and numbers at risk.

    The estimate at t is the Kaplan-Meier step function at t (right-continuous: an event at exactly t
    counts). Intervals as in `kaplan_meier` (log-log by default). Beyond a group's last observed time the
    estimate is undefined and reported as NaN (``None`` in ``to_dict``), as R's ``summary.survfit`` does.

    Parameters
    ----------
    df, time, event, group, groups, alpha, ci, source, rows
        As in `kaplan_meier`.
    times : float or sequence of float
        Landmark times (>= 0), in the unit of the time column.

    Returns
    -------
    SurvivalAtResult
        One `LandmarkSurvival` per group and time.
    """
    km = kaplan_meier(
        df, time=time, event=event, group=group, groups=groups, alpha=alpha, ci=ci, source=source, rows=rows
    )
    estimates = []
    for curve in km.curves:
        survival, low, high = curve.survival_at(times)
        at_risk = curve.number_at_risk(times)
        for k, t in enumerate(_as_floats(times)):
            estimates.append(
                LandmarkSurvival(curve.label, t, float(survival[k]), float(low[k]), float(high[k]), int(at_risk[k]))
            )
    return SurvivalAtResult(estimates=tuple(estimates), group=group, alpha=alpha, ci=ci)


def _as_floats(times: float | Sequence[float]) -> list[float]:
    if isinstance(times, (int, float)):
        return [float(times)]
    return [float(t) for t in times]
