"""The ODE machinery: options and their spec table, batching and adjoints, failures, likelihood layout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from carkin.errors import SolverError, SpecError
from carkin.models import EffectorMemory, ODEOptions, get_model, log_concentration_grid
from carkin.population import (
    check_solves,
    load_spec,
    log_likelihood,
    natural_parameters,
    padded_schedule,
    prepare,
    spec_from_dict,
    to_transformed,
)

from ..helpers import small_dataset

STEIN = dict(cmax=24000.0, tmax=9.3, rho=0.89, beta=0.0032, delta=0.1568, fb=0.0079)


def _phi(spec, patients):
    """Transformed-scale individual parameters (patients, params) from natural values."""
    return jnp.asarray(
        [[to_transformed(p.transform, patient[p.name]) for p in spec.parameters] for patient in patients]
    )


class TestOptions:
    @pytest.mark.parametrize(
        "kwargs, match",
        [
            (dict(solver="rk4"), "ode.solver = 'rk4' .*choose one of tsit5, dopri5, dopri8, kvaerno3, kvaerno5"),
            (
                dict(adjoint="backsolve"),
                "ode.adjoint = 'backsolve' .*forward, forward_autodiff, recursive_checkpoint, direct",
            ),
            (dict(controller="pid"), "ode.controller = 'pid' .*choose one of adaptive, constant"),
            (dict(rtol=0.0), r"ode.rtol = 0.0 must be a number in \(0, 1\)"),
            (dict(max_steps=0), "ode.max_steps = 0 must be a positive integer"),
            (dict(controller="constant"), 'controller = "constant" needs ode.dt0'),
            (dict(solver="kvaerno5", batching="population"), 'batching = "population" needs solver'),
            (dict(adjoint="direct", batching="population"), 'batching = "population" needs adjoint = "forward"'),
        ],
    )
    def test_invalid_options_are_rejected_with_the_valid_choices(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            ODEOptions(**kwargs)

    def test_auto_batching_picks_one_population_solve_only_where_it_applies(self):
        assert ODEOptions().resolved_batching == "population"
        assert ODEOptions(solver="kvaerno5").resolved_batching == "patient"
        assert ODEOptions(adjoint="recursive_checkpoint").resolved_batching == "patient"

    def test_ode_table_in_a_spec_sets_the_options_and_keeps_the_defaults_for_the_rest(self):
        spec = load_spec("effector_memory").replace(ode={"solver": "dopri5", "rtol": 1e-5})
        assert spec.ode.solver == "dopri5" and spec.ode.rtol == 1e-5 and spec.ode.max_steps == 4096
        assert spec.kinetic_model.options == spec.ode
        assert '"dopri5"' in spec.raw  # recorded in manifests

    @pytest.mark.parametrize(
        "model, change, match",
        [
            ("effector_memory", {"ode": {"solver": "euler"}}, r"ode.solver = 'euler' .*choose one of tsit5"),
            ("effector_memory", {"ode": {"tol": 1e-6}}, r"\[ode\] tol is not a valid key; valid keys: solver"),
            (
                "multiphasic",
                {"ode": {"solver": "tsit5"}},
                r"\[ode\] is only for ODE models; the multiphasic model is a closed form",
            ),
            (
                "cart_tumor",
                {"constants": {"kdeath": 1.0}},
                r"\[constants\] kdeath is not a valid key; valid keys: kg, kkill",
            ),
            ("cart_tumor", {"constants": {"kg": -1.0}}, r"\[constants\] kg = -1.0 is not >= 0; give a number >= 0"),
            (
                "cart_tumor",
                {"inputs": {}},
                r"\[inputs\] holds no input, but the cart_tumor model needs input\(s\) tumor0 mapped to data columns",
            ),
        ],
    )
    def test_spec_errors_name_the_file_and_the_key(self, model, change, match):
        import json

        data = json.loads(load_spec(model).raw)
        data.update(change)
        with pytest.raises(SpecError, match="<test>: " + match):
            spec_from_dict(data, source="<test>")

    def test_the_closed_form_spec_is_unchanged(self):
        spec = load_spec("multiphasic")
        assert spec.ode is None and spec.inputs == () and spec.constants == ()
        assert get_model("multiphasic").elementwise
        with pytest.raises(ValueError, match="the multiphasic model is a closed form"):
            get_model("multiphasic", ode=ODEOptions())


class TestSolves:
    @pytest.mark.parametrize(
        "options",
        [
            dict(batching="patient"),
            dict(adjoint="forward_autodiff"),
            dict(adjoint="recursive_checkpoint"),
            dict(adjoint="direct"),
            dict(solver="dopri5"),
            dict(solver="kvaerno5"),
        ],
        ids=lambda o: "-".join(map(str, o.values())),
    )
    @pytest.mark.slow
    def test_batching_adjoints_and_solvers_agree_with_the_population_forward_solve(self, options):
        ind = {k: jnp.asarray([v, 2 * v if k != "fb" else v]) for k, v in STEIN.items()}
        t = jnp.asarray([[1.0, 9.0, 20.0, 100.0], [3.0, 30.0, 30.0, 30.0]])  # second row padded with its last time
        weights = jnp.asarray([[1.0, 0.5, 2.0, 1.5], [0.7, 1.0, 0.0, 0.0]])

        def value_and_grad(model):
            value, grad = jax.value_and_grad(lambda d: jnp.sum(weights * model.log_concentration(d, t)))(ind)
            return float(value), np.concatenate([np.asarray(grad[k]) for k in STEIN])

        reference = value_and_grad(EffectorMemory(options=ODEOptions(rtol=1e-9, atol=1e-12)))
        other = value_and_grad(EffectorMemory(options=ODEOptions(rtol=1e-9, atol=1e-12, **options)))
        assert other[0] == pytest.approx(reference[0], rel=1e-8)
        np.testing.assert_allclose(other[1], reference[1], rtol=1e-6, atol=1e-9)

    def test_grid_evaluation_broadcasts_like_the_closed_form(self):
        model = EffectorMemory()
        params = {k: jnp.full((3, 2, 1), v) for k, v in STEIN.items()}  # (draws, patients, 1)
        grid = jnp.asarray([[[0.0, 50.0, 9.3, 2.0]]])  # (1, 1, G), unsorted on purpose
        out = log_concentration_grid(model, params, grid)
        assert out.shape == (3, 2, 4)
        closed = get_model("multiphasic").log_concentration(params, grid)
        np.testing.assert_allclose(np.asarray(out), np.asarray(closed), rtol=1e-6)

    def test_the_population_loop_lands_on_t1_from_the_float_just_below_it_as_diffrax_does(self):
        from carkin.models._ode._population import _prevbefore

        t = jnp.asarray([1e-300, 1.0, 30.0, 365.25])
        below = _prevbefore(t)
        assert np.all(np.asarray(below < t)) and np.all(np.asarray(jnp.nextafter(below, jnp.inf) == t))
        assert float(_prevbefore(jnp.asarray(0.0))) == -np.finfo(np.float64).tiny  # not a denormal flushed to 0

    def test_a_failed_solve_gives_nan_rows_and_a_result_code_not_an_exception(self):
        model = EffectorMemory(options=ODEOptions(max_steps=200, batching="patient"))
        ind = {k: jnp.asarray([v, v]) for k, v in STEIN.items()}
        ind["beta"] = jnp.asarray([0.0032, 5000.0])  # absurdly fast memory decay: a stiff mode, far more steps
        sol = model.solve(ind, jnp.asarray([[20.0, 300.0], [20.0, 300.0]]))
        assert list(np.asarray(sol.ok)) == [True, False]
        out = model.log_concentration(ind, jnp.asarray([[20.0, 300.0], [20.0, 300.0]]))
        assert np.all(np.isfinite(out[0])) and np.all(np.isnan(out[1]))


class TestPopulationLayout:
    def test_padded_schedule_sorts_times_and_pads_with_the_last_time(self):
        import equinox as eqx

        ds = small_dataset()
        shuffled = eqx.tree_at(lambda d: d.times, ds, ds.times[:, jnp.asarray([3, 1, 0, 2, 5, 4])].at[1, 4:].set(0.0))
        shuffled = eqx.tree_at(lambda d: d.obs_mask, shuffled, ds.obs_mask)
        for data in (ds, shuffled):
            padded, slot = padded_schedule(data)
            assert np.all(np.diff(padded, axis=1) >= 0)
            np.testing.assert_array_equal(padded.reshape(-1)[slot], np.asarray(data.flat().times))
        np.testing.assert_array_equal(padded_schedule(ds)[0][1], [2.0, 12.0, 60.0, 365.0, 365.0, 365.0])

    def test_ode_twin_log_likelihood_equals_the_closed_form_with_m3_records(self):
        ds = small_dataset()
        closed, ode = load_spec("multiphasic"), load_spec("effector_memory").replace(ode={"rtol": 1e-10, "atol": 1e-13})
        patients = [STEIN, dict(STEIN, cmax=5000.0, tmax=12.0)]
        phi = _phi(closed, patients)
        closed, ode = closed.replace(residual="combined"), ode.replace(residual="combined")
        a = float(log_likelihood(closed, prepare(ds, closed), phi, 0.4, 20.0))
        b = float(log_likelihood(ode, prepare(ds, ode), phi, 0.4, 20.0))
        assert b == pytest.approx(a, rel=1e-9)

    def test_a_failed_solve_makes_the_log_density_minus_infinity_with_a_finite_gradient(self):
        ds = small_dataset()
        spec = load_spec("effector_memory").replace(ode={"max_steps": 200})
        phi = _phi(spec, [STEIN, dict(STEIN, beta=5000.0)])
        data = prepare(ds, spec)
        value, grad = jax.value_and_grad(lambda p: log_likelihood(spec, data, p, 0.4))(phi)
        assert float(value) == -np.inf
        assert bool(jnp.all(jnp.isfinite(grad)))

    def test_check_solves_names_the_patient_whose_solve_failed(self):
        ds = small_dataset()
        spec = load_spec("effector_memory").replace(ode={"max_steps": 200})
        good = natural_parameters(spec, _phi(spec, [STEIN, STEIN]))
        check_solves(spec, ds, good)  # passes quietly
        bad = natural_parameters(spec, _phi(spec, [STEIN, dict(STEIN, beta=5000.0)]))
        draws = {k: jnp.stack([good[k], bad[k]]) for k in bad}  # (draws, patients)
        with pytest.raises(SolverError, match=r"1 patient\(s\).*\n  patient B: 1 of 2 parameter set\(s\) failed "
                                              r"\(The maximum number of solver steps was reached"):
            check_solves(spec, ds, draws)


class TestPopulationSensitivities:
    """The population solve's derivatives are taken with respect to its own inputs (the state and the args the
    field reads) and contracted with the tangents: check them on a vector-valued state and args, with an args
    leaf the field ignores, against the exact solution of a linear system."""

    @staticmethod
    def _field(t, y, args):
        return jnp.stack([-args["a"] * y[0] + args["b"][0] * y[1], -args["b"][1] * y[1]])

    @staticmethod
    def _exact(y0, args, ts):
        a, b0, b1 = args["a"][:, None], args["b"][:, :1], args["b"][:, 1:]
        y1 = y0[:, 1:] * jnp.exp(-b1 * ts)
        first = y0[:, :1] * jnp.exp(-a * ts) + b0 * y0[:, 1:] * (jnp.exp(-b1 * ts) - jnp.exp(-a * ts)) / (a - b1)
        return jnp.stack([first, y1], axis=-1)  # (patients, obs, 2)

    def test_forward_and_reverse_derivatives_match_the_exact_solution(self):
        from carkin.models._ode import population_solver

        solve = population_solver(ODEOptions(rtol=1e-10, atol=1e-13))
        y0 = jnp.asarray([[1.0, 0.5], [2.0, 0.1], [0.3, 1.0]])
        args = {"a": jnp.asarray([0.5, 1.2, 0.2]), "b": jnp.asarray([[0.3, 0.05], [1.0, 0.4], [0.1, 0.9]]),
                "unused": jnp.asarray([1.0, 2.0, 3.0])}
        ts = jnp.asarray([[0.0, 1.0, 5.0, 9.0], [0.5, 2.0, 2.0, 2.0], [3.0, 4.0, 30.0, 60.0]])

        def solved(y0, args, ts):
            return solve(self._field, y0, args, ts)[0]

        np.testing.assert_allclose(solved(y0, args, ts), self._exact(y0, args, ts), rtol=1e-8, atol=1e-12)
        for jac in (jax.jacfwd, jax.jacrev):
            got = jac(solved, argnums=(0, 1, 2))(y0, args, ts)
            want = jax.jacfwd(self._exact, argnums=(0, 1, 2))(y0, args, ts)
            for g, w in zip(jax.tree_util.tree_leaves(got[:1] + ({k: got[1][k] for k in ("a", "b")},) + got[2:]),
                            jax.tree_util.tree_leaves(want[:1] + ({k: want[1][k] for k in ("a", "b")},) + want[2:]),
                            strict=True):
                np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-9)
            assert np.all(np.asarray(got[1]["unused"]) == 0.0)
