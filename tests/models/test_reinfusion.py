"""Re-infusion: a second infusion's expansion phase in the closed form (superposed cohorts), the ODE twin and the
CAR-T / tumour model (a state jump), against independent diffrax solutions; the tumour output; padding."""

import jax.numpy as jnp
import numpy as np
import pytest

from carkin.data import DoseEvents
from carkin.models import CarTumor, EffectorMemory, Multiphasic, ODEOptions

from ._references import cart_tumour, multiphasic_cohorts

STEIN = dict(cmax=24000.0, tmax=9.3, rho=0.89, beta=0.0032, delta=0.1568, fb=0.0079)
OTHER = dict(cmax=3000.0, tmax=14.0, rho=0.55, beta=0.01, delta=0.4, fb=0.05)
NAMES = tuple(STEIN)
# Infusions: STEIN again at day 40 with half the first amount; OTHER at day 60 with twice it, and a padded third.
DOSES = DoseEvents(time=jnp.asarray([[0.0, 40.0, 0.0], [0.0, 60.0, 0.0]]),
                   amount=jnp.asarray([[450.0, 225.0, 0.0], [150.0, 300.0, 0.0]]),
                   mask=jnp.asarray([[True, True, False], [True, True, False]]))
WEIGHTS = ([1.0, 0.5], [1.0, 2.0])
# Times around both infusions and both expansion peaks (40 + 9.3, 60 + 14), the infusion times included.
GRID = np.array([0.0, 5.0, 9.3, 14.0, 30.0, 39.0, 40.0, 41.0, 49.3, 55.0, 60.0, 61.0, 74.0, 90.0, 200.0, 400.0])
# A co-medication per patient during the second expansion (STEIN: day 45, OTHER: day 65): it acts on the second
# cohort's expansion and on the first cohort's contraction at the same time.
STARTS = np.array([[45.0], [65.0]])
EXPANSION, CONTRACTION = np.array([0.5]), np.array([-0.4])
TIGHT = ODEOptions(rtol=1e-11, atol=1e-12)


def _individual(*patients, column=False):
    return {k: jnp.asarray([p[k] for p in patients])[(slice(None), None) if column else slice(None)] for k in NAMES}


def _column(doses):
    return DoseEvents(time=doses.time[:, None], amount=doses.amount[:, None], mask=doses.mask[:, None])


@pytest.fixture(scope="module")
def reference():
    """The diffrax solution with one (E, M) pair per infusion and the switches, (2, obs) log C."""
    return np.stack([
        multiphasic_cohorts(p, GRID, dose_time=np.asarray(DOSES.time)[i, :2], dose_weight=WEIGHTS[i],
                            expansion=(STARTS[i], EXPANSION), contraction=(STARTS[i], CONTRACTION))
        for i, p in enumerate((STEIN, OTHER))
    ])


def _switches(column=False):
    s = jnp.asarray(STARTS)[:, None, :] if column else jnp.asarray(STARTS)
    return {"expansion": (s, jnp.asarray(EXPANSION)), "contraction": (s, jnp.asarray(CONTRACTION))}


def test_the_closed_form_superposes_the_infusions_as_the_diffrax_solution_to_1e8(reference):
    got = Multiphasic().log_concentration(_individual(STEIN, OTHER, column=True), jnp.asarray(np.stack([GRID, GRID])),
                                          doses=_column(DOSES), switches=_switches(column=True))
    np.testing.assert_allclose(np.exp(np.asarray(got)), np.exp(reference), rtol=1e-8)
    # A second expansion phase: the level rises again after each re-infusion.
    for i, (t_d, tmax) in enumerate([(40.0, 9.3), (60.0, 14.0)]):
        at, peak = np.searchsorted(GRID, t_d), np.searchsorted(GRID, t_d + tmax)
        assert got[i, peak] > got[i, at] + 1.0


def test_the_ode_twin_with_a_second_infusion_equals_the_diffrax_solution(reference):
    sol = EffectorMemory(options=TIGHT).solve(_individual(STEIN, OTHER), jnp.asarray(np.stack([GRID, GRID])),
                                              doses=DOSES, switches=_switches())
    assert np.all(np.asarray(sol.code) == 0)
    np.testing.assert_allclose(np.exp(np.asarray(sol.log_concentration)), np.exp(reference), rtol=1e-8)


def test_one_real_infusion_with_padding_is_the_single_infusion_model():
    individual = _individual(STEIN, OTHER, column=True)
    t = jnp.asarray(np.stack([GRID, GRID]))
    single = DoseEvents(time=jnp.zeros((2, 2)), amount=jnp.asarray([[450.0, 0.0], [150.0, 99.0]]),
                        mask=jnp.asarray([[True, True], [True, False]]))  # a zero amount and a padded event
    got = Multiphasic().log_concentration(individual, t, doses=_column(single))
    np.testing.assert_allclose(np.asarray(got), np.asarray(Multiphasic().log_concentration(individual, t)),
                               rtol=1e-15)


