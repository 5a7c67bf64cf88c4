"""Coverage of the true exposure HR over simulated replicates (slow: a CK NUTS fit per replicate).

Each replicate: `simulate_er_study` (120 patients, true HR per doubling of Cmax exp(-0.29) = 0.75, CK from
models/multiphasic.toml [simulation]), a CK NUTS fit (2 chains x 300 draws), the exposure draws, then the
plug-in Cox, the two-stage Bayesian PH (resample scheme) and the joint CK + PFS model, each with a 90%
interval. With 20 replicates, a method with true 90% coverage covers >= 15 times with probability 0.99.
"""

import gc

import jax
import numpy as np
import pytest

from carkin.er import er_analysis_set, joint_ph, plugin_analysis, reliability, simulate_er_study, two_stage
from carkin.exposure import exposure_quartiles, posterior_exposures
from carkin.inference import SamplerSettings, fit
from carkin.population import load_spec

TRUE_LOG_HR = -0.29  # HR 0.75 per doubling
CK_SETTINGS = SamplerSettings(chains=2, warmup=300, samples=300, max_tree_depth=7, progress_bar=False)
PH_SETTINGS = SamplerSettings(chains=2, warmup=400, samples=400, max_tree_depth=8, progress_bar=False)


def replicate(r: int, *, samples_per_patient=None, joint=True, n=120, log_hr=TRUE_LOG_HR) -> dict:
    """Log-HR intervals (low, high) per method for replicate r."""
    study = simulate_er_study(jax.random.key(1000 + r), n=n, log_hr_per_doubling=log_hr,
                              samples_per_patient=samples_per_patient, seed=1000 + r)
    ck_fit = fit(study.dataset, load_spec("multiphasic"), seed=r, settings=CK_SETTINGS)
    exposure = posterior_exposures(ck_fit, study.dataset, metrics=["cmax"])
    data = er_analysis_set(exposure, study.patients, metric="cmax", adjust=study.prognostic_factors)
    quartiles = exposure_quartiles(2.0 ** data.log2_draws, patient_ids=data.ids)
    cox = plugin_analysis(data, quartiles, level=0.9).hr_per_doubling
    out = {"plugin": (np.log(cox.hr_ci_low), np.log(cox.hr_ci_high)), "plugin_estimate": np.log(cox.hazard_ratio),
           "reliability": reliability(data.log2_draws)}
    stage, plug_in = two_stage(data, key=jax.random.key(r), settings=PH_SETTINGS)
    out["two-stage"] = (np.log(stage.hr_per_doubling.ci_low), np.log(stage.hr_per_doubling.ci_high))
    out["plugin-bayes"] = (np.log(plug_in.hr_per_doubling.ci_low), np.log(plug_in.hr_per_doubling.ci_high))
    if joint:
        result = joint_ph(ck_fit, study.dataset, data, key=jax.random.key(r), settings=CK_SETTINGS)
        out["joint"] = (np.log(result.hr_per_doubling.ci_low), np.log(result.hr_per_doubling.ci_high))
    # each replicate compiles new programs; free them, or LLVM runs out of section memory after ~20 replicates
    jax.clear_caches()
    gc.collect()
    return out


def covered(interval, truth=TRUE_LOG_HR) -> bool:
    return interval[0] <= truth <= interval[1]


@pytest.mark.slow
def test_two_stage_and_joint_cover_the_true_hr_at_a_rate_consistent_with_90_percent():
    # measured (20 replicates): two-stage 17/20, joint 17/20, plug-in Cox 16/20
    results = [replicate(r) for r in range(20)]
    for method in ("two-stage", "joint"):
        hits = sum(covered(res[method]) for res in results)
        assert hits >= 15, f"{method}: {hits}/20 intervals cover the true log HR {TRUE_LOG_HR}"


@pytest.mark.slow
def test_with_sparse_ck_the_plug_in_interval_is_too_narrow():
    # two CK samples per patient, at random from the 12 scheduled days, and a strong effect (HR 0.5 per
    # doubling): the exposures are uncertain (reliability ~0.5). The plug-in interval's implied standard
    # error is well below the actual spread of the plug-in estimates over replicates, and the intervals that
    # carry the exposure uncertainty are wider. (Measured, 20 replicates: plug-in implied SE 0.157 vs
    # empirical SD 0.205; two-stage interval 1.5x the plug-in's.)
    results = [replicate(r, samples_per_patient=2, joint=False, log_hr=np.log(0.5)) for r in range(20)]
    estimates = np.array([res["plugin_estimate"] for res in results])
    widths = {m: np.array([res[m][1] - res[m][0] for res in results]) for m in ("plugin", "plugin-bayes", "two-stage")}
    implied_se = widths["plugin"].mean() / (2 * 1.6449)
    assert np.mean([res["reliability"] for res in results]) < 0.7
    assert implied_se < 0.9 * estimates.std(ddof=1)
    assert widths["two-stage"].mean() > 1.15 * widths["plugin-bayes"].mean()
