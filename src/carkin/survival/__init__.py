"""Classic survival analysis on lifelines: Kaplan-Meier, log-rank (stratified, trend), Cox, RMST, CMH.

Every function takes a table (a `carkin.data.DataTable` from `carkin.data.read_table`, or a pandas DataFrame)
and column names (the lifelines way), checks the columns once (errors name the file, line and column), and
returns a small immutable result with ``.to_dict()`` giving JSON-ready numbers under stable keys. `analyze_trial` runs the KarMMa-3 primary analysis.
"""

from ._cmh import CMHResult as CMHResult
from ._cmh import ResponseRate as ResponseRate
from ._cmh import ResponseRates as ResponseRates
from ._cmh import cmh_odds_ratio as cmh_odds_ratio
from ._cmh import response_rate as response_rate
from ._cox import CoxCoefficient as CoxCoefficient
from ._cox import CoxResult as CoxResult
from ._cox import cox_ph as cox_ph
from ._followup import FollowUp as FollowUp
from ._followup import median_followup as median_followup
from ._kaplan_meier import KaplanMeierCurve as KaplanMeierCurve
from ._kaplan_meier import KaplanMeierResult as KaplanMeierResult
from ._kaplan_meier import kaplan_meier as kaplan_meier
from ._landmark import LandmarkSurvival as LandmarkSurvival
from ._landmark import SurvivalAtResult as SurvivalAtResult
from ._landmark import survival_at as survival_at
from ._logrank import LogRankGroup as LogRankGroup
from ._logrank import LogRankResult as LogRankResult
from ._logrank import LogRankTrendResult as LogRankTrendResult
from ._logrank import logrank_test as logrank_test
from ._logrank import logrank_trend_test as logrank_trend_test
from ._plots import plot_km as plot_km
from ._plots import plot_trial_km as plot_trial_km
from ._report import trial_summary as trial_summary
from ._report import write_trial_report as write_trial_report
from ._rmst import RMSTDifference as RMSTDifference
from ._rmst import RMSTEstimate as RMSTEstimate
from ._rmst import RMSTResult as RMSTResult
from ._rmst import rmst as rmst
from ._rmst import rmst_difference as rmst_difference
from ._trial_analysis import TrialAnalysis as TrialAnalysis
from ._trial_analysis import analyze_trial as analyze_trial
