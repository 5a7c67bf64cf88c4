"""Closed-form exposure metrics of the multiphasic model against numerical integration and root finding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import quad
from scipy.optimize import brentq

from carkin.exposure import DAYS_PER_MONTH, TimeGrid, exposure_metrics, multiphasic_auc, multiphasic_time_above
from carkin.models import Multiphasic, MultiphasicParams
from tests.helpers import piecewise_concentration

PATIENTS = [
    dict(cmax=24000.0, tmax=11.0, rho=0.75, alpha=0.167, beta=0.0105, fb=0.0079),
    dict(cmax=350.0, tmax=6.5, rho=1.4, alpha=0.9, beta=0.002, fb=0.2),
    dict(cmax=2.0e6, tmax=21.0, rho=0.35, alpha=0.05, beta=0.03, fb=0.45),
]
WINDOWS = [(0.0, 28.0), (0.0, 90.0), (0.0, 5.0), (2.0, 9.0), (15.0, 90.0), (30.0, 365.25), (10.0, 12.0), (0.0, 6.5)]


def _params(p):
    return MultiphasicParams(**{k: jnp.asarray(v) for k, v in p.items()})


def _individual(p):
    return {"cmax": p["cmax"], "tmax": p["tmax"], "rho": p["rho"], "beta": p["beta"],
            "delta": p["alpha"] - p["beta"], "fb": p["fb"]}


def _quad(p, a, b):
    def f(t):
        return float(piecewise_concentration(p, t))

    points = [p["tmax"]] if a < p["tmax"] < b else None
    value, _ = quad(f, a, b, points=points, epsabs=0.0, epsrel=1e-13, limit=500)
    return value


class TestAUC:
    @pytest.mark.parametrize("p", PATIENTS)
    @pytest.mark.parametrize("window", WINDOWS)
    def test_closed_form_auc_matches_numerical_integration_to_1e_8(self, p, window):
        a, b = window
        exact = float(multiphasic_auc(_params(p), a, b))
        assert exact == pytest.approx(_quad(p, a, b), rel=1e-8)

    def test_windows_wholly_before_straddling_and_after_tmax_add_up(self):
        p = PATIENTS[0]
        params = _params(p)
        whole = multiphasic_auc(params, 0.0, 90.0)
        parts = (
            multiphasic_auc(params, 0.0, 5.0) + multiphasic_auc(params, 5.0, 30.0) + multiphasic_auc(params, 30.0, 90.0)
        )
        assert float(whole) == pytest.approx(float(parts), rel=1e-13)

    def test_an_empty_window_has_zero_auc(self):
        assert float(multiphasic_auc(_params(PATIENTS[1]), 7.0, 7.0)) == 0.0

    def test_auc_is_differentiable_at_the_kink_and_matches_finite_differences(self):
        p = dict(PATIENTS[0])

        def auc(tmax):
            return multiphasic_auc(_params(p | {"tmax": tmax}), 0.0, 28.0)

        grad = float(jax.grad(auc)(11.0))
        h = 1e-5
        fd = (float(auc(11.0 + h)) - float(auc(11.0 - h))) / (2 * h)
        assert np.isfinite(grad) and grad == pytest.approx(fd, rel=1e-6)


class TestTimeAboveLLOQ:
    @pytest.mark.parametrize("p", PATIENTS)
    def test_time_above_lloq_matches_the_two_crossings_found_by_brent(self, p):
        lloq = 19.0

        def log_excess(t):
            with np.errstate(over="ignore", divide="ignore"):
                return np.log(piecewise_concentration(p, t)) - np.log(lloq)

        up = brentq(log_excess, 0.0, p["tmax"]) if log_excess(0.0) < 0 else 0.0
        down = brentq(log_excess, p["tmax"], 1e6, xtol=1e-12)
        horizon = 400.0
        expected = max(min(down, horizon) - min(up, horizon), 0.0)
        got = float(multiphasic_time_above(_params(p), lloq, horizon))
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-9)

    def test_a_curve_that_never_reaches_the_lloq_has_zero_time_above(self):
        assert float(multiphasic_time_above(_params(PATIENTS[1]), 1000.0, 365.0)) == 0.0

    def test_time_above_gradient_is_the_implicit_derivative(self):
        p = PATIENTS[0]

        def tal(cmax):
            return multiphasic_time_above(_params(p | {"cmax": cmax}), 19.0, 5000.0)

        h = 1.0
        fd = (float(tal(24000.0 + h)) - float(tal(24000.0 - h))) / (2 * h)
        assert float(jax.grad(tal)(24000.0)) == pytest.approx(fd, rel=1e-5)


class TestExposureMetrics:
    def _batch(self):
        keys = ("cmax", "tmax", "rho", "beta", "delta", "fb")
        ind = [_individual(p) for p in PATIENTS]
        return {k: jnp.asarray([i[k] for i in ind]) for k in keys}

    def test_every_preset_has_the_shape_of_the_parameters(self):
        ind = {k: jnp.broadcast_to(v, (2, 5, 3)) for k, v in self._batch().items()}
        out = exposure_metrics(Multiphasic(), ind, lloq=19.0)
        assert set(out) == {"cmax", "tmax", "auc28", "auc90", "c_m3", "c_m6", "c_m12", "persistence"}
        assert all(v.shape == (2, 5, 3) for v in out.values())

    def test_peak_metrics_are_the_parameters_and_levels_are_the_curve(self):
        ind = self._batch()
        out = exposure_metrics(Multiphasic(), ind, ["cmax", "tmax", "c_m6", "c:60"])
        np.testing.assert_allclose(out["cmax"], ind["cmax"])
        np.testing.assert_allclose(out["tmax"], ind["tmax"])
        for k, p in enumerate(PATIENTS):
            assert float(out["c_m6"][k]) == pytest.approx(
                float(piecewise_concentration(p, 6 * DAYS_PER_MONTH)), rel=1e-12
            )
            assert float(out["c:60"][k]) == pytest.approx(float(piecewise_concentration(p, 60.0)), rel=1e-12)

    def test_numerical_path_agrees_with_the_closed_form(self):
        ind = self._batch()
        metrics = ["cmax", "tmax", "auc28", "auc90", "auc:5-20", "c_m3", "persistence:400"]
        exact = exposure_metrics(Multiphasic(), ind, metrics, lloq=19.0)
        grid = exposure_metrics(Multiphasic(), ind, metrics, lloq=19.0, method="numerical")
        for name in metrics:
            tolerance = {"tmax": 1e-3, "cmax": 1e-3, "persistence:400": 1e-4}.get(name, 3e-5)
            np.testing.assert_allclose(grid[name], exact[name], rtol=tolerance, err_msg=name)

    def test_the_grid_path_splits_the_auc_at_the_refined_peak(self):
        """The kink at tmax is a panel edge of the grid AUC (as in the closed form), and the peak is refined to
        ~5e-7 day, so the grid method serves dose scenarios of ODE models as accurately as they need."""
        # peaks between grid points (the grid has 0.05-day steps to day 60)
        patients = [PATIENTS[0] | {"tmax": 11.0237123}, PATIENTS[2] | {"tmax": 20.98127},
                    PATIENTS[0] | {"tmax": 8.432109, "rho": 1.1}]
        ind = {k: jnp.asarray([_individual(p)[k] for p in patients]) for k in self._batch()}
        metrics = ["cmax", "tmax", "auc28", "auc90", "auc:5-20"]
        exact = exposure_metrics(Multiphasic(), ind, metrics)
        grid = exposure_metrics(Multiphasic(), ind, metrics, method="numerical")
        for name in metrics:
            np.testing.assert_allclose(grid[name], exact[name], rtol=1e-6, err_msg=name)

    def test_a_model_without_closed_form_goes_through_the_grid_with_the_ode_convention(self):
        class PerPatientModel:
            """Stand-in for an ODE model: individual (curves,), t (curves, times), not elementwise."""

            individual_parameters = Multiphasic.individual_parameters
            elementwise = False

            def log_concentration(self, individual, t):
                assert all(v.ndim == 1 for v in individual.values()) and t.ndim == 2
                return Multiphasic().log_concentration({k: v[:, None] for k, v in individual.items()}, t)

        ind = self._batch()
        got = exposure_metrics(PerPatientModel(), ind, ["auc28", "cmax"], batch_size=2)
        exact = exposure_metrics(Multiphasic(), ind, ["auc28", "cmax"])
        np.testing.assert_allclose(got["auc28"], exact["auc28"], rtol=3e-5)
        np.testing.assert_allclose(got["cmax"], exact["cmax"], rtol=1e-3)

    def test_closed_form_metrics_jit_vmap_and_grad(self):
        ind = self._batch()

        def auc28(cmax):
            return exposure_metrics(Multiphasic(), ind | {"cmax": cmax}, "auc28")["auc28"].sum()

        g = jax.jit(jax.grad(auc28))(ind["cmax"])
        np.testing.assert_allclose(g * ind["cmax"], exposure_metrics(Multiphasic(), ind, "auc28")["auc28"], rtol=1e-12)
        vm = jax.vmap(lambda c: exposure_metrics(Multiphasic(), ind | {"cmax": c}, "cmax")["cmax"])(
            jnp.stack([ind["cmax"], 2 * ind["cmax"]]))
        assert vm.shape == (2, 3)

    def test_persistence_without_lloq_is_refused(self):
        with pytest.raises(ValueError, match="need the LLOQ"):
            exposure_metrics(Multiphasic(), self._batch(), ["persistence"])

    def test_an_unknown_method_lists_the_valid_ones(self):
        with pytest.raises(ValueError, match="choose one of auto, closed-form, numerical"):
            exposure_metrics(Multiphasic(), self._batch(), ["cmax"], method="exact")

    def test_closed_form_is_refused_for_a_model_without_one(self):
        class Other:
            individual_parameters = ()

        with pytest.raises(ValueError, match="has no closed form"):
            exposure_metrics(Other(), {"a": jnp.ones(2)}, ["cmax"], method="closed-form")

    def test_a_grid_with_a_bad_step_is_refused(self):
        with pytest.raises(ValueError, match="fine_step must be > 0"):
            TimeGrid(fine_step=0.0)
