"""Dose scenarios from a fit: bands, exposure metrics, targets, the exposure-response hook, and errors."""

import arviz as az
import jax
import numpy as np
import pytest
from scipy import stats

from carkin.errors import ConvergenceWarning, SpecError
from carkin.exposure import exposure_metrics
from carkin.inference import Fit, parameter_table, population_draws
from carkin.population import load_spec
from carkin.simulate import (
    load_scenario,
    scenario_from_dict,
    scenario_metrics,
    simulate_scenario,
    truth_from_spec,
)

from ..helpers import multiphasic_spec_as_at_9913582, piecewise_concentration

SMALL = {
    "name": "test doses",
    "doses": {"levels": [150.0, 450.0]},
    "population": {"n_patients": 200, "draws": 0},
    "covariates": {"TUMOR_BURDEN": {"value": 60.0}},
    "sampling": {"times": [0.0, 4.0, 9.5, 11.0, 14.0, 28.0, 90.0, 365.0]},
    "exposure": {"auc_windows_days": [28.0]},
}


def scenario(**changes):
    data = {**SMALL, **changes}
    return scenario_from_dict(data, source="test.toml")


def point_mass_fit(spec, *, mu=None, omega=None, beta=None, draws=4, simulated=True) -> Fit:
    """A Fit whose posterior puts every draw on the given population values (arrays (draws, ...) or (...))."""
    truth = truth_from_spec(spec)

    def stack(value, default):
        value = np.asarray(default if value is None else value, dtype=float)
        return np.broadcast_to(value, (draws, *value.shape[-1:])).copy()[None]

    post = {"mu": stack(mu, truth.mu), "omega": stack(omega, truth.omega), "sigma": np.full((1, draws), 0.4)}
    if spec.effects:
        post["beta"] = stack(beta, truth.beta)
    idata = az.from_dict(posterior=post)
    import json

    manifest = {
        "method": "nuts", "seed": 0, "diagnostics": {"passed": True},
        "data": {"simulated": simulated, "hash": None},
        "model": {"source": spec.source, "spec": json.loads(spec.raw)},
    }
    table = parameter_table(population_draws(idata.posterior, spec))
    return Fit(idata=idata, spec=spec, manifest=manifest, table=table, patient_ids=())


@pytest.fixture(scope="module")
def spec():
    return load_spec("multiphasic")


def z_values(spec, dose, tumour_burden):
    """Standardised covariates per coefficient (spec order): log_dose, tumor_burden (both log transforms)."""
    return np.array([np.log(dose / 450.0), np.log(tumour_burden / 30.0)])


class TestBands:
    def test_zero_iiv_and_a_point_mass_collapse_every_band_to_the_typical_curve(self, spec):
        fit = point_mass_fit(spec, omega=np.zeros(6))
        result = simulate_scenario(fit, scenario(), key=jax.random.PRNGKey(0))
        bands = result.bands()
        truth = truth_from_spec(spec)
        for i, dose in enumerate(result.doses):
            z = z_values(spec, dose, 60)
            phi = np.asarray(truth.mu) + np.array([truth.beta[0] * z[0] + truth.beta[1] * z[1], 0, 0, 0, 0, 0])
            p = {
                name: (np.exp(v) if name != "fb" else 1 / (1 + np.exp(-v)))
                for name, v in zip(spec.parameter_names, phi, strict=True)
            }
            p["alpha"] = p["beta"] + p["delta"]
            curve = piecewise_concentration(p, result.times)
            for name, band in bands.items():
                np.testing.assert_allclose(band[i], curve, rtol=1e-9, err_msg=name)

    def test_parameter_uncertainty_and_between_patient_variability_are_kept_apart(self, spec):
        truth = truth_from_spec(spec)
        mu = np.asarray(truth.mu)[None, :] + np.linspace(-0.5, 0.5, 8)[:, None] * np.eye(6)[0]  # cmax varies by draw
        fit = point_mass_fit(spec, mu=mu, omega=np.zeros(6), draws=8)
        result = simulate_scenario(fit, scenario(), key=jax.random.PRNGKey(1))
        bands = result.bands()
        # no IIV: within a draw every patient has the typical curve, so the population band has no width ...
        np.testing.assert_allclose(bands["population_lower"], bands["population_upper"], rtol=1e-9)
        # ... while the typical curve moves with the draws: log Cmax shifts by the 5% / 95% quantiles of the shifts
        shifts = np.linspace(-0.5, 0.5, 8)
        ratio = bands["typical_upper"] / bands["typical_median"]
        np.testing.assert_allclose(ratio, np.exp(np.quantile(shifts, 0.95) - np.quantile(shifts, 0.5)), rtol=1e-9)

    def test_chunk_size_does_not_change_the_numbers(self, spec):
        fit = point_mass_fit(spec, draws=6)
        a = simulate_scenario(fit, scenario(), key=jax.random.PRNGKey(2))
        b = simulate_scenario(fit, scenario(), key=jax.random.PRNGKey(2), chunk_size=4)
        np.testing.assert_array_equal(a.metrics["cmax"], b.metrics["cmax"])
        np.testing.assert_array_equal(a.population, b.population)


