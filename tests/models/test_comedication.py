"""Co-medication switches (expansion, contraction) in the closed form and the ODE twin: an independent diffrax
solution, the kink at the switch, gamma = 0 = the model without co-medication, gradients through a switch, vmap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from carkin.models import EffectorMemory, Multiphasic, ODEOptions
from carkin.models._multiphasic import MultiphasicParams, multiphasic_log_concentration

from ._references import multiphasic_cohorts

STEIN = dict(cmax=24000.0, tmax=9.3, rho=0.89, beta=0.0032, delta=0.1568, fb=0.0079)
OTHER = dict(cmax=3000.0, tmax=14.0, rho=0.55, beta=0.01, delta=0.4, fb=0.05)
NAMES = tuple(STEIN)
# Times on both sides of tmax and of every switch below, the switch times themselves included.
GRID = np.array([0.0, 0.5, 2.5, 3.0, 6.0, 9.3, 10.0, 14.0, 20.0, 30.0, 31.0, 50.0, 80.0, 200.0, 400.0])
TIGHT = ODEOptions(rtol=1e-11, atol=1e-12)
# Two co-medications per patient, starts (patients, 2) days after infusion (+inf: never). STEIN: toci during
# expansion, steroids at day 30; OTHER: toci at infusion, steroids exactly at its tmax (14).
STARTS = np.array([[2.5, 30.0], [0.0, 14.0]])
EXPANSION = np.array([0.4, -0.3])  # log multipliers of rho (toci, steroids)
# Contraction: toci (acting from tmax) speeds the effector's decline; steroids slow it; for OTHER the product
# brings alpha below beta (alpha e^g = 0.41 x 0.7 x 0.0244 < beta = 0.01): the phi(x < 0) branch.
CONTRACTION = np.array([np.log(0.7), np.log(0.0244)])


def _individual(*patients, column=False):
    return {k: jnp.asarray([p[k] for p in patients])[(slice(None), None) if column else slice(None)] for k in NAMES}


def _switches(starts, expansion=EXPANSION, contraction=CONTRACTION, column=False):
    s = jnp.asarray(starts)[:, None, :] if column else jnp.asarray(starts)
    return {"expansion": (s, jnp.asarray(expansion)), "contraction": (s, jnp.asarray(contraction))}


@pytest.fixture(scope="module")
def reference():
    """The diffrax solution of the switched E/M system, per patient, (2, obs) log C."""
    return np.stack([
        multiphasic_cohorts(p, GRID, expansion=(STARTS[i], EXPANSION), contraction=(STARTS[i], CONTRACTION))
        for i, p in enumerate((STEIN, OTHER))
    ])


def test_the_closed_form_equals_a_diffrax_solution_of_the_switched_system_to_1e8(reference):
    got = Multiphasic().log_concentration(_individual(STEIN, OTHER, column=True), jnp.asarray(np.stack([GRID, GRID])),
                                          switches=_switches(STARTS, column=True))
    np.testing.assert_allclose(np.exp(np.asarray(got)), np.exp(reference), rtol=1e-8)
    # The switches matter here: without them the curves differ by far more than the tolerance.
    plain = np.asarray(Multiphasic().log_concentration(_individual(STEIN, OTHER, column=True), GRID[None, :]))
    assert np.min(np.max(np.abs(plain - reference), axis=1)) > 0.1


@pytest.mark.parametrize("expansion", ["analytic", "ode"])
def test_the_ode_twin_equals_the_diffrax_solution_with_switches(reference, expansion):
    """Its segments end at the switch times: with tight tolerances it meets the reference to 1e-8 as well."""
    model = EffectorMemory(options=TIGHT, expansion=expansion)
    sol = model.solve(_individual(STEIN, OTHER), jnp.asarray(np.stack([GRID, GRID])), switches=_switches(STARTS))
    assert np.all(np.asarray(sol.code) == 0)
    np.testing.assert_allclose(np.exp(np.asarray(sol.log_concentration)), np.exp(reference), rtol=1e-8)


def test_the_curve_is_continuous_at_a_switch_and_its_slope_jumps_by_the_hand_computed_amount():
    """d log C/dt jumps by rho (e^g - 1) at an expansion switch and by -alpha (e^g - 1) E/C at a contraction
    switch after tmax, E/C = e^(-alpha s) / ((1 - fb) e^(-alpha s) + fb e^(-beta s)) (s: days after tmax)."""
    p, g = STEIN, 0.6
    model = Multiphasic()

    def log_c(t, process, start):
        switches = {process: (jnp.asarray([start]), jnp.asarray([g]))}
        return model.log_concentration({k: jnp.asarray(v) for k, v in p.items()}, t, switches=switches)

    slope = jax.grad(log_c)
    alpha = p["beta"] + p["delta"]
    s = 20.0 - p["tmax"]
    e_over_c = np.exp(-alpha * s) / ((1 - p["fb"]) * np.exp(-alpha * s) + p["fb"] * np.exp(-p["beta"] * s))
    for process, start, jump in [("expansion", 4.0, p["rho"] * np.expm1(g)),
                                 ("contraction", 20.0, -alpha * np.expm1(g) * e_over_c)]:
        eps = 1e-9
        left, at, right = (float(log_c(start + d, process, start)) for d in (-eps, 0.0, eps))
        assert abs(right - left) < 1e-8 and abs(at - left) < 1e-8
        change = float(slope(start + 1e-7, process, start)) - float(slope(start - 1e-7, process, start))
        assert change == pytest.approx(jump, rel=1e-6)


def test_gamma_zero_or_never_started_gives_the_model_without_co_medication():
    """Exactly (to rounding) for the closed form; to the solver's tolerance for the ODE twin, whose solve is split
    at the switch times."""
    individual = _individual(STEIN, OTHER, column=True)
    t = jnp.asarray(np.stack([GRID, GRID]))
    old = np.asarray(multiphasic_log_concentration(MultiphasicParams(
        cmax=individual["cmax"], tmax=individual["tmax"], rho=individual["rho"],
        alpha=individual["beta"] + individual["delta"], beta=individual["beta"], fb=individual["fb"]), t))
    zero = Multiphasic().log_concentration(individual, t, switches=_switches(STARTS, 0 * EXPANSION, 0 * CONTRACTION,
                                                                             column=True))
    never = Multiphasic().log_concentration(individual, t, switches=_switches(np.full_like(STARTS, np.inf),
                                                                              column=True))
    np.testing.assert_allclose(np.asarray(zero), old, rtol=1e-14, atol=1e-13)
    np.testing.assert_allclose(np.asarray(never), old, rtol=1e-14, atol=1e-13)
    # The ODE twin: gamma 0 for OTHER and never-started co-medications for STEIN, in one solve.
    model = EffectorMemory(options=TIGHT)
    starts = jnp.asarray([[np.inf, np.inf], [0.0, 14.0]])
    per_patient = jnp.asarray([EXPANSION, [0.0, 0.0]])  # log multipliers (patients, C)
    switches = {"expansion": (starts, per_patient), "contraction": (starts, jnp.zeros((2, 2)))}
    got = model.solve(_individual(STEIN, OTHER), t, switches=switches)
    np.testing.assert_allclose(np.asarray(got.log_concentration), old, rtol=0, atol=1e-9)
    plain = model.solve(_individual(STEIN, OTHER), t)
    np.testing.assert_allclose(np.asarray(plain.log_concentration), old, rtol=0, atol=1e-9)


def _closed_form_gradients_at_and_off_switches():
    """d log C / d(gamma, parameters) of the closed form: finite at times that are switch times and tmax, with a
    switch at tmax and a never-started co-medication (+inf) (kinks, where a gradient is some one-sided derivative,
    not necessarily the same one in both models); away from the kinks equal to central differences. Returns what
    the ODE twin's check needs."""
    at_kinks = (jnp.asarray([[0.0, 4.0, 9.3, 30.0, 60.0], [4.0, 14.0, 14.0, 30.0, 100.0]]),
                jnp.asarray([[4.0, np.inf], [14.0, 30.0]]))
    # Off the kinks: no time at a switch or tmax, no switch at tmax (there log C is kinked in tmax too).
    off_kinks = (jnp.asarray([[1.0, 5.0, 12.0, 35.0, 60.0], [3.0, 10.0, 20.0, 40.0, 100.0]]),
                 jnp.asarray([[4.0, np.inf], [12.0, 30.0]]))
    weights = jnp.asarray([0.5, 1.0, 1.5, 0.7, 1.2])
    n = len(NAMES)

    def total(model, x, schedule):
        t, starts = schedule
        individual = {k: jnp.exp(x[:, j]) for j, k in enumerate(NAMES)}
        individual["fb"] = jax.nn.sigmoid(x[:, n - 1])
        gamma = x[0, n:]  # shared by the patients: read from row 0
        switches = {"expansion": (starts, gamma[:2]), "contraction": (starts, gamma[2:])}
        if model.elementwise:
            individual = {k: v[:, None] for k, v in individual.items()}
            switches = {k: (s[:, None, :], g) for k, (s, g) in switches.items()}
        return jnp.sum(weights * model.log_concentration(individual, t, switches=switches))

    x0 = np.array([[np.log(p[k]) if k != "fb" else np.log(p[k] / (1 - p[k])) for k in NAMES] for p in (STEIN, OTHER)])
    x0 = jnp.asarray(np.concatenate([x0, np.tile([0.4, -0.3, 0.5, -0.2], (2, 1))], axis=1))
    grad = jax.grad(total, argnums=1)
    assert np.all(np.isfinite(np.asarray(grad(Multiphasic(), x0, at_kinks))))
    smooth = grad(Multiphasic(), x0, off_kinks)
    eps = 1e-6
    for i in range(2):
        for j in list(range(n)) + ([n, n + 1, n + 2, n + 3] if i == 0 else []):
            step = jnp.zeros_like(x0).at[i, j].set(eps)
            fd = (total(Multiphasic(), x0 + step, off_kinks) - total(Multiphasic(), x0 - step, off_kinks)) / (2 * eps)
            assert float(smooth[i, j]) == pytest.approx(float(fd), rel=1e-6, abs=1e-8), (i, j)
    return grad, x0, at_kinks, off_kinks, smooth


