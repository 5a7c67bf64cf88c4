"""The KarMMa-3 primary analysis of progression-free survival, from a table with one row per randomized patient.

The analysis follows the published design (Rodriguez-Otero et al., N Engl J Med 2023;388:1002-14,
doi:10.1056/NEJMoa2213614; ``[RodriguezOtero2023]`` in docs/references.md, section 3): intention to treat,
PFS compared by the log-rank test stratified by the three randomization factors, the hazard ratio from a Cox
model stratified by the same factors, medians by Kaplan-Meier with two-sided 95% intervals, and response (PR or
better) compared by the Cochran-Mantel-Haenszel odds ratio.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import pandas as pd

from .._karmma3 import ARMS, RESPONDERS, RESPONSE_CATEGORIES, STRATIFICATION_FACTORS
from ..data import DataTable, says_simulated
from ._cmh import CMHResult, ResponseRates, cmh_odds_ratio, response_rate
from ._cox import CoxResult, cox_ph
from ._followup import FollowUp, median_followup
from ._kaplan_meier import KaplanMeierResult, check_alpha, kaplan_meier
from ._landmark import SurvivalAtResult, survival_at
from ._logrank import LogRankResult, logrank_test
from ._result import json_float
from ._validate import prepare_columns, unwrap

__all__ = [
    "TrialAnalysis",
    "analyze_trial",
    "PATIENT_COLUMNS",
    "STRATIFICATION_FACTORS",
    "RESPONSE_CATEGORIES",
    "RESPONDERS",
]

# The patients table (one row per randomized patient) and the KarMMa-3 design ([RodriguezOtero2023];
# docs/references.md 3.2).
ID, ARM, TIME, EVENT, RESPONSE, SIMULATED, INFUSED = (
    "ID",
    "ARM",
    "PFS_MONTHS",
    "PFS_EVENT",
    "BEST_RESPONSE",
    "SIMULATED",
    "INFUSED",
)
# randomization strata, response categories and responders: carkin._karmma3 (the one place for KarMMa-3)
PATIENT_COLUMNS = (ID, ARM, *STRATIFICATION_FACTORS, TIME, EVENT, RESPONSE)  # INFUSED, DOSE, SIMULATED optional
_TREATED = "__first_arm__"  # indicator of arms[0] in the Cox model
_RESPONDED = "__responder__"


@dataclasses.dataclass(frozen=True, eq=False)
class TrialAnalysis:
    """The primary analysis of a two-arm trial (ITT); each part is the result object of its function.

    Attributes
    ----------
    arms : (experimental, control)
        Hazard ratio, odds ratio and the log-rank z compare the first arm with the second.
    n_randomized, events, n_infused : dict of arm to int
        Per arm; ``n_infused`` is empty when the table has no INFUSED column.
    logrank : LogRankResult
        Stratified by the three randomization factors.
    cox : CoxResult
        Stratified Cox model (Efron ties) with the single covariate "first arm".
    km : KaplanMeierResult
        PFS curves per arm (log-log intervals).
    landmarks : SurvivalAtResult
        PFS at the landmark times per arm.
    orr : ResponseRates
        Overall response (PR or better) per arm with exact intervals.
    cmh : CMHResult
        Stratified odds ratio of response.
    followup : FollowUp
        Median follow-up (reverse Kaplan-Meier), all patients.
    simulated : bool
        True when the table says it is simulated (`carkin.data.says_simulated`: a leading comment of its file,
        or a SIMULATED column equal to 1 on any row).
    source : str or None
        The file analysed.
    """

    arms: tuple[str, str]
    n_randomized: dict[str, int]
    events: dict[str, int]
    n_infused: dict[str, int]
    logrank: LogRankResult
    cox: CoxResult
    km: KaplanMeierResult
    landmarks: SurvivalAtResult
    orr: ResponseRates
    cmh: CMHResult
    followup: FollowUp
    simulated: bool
    source: str | None
    alpha: float

    @property
    def hazard_ratio(self):
        """The Cox coefficient of the first arm (hazard ratio first vs second arm, interval, p-value)."""
        return self.cox[_TREATED]

    def to_dict(self) -> dict[str, Any]:
        """Results with stable keys (the ``carkin trial analyze --json`` schema); ``None`` = not reached."""
        hr = self.hazard_ratio
        out: dict[str, Any] = {
            "analysis": "KarMMa-3 primary PFS analysis (ITT)",
            "source": self.source,
            "simulated": self.simulated,
            "arms": list(self.arms),
            "time_unit": "months",
            "alpha": self.alpha,
            "stratified_by": list(STRATIFICATION_FACTORS),
            "n_randomized": {**self.n_randomized, "total": sum(self.n_randomized.values())},
            "n_infused": dict(self.n_infused) or None,
            "events": {**self.events, "total": sum(self.events.values())},
            "hazard_ratio": json_float(hr.hazard_ratio),
            "hr_ci_low": json_float(hr.hr_ci_low),
            "hr_ci_high": json_float(hr.hr_ci_high),
            "hr_p": json_float(hr.p_value),
            "logrank_statistic": json_float(self.logrank.statistic),
            "logrank_z": json_float(self.logrank.z),
            "logrank_p": json_float(self.logrank.p_value),
            "median_pfs": {
                arm: {
                    "median": json_float(self.km[arm].median),
                    "ci_low": json_float(self.km[arm].median_ci_low),
                    "ci_high": json_float(self.km[arm].median_ci_high),
                }
                for arm in self.arms
            },
        }
        for t in sorted({e.time for e in self.landmarks.estimates}):
            out[f"pfs_at_{t:g}"] = {
                arm: {
                    "survival": json_float(e.survival),
                    "ci_low": json_float(e.ci_low),
                    "ci_high": json_float(e.ci_high),
                    "at_risk": e.at_risk,
                }
                for arm in self.arms
                for e in [self.landmarks.get(arm, t)]
            }
        out["orr"] = {arm: {k: v for k, v in self.orr[arm].to_dict().items() if k != "label"} for arm in self.arms}
        out["cmh_odds_ratio"] = json_float(self.cmh.odds_ratio)
        out["cmh_ci_low"] = json_float(self.cmh.ci_low)
        out["cmh_ci_high"] = json_float(self.cmh.ci_high)
        out["cmh_p"] = json_float(self.cmh.p_value)
        out["median_followup"] = self.followup.to_dict()
        return out


def analyze_trial(
    patients_df: pd.DataFrame | DataTable,
    *,
    arms: tuple[str, str] = ARMS,
    landmarks: Sequence[float] = (6, 12),
    alpha: float = 0.05,
    source: str | None = None,
    rows: Mapping[Hashable, int] | None = None,
) -> TrialAnalysis:
    """The KarMMa-3 primary analysis: stratified log-rank, stratified Cox HR, KM medians, ORR, CMH odds ratio.

    Main arguments
    --------------
    patients_df : carkin.data.DataTable or pandas.DataFrame
        One row per randomized patient, with columns ID, ARM (values in ``arms``), AGE_GE65,
        PRIOR_REGIMENS_3_4, HIGH_RISK_CYTO (0/1 stratification factors), PFS_MONTHS (>= 0), PFS_EVENT
        (1 progression or death, 0 censored) and BEST_RESPONSE (one of sCR, CR, VGPR, PR, MR, SD, PD, NE;
        response = PR or better, NE counts as no response). Optional: INFUSED (0/1), SIMULATED (1 on a
        simulated cohort); other columns (DOSE, TUMOR_BURDEN, ...) are ignored.
    arms : (experimental, control)
        Arm labels; ratios compare the first with the second.

    Other arguments
    ---------------
    landmarks : sequence of float
        Months at which PFS is estimated per arm.
    alpha : float
        1 - confidence level of every interval (two-sided).
    source, rows : optional
        File name and index-to-line mapping for error messages (default: the DataTable's).

    Returns
    -------
    TrialAnalysis

    Raises
    ------
    carkin.errors.DataError
        Every problem in the table at once (missing column, negative or missing PFS time, non-binary event
        or stratification factor, unknown arm or response category, repeated ID), or an arm without PFS
        events (the hazard ratio would be 0 or infinite).
    """
    check_alpha(alpha)
    simulated = isinstance(patients_df, DataTable) and patients_df.simulated
    patients_df, source, rows = unwrap(patients_df, source, rows)
    arms = tuple(arms)
    if len(arms) != 2 or arms[0] == arms[1]:
        raise ValueError(f"arms={arms!r} must name two different arms: (experimental, control)")
    binary = {EVENT: "PFS event", **{factor: "stratification factor" for factor in STRATIFICATION_FACTORS}}
    clean, where = prepare_columns(
        patients_df,
        time=TIME,
        binary=binary,
        labels=[ARM],
        categories={ARM: arms, RESPONSE: RESPONSE_CATEGORIES},
        unique=[ID],
        source=source,
        rows=rows,
    )
    for arm in arms:
        in_arm = clean[ARM] == arm
        if not in_arm.any():
            raise where.fail(ARM, f"no patient in arm {arm!r}")
        if clean.loc[in_arm, EVENT].sum() == 0:
            raise where.fail(
                EVENT,
                f"arm {arm!r} has no PFS events: the hazard ratio would be 0 or infinite and the medians not reached",
            )
    clean[_TREATED] = (clean[ARM] == arms[0]).astype(float)
    clean[_RESPONDED] = clean[RESPONSE].isin(RESPONDERS).astype(int)
    common = dict(source=source, rows=rows)
    strata = list(STRATIFICATION_FACTORS)
    by_arm = dict(group=ARM, groups=arms)
    km = kaplan_meier(clean, time=TIME, event=EVENT, alpha=alpha, **by_arm, **common)
    return TrialAnalysis(
        arms=arms,
        n_randomized={arm: int((clean[ARM] == arm).sum()) for arm in arms},
        events={arm: int(clean.loc[clean[ARM] == arm, EVENT].sum()) for arm in arms},
        n_infused=_infused(patients_df, clean, arms),
        logrank=logrank_test(clean, time=TIME, event=EVENT, strata=strata, **by_arm, **common),
        cox=cox_ph(clean, time=TIME, event=EVENT, covariates=[_TREATED], strata=strata, alpha=alpha, **common),
        km=km,
        landmarks=survival_at(clean, time=TIME, event=EVENT, times=list(landmarks), alpha=alpha, **by_arm, **common),
        orr=response_rate(clean, response=_RESPONDED, alpha=alpha, **by_arm, **common),
        cmh=cmh_odds_ratio(clean, response=_RESPONDED, strata=strata, alpha=alpha, **by_arm, **common),
        followup=median_followup(clean, time=TIME, event=EVENT, alpha=alpha, **common),
        simulated=simulated or says_simulated(frame=patients_df),
        source=source,
        alpha=alpha,
    )


def _infused(patients_df: pd.DataFrame, clean: pd.DataFrame, arms: tuple[str, str]) -> dict[str, int]:
    if INFUSED not in patients_df.columns:
        return {}
    infused = pd.to_numeric(patients_df[INFUSED], errors="coerce") == 1
    return {arm: int((infused & (clean[ARM] == arm)).sum()) for arm in arms}
