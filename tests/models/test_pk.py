"""The PK closed forms against diffrax solutions of the same linear ODEs, their limits, and finite differences."""


import diffrax
import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest

from carkin.models._pk import (
    DoseEvents,
    OneCompartment,
    TwoCompartment,
    expand_additional_doses,
    hybrid_rates,
    one_compartment_concentration_from_terms,
    one_compartment_terms,
    pad_doses,
    two_compartment_concentration_from_terms,
    two_compartment_terms,
)
from carkin.models._pk._kernels import NARROW, simplex_exp


def one_compartment_concentration(ke, v, t, doses, *, ka=None):
    return one_compartment_concentration_from_terms(one_compartment_terms(ke, v, doses, ka=ka), t)


def two_compartment_concentration(cl, v1, q, v2, t, doses, *, ka=None):
    return two_compartment_concentration_from_terms(two_compartment_terms(cl, v1, q, v2, doses, ka=ka), t)


ONE = {"cl": 2.0, "v": 20.0, "ka": 1.2, "tlag": 0.35}  # ke = 0.1 / h
TWO = {"cl": 3.0, "v1": 15.0, "q": 5.0, "v2": 40.0, "ka": 0.9, "tlag": 0.5}
CASES = [(n, route, lag) for n in (1, 2) for route in ("iv", "oral") for lag in (False, True)]


def make_model(n, route, lag):
    return OneCompartment(route=route, lag=lag) if n == 1 else TwoCompartment(route=route, lag=lag)


def individual(model):
    values = ONE if isinstance(model, OneCompartment) else TWO
    return {k: jnp.asarray(values[k]) for k in model.individual_parameters}


# --- the reference: the same linear system solved by diffrax, segment by segment -------------------------------


def system(model, p):
    """(A, state of each CMT, central state, central volume) of dy/dt = A y + inputs, amounts in the states."""
    oral = model.route == "oral"
    if isinstance(model, OneCompartment):
        k = p["cl"] / p["v"]
        if oral:
            return np.array([[-p["ka"], 0.0], [p["ka"], -k]]), {1: 0, 2: 1}, 1, p["v"]
        return np.array([[-k]]), {1: 0}, 0, p["v"]
    k10, k12, k21 = p["cl"] / p["v1"], p["q"] / p["v1"], p["q"] / p["v2"]
    disp = np.array([[-(k10 + k12), k21], [k12, -k21]])
    if not oral:
        return disp, {1: 0}, 0, p["v1"]
    a = np.zeros((3, 3))
    a[0, 0], a[1, 0] = -p["ka"], p["ka"]
    a[1:, 1:] = disp
    return a, {1: 0, 2: 1}, 1, p["v1"]


_SLOTS = 64


@jax.jit
def _solve_segment(matrix, rate, y0, t0, t1, ts):
    term = diffrax.ODETerm(lambda t, y, args: args[0] @ y + args[1])
    sol = diffrax.diffeqsolve(
        term, diffrax.Tsit5(), t0, t1, None, y0, args=(matrix, rate), saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=diffrax.PIDController(rtol=1e-12, atol=1e-12), max_steps=200_000,
    )
    return sol.ys


def ode_concentration(model, p, doses: DoseEvents, obs):
    """Concentration at ``obs`` by diffrax: boluses are jumps of the state, infusions constant inputs on the
    segments between consecutive event times; an observation at an event time sees the state before it."""
    a, state, central, volume = system(model, p)
    time, amount, duration, cmt = (np.asarray(x) for x in (doses.time, doses.amount, doses.duration, doses.cmt))
    lag = p.get("tlag", 0.0) if model.lag else 0.0
    start = time + np.where(cmt == 1, lag, 0.0)
    end = start + duration
    breaks = np.unique(np.concatenate([start, end, [np.max(obs)]]))
    obs = np.asarray(obs, float)
    out = np.zeros(obs.shape)
    y = np.zeros(a.shape[0])
    prev = breaks[0]
    for point in breaks:
        if point > prev:
            sel = np.flatnonzero((obs > prev) & (obs <= point))
            assert sel.size < _SLOTS
            ts = np.full(_SLOTS, point)
            ts[: sel.size] = obs[sel]
            rate = np.zeros_like(y)
            for d in np.flatnonzero((duration > 0) & (start <= prev) & (end > prev)):
                rate[state[int(cmt[d])]] += amount[d] / duration[d]
            ys = np.asarray(_solve_segment(a, rate, y, prev, point, ts))
            out[sel] = ys[: sel.size, central] / volume
            y = ys[-1].copy()
        for d in np.flatnonzero((duration == 0) & (start == point)):
            y[state[int(cmt[d])]] += amount[d]
        prev = point
    return out