def test_gradients_are_finite_at_a_switch_and_match_finite_differences():
    _closed_form_gradients_at_and_off_switches()


@pytest.mark.slow
def test_the_ode_twins_gradients_through_switches_equal_the_closed_forms():
    """Forward sensitivities through the segments: finite at the kinks, the closed form's gradient away from them."""
    grad, x0, at_kinks, off_kinks, smooth = _closed_form_gradients_at_and_off_switches()
    ode = EffectorMemory(options=TIGHT)
    assert np.all(np.isfinite(np.asarray(grad(ode, x0, at_kinks))))
    np.testing.assert_allclose(np.asarray(grad(ode, x0, off_kinks)), np.asarray(smooth), rtol=1e-5, atol=1e-8)


def test_vmap_over_patients_equals_the_batched_closed_form():
    individual = _individual(STEIN, OTHER)
    one = jax.vmap(lambda ind, s: Multiphasic().log_concentration(
        ind, jnp.asarray(GRID), switches={"expansion": (s, EXPANSION), "contraction": (s, CONTRACTION)}))(
        individual, jnp.asarray(STARTS))
    batched = Multiphasic().log_concentration(_individual(STEIN, OTHER, column=True), jnp.asarray(GRID)[None, :],
                                              switches=_switches(STARTS, column=True))
    np.testing.assert_allclose(np.asarray(one), np.asarray(batched), rtol=1e-15)


@pytest.mark.slow
def test_vmap_over_gamma_draws_of_the_ode_twin_equals_separate_solves():
    model = EffectorMemory(options=TIGHT)
    t = jnp.asarray(np.stack([GRID, GRID]))
    draws = jnp.asarray([[0.4, -0.3], [-0.5, 0.2]])

    def solve(g):
        return model.log_concentration(_individual(STEIN, OTHER), t, switches={"expansion": (jnp.asarray(STARTS), g)})

    batched = jax.vmap(solve)(draws)
    for k in range(2):
        np.testing.assert_allclose(np.asarray(batched[k]), np.asarray(solve(draws[k])), rtol=1e-12)


def test_switches_for_a_process_the_model_does_not_switch_are_refused():
    with pytest.raises(ValueError, match=r"co-medication switches for 'killing'"):
        EffectorMemory().solve(_individual(STEIN), jnp.asarray(GRID)[None, :],
                               switches={"killing": (jnp.zeros((1, 1)), jnp.zeros(1))})
    with pytest.raises(ValueError, match=r"co-medication switches for 'killing'"):
        Multiphasic().patient_terms(_individual(STEIN), switches={"killing": (jnp.zeros((1, 1)), jnp.zeros(1))})
