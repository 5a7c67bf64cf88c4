"""Fitting ODE models: the CLI end to end and failures before sampling (default run); MAP and NUTS recovery (slow)."""

import dataclasses
import json
import warnings

import jax
import numpy as np
import pytest
from typer.testing import CliRunner

from carkin.cli import app
from carkin.data import read_table
from carkin.errors import ConvergenceWarning, SolverError
from carkin.inference import SamplerSettings, fit
from carkin.population import load_spec
from carkin.simulate import simulate_cohort

runner = CliRunner()


def _typical(result, spec):
    table = result.table.set_index("parameter")
    return {p.name: (p.typical, table.loc[f"typical_{p.name}"]) for p in spec.parameters}


def test_cli_fits_the_mechanistic_model_with_its_tumour_input_and_writes_the_artefacts(tmp_path):
    cohort = tmp_path / "cohort"
    result = runner.invoke(app, ["simulate-cohort", "--model", "models/cart_tumor.toml", "--n", "12", "--seed", "2",
                                 "--out", str(cohort)])
    assert result.exit_code == 0, result.output
    assert "TUMOR_BURDEN" in (cohort / "covariates.csv").read_text()
    out = tmp_path / "run"
    result = runner.invoke(app, ["fit", str(cohort / "ck.csv"), "--covariates", str(cohort / "covariates.csv"),
                                 "--model", "models/cart_tumor.toml", "--method", "map", "--steps", "300",
                                 "--out", str(out), "--no-progress", "--allow-unconverged"])
    assert result.exit_code == 0, result.output
    for name in ("posterior.nc", "parameters.csv", "manifest.json", "individual_fits.png"):
        assert (out / name).exists(), name
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"]["ode"]["solver"] == "tsit5"
    assert manifest["model"]["ode"]["resolved_batching"] == "population"
    assert manifest["diagnostics"]["ode_solve_failures"] is None
    assert {"typical_ec50", "typical_km", "beta_log_dose_e0"} <= set(read_table(out / "parameters.csv").frame.parameter)


def test_a_model_that_cannot_be_solved_at_its_prior_fails_before_sampling_naming_patients():
    spec = load_spec("effector_memory")
    cohort = simulate_cohort(spec, key=jax.random.PRNGKey(0), n=3)
    broken = spec.replace(ode={"max_steps": 2})
    with pytest.raises(SolverError, match=r"(?s)ODE solve failed for 3 patient.*patient 1: 1 of 1 parameter set"):
        fit(cohort.dataset, broken, method="map", settings=SamplerSettings(steps=10, progress_bar=False))


@pytest.mark.slow
def test_map_of_the_effector_memory_twin_equals_the_closed_form_map():
    """The twin's MAP equals the closed form's on the same data and optimiser (an independent check of the ODE
    fit); both are near the simulation truth, loosely: with 40 patients, both MAPs put the typical cmax ~0.4 log
    below the truth for this seed (a joint MAP of a hierarchical model is not the posterior median)."""
    spec = load_spec("effector_memory")
    cohort = simulate_cohort(spec, key=jax.random.PRNGKey(21), n=40)
    settings = SamplerSettings(steps=1500, learning_rate=0.02, progress_bar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # approximate methods never pass the MCMC gates
        ode = fit(cohort.dataset, spec, method="map", seed=0, settings=settings)
        closed = fit(cohort.dataset, load_spec("multiphasic"), method="map", seed=0, settings=settings)
    closed_typical = _typical(closed, spec)
    for name, (truth, row) in _typical(ode, spec).items():
        assert row.q50 == pytest.approx(closed_typical[name][1].q50, rel=1e-3), name
        assert abs(np.log(row.q50 / truth)) < 0.5, f"{name}: MAP {row.q50:.4g} vs truth {truth:.4g}"


# --- slow: NUTS recovery ----------------------------------------------------------------------------------

NUTS = SamplerSettings(chains=2, warmup=300, samples=300, max_tree_depth=6, target_accept=0.8, progress_bar=False)


def _nuts(spec, n, seed, settings=NUTS):
    cohort = simulate_cohort(spec, key=jax.random.PRNGKey(seed), n=n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # short chains; recovery is what is tested
        return fit(cohort.dataset, spec, seed=seed, settings=settings)


@pytest.mark.slow
def test_nuts_recovers_the_effector_memory_typical_values():
    spec = load_spec("effector_memory")
    result = _nuts(spec, 100, 31)
    covered = sum(row.q05 <= truth <= row.q95 for truth, row in _typical(result, spec).values())
    assert covered >= 5, _typical(result, spec)
    assert result.manifest["diagnostics"]["max_r_hat"] < 1.05
    assert result.manifest["diagnostics"]["ode_solve_failures"] is None


@pytest.mark.slow
def test_nuts_recovers_the_identifiable_parameters_of_the_mechanistic_model():
    """e0, kexp, ec50 and the decline (beta, delta, fb) are estimated; the tumour-side constants are fixed.

    About 37 minutes on 2 idle CPU cores: 2 x (400 + 900) (this test passed in 2,195 s on 2026-12-06, one
    patient restarted). Measured on this test's data (2026-12-06): at 2 x (300 + 300) the whitened sampler's
    max R-hat was 1.38 (omega_beta, bulk ESS 4): one chain held one patient's memory phase in a minor local
    mode (beta 0.0004 vs 0.004 / day, 6.8 nats less dense); with the restart of stranded patients between the
    warm-up stages 1.09 (omega_beta, ESS 17); at 2 x (400 + 900) (this test's length, from a script running
    the same fit) 1.041 (omega_delta, bulk ESS 48), every other R-hat <= 1.014, min bulk ESS of the typical
    values 348; 5 of 6 typical values inside their 90% intervals (beta's upper bound 0.003197 / day, truth
    0.0032). Earlier, one-stage: 1.41 centred, 1.14 non-centred, 1.12 mixed IIV."""
    spec = load_spec("cart_tumor")
    result = _nuts(spec, 100, 41, dataclasses.replace(NUTS, warmup=400, samples=900))
    typical = _typical(result, spec)
    covered = sum(row.q05 <= truth <= row.q95 for truth, row in typical.values())
    assert covered >= 5, typical
    for name in ("kexp", "ec50", "delta"):  # the expansion and contraction are sharply identified
        truth, row = typical[name]
        assert abs(np.log(row.q50 / truth)) < 0.3, (name, row.q50, truth)
    assert result.manifest["diagnostics"]["max_r_hat"] < 1.05, result.table[["parameter", "q50", "r_hat", "ess_bulk"]]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["laplace", "svi"])
def test_fast_methods_fit_the_mechanistic_model(method):
    spec = load_spec("cart_tumor")
    cohort = simulate_cohort(spec, key=jax.random.PRNGKey(5), n=40)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = fit(cohort.dataset, spec, method=method, seed=0,
                     settings=SamplerSettings(steps=1500, samples=200, learning_rate=0.02, progress_bar=False))
    truth, row = _typical(result, spec)["ec50"]
    assert abs(np.log(row.q50 / truth)) < 0.3
    assert result.idata.posterior["phi"].shape[1] == 200