def history(route):
    """An irregular history: same-time doses, overlapping infusions, an ADDL/II regimen; oral also doses the
    central compartment (CMT 2) and infuses into the depot."""
    regimen = expand_additional_doses([24.0], [60.0], addl=[3], ii=[8.5], duration=0.5 if route == "iv" else 0.0)
    if route == "iv":
        t, amt, dur, cmt = [0.0, 6.3, 7.0, 12.0, 12.0, 12.0], [100, 50, 80, 30, 20, 40], [0, 2.5, 1, 0, 0, 3], [1] * 6
    else:
        t, amt = [0.0, 5.2, 5.2, 9.7, 10.5, 12.0], [100, 50, 25, 60, 40, 30]
        dur, cmt = [0, 0, 0, 2, 3, 0], [1, 1, 2, 1, 2, 1]
    return DoseEvents(**{name: np.concatenate([mine, np.asarray(getattr(regimen, name))])
                         for name, mine in [("time", t), ("amount", amt), ("duration", dur), ("cmt", cmt)]})


def observation_times(doses, lag):
    starts = np.asarray(doses.time) + np.where(np.asarray(doses.cmt) == 1, lag, 0.0)
    events = np.concatenate([starts, starts + np.asarray(doses.duration)])
    grid = np.array([-1.0, 0.05, 0.2, 0.9, 1.7, 3.3, 5.0, 6.0, 8.8, 11.1, 14.9, 19.0, 26.0, 33.3, 41.0, 50.0, 60.0,
                     72.0])
    return np.unique(np.concatenate([grid, events, events + 1e-9, events - 1e-9]))


def relative_error(closed, ode):
    closed, ode = np.asarray(closed), np.asarray(ode)
    big = ode > 1e-6 * ode.max()
    assert np.all(closed[ode == 0] == 0)
    return np.max(np.abs(closed[big] - ode[big]) / ode[big])


class TestAgainstDiffrax:
    @pytest.mark.parametrize("n, route, lag", CASES)
    def test_closed_form_equals_the_ode_on_an_irregular_multiple_dose_history(self, n, route, lag):
        model = make_model(n, route, lag)
        p = individual(model)
        doses = history(route)
        t = observation_times(doses, float(p["tlag"]) if lag else 0.0)
        closed = model.concentration(p, t, doses)
        ode = ode_concentration(model, {k: float(v) for k, v in p.items()}, doses, t)
        assert relative_error(closed, ode) <= 1e-8

    @pytest.mark.parametrize("n", [1, 2])
    def test_absorption_rate_equal_to_a_disposition_rate_agrees_with_the_ode(self, n):
        model = make_model(n, "oral", False)
        p = dict(individual(model))
        if n == 1:
            p["ka"] = p["cl"] / p["v"]
            cases = [p]
        else:
            h = hybrid_rates(p["cl"], p["v1"], p["q"], p["v2"])
            cases = [dict(p, ka=h["alpha"]), dict(p, ka=h["beta"])]
        doses = history("oral")
        t = observation_times(doses, 0.0)
        for q in cases:
            ode = ode_concentration(model, {k: float(v) for k, v in q.items()}, doses, t)
            assert relative_error(model.concentration(q, t, doses), ode) <= 1e-8


# --- limits and closed formulas --------------------------------------------------------------------------------


def _mp_simplex_exp(z):
    """(-1)^m exp(-y)[z] in 300-digit arithmetic, coincident nodes split by 1e-60."""
    with mp.workdps(300):
        z = [mp.mpf(float(v)) + mp.mpf(10) ** -60 * i for i, v in enumerate(z)]
        total = mp.mpf(0)
        for i, zi in enumerate(z):
            total += mp.e ** (-zi) / mp.fprod(zi - zj for j, zj in enumerate(z) if j != i)
        return float((-1) ** (len(z) - 1) * total)


