"""Tumour burden driving both exposure and PFS: the unadjusted analysis finds a spurious effect, the adjusted
one not."""

import jax
import numpy as np

from carkin.er import analyze_exposure_response, simulate_er_study
from carkin.exposure import PosteriorExposure


def test_burden_confounding_creates_a_spurious_effect_that_adjustment_removes():
    # truth: exposure has NO effect; burden raises Cmax (log Cmax + 1.5 log(burden / 30)) and the hazard
    # (log HR 0.4 per 10 points). Exposure is the true Cmax (plug-in Cox on true exposures).
    study = simulate_er_study(jax.random.key(7), n=400, log_hr_per_doubling=0.0, log_hr_burden=0.4,
                              burden_log_cmax=1.5, seed=7)
    exposure = PosteriorExposure.from_values(study.truth["ID"], {"cmax": study.truth["EXPOSURE"].to_numpy()},
                                             simulated=True)
    unadjusted = analyze_exposure_response(exposure, study.patients, level=0.95)
    adjusted = analyze_exposure_response(exposure, study.patients, adjust=study.prognostic_factors, level=0.95)
    u = unadjusted.plugin.hr_per_doubling
    a = adjusted.plugin.hr_per_doubling
    assert u.hr_ci_low > 1.0 and u.p_value < 0.01  # spurious harm of exposure
    assert a.hr_ci_low < 1.0 < a.hr_ci_high  # no effect once burden is in the model
    assert abs(np.log(a.hazard_ratio)) < abs(np.log(u.hazard_ratio)) / 2
    assert adjusted.to_dict()["adjusted_for"][0] == "TUMOR_BURDEN_PER10"
    assert unadjusted.to_dict()["adjusted_for"] == []
