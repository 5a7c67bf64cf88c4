"""A standard PK fit: carkin's NUTS fit of Theoph (``models/theophylline.toml``) against R nlme's ML fit.

The reference is ``fm2Theo.nlme`` in ``tests/reference/pk_nlme.json`` (nlme 3.1-162, method ML): the same
model (SSfol, IIV on log ke, log ka and log CL with a diagonal covariance, additive error, all 132
observations). A Bayesian posterior median is not an ML estimate, and the priors and the small number of
subjects (12) make them differ a little; the tolerances below are stated in nlme's own standard errors:

- convergence: the short run (2 chains x (300 + 300)) is too short for carkin's gates (R-hat < 1.01, tail
  ESS > 400; seed 1 gives R-hat 1.028 on sigma_add with a bulk ESS of 451), so it is asked for no divergences,
  R-hat < 1.05 and bulk ESS > 100; the full default-settings fit (slow) must pass the gates themselves;
- typical values (log scale, nlme's fixed effects): within 2 SE of nlme's estimate in the short fit and
  within 1 SE in the full one (the recorded full fit is within 0.2 SE, `benchmarks/theophylline_vs_nlme.py`);
- residual SD: within 15%. nlme gives no SE for it; the relative SE of an SD estimated from ~132 - 36
  residual degrees of freedom is about 1 / sqrt(2 x 96) = 7%, so 15% is about 2 SE;
- IIV SDs of log ka and log CL: within 40%. With 12 subjects the relative SE of an SD is about
  1 / sqrt(2 x 12) = 20%, so 40% is about 2 SE. nlme puts the SD of log ke at its boundary (2e-5, a
  singular fit); a posterior under a half-normal prior cannot be 0, so the test asks only that it be small
  (posterior median below 0.15, below fm1Theo.nlme's 0.13 + its ~20% SE).
"""

import json
import math
import warnings
from pathlib import Path

import jax
import numpy as np
import pytest

from carkin import SamplerSettings, fit, load_spec
from carkin._resources import shipped_data_file
from carkin.data import load_dataset
from carkin.diagnostics import goodness_of_fit, vpc
from carkin.errors import ConvergenceWarning
from carkin.inference import population_draws

REFERENCE = json.loads((Path(__file__).resolve().parents[1] / "reference" / "pk_nlme.json").read_text())
FM2 = REFERENCE["theophylline"]["fm2Theo.nlme"]
NLME = {"ke": "lKe", "ka": "lKa", "cl": "lCl"}


def _dataset():
    return load_dataset(
        shipped_data_file("theophylline", "theophylline.csv"), spec=load_spec("theophylline"), verbose=False
    )


def _fit(settings: SamplerSettings):
    spec = load_spec("theophylline")
    result = fit(_dataset(), spec, seed=1, settings=settings)
    return result, population_draws(result.idata.posterior, spec)


def _typical_in_se(draws) -> dict[str, float]:
    """(posterior median of log typical value - nlme's estimate) / nlme's SE, per parameter."""
    est, se = FM2["fixed_effects"]["estimate"], FM2["fixed_effects"]["std_error"]
    return {p: (float(np.median(np.log(draws[f"typical_{p}"]))) - est[n]) / se[n] for p, n in NLME.items()}


@pytest.fixture(scope="module")
def short():
    """A short NUTS run (2 chains x (300 + 300)), shared by the module's fast tests."""
    with warnings.catch_warnings():  # too short for the gates by design (module docstring)
        warnings.simplefilter("ignore", ConvergenceWarning)
        return _fit(SamplerSettings(chains=2, warmup=300, samples=300, progress_bar=False))


def test_the_short_fit_mixes(short):
    result, _ = short
    diag = result.manifest["diagnostics"]
    assert diag["divergences"] == 0 and diag["max_r_hat"] < 1.05 and diag["min_ess_bulk"] > 100, diag


def test_typical_values_are_within_two_nlme_standard_errors(short):
    _, draws = short
    gaps = _typical_in_se(draws)
    assert all(abs(g) < 2.0 for g in gaps.values()), gaps


def test_v_is_cl_over_ke_and_near_nlme(short):
    _, draws = short
    np.testing.assert_allclose(draws["typical_v"], draws["typical_cl"] / draws["typical_ke"], rtol=1e-12)
    # nlme's V/F = exp(lCl - lKe); the SE of that difference is at most 0.06 + 0.05 = 0.11 on the log scale
    assert float(np.median(draws["typical_v"])) == pytest.approx(FM2["derived"]["V_over_F_L_per_kg"], rel=0.2)


def test_residual_sd_is_within_15_percent_of_nlme(short):
    _, draws = short
    assert float(np.median(draws["sigma_add"])) == pytest.approx(FM2["residual_sd"], rel=0.15)


def test_iiv_sds_are_within_40_percent_of_nlme_and_ke_is_small(short):
    _, draws = short
    sd = FM2["random_effects"]["sd"]
    for p in ("ka", "cl"):
        assert float(np.median(draws[f"omega_{p}"])) == pytest.approx(sd[NLME[p]], rel=0.4), p
    assert float(np.median(draws["omega_ke"])) < 0.15


def test_diagnostics_work_on_the_data_scale_with_every_patients_dose(short):
    """GOF, NPDE and the VPC of an additive-error PK fit: residuals DV - IPRED (DV is 0 before the dose), and
    PRED equal to SSfol's closed form written out here, at the posterior median typical values."""
    result, _ = short
    dataset = _dataset()
    gof = goodness_of_fit(result, dataset, key=jax.random.PRNGKey(0), replicates=100)
    assert (
        gof.labels.log_scale == (False,)
        and gof.dv.size == 132
        and np.all(np.isfinite(gof.iwres))
        and np.all(np.isfinite(gof.npde))
    )
    np.testing.assert_allclose(gof.ires, gof.dv - gof.ipred, rtol=0, atol=1e-12)
    post = result.idata.posterior
    ke, ka, cl = (float(np.exp(np.median(post["mu"].values[..., k]))) for k in range(3))  # spec order: ke, ka, cl
    t = gof.times
    dose = np.asarray(dataset.dose)[gof.patient]
    ssfol = dose * ka * ke / (cl * (ka - ke)) * (np.exp(-ke * t) - np.exp(-ka * t))
    np.testing.assert_allclose(gof.pred, ssfol, rtol=1e-10, atol=1e-12)
    # the fit is good (nlme's IWRES have SD ~1 too): a loose sanity bound, not a calibration test
    assert 0.6 < float(np.std(gof.iwres, ddof=1)) < 1.4
    result_vpc = vpc(result, dataset, key=jax.random.PRNGKey(1), replicates=50)
    assert result_vpc.scale == ("linear",) and np.isfinite(result_vpc.observed[..., 1]).all()


@pytest.mark.slow
def test_the_default_nuts_fit_passes_its_gates_and_matches_nlme_within_one_standard_error():
    result, draws = _fit(SamplerSettings(progress_bar=False))
    assert result.converged, result.manifest["diagnostics"]["failures"]
    gaps = _typical_in_se(draws)
    assert all(abs(g) < 1.0 for g in gaps.values()), gaps
    assert float(np.median(draws["sigma_add"])) == pytest.approx(FM2["residual_sd"], rel=0.15)
    half_life = float(np.median(draws["typical_half_life"]))
    assert half_life == pytest.approx(math.log(2) / FM2["derived"]["ke_per_h"], rel=0.1)