class TestStableDifferences:
    def test_simplex_exp_matches_300_digit_arithmetic_for_clustered_nodes(self):
        rng = np.random.default_rng(0)
        for m in range(4):
            base = rng.choice([0.0, 2.0, 30.0], size=(150, 1)) * rng.uniform(0.5, 1.5, (150, 1))
            gaps = rng.choice([0, 1e-12, 1e-6, 9e-4, 0.05, 0.11, 0.3, 3, 30], size=(150, m))
            gaps = gaps * rng.uniform(0.5, 1.5, (150, m))
            z = np.concatenate([base, base + np.cumsum(gaps, axis=1)], axis=1)
            got = jax.jit(simplex_exp)(list(z.T))
            np.testing.assert_allclose(got, [_mp_simplex_exp(row) for row in z], rtol=1e-11)

    def test_simplex_exp_and_its_gradient_are_continuous_where_the_series_takes_over(self):
        def f(x):
            return simplex_exp([0.3, 0.3 + x / 2, 0.3 + x])

        for edge in (NARROW, 1e-3):
            lo, hi = edge * (1 - 1e-9), edge * (1 + 1e-9)
            for x in (lo, hi):
                assert float(f(x)) == pytest.approx(_mp_simplex_exp([0.3, 0.3 + x / 2, 0.3 + x]), rel=1e-14)
            assert float(jax.grad(f)(lo)) == pytest.approx(float(jax.grad(f)(hi)), rel=1e-9)

    def test_oral_one_compartment_at_ka_equal_ke_is_the_analytic_limit(self):
        ke, v, dose = 0.1, 20.0, 100.0
        t = np.array([0.1, 1.0, 5.0, 10.0, 48.0, 200.0])
        got = one_compartment_concentration(ke, v, t, DoseEvents(time=[0.0], amount=[dose]), ka=ke)
        np.testing.assert_allclose(got, dose * ke / v * t * np.exp(-ke * t), rtol=1e-14)

    @pytest.mark.parametrize("gap", [1e-14, 1e-10, 1e-7, 1e-4, 1e-2, 0.3])
    def test_oral_one_compartment_near_ka_equal_ke_matches_the_textbook_formula_in_high_precision(self, gap):
        ke, v, dose = 0.1, 20.0, 100.0
        ka = ke * (1 + gap)
        t = np.array([0.1, 1.0, 5.0, 10.0, 48.0, 200.0])
        got = np.asarray(one_compartment_concentration(ke, v, t, DoseEvents(time=[0.0], amount=[dose]), ka=ka))
        with mp.workdps(60):
            k, a = mp.mpf(ke), mp.mpf(ka)
            ref = [float(dose * a / (v * (a - k)) * (mp.e ** (-k * s) - mp.e ** (-a * s))) for s in map(mp.mpf, t)]
        np.testing.assert_allclose(got, ref, rtol=1e-13)

    @pytest.mark.parametrize("which", ["alpha", "beta"])
    @pytest.mark.parametrize("gap", [0.0, 1e-11, 1e-6, 1e-3, 0.2])
    def test_oral_two_compartment_near_ka_equal_a_hybrid_rate_matches_three_exponentials_in_high_precision(
        self, which, gap
    ):
        p = {k: TWO[k] for k in ("cl", "v1", "q", "v2")}
        h = hybrid_rates(**p)
        ka = float(h[which]) * (1 + gap)
        t = np.array([0.2, 2.0, 10.0, 50.0, 150.0])
        got = np.asarray(two_compartment_concentration(**p, t=t, doses=DoseEvents(time=[0.0], amount=[100.0]), ka=ka))
        with mp.workdps(80):
            k10, k12, k21 = mp.mpf(p["cl"]) / p["v1"], mp.mpf(p["q"]) / p["v1"], mp.mpf(p["q"]) / p["v2"]
            s = k10 + k12 + k21
            al = (s + mp.sqrt(s * s - 4 * k10 * k21)) / 2
            be = k10 * k21 / al
            a = mp.mpf(ka) + (mp.mpf(10) ** -40 if gap == 0 else 0)
            ref = []
            for x in map(mp.mpf, t):
                c = ((k21 - al) * mp.e ** (-al * x) / ((a - al) * (be - al))
                     + (k21 - be) * mp.e ** (-be * x) / ((a - be) * (al - be))
                     + (k21 - a) * mp.e ** (-a * x) / ((al - a) * (be - a)))
                ref.append(float(100 * a / p["v1"] * c))
        np.testing.assert_allclose(got, ref, rtol=1e-12)

    def test_hybrid_rates_solve_the_characteristic_equation_without_cancellation(self):
        for q in (5.0, 1e-6, 1e-12):
            h = {k: float(v) for k, v in hybrid_rates(3.0, 15.0, q, 40.0).items()}
            assert h["alpha"] * h["beta"] == pytest.approx(h["k10"] * h["k21"], rel=1e-14)
            assert h["alpha"] + h["beta"] == pytest.approx(h["k10"] + h["k12"] + h["k21"], rel=1e-14)
            assert h["k21_minus_beta"] * (h["alpha"] - h["k21"]) == pytest.approx(h["k12"] * h["k21"], rel=1e-12)

    def test_steady_state_trough_of_repeated_iv_boluses_is_the_geometric_series(self):
        ke, v, dose, tau = 0.1, 20.0, 100.0, 12.0
        doses = DoseEvents(time=np.arange(80) * tau, amount=np.full(80, dose))
        trough = float(one_compartment_concentration(ke, v, 80 * tau, doses))  # just before dose 81
        assert trough == pytest.approx(dose / v * np.exp(-ke * tau) / (1 - np.exp(-ke * tau)), rel=1e-12)

    def test_oral_ssfol_form_equals_the_r_formula_for_theophylline_subject_1(self):
        l_ke, l_ka, l_cl, dose = -2.4365, 0.1512, -3.2146, 4.02  # nlme Theoph, mg/kg, L/h/kg, h
        t = np.array([0.25, 0.57, 1.12, 2.02, 3.82, 5.1, 7.03, 9.05, 12.12, 24.37])
        model = OneCompartment(route="oral", parameterization="ssfol")
        p = {"ke": np.exp(l_ke), "ka": np.exp(l_ka), "cl": np.exp(l_cl)}
        got = model.concentration(p, t, DoseEvents(time=[0.0], amount=[dose]))
        r = dose * np.exp(l_ke + l_ka - l_cl) * (np.exp(-np.exp(l_ke) * t) - np.exp(-np.exp(l_ka) * t)) / (
            np.exp(l_ka) - np.exp(l_ke))
        np.testing.assert_allclose(got, r, rtol=1e-13)
        assert float(model.derived(p)["v"]) == pytest.approx(np.exp(l_cl - l_ke), rel=1e-15)

    def test_every_one_compartment_parameterization_gives_one_curve(self):
        ke, v = ONE["cl"] / ONE["v"], ONE["v"]
        doses, t = history("oral"), np.linspace(0.5, 60, 40)
        curves = [
            OneCompartment(route="oral", parameterization=name).concentration(values, t, doses)
            for name, values in [("cl_v", {"cl": ke * v, "v": v, "ka": 1.2}), ("ke_v", {"ke": ke, "v": v, "ka": 1.2}),
                                 ("ssfol", {"ke": ke, "ka": 1.2, "cl": ke * v})]
        ]
        np.testing.assert_allclose(curves[1], curves[0], rtol=1e-14)
        np.testing.assert_allclose(curves[2], curves[0], rtol=1e-14)

    def test_derived_quantities_match_their_definitions(self):
        model = OneCompartment(route="oral", lag=True)
        d = model.derived(individual(model))
        ke, ka = ONE["cl"] / ONE["v"], ONE["ka"]
        tmax = np.log(ka / ke) / (ka - ke)
        assert float(d["tmax"]) == pytest.approx(tmax, rel=1e-14)
        single = model.concentration(individual(model), tmax + ONE["tlag"], DoseEvents(time=[0.0], amount=[1.0]))
        assert float(d["cmax_per_dose"]) == pytest.approx(float(single), rel=1e-13)
        at_limit = model.derived(dict(individual(model), ka=ke))
        assert float(at_limit["tmax"]) == pytest.approx(1 / ke, rel=1e-14)
        d2 = TwoCompartment(route="iv").derived(individual(TwoCompartment()))
        assert float(d2["half_life_beta"]) == pytest.approx(np.log(2) / float(d2["beta"]), rel=1e-15)
        assert float(d2["auc_per_dose"]) == pytest.approx(1 / TWO["cl"], rel=1e-15)