class TestExposure:
    def test_cmax_quantiles_are_the_analytic_log_normal_ones(self, spec):
        truth = truth_from_spec(spec)
        fit = point_mass_fit(spec)
        result = simulate_scenario(fit, scenario(), key=jax.random.PRNGKey(3), n_patients=5000)
        q = np.array([0.05, 0.25, 0.5, 0.75, 0.95])
        omega = float(truth.omega[0])
        for i, dose in enumerate(result.doses):
            mean = float(truth.mu[0]) + np.asarray(truth.beta) @ z_values(spec, dose, 60)
            analytic = np.exp(mean + omega * stats.norm.ppf(q))
            np.testing.assert_allclose(result.exposure_quantiles("cmax", q)[i], analytic, rtol=0.03)
            # the typical patient's Cmax and Tmax are exactly its parameters (closed form: peak at tmax)
            assert result.typical_metrics["cmax"][0, i] == pytest.approx(np.exp(mean), rel=1e-9)
            assert result.typical_metrics["tmax"][0, i] == pytest.approx(np.exp(float(truth.mu[1])), rel=1e-8)

    def test_auc_is_the_closed_form_integral(self, spec):
        rng = np.random.default_rng(0)
        p = {
            "cmax": rng.lognormal(10, 1, 50),
            "tmax": rng.lognormal(np.log(11), 0.5, 50),
            "rho": rng.lognormal(-0.2, 0.3, 50),
            "beta": rng.lognormal(np.log(0.003), 0.5, 50),
            "delta": rng.lognormal(np.log(0.16), 0.5, 50),
            "fb": rng.uniform(0.001, 0.1, 50),
        }
        # the scenario's metrics (cmax, tmax, auc0_<W>) are carkin.exposure's one engine
        chosen = scenario_metrics((28.0, 90.0))

        def scenario_values(ind):
            values = exposure_metrics(spec.kinetic_model, ind, tuple(chosen.values()))
            return {name: values[m.name] for name, m in chosen.items()}

        out = jax.jit(scenario_values)({k: jax.numpy.asarray(v) for k, v in p.items()})
        alpha = p["beta"] + p["delta"]
        for w in (28.0, 90.0):
            s = np.minimum(p["tmax"], w)
            rise = p["cmax"] / p["rho"] * (np.exp(p["rho"] * (s - p["tmax"])) - np.exp(-p["rho"] * p["tmax"]))
            tail = np.maximum(w - p["tmax"], 0.0)
            fall = p["cmax"] * (
                (1 - p["fb"]) / alpha * -np.expm1(-alpha * tail) + p["fb"] / p["beta"] * -np.expm1(-p["beta"] * tail)
            )
            np.testing.assert_allclose(np.asarray(out[f"auc0_{w:g}"]), rise + fall, rtol=1e-10)
        np.testing.assert_allclose(np.asarray(out["cmax"]), p["cmax"], rtol=1e-10)
        np.testing.assert_allclose(np.asarray(out["tmax"]), p["tmax"], rtol=1e-8)

    def test_target_probability_and_covariate_table(self, spec, tmp_path):
        table = tmp_path / "cov.csv"
        table.write_text("ID,TUMOR_BURDEN\n1,15\n2,60\n")
        sc = scenario_from_dict({**SMALL, "covariates": {"table": "cov.csv"},
                                 "target": {"metric": "cmax", "threshold": 20000.0}}, source="t.toml", base=tmp_path)
        assert sc.typical_covariates() == {"TUMOR_BURDEN": 37.5}
        truth = truth_from_spec(spec)
        fit = point_mass_fit(spec, omega=np.zeros(6))
        result = simulate_scenario(fit, sc, key=jax.random.PRNGKey(4), n_patients=500)
        for i, dose in enumerate(result.doses):
            values = np.unique(np.round(result.metrics["cmax"][:, i], 6))
            expected = [
                np.exp(float(truth.mu[0]) + np.asarray(truth.beta) @ z_values(spec, dose, tb)) for tb in (15, 60)
            ]
            np.testing.assert_allclose(values, sorted(expected), rtol=1e-9)
            share_high = np.mean(result.metrics["cmax"][:, i] > np.mean(expected))
            assert share_high == pytest.approx(0.5, abs=0.05)
            hit = np.mean(result.metrics["cmax"][:, i] >= 20000.0)
            assert result.target_probability()["pooled"][i] == pytest.approx(hit)


