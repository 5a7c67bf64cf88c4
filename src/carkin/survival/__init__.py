"""Classic survival analysis on lifelines: Kaplan-Meier, log-rank (stratified, trend), Cox, RMST, CMH.

Every function takes a table (a `carkin.data.DataTable` from `carkin.data.read_table`, or a pandas DataFrame)
and column names (the lifelines way), checks the columns once (errors name the file, line and column), and
returns a small immutable result with ``.to_dict()`` giving JSON-ready numbers under stable keys.
`analyze_trial` runs the KarMMa-3 primary analysis.
"""

from ._cmh import (
    CMHResult as CMHResult,
    ResponseRate as ResponseRate,
    ResponseRates as ResponseRates,
    cmh_odds_ratio as cmh_odds_ratio,
    response_rate as response_rate,
)
from ._cox import CoxCoefficient as CoxCoefficient, CoxResult as CoxResult, cox_ph as cox_ph
from ._followup import FollowUp as FollowUp, median_followup as median_followup
from ._kaplan_meier import (
    KaplanMeierCurve as KaplanMeierCurve,
    KaplanMeierResult as KaplanMeierResult,
    kaplan_meier as kaplan_meier,
)
from ._landmark import (
    LandmarkSurvival as LandmarkSurvival,
    SurvivalAtResult as SurvivalAtResult,
    survival_at as survival_at,
)
from ._logrank import (
    LogRankGroup as LogRankGroup,
    LogRankResult as LogRankResult,
    LogRankTrendResult as LogRankTrendResult,
    logrank_test as logrank_test,
    logrank_trend_test as logrank_trend_test,
)
from ._plots import plot_km as plot_km, plot_trial_km as plot_trial_km
from ._report import trial_summary as trial_summary, write_trial_report as write_trial_report
from ._rmst import (
    RMSTDifference as RMSTDifference,
    RMSTEstimate as RMSTEstimate,
    RMSTResult as RMSTResult,
    rmst as rmst,
    rmst_difference as rmst_difference,
)
from ._trial_analysis import TrialAnalysis as TrialAnalysis, analyze_trial as analyze_trial