# --- jit / vmap / grad --------------------------------------------------------------------------------------------


def _log_params(model):
    return jnp.log(jnp.asarray([individual(model)[k] for k in model.individual_parameters]))


class TestTransforms:
    @pytest.mark.parametrize("n, route, lag", CASES)
    def test_gradients_equal_central_finite_differences(self, n, route, lag):
        model = make_model(n, route, lag)
        doses = history(route)
        t = jnp.asarray([0.6, 2.2, 7.7, 13.4, 30.1, 47.9, 66.0])
        names = model.individual_parameters

        def f(x):
            return jnp.sum(model.log_concentration(dict(zip(names, jnp.exp(x), strict=True)), t, doses))

        x0 = _log_params(model)
        value_and_grad = jax.jit(jax.value_and_grad(f))  # one compile serves the gradient and the differences
        grad = np.asarray(value_and_grad(x0)[1])
        fd = np.array([(float(value_and_grad(x0.at[i].add(1e-6))[0]) - float(value_and_grad(x0.at[i].add(-1e-6))[0]))
                       / 2e-6 for i in range(len(names))])
        np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-7)

    @pytest.mark.parametrize("n, route, lag", CASES)
    def test_gradients_are_finite_at_dose_times_infusion_ends_and_before_the_first_dose(self, n, route, lag):
        model = make_model(n, route, lag)
        doses = DoseEvents(time=[1.0, 3.0], amount=[10.0, 10.0], duration=[0.0, 2.0])
        lag_time = float(individual(model)["tlag"]) if lag else 0.0
        t = jnp.asarray([0.0, 1.0 + lag_time, 3.0 + lag_time, 5.0 + lag_time, 0.5])
        names = model.individual_parameters
        x0 = _log_params(model)

        jac = jax.jit(
            jax.jacrev(lambda y: model.log_concentration(dict(zip(names, jnp.exp(y), strict=True)), t, doses))
        )(x0)
        assert np.all(np.isfinite(np.asarray(jac)))
        assert np.all(np.asarray(jac)[[0, 1, 4]] == 0.0)  # before the first dose: log C = -inf, gradient 0
        before = model.concentration(dict(zip(names, jnp.exp(x0), strict=True)), t, doses)
        assert float(before[0]) == 0.0 and float(before[1]) == 0.0 and float(before[4]) == 0.0
        dt = jax.vmap(jax.grad(lambda s: model.concentration(dict(zip(names, jnp.exp(x0), strict=True)), s, doses)))
        assert np.all(np.isfinite(np.asarray(dt(t))))

    def test_gradient_with_respect_to_ka_is_smooth_through_ka_equal_ke(self):
        ke = 0.1

        def c(ka):
            return one_compartment_concentration(ke, 20.0, 7.0, DoseEvents(time=[0.0], amount=[100.0]), ka=ka)

        fd = (float(c(ke + 1e-6)) - float(c(ke - 1e-6))) / 2e-6
        assert float(jax.grad(c)(ke)) == pytest.approx(fd, rel=1e-7)

    def test_lag_time_has_no_gradient_before_the_lagged_dose_and_the_ode_slope_after(self):
        model = OneCompartment(route="oral", lag=True)
        p = individual(model)
        doses = DoseEvents(time=[0.0], amount=[100.0])

        def c(tlag, t):
            return model.concentration(dict(p, tlag=tlag), t, doses)

        assert float(jax.grad(c)(0.35, 0.3)) == 0.0
        assert float(jax.grad(c)(0.35, 5.0)) == pytest.approx(-float(jax.grad(c, argnums=1)(0.35, 5.0)), rel=1e-12)

    @pytest.mark.parametrize("n, route", [(1, "oral"), (2, "oral"), (2, "iv")])
    def test_vmap_over_patients_equals_broadcasting_and_jit(self, n, route):
        model = make_model(n, route, True)
        rng = np.random.default_rng(1)
        base = individual(model)
        pats = {k: v * np.exp(0.2 * rng.standard_normal(5)) for k, v in base.items()}
        doses = pad_doses([history(route), expand_additional_doses([0.0], [50.0], addl=[5], ii=[12.0])] * 2
                          + [DoseEvents(time=[2.0], amount=[30.0])])
        t = jnp.linspace(0.0, 60.0, 13)
        vm = jax.vmap(model.concentration, in_axes=(0, None, 0))(pats, t, doses)
        assert vm.shape == (5, 13)
        grid = jax.jit(model.concentration)(
            {k: v[:, None] for k, v in pats.items()}, t[None, :], jax.tree.map(lambda x: x[:, None, :], doses))
        np.testing.assert_allclose(vm, grid, rtol=1e-14)

    @pytest.mark.parametrize("n, route", [(1, "oral"), (2, "iv")])
    def test_patient_terms_gathered_to_records_give_each_patients_curve(self, n, route):
        model = make_model(n, route, False)
        base = individual(model)
        pats = {k: v * jnp.asarray([1.0, 1.3, 0.8]) for k, v in base.items()}
        doses = pad_doses([history(route), DoseEvents(time=[1.0], amount=[70.0]),
                           expand_additional_doses([0.0], [20.0], addl=[2], ii=[24.0])])
        patient = jnp.asarray([0, 0, 1, 2, 2, 2, 1])
        times = jnp.asarray([0.5, 30.0, 4.0, 0.0, 25.0, 70.0, 0.9])
        terms = model.patient_terms(pats, doses)
        log_c = model.log_concentration_from_terms({k: v[patient] for k, v in terms.items()}, times)
        one = jax.vmap(model.log_concentration)({k: v[patient] for k, v in pats.items()}, times,
                                                jax.tree.map(lambda x: x[patient], doses))
        np.testing.assert_allclose(log_c, one, rtol=1e-14)
        assert float(log_c[3]) == -np.inf and float(log_c[6]) == -np.inf