class TestExposureResponseHook:
    def hook(self, slope):
        return {"metric": "cmax", "log_hr_per_doubling": slope, "reference": 24000.0,
                "breaks_months": [0.0, 6.0], "hazard_per_month": [0.05, 0.08], "landmarks_months": [6.0, 12.0]}

    def test_flat_exposure_response_gives_the_baseline_pfs(self, spec):
        fit = point_mass_fit(spec)
        result = simulate_scenario(fit, scenario(exposure_response=self.hook(0.0)), key=jax.random.PRNGKey(5))
        np.testing.assert_allclose(result.pfs_landmarks[..., 0], np.exp(-0.3), rtol=1e-12)
        np.testing.assert_allclose(result.pfs_landmarks[..., 1], np.exp(-0.3 - 0.48), rtol=1e-12)
        np.testing.assert_allclose(result.pfs_median, 6.0 + (np.log(2) - 0.3) / 0.08, rtol=1e-9)

    def test_pfs_follows_the_assumed_hazard_ratio_per_doubling(self, spec):
        truth = truth_from_spec(spec)
        fit = point_mass_fit(spec, omega=np.zeros(6))
        result = simulate_scenario(fit, scenario(exposure_response=self.hook(-0.2)), key=jax.random.PRNGKey(6))
        for i, dose in enumerate(result.doses):
            cmax = np.exp(float(truth.mu[0]) + np.asarray(truth.beta) @ z_values(spec, dose, 60))
            hr = np.exp(-0.2 * np.log2(cmax / 24000.0))
            assert result.pfs_landmarks[0, i, 1] == pytest.approx(np.exp(-(0.3 + 0.48) * hr), rel=1e-10)
        summary = result.to_dict()
        assert summary["exposure_response"]["hook"] is True
        assert summary["doses"][1]["pfs"]["landmarks"][1]["months"] == 12.0

    def test_per_draw_slopes_must_match_the_draws(self, spec):
        fit = point_mass_fit(spec, draws=3)
        with pytest.raises(SpecError, match=r"test.toml: \[exposure_response\] log_hr_per_doubling has 2 values "
                                            r"but 3 posterior draws"):
            simulate_scenario(fit, scenario(exposure_response=self.hook([-0.1, -0.2])), key=jax.random.PRNGKey(0))


