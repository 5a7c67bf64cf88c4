"""Bayesian PH: likelihoods against hand formulas and scipy, site shapes, and the two-stage runs."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro import handlers
from scipy import stats

from carkin.er import er_analysis_set, ph_log_likelihood, simulate_er_study, survival_arrays, two_stage
from carkin.er._ph_model import piecewise_log_likelihood, weibull_log_likelihood
from carkin.errors import ConvergenceWarning
from carkin.exposure import PosteriorExposure
from carkin.inference import SamplerSettings

QUICK = SamplerSettings(chains=1, warmup=250, samples=300, max_tree_depth=6, progress_bar=False)


@pytest.fixture(scope="module")
def known_exposure_data():
    """300 patients, true Cmax known exactly (every 'posterior draw' equal), true log HR -0.29 per doubling."""
    study = simulate_er_study(jax.random.key(3), n=300, log_hr_per_doubling=-0.29, seed=3)
    values = np.tile(study.truth["EXPOSURE"].to_numpy(), (30, 1))
    exposure = PosteriorExposure.from_values(study.truth["ID"], {"cmax": values}, simulated=True)
    return er_analysis_set(exposure, study.patients, adjust=study.prognostic_factors)


class TestLikelihoods:
    def _arrays(self, data):
        return survival_arrays(data, pieces=3)

    def test_survival_arrays_split_follow_up_over_intervals_with_equal_event_counts(self, known_exposure_data):
        arrays = self._arrays(known_exposure_data)
        np.testing.assert_allclose(np.asarray(arrays.at_risk).sum(axis=1), known_exposure_data.time, rtol=1e-12)
        np.testing.assert_array_equal(np.asarray(arrays.event_piece).sum(axis=1), known_exposure_data.event)
        per_piece = np.asarray(arrays.event_piece).sum(axis=0)
        assert per_piece.max() - per_piece.min() <= 2 and arrays.breaks[-1] == np.inf

    def test_piecewise_log_likelihood_matches_the_hand_formula(self, known_exposure_data):
        arrays = self._arrays(known_exposure_data)
        lp = jnp.linspace(-1.0, 1.0, known_exposure_data.n)
        log_h = jnp.log(jnp.asarray([0.05, 0.08, 0.03]))
        got = np.asarray(piecewise_log_likelihood(arrays, lp, log_h))
        h = np.exp(np.asarray(log_h))
        d, t, b = known_exposure_data.event, known_exposure_data.time, np.asarray(arrays.breaks)
        for i in (0, 5, 17):
            k = np.searchsorted(b, t[i], side="left") - 1
            k = min(max(k, 0), 2)
            cumulative = sum(h[j] * max(min(t[i], b[j + 1]) - b[j], 0.0) for j in range(3))
            expected = d[i] * (np.log(h[k]) + float(lp[i])) - np.exp(float(lp[i])) * cumulative
            assert got[i] == pytest.approx(expected, rel=1e-12)

    def test_weibull_log_likelihood_is_the_weibull_density_or_survival(self, known_exposure_data):
        arrays = self._arrays(known_exposure_data)
        lp = jnp.linspace(-0.5, 0.5, known_exposure_data.n)
        k, s = 1.3, 12.0
        got = np.asarray(weibull_log_likelihood(arrays, lp, jnp.log(k), jnp.log(s)))
        scale = s * np.exp(-np.asarray(lp) / k)  # PH with a Weibull baseline is Weibull with this scale
        t, d = known_exposure_data.time, known_exposure_data.event
        expected = np.where(
            d == 1, stats.weibull_min.logpdf(t, k, scale=scale), stats.weibull_min.logsf(t, k, scale=scale)
        )
        np.testing.assert_allclose(got, expected, rtol=1e-10)

    @pytest.mark.parametrize("batch", [(), (4,)])
    @pytest.mark.parametrize("baseline", ["piecewise", "weibull"])
    def test_sites_carry_the_batch_shape(self, known_exposure_data, batch, baseline):
        arrays = self._arrays(known_exposure_data)
        x = jnp.zeros(batch + (known_exposure_data.n,))
        with handlers.trace() as tr, handlers.seed(rng_seed=0):
            ll = ph_log_likelihood(arrays, x, baseline=baseline)
        assert ll.shape == batch and tr["log_hr"]["value"].shape == batch
        assert tr["coef"]["value"].shape == batch + (4,)

    def test_an_unknown_baseline_lists_the_valid_ones(self, known_exposure_data):
        arrays = self._arrays(known_exposure_data)
        with pytest.raises(ValueError, match="choose one of piecewise, weibull"), handlers.seed(rng_seed=0):
            ph_log_likelihood(arrays, jnp.zeros(known_exposure_data.n), baseline="cox")


class TestTwoStage:
    @pytest.mark.slow  # minutes on 2 cores (a NUTS or joint fit); run with pytest -m slow
    def test_without_exposure_uncertainty_two_stage_equals_the_plug_in_and_recovers_cox(self, known_exposure_data):
        from carkin.er import plugin_analysis
        from carkin.exposure import exposure_quartiles

        stage, plug_in = two_stage(known_exposure_data, key=jax.random.key(0), n_draws=20, settings=QUICK)
        assert stage.method == "two-stage" and plug_in.method == "plug-in (Bayesian)"
        assert abs(np.log(stage.hr_per_doubling.hr) - np.log(plug_in.hr_per_doubling.hr)) < 0.03
        # same model, same data: the widths differ only by Monte Carlo error of the 5% / 95% quantiles
        assert stage.hr_per_doubling.log_width / plug_in.hr_per_doubling.log_width == pytest.approx(1.0, abs=0.25)
        q = exposure_quartiles(2.0 ** known_exposure_data.log2_draws, patient_ids=known_exposure_data.ids)
        cox = plugin_analysis(known_exposure_data, q).hr_per_doubling
        assert np.log(plug_in.hr_per_doubling.hr) == pytest.approx(np.log(cox.hazard_ratio), abs=0.04)
        assert stage.hr_per_doubling.ci_low < np.exp(-0.29) < stage.hr_per_doubling.ci_high
        assert stage.diagnostics["divergences"] == 0 and stage.n_exposure_draws == 20
        assert set(stage.quartile_hr) == {"Q2", "Q3", "Q4"}
        assert stage.quartile_hr["Q4"].hr < stage.quartile_hr["Q2"].hr < 1.0
        assert set(stage.covariate_hr) == set(known_exposure_data.covariate_names)

    @pytest.mark.slow
    def test_weibull_plug_in_agrees_with_the_piecewise_baseline(self, known_exposure_data):
        _, weibull = two_stage(
            known_exposure_data, key=jax.random.key(1), n_draws=0, baseline="weibull", settings=QUICK
        )
        assert weibull.baseline == "weibull" and weibull.n_exposure_draws == 0
        assert np.log(weibull.hr_per_doubling.hr) == pytest.approx(-0.29, abs=0.15)

    def test_a_single_draw_fit_is_refused_for_two_stage(self, known_exposure_data):
        import dataclasses

        single = dataclasses.replace(known_exposure_data, log2_draws=known_exposure_data.log2_draws[:1])
        with pytest.raises(ValueError, match="single posterior draw"):
            two_stage(single, key=jax.random.key(0))

    def test_an_unknown_scheme_lists_the_valid_ones(self, known_exposure_data):
        with pytest.raises(ValueError, match="choose one of resample, cut"):
            two_stage(known_exposure_data, key=jax.random.key(0), scheme="pool")


class TestConvergenceGate:
    """E-R Bayesian fits pass through the CK fits' convergence gate: verdict and reasons in the result."""

    def test_a_too_short_fit_fails_the_gate_and_says_why(self, known_exposure_data):
        short = SamplerSettings(chains=2, warmup=20, samples=30, max_tree_depth=4, progress_bar=False)
        with pytest.warns(ConvergenceWarning, match=r"the Bayesian PH fit \(plug-in \(Bayesian\)\) FAILED its "
                                                    r"convergence gates:\n  log_hr: "):
            _, plug_in = two_stage(known_exposure_data, key=jax.random.key(4), n_draws=0, settings=short)
        gate = plug_in.diagnostics
        assert gate["passed"] is False and "log_hr: bulk ESS" in "; ".join(gate["failures"])
        assert gate["min_ess_bulk"] < 400 and gate["gates"]["min_ess_bulk"] == 400
        assert plug_in.to_dict()["diagnostics"]["failures"] == gate["failures"]  # the JSON keys of `carkin er`

    def test_a_healthy_fit_passes_the_gate_on_every_coefficient(self, known_exposure_data):
        healthy = SamplerSettings(chains=2, warmup=300, samples=1000, max_tree_depth=6, progress_bar=False)
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            _, plug_in = two_stage(known_exposure_data, key=jax.random.key(5), n_draws=0, settings=healthy)
        gate = plug_in.diagnostics
        assert gate["passed"] and gate["failures"] == [] and gate["divergences"] == 0
        assert gate["max_r_hat"] <= 1.01 and gate["min_ess_bulk"] >= 400 and gate["min_ess_tail"] >= 400

    @pytest.mark.slow  # minutes on 2 cores (a NUTS or joint fit); run with pytest -m slow
    def test_the_joint_fit_is_gated_on_the_pfs_and_the_ck_population_quantities(self):
        from carkin.er import joint_ph
        from carkin.inference import fit
        from carkin.population import load_spec

        study = simulate_er_study(jax.random.key(6), n=30, seed=6)
        spec = load_spec("multiphasic")
        with pytest.warns(ConvergenceWarning):  # MAP: an approximation
            ck = fit(study.dataset, spec, method="map", settings=SamplerSettings(steps=200, progress_bar=False))
        exposure = PosteriorExposure.from_values(study.truth["ID"], {"cmax": study.truth["EXPOSURE"].to_numpy()})
        data = er_analysis_set(exposure, study.patients)
        tiny = SamplerSettings(chains=1, warmup=10, samples=10, max_tree_depth=3, progress_bar=False)
        with pytest.warns(ConvergenceWarning, match="the joint CK \\+ PFS fit FAILED its convergence gates"):
            joint = joint_ph(ck, study.dataset, data, key=jax.random.key(6), settings=tiny)
        failures = joint.diagnostics["failures"]
        assert not joint.diagnostics["passed"] and "log_hr: R-hat nan > 1.01" in failures  # one chain: no R-hat
        assert "typical_cmax: R-hat nan > 1.01" in failures and "sigma: R-hat nan > 1.01" in failures
        assert joint.diagnostics["max_r_hat_ck"] is None and joint.diagnostics["min_ess_bulk_ck"] > 0


