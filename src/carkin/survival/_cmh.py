"""Response analyses: the Cochran-Mantel-Haenszel common odds ratio and exact (Clopper-Pearson) response rates.

For each stratum h, the 2x2 table of the two groups is::

                  responder   non-responder
    first group      a_h          b_h
    second group     c_h          d_h          (n_h = a_h + b_h + c_h + d_h)

Mantel-Haenszel odds ratio OR = sum(a d / n) / sum(b c / n). Its log has the Robins-Breslow-Greenland
(1986) variance, with P = (a + d)/n, Q = (b + c)/n, R = a d / n, S = b c / n::

    Var(log OR) = sum(P R) / (2 (sum R)^2) + sum(P S + Q R) / (2 sum R sum S) + sum(Q S) / (2 (sum S)^2)

The CMH test of OR = 1: (sum a - sum E[a])^2 / sum Var(a), with E[a] = (a+b)(a+c)/n and
Var(a) = (a+b)(c+d)(a+c)(b+d) / (n^2 (n-1)), chi-square on 1 degree of freedom (no continuity correction
by default, as SAS PROC FREQ and statsmodels' ``StratifiedTable.test_null_odds``). Strata with fewer than
two subjects add nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..data import DataTable
from ._kaplan_meier import check_alpha
from ._result import json_float, json_label
from ._validate import as_list, group_labels, prepare_columns, strata_codes

__all__ = ["CMHResult", "ResponseRate", "ResponseRates", "cmh_odds_ratio", "response_rate"]


@dataclasses.dataclass(frozen=True)
class CMHResult:
    """Mantel-Haenszel common odds ratio (first group vs second) with its interval and the CMH test."""

    odds_ratio: float
    ci_low: float
    ci_high: float
    log_or_se: float
    statistic: float
    p_value: float
    groups: tuple[Hashable, Hashable]
    n_strata: int
    correction: bool
    alpha: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "analysis": "cmh",
            "groups": [json_label(g) for g in self.groups],
            "odds_ratio": json_float(self.odds_ratio),
            "ci_low": json_float(self.ci_low),
            "ci_high": json_float(self.ci_high),
            "log_or_se": json_float(self.log_or_se),
            "statistic": json_float(self.statistic),
            "p_value": json_float(self.p_value),
            "n_strata": self.n_strata,
            "correction": self.correction,
            "alpha": self.alpha,
        }


@dataclasses.dataclass(frozen=True)
class ResponseRate:
    """Responders out of n, the proportion and its exact (Clopper-Pearson) interval."""

    label: Hashable
    responders: int
    n: int
    rate: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": json_label(self.label),
            "responders": self.responders,
            "n": self.n,
            "rate": json_float(self.rate),
            "ci_low": json_float(self.ci_low),
            "ci_high": json_float(self.ci_high),
        }


@dataclasses.dataclass(frozen=True)
class ResponseRates:
    """Response rate per group, in analysis order; index it by group label."""

    rates: tuple[ResponseRate, ...]
    group: str | None
    alpha: float

    def __getitem__(self, label: Hashable) -> ResponseRate:
        for rate in self.rates:
            if rate.label == label or json_label(rate.label) == label:
                return rate
        raise KeyError(f"no group {label!r}; groups: {[r.label for r in self.rates]!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "analysis": "response-rate",
            "group": self.group,
            "alpha": self.alpha,
            "rates": {json_label(r.label): r.to_dict() for r in self.rates},
        }


def response_rate(
    df: pd.DataFrame | DataTable,
    *,
    response: str,
    group: str | None = None,
    groups: Sequence[Hashable] | None = None,
    alpha: float = 0.05,
    source: str | None = None,
    rows: Mapping[Hashable, int] | None = None,
) -> ResponseRates:
    """Proportion of responders per group with the exact Clopper-Pearson interval (scipy's ``binomtest``).

    Parameters
    ----------
    df : pandas.DataFrame
        One row per subject (intention to treat: every randomized subject counts in the denominator).
    response : str
        Column with 1 for a responder, 0 otherwise.
    group : str, optional
        Group column; one rate (label ``"all"``) without it.
    groups, alpha, source, rows
        As in `kaplan_meier`.
    """
    check_alpha(alpha)
    clean, where = prepare_columns(
        df, binary={response: "response"}, labels=[group] if group else [], source=source, rows=rows
    )
    labels = ["all"] if group is None else group_labels(clean[group], groups, group, where)
    rates = []
    for label in labels:
        part = clean[response] if group is None else clean.loc[clean[group] == label, response]
        k, n = int(part.sum()), int(part.size)
        interval = stats.binomtest(k, n).proportion_ci(confidence_level=1 - alpha, method="exact")
        rates.append(ResponseRate(label, k, n, k / n, float(interval.low), float(interval.high)))
    return ResponseRates(tuple(rates), group=group, alpha=alpha)


def cmh_odds_ratio(
    df: pd.DataFrame | DataTable,
    *,
    response: str,
    group: str,
    strata: str | Sequence[str] | None = None,
    groups: Sequence[Hashable] | None = None,
    alpha: float = 0.05,
    correction: bool = False,
    source: str | None = None,
    rows: Mapping[Hashable, int] | None = None,
) -> CMHResult:
    """Cochran-Mantel-Haenszel common odds ratio of response, first group vs second, across strata.

    Formulas in the module docstring: Mantel-Haenszel estimate, Robins-Breslow-Greenland interval
    exp(log OR +- z SE), CMH chi-square test (two-sided p-value).

    Main arguments
    --------------
    df : pandas.DataFrame
        One row per subject.
    response : str
        Column with 1 for a responder, 0 otherwise.
    group : str
        Column with exactly two groups.
    strata : str or sequence of str, optional
        Stratification columns (their cross-classification); one stratum without.

    Other arguments
    ---------------
    groups : (first, second), optional
        Order of the groups: the odds ratio is odds(first) / odds(second). Default: sorted values.
    alpha : float
        1 - confidence level.
    correction : bool
        Apply the 0.5 continuity correction to the CMH test statistic.
    source, rows : optional
        File name and index-to-line mapping for error messages (default: those of a `carkin.data.DataTable`).

    Raises
    ------
    carkin.errors.DataError
        Missing column, non-binary response, missing group/stratum, not exactly two groups, or an odds
        ratio of 0 or infinity (no responders or no non-responders in one group across all strata).
    """
    check_alpha(alpha)
    strata_cols = as_list(strata)
    clean, where = prepare_columns(
        df, binary={response: "response"}, labels=[group, *strata_cols], source=source, rows=rows
    )
    labels = group_labels(clean[group], groups, group, where)
    if len(labels) != 2:
        raise where.fail(group, f"the CMH odds ratio compares exactly two groups; column {group!r} holds {labels!r}")
    first = (clean[group] == labels[0]).to_numpy()
    responded = clean[response].to_numpy() == 1
    codes = strata_codes(clean, strata_cols)
    n_strata = int(codes.max()) + 1
    a = np.bincount(codes, weights=first & responded, minlength=n_strata)
    b = np.bincount(codes, weights=first & ~responded, minlength=n_strata)
    c = np.bincount(codes, weights=~first & responded, minlength=n_strata)
    d = np.bincount(codes, weights=~first & ~responded, minlength=n_strata)
    n = a + b + c + d
    keep = n >= 2
    a, b, c, d, n = a[keep], b[keep], c[keep], d[keep], n[keep]

    r, s = a * d / n, b * c / n
    p, q = (a + d) / n, (b + c) / n
    sum_r, sum_s = r.sum(), s.sum()
    if sum_r == 0 or sum_s == 0:
        raise where.fail(
            response,
            f"the Mantel-Haenszel odds ratio is {'0' if sum_r == 0 else 'infinite'}: within every stratum one group "
            "has no responders or no non-responders; report the response rates instead",
        )
    odds_ratio = sum_r / sum_s
    var_log = (
        (p * r).sum() / (2 * sum_r**2) + (p * s + q * r).sum() / (2 * sum_r * sum_s) + (q * s).sum() / (2 * sum_s**2)
    )
    se = float(np.sqrt(var_log))
    z_crit = stats.norm.ppf(1 - alpha / 2)

    expected = (a + b) * (a + c) / n
    variance = (a + b) * (c + d) * (a + c) * (b + d) / (n**2 * (n - 1))
    deviation = abs(a.sum() - expected.sum()) - (0.5 if correction else 0.0)
    statistic = float(max(deviation, 0.0) ** 2 / variance.sum())
    return CMHResult(
        odds_ratio=float(odds_ratio),
        ci_low=float(np.exp(np.log(odds_ratio) - z_crit * se)),
        ci_high=float(np.exp(np.log(odds_ratio) + z_crit * se)),
        log_or_se=se,
        statistic=statistic,
        p_value=float(stats.chi2.sf(statistic, 1)),
        groups=(labels[0], labels[1]),
        n_strata=int(keep.sum()),
        correction=correction,
        alpha=alpha,
    )