class TestObservationsAndLLOQ:
    """Simulated observations go through carkin's one generative model and are censored at the LLOQ."""

    def test_the_blq_fraction_is_the_closed_form_probability_averaged_over_patients(self, spec):
        # IIV on cmax only: patient i's curve is the typical curve times cmax_i / cmax_typ, so an observation is
        # BLQ with probability Phi((log L - log C_typ(t) - log(cmax_i / cmax_typ)) / sigma) (sigma = 0.4)
        truth = truth_from_spec(spec)
        omega = np.zeros(6)
        omega[0] = float(truth.omega[0])
        fit = point_mass_fit(spec, omega=omega)
        lloq = 2000.0
        result = simulate_scenario(fit, scenario(sampling={**SMALL["sampling"], "lloq": lloq}),
                                   key=jax.random.PRNGKey(7), n_patients=2000)
        assert result.lloq == lloq and "sampling.lloq" in result.lloq_source
        shift = np.log(result.metrics["cmax"] / result.typical_metrics["cmax"][..., None])  # (draws, doses, patients)
        z = (np.log(lloq) - np.log(result.typical)[:, :, None, :] - shift[..., None]) / 0.4
        p = stats.norm.cdf(z)  # (draws, doses, patients, times)
        expected = p.mean(axis=(0, 2))
        se = np.sqrt((p * (1 - p)).sum(axis=(0, 2))) / (p.shape[0] * p.shape[2])
        got = result.blq()["pooled"]
        assert got.shape == (2, len(result.times))
        np.testing.assert_array_less(np.abs(got - expected), 4 * se + 1e-12)
        assert ((expected > 0.1) & (expected < 0.9)).any() and expected.max() > 0.9  # the check covers a real range

    def test_the_lloq_comes_from_the_scenario_then_the_fits_data_then_the_model(self, spec):
        from carkin.simulate import scenario_lloq

        fit = point_mass_fit(spec)
        model_lloq = spec.simulation["lloq"]
        assert scenario_lloq(fit, scenario()) == (model_lloq, scenario_lloq(fit, scenario())[1])
        assert "[simulation] lloq" in scenario_lloq(fit, scenario())[1]
        fit.manifest["data"]["lloq"] = model_lloq + 7.0
        value, source = scenario_lloq(fit, scenario())
        assert value == model_lloq + 7.0 and "the fit's data" in source
        value, source = scenario_lloq(fit, scenario(sampling={**SMALL["sampling"], "lloq": 25.0}))
        assert value == 25.0 and "test.toml: sampling.lloq" in source

    def test_observation_bands_are_censored_at_the_lloq_and_reported(self, spec):
        fit = point_mass_fit(spec)
        sampling = {**SMALL["sampling"], "residual": True, "lloq": 500.0}
        result = simulate_scenario(fit, scenario(sampling=sampling), key=jax.random.PRNGKey(8))
        assert np.all(result.population >= 500.0 * (1 - 1e-12))  # a BLQ observation is recorded at the LLOQ
        at_lloq = np.isclose(result.population, 500.0, rtol=1e-12)
        assert at_lloq[:, 0].any() and not at_lloq[:, 2].all()
        blq = result.blq()
        # the lower band edge sits at the LLOQ exactly where at least 5% of a draw's observations are BLQ
        np.testing.assert_array_equal(at_lloq[:, 0], result.blq_fraction > 0.05)
        summary = result.to_dict()
        assert summary["lloq"] == {"value": 500.0, "unit": "copies/ug", "source": result.lloq_source}
        np.testing.assert_allclose(summary["doses"][1]["blq_fraction"]["pooled"], blq["pooled"][1], rtol=1e-12)
        assert "censored at the LLOQ" in summary["bands"]["population"]

    def test_same_numbers_as_before_for_the_same_key(self, spec):
        """Profiles are unchanged; exposures now come from carkin.exposure's closed form (they differed from the
        former golden-section/Gauss-Legendre values by < 3e-14). Values from the code of main at 9913582."""
        hook = {"metric": "cmax", "log_hr_per_doubling": -0.2, "reference": 24000.0, "breaks_months": [0.0, 6.0],
                "hazard_per_month": [0.05, 0.08], "landmarks_months": [6.0, 12.0]}
        sc = scenario(population={"n_patients": 40, "draws": 0}, exposure_response=hook)
        result = simulate_scenario(point_mass_fit(multiphasic_spec_as_at_9913582(), draws=3), sc,
                                   key=jax.random.PRNGKey(8))
        np.testing.assert_allclose(result.population[1, :, 0, 1:5], [
            [0.0029459189912724912, 9.297657217996335, 49.919690990894864, 1137.1201471476736],
            [19.747645118433514, 2529.5269225117218, 8436.816683350466, 11479.803055099008],
            [625.3820119194365, 39942.45296747356, 52312.90627128447, 46706.187123279786]], rtol=1e-12)
        assert np.log(result.population).sum() == pytest.approx(776.3327992236107, rel=1e-12)
        assert np.log(result.typical).sum() == pytest.approx(303.7224264949739, rel=1e-12)
        for name, total in (("cmax", 9670340.197478801), ("tmax", 2778.977280427498), ("auc0_28", 63771092.34840378)):
            assert result.metrics[name].sum() == pytest.approx(total, rel=1e-12)
        np.testing.assert_allclose(result.pfs_median.ravel(), [
            11.00486263910673, 11.87830334757717, 10.921382311608248, 11.786494492333674, 11.029429502832972,
            11.905321157679445], rtol=1e-12)


