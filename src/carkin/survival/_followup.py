"""Median follow-up by the reverse Kaplan-Meier method (events and censorings swapped)."""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping
from typing import Any

import pandas as pd

from ..data import DataTable
from ._kaplan_meier import check_alpha, curve_from_fitter, fit_groups
from ._result import json_float
from ._validate import prepare_survival_data

__all__ = ["FollowUp", "median_followup"]


@dataclasses.dataclass(frozen=True)
class FollowUp:
    """Median potential follow-up (reverse Kaplan-Meier) with its interval, and the range of observed times."""

    median: float
    ci_low: float
    ci_high: float
    min: float
    max: float
    n: int
    alpha: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "median": json_float(self.median),
            "ci_low": json_float(self.ci_low),
            "ci_high": json_float(self.ci_high),
            "min": json_float(self.min),
            "max": json_float(self.max),
            "n": self.n,
        }


def median_followup(
    df: pd.DataFrame | DataTable,
    *,
    time: str,
    event: str,
    alpha: float = 0.05,
    source: str | None = None,
    rows: Mapping[Hashable, int] | None = None,
) -> FollowUp:
    """Median follow-up of all subjects by the reverse Kaplan-Meier method (Schemper & Smith 1996).

    Censorings become the events and events the censorings, so that an event stops follow-up the way a
    censoring stops observation of the event. The median of that curve, with the log-log Brookmeyer-Crowley
    interval of `kaplan_meier`, is the median potential follow-up; ``inf`` where not reached. ``min`` and
    ``max`` give the range of observed times, as trial reports do ("18.6 months, range 0.4-35.4").

    Parameters
    ----------
    df, time, event, alpha, source, rows
        As in `kaplan_meier`.
    """
    check_alpha(alpha)
    clean, where = prepare_survival_data(df, time=time, event=event, source=source, rows=rows)
    ((label, fitter),) = fit_groups(
        clean, time=time, event=event, group=None, groups=None, alpha=alpha, where=where, reverse=True
    )
    curve = curve_from_fitter(label, fitter, "log-log")
    return FollowUp(
        median=curve.median,
        ci_low=curve.median_ci_low,
        ci_high=curve.median_ci_high,
        min=float(clean[time].min()),
        max=float(clean[time].max()),
        n=len(clean),
        alpha=alpha,
    )
