"""Kaplan-Meier estimates per group (lifelines' `KaplanMeierFitter`), medians with confidence intervals."""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from lifelines import KaplanMeierFitter
from lifelines.utils import qth_survival_time
from scipy import stats

from ..data import DataTable
from ._result import frozen_array, json_float, json_label
from ._validate import Where, group_labels, prepare_survival_data

__all__ = ["KaplanMeierCurve", "KaplanMeierResult", "kaplan_meier"]

CIMethod = Literal["log-log", "log", "plain"]
ALL = "all"  # label of the single curve when no group column is given


@dataclasses.dataclass(frozen=True, eq=False)
class KaplanMeierCurve:
    """The Kaplan-Meier estimate of one group.

    Attributes
    ----------
    label : hashable
        The group value (``"all"`` without a group column).
    n, events : int
        Subjects and events in the group.
    median, median_ci_low, median_ci_high : float
        Median survival time and its confidence interval, in the unit of the time column; ``inf`` where the
        curve (or the confidence band) does not fall to 0.5 ("not reached").
    max_time : float
        Largest observed time in the group; the estimate is undefined beyond it.
    timeline, survival, ci_low, ci_high, at_risk, censored : read-only arrays, shape (times,)
        The step function: at each distinct observed time (and 0), the survival estimate, the pointwise
        band, the number at risk just before that time and the number censored at it. The band is NaN
        where the estimate is 0.
    alpha : float
        1 - confidence level of every interval.
    ci : {"log-log", "log", "plain"}
        Transform of the pointwise intervals.
    """

    label: Hashable
    n: int
    events: int
    median: float
    median_ci_low: float
    median_ci_high: float
    max_time: float
    timeline: np.ndarray
    survival: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    at_risk: np.ndarray
    censored: np.ndarray
    alpha: float
    ci: CIMethod

    def survival_at(self, times: float | Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Survival and its pointwise band at ``times`` (NaN beyond ``max_time``): three arrays."""
        times = _times(times)
        index = np.searchsorted(self.timeline, times, side="right") - 1
        beyond = times > self.max_time
        out = []
        for values in (self.survival, self.ci_low, self.ci_high):
            picked = values[index].copy()
            picked[beyond] = np.nan
            out.append(picked)
        return out[0], out[1], out[2]

    def number_at_risk(self, times: float | Sequence[float]) -> np.ndarray:
        """Number of subjects with time >= t (still under observation just before t), for each t."""
        times = _times(times)
        index = np.searchsorted(self.timeline, times, side="left")
        padded = np.append(self.at_risk, 0)
        return padded[index].astype(int)

    def to_dict(self) -> dict[str, Any]:
        """Summary numbers (not the curve), JSON-ready: ``None`` means not reached / not estimable."""
        return {
            "label": json_label(self.label),
            "n": self.n,
            "events": self.events,
            "median": json_float(self.median),
            "median_ci_low": json_float(self.median_ci_low),
            "median_ci_high": json_float(self.median_ci_high),
        }


@dataclasses.dataclass(frozen=True, eq=False)
class KaplanMeierResult:
    """Kaplan-Meier curves, one per group, in analysis order; index it by group label."""

    curves: tuple[KaplanMeierCurve, ...]
    group: str | None
    alpha: float
    ci: CIMethod

    def __getitem__(self, label: Hashable) -> KaplanMeierCurve:
        for curve in self.curves:
            if curve.label == label or json_label(curve.label) == label:
                return curve
        raise KeyError(f"no group {label!r}; groups: {[c.label for c in self.curves]!r}")

    @property
    def labels(self) -> tuple[Hashable, ...]:
        return tuple(c.label for c in self.curves)

    def to_dict(self) -> dict[str, Any]:
        return {
            "analysis": "kaplan-meier",
            "group": self.group,
            "alpha": self.alpha,
            "ci": self.ci,
            "curves": {json_label(c.label): c.to_dict() for c in self.curves},
        }


def kaplan_meier(
    df: pd.DataFrame | DataTable,
    *,
    time: str,
    event: str,
    group: str | None = None,
    groups: Sequence[Hashable] | None = None,
    alpha: float = 0.05,
    ci: CIMethod = "log-log",
    source: str | None = None,
    rows: Mapping[Hashable, int] | None = None,
) -> KaplanMeierResult:
    """Kaplan-Meier survival curves with medians and their confidence intervals.

    The pointwise intervals default to the log-log transform (lifelines' exponential Greenwood interval,
    the default of SAS PROC LIFETEST and R's ``survfit(conf.type="log-log")``, used by most oncology
    trials). The interval of the median is Brookmeyer-Crowley: the first times at which the lower and upper
    pointwise bands fall to 0.5 or below (what R reports, and lifelines'
    ``median_survival_times(kmf.confidence_interval_)``); ``inf`` if a band never does ("not reached").
    The median is the first time at which the estimate is <= 0.5 (lifelines' convention; R takes the
    midpoint when the curve sits exactly at 0.5 over an interval).

    Main arguments
    --------------
    df : pandas.DataFrame
        One row per subject.
    time, event : str
        Column of follow-up times (>= 0, any unit) and of the event indicator (1 event, 0 censored).
    group : str, optional
        Column whose values define the curves; one curve (label ``"all"``) without it.

    Other arguments
    ---------------
    groups : sequence, optional
        Group labels in the order wanted (default: sorted values); every row must belong to one.
    alpha : float
        1 - confidence level (0.05 gives 95% intervals).
    ci : {"log-log", "log", "plain"}
        Transform of the pointwise interval: log-log (default), log (R's default) or plain (linear,
        clipped to [0, 1]), all from Greenwood's variance. The band is NaN where the estimate is 0.
    source, rows : optional
        File name and index-to-line mapping used in error messages (default: those of a `carkin.data.DataTable`).

    Returns
    -------
    KaplanMeierResult
        One `KaplanMeierCurve` per group.

    Raises
    ------
    carkin.errors.DataError
        Missing column, missing/non-numeric/negative time, non-binary event, missing group.
    ValueError
        Unknown ``ci`` or ``alpha`` outside (0, 1).

    Examples
    --------
    >>> km = kaplan_meier(df, time="PFS_MONTHS", event="PFS_EVENT", group="ARM")
    >>> km["ide-cel"].median
    """
    check_ci(ci)
    check_alpha(alpha)
    clean, where = prepare_survival_data(df, time=time, event=event, group=group, source=source, rows=rows)
    curves = tuple(
        curve_from_fitter(label, fitter, ci)
        for label, fitter in fit_groups(
            clean, time=time, event=event, group=group, groups=groups, alpha=alpha, where=where
        )
    )
    return KaplanMeierResult(curves=curves, group=group, alpha=alpha, ci=ci)


def fit_groups(
    clean: pd.DataFrame,
    *,
    time: str,
    event: str,
    group: str | None,
    groups: Sequence[Hashable] | None,
    alpha: float,
    where: Where,
    reverse: bool = False,
) -> list[tuple[Hashable, KaplanMeierFitter]]:
    """A fitted `KaplanMeierFitter` per group of a checked table (``reverse`` swaps events and censorings)."""
    if group is None:
        parts = [(ALL, clean)]
    else:
        labels = group_labels(clean[group], groups, group, where)
        parts = [(label, clean[clean[group] == label]) for label in labels]
    fitted = []
    for label, part in parts:
        observed = 1 - part[event] if reverse else part[event]
        fitted.append((label, KaplanMeierFitter(alpha=alpha).fit(part[time], observed, label=json_label(label))))
    return fitted


def curve_from_fitter(label: Hashable, fitter: KaplanMeierFitter, ci: CIMethod) -> KaplanMeierCurve:
    table = fitter.event_table
    survival = fitter.survival_function_.iloc[:, 0].to_numpy()
    low, high = _BANDS[ci](fitter, survival)
    zero = survival <= 0
    low, high = np.where(zero, np.nan, low), np.where(zero, np.nan, high)
    timeline = fitter.survival_function_.index.to_numpy(dtype=float)
    return KaplanMeierCurve(
        label=label,
        n=int(table["entrance"].sum()),
        events=int(table["observed"].sum()),
        median=band_median(timeline, survival),
        median_ci_low=band_median(timeline, low),
        median_ci_high=band_median(timeline, high),
        max_time=float(fitter.durations.max()),
        timeline=frozen_array(timeline),
        survival=frozen_array(survival),
        ci_low=frozen_array(low),
        ci_high=frozen_array(high),
        at_risk=frozen_array(table["at_risk"].to_numpy()),
        censored=frozen_array(table["censored"].to_numpy()),
        alpha=float(fitter.alpha),
        ci=ci,
    )


def band_median(timeline: np.ndarray, values: np.ndarray) -> float:
    """First time at which ``values`` (a survival curve or band) is <= 0.5; inf if never (NaN tail dropped)."""
    finite = ~np.isnan(values)
    return float(qth_survival_time(0.5, pd.Series(values[finite], index=timeline[finite])))


def greenwood(fitter: KaplanMeierFitter) -> np.ndarray:
    """Greenwood's sum, sum over event times <= t of d / (n (n - d)), on the fitter's timeline."""
    table = fitter.event_table
    at_risk = table["at_risk"].to_numpy(dtype=float)
    deaths = table["observed"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(deaths > 0, deaths / (at_risk * (at_risk - deaths)), 0.0)
    return np.cumsum(terms)


def _log_log_band(fitter: KaplanMeierFitter, survival: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # lifelines' own interval (exponential Greenwood = log(-log S)); it writes 1.0 where S is 0, which the
    # caller masks to NaN.
    band = fitter.confidence_interval_survival_function_
    return band.iloc[:, 0].to_numpy(), band.iloc[:, 1].to_numpy()


def _log_band(fitter: KaplanMeierFitter, survival: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    half = _z(fitter.alpha) * np.sqrt(greenwood(fitter))
    with np.errstate(invalid="ignore"):
        return survival * np.exp(-half), np.minimum(survival * np.exp(half), 1.0)


def _plain_band(fitter: KaplanMeierFitter, survival: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    half = _z(fitter.alpha) * survival * np.sqrt(greenwood(fitter))
    with np.errstate(invalid="ignore"):
        return np.clip(survival - half, 0.0, 1.0), np.clip(survival + half, 0.0, 1.0)


_BANDS = {"log-log": _log_log_band, "log": _log_band, "plain": _plain_band}


def _z(alpha: float) -> float:
    return float(stats.norm.ppf(1 - alpha / 2))


def check_ci(ci: str) -> None:
    if ci not in _BANDS:
        raise ValueError(f"ci={ci!r} ({type(ci).__name__}) is not a known interval; choose one of {sorted(_BANDS)}")


def check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha!r} must be between 0 and 1 (0.05 gives 95% intervals)")


def _times(times: float | Sequence[float]) -> np.ndarray:
    array = np.atleast_1d(np.asarray(times, dtype=float))
    if np.any(np.isnan(array)) or np.any(array < 0):
        raise ValueError(f"times={list(array)!r} must be numbers >= 0")
    return array
