"""Exposure-response for CAR-T: PFS by exposure with the kinetic uncertainty carried through.

- `analyze_exposure_response(exposure, patients, method=...)`: the analysis set (ITT -> infused ->
  CK-evaluable -> landmark), KM by exposure quartile, log-rank trend, Cox PH on log2 exposure (primary,
  adjusted for the columns named in ``adjust``) and on quartiles (descriptive), and a
  Bayesian PH (piecewise-exponential or Weibull baseline) two-stage over CK posterior draws or joint with
  the CK model.
- `plot_km_by_quartile`, `plot_forest`: figures; `write_er_report`: JSON, tables, figures to a folder.
- `simulate_er_study`: a SIMULATED CK + PFS study with a known exposure effect, to check the methods.
"""

from ._analysis import (
    METHODS as METHODS,
    ERAnalysis as ERAnalysis,
    analyze_exposure_response as analyze_exposure_response,
)
from ._analysis_set import (
    ERData as ERData,
    ExposureWindowWarning as ExposureWindowWarning,
    er_analysis_set as er_analysis_set,
)
from ._bayes import (
    DEFAULT_SETTINGS as DEFAULT_SETTINGS,
    BayesianPH as BayesianPH,
    reliability as reliability,
    two_stage as two_stage,
)
from ._joint import joint_model as joint_model, joint_ph as joint_ph
from ._ph_model import (
    BASELINES as BASELINES,
    HazardRatio as HazardRatio,
    SurvivalArrays as SurvivalArrays,
    ph_log_likelihood as ph_log_likelihood,
    survival_arrays as survival_arrays,
)
from ._plots import plot_forest as plot_forest, plot_km_by_quartile as plot_km_by_quartile
from ._plugin import PluginAnalysis as PluginAnalysis, plugin_analysis as plugin_analysis
from ._report import er_report_text as er_report_text, write_er_report as write_er_report
from ._simulate import ERStudy as ERStudy, simulate_er_study as simulate_er_study
