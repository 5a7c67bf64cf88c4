"""Cox proportional hazards regression: Efron ties through lifelines' `CoxPHFitter`, Breslow ties in `_breslow`."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter
from lifelines.exceptions import (
    ConvergenceError as LifelinesConvergenceError,
    ConvergenceWarning as LifelinesConvergenceWarning,
)
from lifelines.utils import concordance_index
from scipy import stats

from ..data import DataTable
from ..errors import ConvergenceError
from ._breslow import fit_breslow
from ._cox_residuals import robust_covariance, score_residuals
from ._kaplan_meier import check_alpha
from ._result import json_float
from ._validate import Where, as_list, prepare_survival_data, strata_codes

__all__ = ["CoxCoefficient", "CoxResult", "cox_ph"]

Ties = Literal["efron", "breslow"]


@dataclasses.dataclass(frozen=True)
class CoxCoefficient:
    """One covariate of a Cox model: log hazard ratio per unit increase, its SE, the HR with its Wald interval."""

    name: str
    coef: float
    se: float
    hazard_ratio: float
    hr_ci_low: float
    hr_ci_high: float
    z: float
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "coef": json_float(self.coef),
            "se": json_float(self.se),
            "hazard_ratio": json_float(self.hazard_ratio),
            "hr_ci_low": json_float(self.hr_ci_low),
            "hr_ci_high": json_float(self.hr_ci_high),
            "z": json_float(self.z),
            "p_value": json_float(self.p_value),
        }


@dataclasses.dataclass(frozen=True)
class CoxResult:
    """Result of `cox_ph`; index it by covariate name.

    Attributes
    ----------
    coefficients : tuple of CoxCoefficient
        In the order of ``covariates``.
    n, n_events : int
        Subjects and events used.
    concordance : float
        Harrell's C of the linear predictor (lifelines' ``concordance_index``, over all subjects).
    log_likelihood : float
        Maximised partial log-likelihood (Efron or Breslow form).
    ties, robust, strata, alpha
        The options of the fit; with ``robust`` the SEs are Lin-Wei sandwich SEs.
    """

    coefficients: tuple[CoxCoefficient, ...]
    n: int
    n_events: int
    concordance: float
    log_likelihood: float
    ties: Ties
    robust: bool
    strata: tuple[str, ...]
    alpha: float

    def __getitem__(self, name: str) -> CoxCoefficient:
        for coefficient in self.coefficients:
            if coefficient.name == name:
                return coefficient
        raise KeyError(f"no covariate {name!r}; covariates: {[c.name for c in self.coefficients]!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "analysis": "cox-ph",
            "ties": self.ties,
            "robust": self.robust,
            "strata": list(self.strata),
            "alpha": self.alpha,
            "n": self.n,
            "n_events": self.n_events,
            "concordance": json_float(self.concordance),
            "log_likelihood": json_float(self.log_likelihood),
            "coefficients": {c.name: c.to_dict() for c in self.coefficients},
        }


def cox_ph(
    df: pd.DataFrame | DataTable,
    *,
    time: str,
    event: str,
    covariates: str | Sequence[str],
    strata: str | Sequence[str] | None = None,
    ties: Ties = "efron",
    robust: bool = False,
    alpha: float = 0.05,
    source: str | None = None,
    rows: Mapping[Hashable, int] | None = None,
) -> CoxResult:
    """Cox proportional hazards regression, optionally stratified, with hazard ratios and Wald intervals.

    ``ties="efron"`` (default, as R's ``coxph``) fits with lifelines' `CoxPHFitter`; ``ties="breslow"``
    (SAS PROC PHREG's default) maximises the Breslow partial likelihood here, since lifelines offers only
    Efron. Both give the same estimates when no event times are tied.

    Main arguments
    --------------
    df : pandas.DataFrame
        One row per subject.
    time, event : str
        Follow-up time (>= 0) and event indicator (1 event, 0 censored) columns.
    covariates : str or sequence of str
        Numeric covariate columns (0/1 for binary ones). A categorical column must be one-hot coded first.
    strata : str or sequence of str, optional
        Stratification columns: each stratum (their cross-classification) has its own baseline hazard.

    Other arguments
    ---------------
    ties : {"efron", "breslow"}
        Approximation for tied event times.
    robust : bool
        Lin-Wei robust (sandwich) standard errors instead of model-based ones.
    alpha : float
        1 - confidence level of the hazard-ratio intervals.
    source, rows : optional
        File name and index-to-line mapping for error messages (default: those of a `carkin.data.DataTable`).

    Returns
    -------
    CoxResult
        Per covariate: coefficient, SE, hazard ratio, interval, z and two-sided Wald p-value.

    Raises
    ------
    carkin.errors.DataError
        Missing column, bad time or event values, a non-numeric covariate (with a one-hot coding hint), no
        events, a constant covariate, or a binary covariate with no events at one of its values (the
        hazard ratio would be 0 or infinite).
    carkin.errors.ConvergenceError
        If the fit does not converge.
    """
    check_alpha(alpha)
    if ties not in _FITTERS:
        raise ValueError(f"ties={ties!r} ({type(ties).__name__}) is not supported; choose one of {sorted(_FITTERS)}")
    covariate_cols = as_list(covariates)
    if not covariate_cols:
        raise ValueError("covariates is empty; name at least one covariate column")
    strata_cols = as_list(strata)
    clean, where = prepare_survival_data(
        df, time=time, event=event, strata=strata_cols, covariates=covariate_cols, source=source, rows=rows
    )
    _check_estimable(clean, where, event, covariate_cols)
    beta, se, loglik = _FITTERS[ties](clean, time, event, covariate_cols, strata_cols, robust, alpha)
    z_crit = stats.norm.ppf(1 - alpha / 2)
    coefficients = []
    for name, b, s in zip(covariate_cols, beta, se, strict=True):
        z = b / s
        coefficients.append(
            CoxCoefficient(
                name=name,
                coef=float(b),
                se=float(s),
                hazard_ratio=float(np.exp(b)),
                hr_ci_low=float(np.exp(b - z_crit * s)),
                hr_ci_high=float(np.exp(b + z_crit * s)),
                z=float(z),
                p_value=float(2 * stats.norm.sf(abs(z))),
            )
        )
    linear_predictor = clean[covariate_cols].to_numpy() @ np.asarray(beta)
    return CoxResult(
        coefficients=tuple(coefficients),
        n=len(clean),
        n_events=int(clean[event].sum()),
        concordance=float(concordance_index(clean[time], -linear_predictor, clean[event])),
        log_likelihood=float(loglik),
        ties=ties,
        robust=robust,
        strata=tuple(strata_cols),
        alpha=alpha,
    )


def _check_estimable(clean: pd.DataFrame, where: Where, event: str, covariates: list[str]) -> None:
    if clean[event].sum() == 0:
        raise where.fail(event, "no events in the data (every row is censored): a Cox model cannot be fitted")
    for column in covariates:
        values = clean[column]
        levels = np.unique(values)
        if levels.size == 1:
            raise where.fail(
                column,
                f"covariate {column!r} is constant ({levels[0]:g} on every row): its hazard ratio is not "
                "estimable; drop it",
            )
        if levels.size == 2:
            for level in levels:
                if clean.loc[values == level, event].sum() == 0:
                    raise where.fail(
                        column,
                        f"no events among rows with {column} = {level:g}: the hazard ratio of {column!r} would be "
                        "0 or infinite (monotone likelihood); check the event column, or analyse without this "
                        "covariate",
                    )


def _fit_efron(clean, time, event, covariates, strata, robust, alpha):
    fitter = CoxPHFitter(alpha=alpha)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LifelinesConvergenceWarning)
        try:
            fitter.fit(
                clean[[time, event, *covariates, *strata]],
                duration_col=time,
                event_col=event,
                strata=strata or None,
            )
        except (LifelinesConvergenceWarning, LifelinesConvergenceError) as exc:
            raise ConvergenceError(f"the Cox fit (lifelines, Efron ties) did not converge: {exc}") from exc
    beta = fitter.params_.loc[covariates].to_numpy()
    covariance = fitter.variance_matrix_.loc[covariates, covariates].to_numpy()
    if robust:
        # lifelines' robust=True ignores ties (see _cox_residuals); use Efron score residuals instead
        residuals = score_residuals(
            clean[time].to_numpy(dtype=float),
            clean[event].to_numpy(dtype=int),
            clean[covariates].to_numpy(dtype=float),
            strata_codes(clean, strata),
            beta,
            "efron",
        )
        covariance = robust_covariance(residuals, covariance)
    return beta, np.sqrt(np.diag(covariance)), fitter.log_likelihood_


def _fit_breslow(clean, time, event, covariates, strata, robust, alpha):
    fit = fit_breslow(
        clean[time].to_numpy(dtype=float),
        clean[event].to_numpy(dtype=int),
        clean[covariates].to_numpy(dtype=float),
        strata_codes(clean, strata),
    )
    covariance = fit.robust_covariance if robust else fit.covariance
    return fit.beta, np.sqrt(np.diag(covariance)), fit.log_likelihood


_FITTERS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray, float]]] = {
    "efron": _fit_efron,
    "breslow": _fit_breslow,
}
