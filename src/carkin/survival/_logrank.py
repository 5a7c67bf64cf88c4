"""Log-rank tests: two or more groups, stratified, and the test for trend across ordered groups.

lifelines' ``multivariate_logrank_test`` returns only the statistic, and lifelines has no stratified or
trend test, so the observed-minus-expected vector and its covariance are computed here, per stratum, with
the textbook formulas (Collett, Modelling Survival Data in Medical Research, 3rd ed., 2.6 and 3.x; R's
``survdiff``)::

    at each distinct event time t, with n_jt at risk and d_jt events in group j, n_t and d_t in total:
    E_j   = sum_t d_t n_jt / n_t
    V_jk  = sum_t d_t (n_t - d_t) / (n_t - 1) * (n_jt / n_t) (delta_jk - n_kt / n_t)

A stratified test sums O - E and V over strata before forming the statistic.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..data import DataTable
from ._result import frozen_array, json_float, json_label
from ._validate import Where, as_list, group_labels, prepare_survival_data, strata_codes

__all__ = ["LogRankGroup", "LogRankResult", "LogRankTrendResult", "logrank_test", "logrank_trend_test"]


@dataclasses.dataclass(frozen=True)
class LogRankGroup:
    """Subjects, observed and expected events of one group (expected under equal hazards, summed over strata)."""

    label: Hashable
    n: int
    observed: float
    expected: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": json_label(self.label),
            "n": self.n,
            "observed": self.observed,
            "expected": json_float(self.expected),
        }


@dataclasses.dataclass(frozen=True, eq=False)
class LogRankResult:
    """Result of `logrank_test`.

    Attributes
    ----------
    statistic : float
        Chi-square statistic, (O - E)' V^- (O - E) over the first k - 1 groups.
    df : int
        Degrees of freedom (k - 1 for k groups, less if V is singular).
    p_value : float
        Two-sided p-value (upper chi-square tail).
    z : float or None
        Two groups only: (O_1 - E_1) / sqrt(V_11) for the first group (``groups[0]``); negative when the
        first group has fewer events than expected, i.e. a hazard ratio below 1 against the second. z**2
        equals ``statistic``. None for more than two groups.
    groups : tuple of LogRankGroup
        Per group, in analysis order.
    variance : array, shape (groups, groups)
        Covariance matrix of O - E (read-only).
    group, strata, n_strata
        Group column, strata columns, and the number of strata (1 without strata).
    """

    statistic: float
    df: int
    p_value: float
    z: float | None
    groups: tuple[LogRankGroup, ...]
    variance: np.ndarray
    group: str
    strata: tuple[str, ...]
    n_strata: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "analysis": "log-rank",
            "group": self.group,
            "strata": list(self.strata),
            "n_strata": self.n_strata,
            "statistic": json_float(self.statistic),
            "df": self.df,
            "p_value": json_float(self.p_value),
            "z": None if self.z is None else json_float(self.z),
            "groups": [g.to_dict() for g in self.groups],
        }


@dataclasses.dataclass(frozen=True, eq=False)
class LogRankTrendResult:
    """Result of `logrank_trend_test`.

    Attributes
    ----------
    u : float
        sum_j w_j (O_j - E_j) with the group scores w.
    variance : float
        w' V w.
    z : float
        u / sqrt(variance): positive when the hazard rises with the score.
    statistic : float
        z**2, chi-square with 1 degree of freedom.
    p_value : float
        Two-sided p-value.
    scores : tuple of float
        The scores, in group order.
    groups : tuple of LogRankGroup
    group, strata, n_strata
        As in `LogRankResult`.
    """

    u: float
    variance: float
    z: float
    statistic: float
    p_value: float
    scores: tuple[float, ...]
    groups: tuple[LogRankGroup, ...]
    group: str
    strata: tuple[str, ...]
    n_strata: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "analysis": "log-rank-trend",
            "group": self.group,
            "strata": list(self.strata),
            "n_strata": self.n_strata,
            "u": json_float(self.u),
            "variance": json_float(self.variance),
            "z": json_float(self.z),
            "statistic": json_float(self.statistic),
            "df": 1,
            "p_value": json_float(self.p_value),
            "scores": list(self.scores),
            "groups": [g.to_dict() for g in self.groups],
        }


def logrank_test(
    df: pd.DataFrame | DataTable,
    *,
    time: str,
    event: str,
    group: str,
    strata: str | Sequence[str] | None = None,
    groups: Sequence[Hashable] | None = None,
    source: str | None = None,
    rows: Mapping[Hashable, int] | None = None,
) -> LogRankResult:
    """Log-rank test of equal hazards across two or more groups, optionally stratified.

    With strata, O - E and its covariance V are computed within each stratum (the cross-classification
    of the strata columns) and summed; the statistic is then (sum O-E)' (sum V)^- (sum O-E), which for
    two groups is (sum O_1 - E_1)^2 / sum V_11. A stratum holding only one group adds nothing.

    Main arguments
    --------------
    df : pandas.DataFrame
        One row per subject.
    time, event : str
        Follow-up time (>= 0) and event indicator (1 event, 0 censored) columns.
    group : str
        Column whose values define the groups (at least two).
    strata : str or sequence of str, optional
        Stratification column(s).

    Other arguments
    ---------------
    groups : sequence, optional
        Group order (default: sorted values). For two groups the signed ``z`` refers to ``groups[0]``, so
        pass ``groups=(treatment, control)``.
    source, rows : optional
        File name and index-to-line mapping for error messages (default: those of a `carkin.data.DataTable`).

    Returns
    -------
    LogRankResult

    Raises
    ------
    carkin.errors.DataError
        Fewer than two groups, no events at all, and the data errors of `kaplan_meier`. A group without
        events is allowed (the test is still defined).
    """
    parts = _prepare(df, time, event, group, strata, groups, source, rows)
    n, observed, expected, variance, n_strata, labels = parts
    k = len(labels)
    diff = observed - expected
    reduced = variance[:-1, :-1]
    statistic = float(diff[:-1] @ np.linalg.pinv(reduced) @ diff[:-1])
    dof = int(np.linalg.matrix_rank(reduced))
    z = float(diff[0] / np.sqrt(variance[0, 0])) if k == 2 else None
    return LogRankResult(
        statistic=statistic,
        df=dof,
        p_value=float(stats.chi2.sf(statistic, dof)),
        z=z,
        groups=_groups(labels, n, observed, expected),
        variance=frozen_array(variance),
        group=group,
        strata=tuple(as_list(strata)),
        n_strata=n_strata,
    )


def logrank_trend_test(
    df: pd.DataFrame | DataTable,
    *,
    time: str,
    event: str,
    group: str,
    scores: Sequence[float] | None = None,
    groups: Sequence[Hashable] | None = None,
    strata: str | Sequence[str] | None = None,
    source: str | None = None,
    rows: Mapping[Hashable, int] | None = None,
) -> LogRankTrendResult:
    """Log-rank test for trend across ordered groups (e.g. exposure quartiles); lifelines has none.

    U = sum_j w_j (O_j - E_j) and Var(U) = w' V w with the full covariance V of O - E (summed over strata
    when stratified); Z = U / sqrt(Var(U)), chi-square = Z^2 on 1 degree of freedom (Collett 2015, 2.8).
    Z > 0 means more events than expected in the high-score groups (hazard rising with the score).

    Parameters
    ----------
    df, time, event, group, strata, source, rows
        As in `logrank_test`.
    groups : sequence, optional
        Group order (default: sorted values, which suits quartiles coded 1-4).
    scores : sequence of float, optional
        One score per group in ``groups`` order; default 1, 2, ..., k. For numeric groups the values
        themselves are a natural choice (``scores=groups``).

    Returns
    -------
    LogRankTrendResult
    """
    n, observed, expected, variance, n_strata, labels = _prepare(df, time, event, group, strata, groups, source, rows)
    w = np.arange(1.0, len(labels) + 1) if scores is None else np.asarray(scores, dtype=float)
    if w.shape != (len(labels),) or not np.all(np.isfinite(w)):
        raise ValueError(f"scores={scores!r} must hold one finite number per group {labels!r}")
    u = float(w @ (observed - expected))
    var_u = float(w @ variance @ w)
    if not var_u > 0:
        raise ValueError(f"the trend statistic has zero variance (scores={list(w)!r} are constant?)")
    z = u / np.sqrt(var_u)
    return LogRankTrendResult(
        u=u,
        variance=var_u,
        z=float(z),
        statistic=float(z**2),
        p_value=float(2 * stats.norm.sf(abs(z))),
        scores=tuple(float(x) for x in w),
        groups=_groups(labels, n, observed, expected),
        group=group,
        strata=tuple(as_list(strata)),
        n_strata=n_strata,
    )


def _prepare(df, time, event, group, strata, groups, source, rows):
    clean, where = prepare_survival_data(
        df, time=time, event=event, group=group, strata=strata, source=source, rows=rows
    )
    labels = group_labels(clean[group], groups, group, where)
    _require_groups_and_events(clean, where, event, group, labels)
    codes = clean[group].map({label: j for j, label in enumerate(labels)}).to_numpy(dtype=int)
    times = clean[time].to_numpy(dtype=float)
    events = clean[event].to_numpy(dtype=int)
    k = len(labels)
    stratum = strata_codes(clean, as_list(strata))
    members = [np.flatnonzero(stratum == code) for code in np.unique(stratum)]
    observed, expected, variance = np.zeros(k), np.zeros(k), np.zeros((k, k))
    for ix in members:
        o, e, v = logrank_components(times[ix], events[ix], codes[ix], k)
        observed += o
        expected += e
        variance += v
    n = np.bincount(codes, minlength=k)
    return n, observed, expected, variance, len(members), labels


def _require_groups_and_events(clean: pd.DataFrame, where: Where, event: str, group: str, labels: list) -> None:
    if len(labels) < 2:
        raise where.fail(group, f"the log-rank test needs at least two groups; column {group!r} holds only {labels!r}")
    if clean[event].sum() == 0:
        raise where.fail(event, "no events in the data (every row is censored): the log-rank test is undefined")


def logrank_components(
    times: np.ndarray, events: np.ndarray, codes: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Observed and expected events per group and the covariance of O - E, for one stratum.

    Parameters
    ----------
    times : array, shape (subjects,)
    events : array of 0/1, shape (subjects,)
    codes : array of int in [0, k), shape (subjects,)
        Group index of each subject.
    k : int
        Number of groups.

    Returns
    -------
    observed, expected : arrays, shape (k,)
    variance : array, shape (k, k)
    """
    is_event = events == 1
    event_times = np.unique(times[is_event])
    observed = np.bincount(codes[is_event], minlength=k).astype(float)
    if event_times.size == 0:
        return observed, np.zeros(k), np.zeros((k, k))
    # at risk: subjects of group j with time >= t
    at_risk = np.empty((event_times.size, k))
    for j in range(k):
        own = np.sort(times[codes == j])
        at_risk[:, j] = own.size - np.searchsorted(own, event_times, side="left")
    deaths = np.zeros((event_times.size, k))
    np.add.at(deaths, (np.searchsorted(event_times, times[is_event]), codes[is_event]), 1.0)
    n_t = at_risk.sum(axis=1)
    d_t = deaths.sum(axis=1)
    expected = (d_t / n_t) @ at_risk
    # d (n - d) / (n - 1) / n^2; zero when only one subject is at risk (then n - d = 0 as well)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(n_t > 1, d_t * (n_t - d_t) / (n_t - 1) / n_t**2, 0.0)
    variance = np.diag((factor * n_t) @ at_risk) - (at_risk * factor[:, None]).T @ at_risk
    return observed, expected, variance


def _groups(labels, n, observed, expected) -> tuple[LogRankGroup, ...]:
    return tuple(
        LogRankGroup(label, int(n[j]), float(observed[j]), float(expected[j])) for j, label in enumerate(labels)
    )
