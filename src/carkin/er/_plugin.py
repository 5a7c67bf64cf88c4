"""The classic (plug-in) exposure-response analysis on point exposures, with carkin.survival (lifelines).

Each patient's exposure is fixed at its posterior median (the plug-in value, as an analysis on
empirical-Bayes estimates would use) and treated as known:

- Kaplan-Meier PFS by plug-in exposure quartile, with numbers at risk (descriptive);
- log-rank test for trend across the ordered quartiles (scores 1-4);
- Cox PH on log2 exposure, adjusted for the covariates of the analysis set (primary): HR per doubling;
- the same Cox model without adjustment (to show what adjustment changes);
- Cox PH on quartile indicators (Q2, Q3, Q4 vs Q1), adjusted (descriptive: the cut points are
  data-dependent; docs/references.md, section 4).

All intervals are at the analysis' level (90% by default, so that they compare with the credible
intervals of the Bayesian methods).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from ..errors import ConvergenceError, DataError
from ..exposure import ExposureQuartiles
from ..survival import CoxResult, KaplanMeierResult, LogRankTrendResult, cox_ph, kaplan_meier, logrank_trend_test
from ._analysis_set import ERData

__all__ = ["PluginAnalysis", "plugin_analysis", "EXPOSURE_COLUMN"]

EXPOSURE_COLUMN = "LOG2_EXPOSURE"
QUARTILE_COLUMN = "QUARTILE"
QUARTILE_LABEL = "QUARTILE_LABEL"


@dataclasses.dataclass(frozen=True, eq=False)
class PluginAnalysis:
    """Result of `plugin_analysis`.

    Attributes
    ----------
    frame : pandas.DataFrame
        The analysed table (time since landmark, event, plug-in log2 exposure, quartile, covariates).
    km : KaplanMeierResult
        PFS by plug-in quartile (labels "Q1".."Q4").
    trend : LogRankTrendResult
        Log-rank trend across quartiles 1-4: z < 0 means the hazard falls as exposure rises.
    cox : CoxResult
        log2 exposure + adjustment covariates (primary).
    cox_unadjusted : CoxResult
        log2 exposure alone.
    cox_quartiles : CoxResult or None
        Q2, Q3, Q4 indicators + adjustment covariates; None when not estimable (reason in ``notes``).
    level : float
    notes : tuple of str
    """

    frame: pd.DataFrame
    km: KaplanMeierResult
    trend: LogRankTrendResult
    cox: CoxResult
    cox_unadjusted: CoxResult
    cox_quartiles: CoxResult | None
    level: float
    notes: tuple[str, ...]

    @property
    def hr_per_doubling(self):
        """The adjusted Cox coefficient of log2 exposure (HR per doubling with its interval)."""
        return self.cox[EXPOSURE_COLUMN]


def plugin_analysis(data: ERData, quartiles: ExposureQuartiles, *, level: float = 0.9) -> PluginAnalysis:
    """Run the plug-in analysis (see the module docstring) on an analysis set.

    Parameters
    ----------
    data : ERData
    quartiles : ExposureQuartiles
        Of the analysed patients (its plug-in labels define the KM groups).
    level : float
        Interval level (two-sided), e.g. 0.9.

    Returns
    -------
    PluginAnalysis
    """
    alpha = 1.0 - level
    frame = data.frame()
    frame[QUARTILE_COLUMN] = quartiles.plug_in
    frame[QUARTILE_LABEL] = [f"Q{q}" for q in quartiles.plug_in]
    for k in range(2, quartiles.n_groups + 1):
        frame[f"Q{k}"] = (quartiles.plug_in == k).astype(float)
    adjust = list(data.covariate_names)
    km = kaplan_meier(frame, time="TIME", event="EVENT", group=QUARTILE_LABEL, alpha=alpha)
    trend = logrank_trend_test(frame, time="TIME", event="EVENT", group=QUARTILE_COLUMN)
    cox = cox_ph(frame, time="TIME", event="EVENT", covariates=[EXPOSURE_COLUMN, *adjust], alpha=alpha)
    unadjusted = cox_ph(frame, time="TIME", event="EVENT", covariates=[EXPOSURE_COLUMN], alpha=alpha)
    notes = []
    try:
        dummies = [f"Q{k}" for k in range(2, quartiles.n_groups + 1)]
        by_quartile = cox_ph(frame, time="TIME", event="EVENT", covariates=[*dummies, *adjust], alpha=alpha)
    except (DataError, ConvergenceError) as err:
        by_quartile = None
        notes.append(f"Cox model on quartile indicators not estimable: {str(err).splitlines()[-1].strip(' -')}")
    return PluginAnalysis(
        frame=frame, km=km, trend=trend, cox=cox, cox_unadjusted=unadjusted, cox_quartiles=by_quartile,
        level=level, notes=tuple(notes),
    )


def quartile_counts(frame: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Patients and events per plug-in quartile."""
    out = {}
    for label, part in frame.groupby(QUARTILE_LABEL, sort=True):
        out[str(label)] = {"n": int(len(part)), "events": int(np.sum(part["EVENT"]))}
    return out