class TestScenarioFile:
    def test_the_shipped_scenario_loads(self):
        sc = load_scenario("scenarios/doses.toml")
        assert sc.doses == (150.0, 300.0, 450.0, 540.0) and sc.auc_windows == (28.0, 90.0)
        assert sc.target.metric == "cmax" and sc.exposure_response.metric == "cmax"

    def test_the_shipped_e_r_hook_is_the_virtual_cohort_s_generating_relation(self):
        # scenarios/doses.toml says its E-R numbers are the cohort's direct effect, reference Cmax and
        # reference-patient baseline hazard (models/karmma3_cohort.toml): they must not drift apart.
        from carkin.cohorts import load_karmma3_config

        cfg = load_karmma3_config()
        er = load_scenario("scenarios/doses.toml").exposure_response
        assert er.log_hr_per_doubling == cfg.exposure.log_hr_per_doubling_cmax
        assert er.reference == cfg.ck.cmax_typical
        assert tuple(er.breaks_months) == tuple(cfg.pfs_ide_cel_infused.breaks_months)
        assert tuple(er.hazard_per_month) == tuple(cfg.pfs_ide_cel_infused.hazard_per_month)
        assert er.source.startswith("assumed")

    def test_a_model_without_a_dose_covariate_says_so(self, spec):
        no_dose = spec.replace(
            covariates={
                "tumor_burden": {
                    "column": "TUMOR_BURDEN",
                    "transform": "log",
                    "reference": 30.0,
                    "parameters": ["cmax"],
                    "prior_sd": 1.0,
                }
            }
        )
        result = simulate_scenario(point_mass_fit(no_dose), scenario(), key=jax.random.PRNGKey(0))
        assert any("no covariate on DOSE" in note for note in result.notes)
        np.testing.assert_array_equal(result.metrics["cmax"][:, 0], result.metrics["cmax"][:, 1])

    @pytest.mark.parametrize(
        "change, message",
        [
            (
                {"doses": {}},
                r"test.toml: \[doses\] levels is missing; add levels = <a list of numbers> \(10\^6 CAR\+ T cells\)",
            ),
            ({"doses": {"levels": [150, -1]}}, r"test.toml: \[doses\] levels = \[150, -1\] holds -1, which is not > 0"),
            ({"population": {"n_patients": 0}}, r"\[population\] n_patients = 0 is not >= 1; give an integer >= 1"),
            ({"sampling": {"times": [5, 1]}}, r"\[sampling\] times = \[5, 1\] does not increase strictly"),
            ({"sampling": {"interval": 1.5}}, r"\[sampling\] interval = 1.5 is outside \(0, 1\)"),
            (
                {"target": {"metric": "cmin", "threshold": 1.0}},
                r"\[target\] metric = 'cmin' is not valid; choose one of cmax, tmax, auc0_28",
            ),
            (
                {"covariates": {"TUMOR_BURDEN": {"median": 30, "low": 50, "high": 10}}},
                r"\[covariates.TUMOR_BURDEN\] low = 50.0 is not below high",
            ),
            ({"sampling": {"lloq": 0}}, r"test.toml: \[sampling\] lloq = 0 is not > 0"),
            # unknown keys (typos) are errors that list the valid keys
            ({"dose": {"levels": [150]}}, r"test.toml: dose is not a valid key; valid keys: name, doses, population"),
            (
                {"sampling": {"intervall": 0.8}},
                r"\[sampling\] intervall is not a valid key; valid keys: times, interval, residual",
            ),
            (
                {"covariates": {"TUMOR_BURDEN": {"median": 30, "logsd": 0.5}}},
                r"\[covariates.TUMOR_BURDEN\] logsd is not a valid key",
            ),
            (
                {"covariates": {"TUMOR_BURDEN": {"value": 30, "median": 30}}},
                r"\[covariates.TUMOR_BURDEN\] median given with value",
            ),
            (
                {
                    "exposure_response": {
                        "metric": "cmax",
                        "log_hr_per_doubling": -0.1,
                        "reference": 1e4,
                        "breaks_months": [0.0, 3.0],
                        "hazard_per_month": [0.1],
                    }
                },
                r"\[exposure_response\] hazard_per_month = \[0.1\] has 1 values but breaks_months has 2; "
                r"give one hazard per piece",
            ),
        ],
    )
    def test_bad_keys_are_named_with_the_file(self, change, message):
        with pytest.raises(SpecError, match=message):
            scenario(**change)

    def test_missing_covariate_names_the_scenario_and_the_model(self, spec):
        with pytest.raises(SpecError, match=r"test.toml: \[covariates\] has no TUMOR_BURDEN, but the model "
                                            r".*multiphasic.toml\) needs covariate\(s\) TUMOR_BURDEN"):
            simulate_scenario(point_mass_fit(spec), scenario(covariates={}), key=jax.random.PRNGKey(0))

    def test_missing_scenario_file(self, tmp_path):
        with pytest.raises(SpecError, match="nope.toml: scenario file not found"):
            load_scenario(tmp_path / "nope.toml")