class TestJointModel:
    @pytest.mark.slow  # minutes on 2 cores (a NUTS or joint fit); run with pytest -m slow
    def test_joint_model_holds_the_ck_sites_and_a_finite_pfs_term_with_a_gradient(self):
        from numpyro.infer.util import log_density

        from carkin.er import joint_model
        from carkin.exposure import get_metric
        from carkin.population import load_spec, prepare

        study = simulate_er_study(jax.random.key(5), n=40, seed=5)
        spec = load_spec("multiphasic")
        ck_data = prepare(study.dataset, spec)
        exposure = PosteriorExposure.from_values(study.truth["ID"], {"cmax": study.truth["EXPOSURE"].to_numpy()})
        data = er_analysis_set(exposure, study.patients, adjust=study.prognostic_factors)
        arrays = survival_arrays(data)
        args = (ck_data, spec, arrays, jnp.asarray(data.exposure_index), None, get_metric("cmax"),
                float(np.mean(data.log2_plug_in)), "piecewise", 1.0)
        with handlers.trace() as tr, handlers.seed(rng_seed=0):
            joint_model(*args)
        assert {"mu", "omega", "phi", "sigma", "log_hr", "coef", "log_baseline_hazard"} <= set(tr)
        assert tr["phi"]["value"].shape == (40, 6)
        params = {k: v["value"] for k, v in tr.items() if v["type"] == "sample"}

        def log_joint(log_hr):
            return log_density(joint_model, args, {}, params | {"log_hr": log_hr})[0]

        value, grad = jax.jit(jax.value_and_grad(log_joint))(jnp.asarray(-0.2))
        assert np.isfinite(value) and np.isfinite(grad)
        # the exposure enters the PFS term through phi: d log p / d phi[cmax] depends on log_hr for analysed patients

        @jax.jit
        def grad_phi(log_hr):
            return jax.grad(lambda phi: log_density(joint_model, args, {}, params | {"phi": phi, "log_hr": log_hr})[0])(
                params["phi"])

        difference = np.asarray(grad_phi(jnp.asarray(-0.5)) - grad_phi(jnp.asarray(0.0)))
        analysed = np.asarray(data.exposure_index)
        assert np.all(np.abs(difference[analysed, 0]) > 0)  # column 0 is cmax, the metric
        assert np.allclose(difference[:, 1:], 0.0)  # the other parameters do not enter Cmax