# --- dose events and errors ---------------------------------------------------------------------------------------


class TestDoseEvents:
    def test_additional_doses_expand_into_explicit_sorted_events(self):
        d = expand_additional_doses([0.0, 30.0], [100.0, 5.0], addl=[3, 0], ii=[12.0, 0.0], duration=[1.0, 0.0],
                                    cmt=[1, 2])
        np.testing.assert_array_equal(d.time, [0.0, 12.0, 24.0, 30.0, 36.0])
        np.testing.assert_array_equal(d.amount, [100.0, 100.0, 100.0, 5.0, 100.0])
        np.testing.assert_array_equal(d.duration, [1.0, 1.0, 1.0, 0.0, 1.0])
        np.testing.assert_array_equal(d.cmt, [1, 1, 1, 2, 1])
        assert bool(jnp.all(d.mask))

    def test_an_addl_regimen_gives_the_concentration_of_its_explicit_doses(self):
        explicit = DoseEvents(time=[0.0, 8.0, 16.0, 24.0], amount=[10.0] * 4)
        expanded = expand_additional_doses([0.0], [10.0], addl=[3], ii=[8.0])
        t = np.linspace(0, 40, 33)
        np.testing.assert_array_equal(one_compartment_concentration(0.2, 5.0, t, expanded, ka=1.0),
                                      one_compartment_concentration(0.2, 5.0, t, explicit, ka=1.0))

    @pytest.mark.parametrize("addl, ii, match", [([-1], [12.0], "record 0: addl = -1"),
                                                 ([2], [0.0], "record 0: addl = 2 needs ii > 0"),
                                                 ([1.5], [12.0], "expected an integer")])
    def test_invalid_addl_or_ii_is_rejected_naming_the_record(self, addl, ii, match):
        with pytest.raises(ValueError, match=match):
            expand_additional_doses([0.0], [1.0], addl=addl, ii=ii)

    def test_padding_adds_masked_events_that_contribute_exactly_nothing(self):
        d = pad_doses([DoseEvents(time=[0.0], amount=[10.0]), DoseEvents(time=[0.0, 5.0], amount=[10.0, 99.0])])
        assert d.shape == (2, 2)
        assert np.asarray(d.mask).tolist() == [[True, False], [True, True]]
        c = one_compartment_concentration(0.1, 10.0, jnp.asarray([3.0, 3.0]), d)
        assert float(c[0]) == float(c[1])
        match = r"size = 1 is shorter than the history of patient\(s\) \(position, events\) \[\(1, 2\)\]"
        with pytest.raises(ValueError, match=match):
            pad_doses([DoseEvents(time=[0.0], amount=[1.0]), DoseEvents(time=[0.0, 1.0], amount=[1.0, 1.0])], size=1)

    def test_scalar_dose_fields_are_rejected_with_a_fix(self):
        with pytest.raises(ValueError, match="trailing doses axis"):
            DoseEvents(time=0.0, amount=1.0)

    def test_a_dose_into_a_compartment_the_model_lacks_is_rejected_naming_it(self):
        doses = DoseEvents(time=[0.0, 1.0], amount=[1.0, 1.0], cmt=[1, 2])
        with pytest.raises(ValueError, match=r"dose compartment\(s\) \[2\] do not exist in an IV model"):
            OneCompartment(route="iv").concentration({"cl": 1.0, "v": 1.0}, 1.0, doses)

    def test_a_traced_dose_compartment_the_model_lacks_raises_at_run_time(self):
        model = OneCompartment(route="iv")

        @jax.jit
        def c(cmt):
            return model.concentration({"cl": 1.0, "v": 1.0}, 1.0, DoseEvents(time=[0.0], amount=[1.0], cmt=cmt))

        assert float(c(jnp.asarray([1]))) == pytest.approx(np.exp(-1.0))
        with pytest.raises(Exception, match="compartment the model does not have"):
            c(jnp.asarray([2]))

    def test_dose_events_record_what_their_real_events_hold(self):
        d = DoseEvents(time=[0.0, 1.0, 2.0], amount=[1.0, 1.0, 1.0], duration=[0.0, 0.0, 5.0], cmt=[1, 2, 3],
                       mask=[True, True, False])
        assert d.has_infusions is False and d.compartments == (1, 2)
        assert pad_doses([d]).compartments == (1, 2)
        match = r"negative duration, first at index \(1,\): time=1.0, amount=2.0, duration=-1.0"
        with pytest.raises(ValueError, match=match):
            DoseEvents(time=[0.0, 1.0], amount=[1.0, 2.0], duration=[0.0, -1.0])

    def test_promised_dose_kinds_select_the_bolus_program_under_jit_and_are_checked_on_concrete_values(self):
        model = OneCompartment(route="oral")

        def log_c(time):
            doses = DoseEvents(time=time, amount=[4.0, 4.0], has_infusions=False, compartments=[1])
            return jnp.sum(model.log_concentration(individual(model), jnp.asarray([1.0, 13.0]), doses))

        assert len(jax.make_jaxpr(log_c)(jnp.asarray([0.0, 12.0])).eqns) < len(
            jax.make_jaxpr(lambda x: jnp.sum(model.log_concentration(
                individual(model), jnp.asarray([1.0, 13.0]), DoseEvents(time=x, amount=[4.0, 4.0]))))(
                jnp.asarray([0.0, 12.0])).eqns)
        assert float(jax.jit(log_c)(jnp.asarray([0.0, 12.0]))) == pytest.approx(float(log_c(np.array([0.0, 12.0]))))
        with pytest.raises(ValueError, match="has_infusions=False, but a real event has duration > 0"):
            DoseEvents(time=[0.0], amount=[1.0], duration=[1.0], has_infusions=False)
        with pytest.raises(ValueError, match=r"compartments=\(1,\), but the real events use \(1, 2\)"):
            DoseEvents(time=[0.0, 1.0], amount=[1.0, 1.0], cmt=[1, 2], compartments=[1])

    def test_a_history_of_boluses_and_the_same_history_flagged_with_infusions_agree(self):
        model = TwoCompartment(route="oral", lag=True)
        bolus = history("oral")
        bolus = DoseEvents(time=bolus.time, amount=bolus.amount, cmt=bolus.cmt)
        general = jax.jit(model.concentration)  # built from traced arrays: no static knowledge, the general program
        t = jnp.linspace(-1.0, 70.0, 60)
        traced = jax.jit(lambda p, t, x: model.concentration(p, t, DoseEvents(time=x[0], amount=x[1], cmt=x[2])))
        np.testing.assert_allclose(
            traced(individual(model), t, (bolus.time, bolus.amount, bolus.cmt)), general(individual(model), t, bolus),
            rtol=1e-13)

    @pytest.mark.parametrize("kwargs, match", [
        (dict(route="po"), "unknown route 'po' \\(type str\\); valid routes: iv, oral"),
        (dict(route="oral", parameterization="cl"), "unknown parameterization 'cl'.*valid: cl_v, ke_v, ssfol"),
        (dict(route="iv", parameterization="ssfol"), 'parameterization=.ssfol. needs route="oral"'),
    ])
    def test_invalid_options_are_rejected_with_the_valid_choices(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            OneCompartment(**kwargs)

    def test_individual_parameters_follow_the_options(self):
        assert OneCompartment().individual_parameters == ("cl", "v")
        assert OneCompartment(route="oral", parameterization="ke_v", lag=True).individual_parameters == (
            "ke", "v", "ka", "tlag")
        assert TwoCompartment(route="oral", lag=True).individual_parameters == ("cl", "v1", "q", "v2", "ka", "tlag")
        assert OneCompartment.elementwise and TwoCompartment.dosed