@pytest.mark.slow
class TestWithRealFits:
    def test_a_map_fit_to_a_simulated_cohort_runs_end_to_end(self, spec):
        from carkin.inference import SamplerSettings, fit
        from carkin.simulate import simulate_cohort

        cohort = simulate_cohort(spec, key=jax.random.PRNGKey(0), n=30)
        result = fit(
            cohort.dataset, spec, method="map", settings=SamplerSettings(steps=500, samples=1, progress_bar=False)
        )
        with pytest.warns(ConvergenceWarning, match="failed its convergence gates"):
            out = simulate_scenario(result, scenario(), key=jax.random.PRNGKey(1))
        assert out.n_draws == 1 and np.all(np.isfinite(out.metrics["cmax"]))
        assert any("FAILED its convergence gates" in note for note in out.notes)  # MAP is an approximation

    def test_the_ode_twin_gives_the_closed_form_exposures(self, spec):
        ode = load_spec("models/effector_memory.toml")
        a = simulate_scenario(point_mass_fit(spec), scenario(), key=jax.random.PRNGKey(0), n_patients=5)
        b = simulate_scenario(point_mass_fit(ode), scenario(), key=jax.random.PRNGKey(0), n_patients=5)
        for name in ("cmax", "tmax", "auc0_28"):
            np.testing.assert_allclose(b.metrics[name], a.metrics[name], rtol=1e-5)
        np.testing.assert_allclose(b.typical, a.typical, rtol=1e-5)