@pytest.fixture(scope="module")
def tumour_model():
    return CarTumor(options=TIGHT)


def test_cart_tumour_second_infusion_and_tumour_output_match_a_diffrax_solution(tumour_model):
    """A second infusion (a state jump) without co-medication: transgene and tumour against the reference."""
    model = tumour_model
    p = dict(e0=5.0, kexp=0.8, ec50=0.01, beta=0.004, delta=0.15, fb=0.01, tumor0=30.0)
    t = np.array([0.0, 3.0, 10.0, 20.0, 30.0, 31.0, 40.0, 60.0, 120.0])
    doses = DoseEvents(time=jnp.asarray([[0.0, 30.0]]), amount=jnp.asarray([[2.0, 1.0]]))
    sol = model.solve({k: jnp.asarray([v]) for k, v in p.items()}, jnp.asarray(t)[None, :], doses=doses)
    assert np.all(np.asarray(sol.code) == 0) and model.outputs == ("transgene", "tumour")
    log_c, log_t = cart_tumour(p, {n: getattr(model, n) for n in model.constants}, t, dose_time=30.0, dose_weight=0.5)
    np.testing.assert_allclose(np.asarray(sol.log_outputs[0, :, 0]), log_c, rtol=0, atol=1e-8)
    np.testing.assert_allclose(np.asarray(sol.log_outputs[0, :, 1]), log_t, rtol=0, atol=1e-8)


@pytest.mark.slow
def test_cart_tumour_reinfusion_is_a_state_jump_and_its_tumour_output_matches_a_diffrax_solution(tumour_model):
    """Patient 1 has tumour (second infusion at day 30, a co-medication at day 20); patient 2 has none: its tumour
    output is a finite number far below any marker's limit and its cells do not expand."""
    model = tumour_model
    patients = [dict(e0=5.0, kexp=0.8, ec50=0.01, beta=0.004, delta=0.15, fb=0.01, tumor0=30.0),
                dict(e0=10.0, kexp=1.0, ec50=0.02, beta=0.01, delta=0.2, fb=0.05, tumor0=0.0)]
    individual = {k: jnp.asarray([p[k] for p in patients]) for k in patients[0]}
    t = np.array([0.0, 3.0, 10.0, 20.0, 25.0, 30.0, 31.0, 40.0, 60.0, 120.0])
    doses = DoseEvents(time=jnp.asarray([[0.0, 30.0], [0.0, 30.0]]), amount=jnp.asarray([[2.0, 1.0], [1.0, 1.0]]))
    starts = jnp.asarray([[20.0], [np.inf]])
    switches = {"expansion": (starts, jnp.asarray([0.3])), "contraction": (starts, jnp.asarray([0.5]))}
    sol = model.solve(individual, jnp.asarray(np.stack([t, t])), doses=doses, switches=switches)
    assert np.all(np.asarray(sol.code) == 0) and model.outputs == ("transgene", "tumour")
    constants = {n: getattr(model, n) for n in model.constants}
    log_c, log_t = cart_tumour(patients[0], constants, t, dose_time=30.0, dose_weight=0.5,
                               expansion=(np.array([20.0]), np.array([0.3])),
                               contraction=(np.array([20.0]), np.array([0.5])))
    np.testing.assert_allclose(np.asarray(sol.log_outputs[0, :, 0]), log_c, rtol=0, atol=1e-8)
    np.testing.assert_allclose(np.asarray(sol.log_outputs[0, :, 1]), log_t, rtol=0, atol=1e-8)
    np.testing.assert_array_equal(np.asarray(sol.log_outputs[..., 0]), np.asarray(sol.log_concentration))
    # No tumour: C = e0 e^(-alpha t) (E) + memory, doubled in effectors at day 30; log T finite, below -700.
    assert np.all(np.isfinite(np.asarray(sol.log_outputs[1, :, 1]))) and np.all(sol.log_outputs[1, :, 1] < -700)
    no_tumour = patients[1]
    c_ref, _ = cart_tumour({**no_tumour, "tumor0": 1e-300}, constants, t, dose_time=30.0, dose_weight=1.0)
    np.testing.assert_allclose(np.asarray(sol.log_outputs[1, :, 0]), c_ref, rtol=0, atol=1e-8)


def test_models_without_reinfusion_refuse_doses():
    from carkin.models._ode import ODEModel

    class OneInfusion(EffectorMemory):
        reinfusion = False

    assert issubclass(OneInfusion, ODEModel)
    with pytest.raises(ValueError, match=r"OneInfusion takes one infusion per patient: it got doses"):
        OneInfusion().solve(_individual(STEIN), jnp.asarray(GRID)[None, :], doses=DOSES)
