"""The mechanistic CAR-T / tumour model: biological sanity, an independent scipy solve, gradients, spec."""

import tomllib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from carkin.models import CarTumor, ODEOptions
from carkin.population import load_spec
from carkin.population._spec import default_models_dir

TYPICAL = dict(e0=6.0, kexp=1.6, ec50=0.003, beta=0.0032, delta=0.157, fb=0.0079)
TIMES = np.array([0.0, 1.0, 3.0, 5.0, 7.0, 9.0, 11.0, 14.0, 21.0, 28.0, 56.0, 90.0, 180.0, 365.0])
GRID = np.arange(0.0, 60.0, 0.25)
BURDENS = (0.0, 3.0, 30.0, 90.0)  # % bone-marrow plasma cells


def _individual(burdens, **changes):
    p = {**TYPICAL, **changes}
    ind = {k: jnp.full((len(burdens),), v) for k, v in p.items()}
    ind["tumor0"] = jnp.asarray(burdens, dtype=float)
    return ind


def _scipy(p, tumor0, t, model):
    """The model's equations written independently, solved by scipy's LSODA."""
    alpha, km = p["beta"] + p["delta"], p["fb"] * p["delta"]

    def rhs(_, y):
        e, m, x, tumour = y
        s = tumour / (tumour + p["ec50"] * (e + m + x)) if tumour > 0 else 0.0
        kill = model.kkill * e * tumour / (e + model.kc50 * tumour) if tumour > 0 else 0.0
        return [((p["kexp"] - model.kx) * s - alpha) * e, km * e - p["beta"] * m, model.kx * s * e - model.dx * x,
                model.kg * tumour - kill]

    sol = solve_ivp(rhs, (0.0, t[-1]), [p["e0"], 0.0, 0.0, tumor0], method="LSODA", rtol=1e-12, atol=1e-12, t_eval=t)
    return np.log(sol.y[:3].sum(axis=0)), sol.y[3]


@pytest.fixture(scope="module")
def curves():
    model = CarTumor()
    sol = model.solve(_individual(BURDENS), jnp.tile(jnp.asarray(GRID), (len(BURDENS), 1)))
    assert np.all(np.asarray(sol.code) == 0)
    return np.exp(np.asarray(sol.log_concentration))


def test_without_tumour_there_is_no_expansion(curves):
    no_tumour = curves[0]
    assert no_tumour[0] == pytest.approx(TYPICAL["e0"], rel=1e-9)
    assert np.all(np.diff(no_tumour) < 0)  # only contraction


def test_higher_baseline_burden_gives_higher_cmax(curves):
    cmax = curves.max(axis=1)
    assert np.all(np.diff(cmax) > 0)
    assert cmax[2] / TYPICAL["e0"] > 1000  # multi-log expansion at typical burden
    tmax = GRID[curves[2].argmax()]
    assert 8.0 <= tmax <= 14.0  # calibrated near the ide-cel median Tmax of 11 days


def test_killing_reduces_the_tumour_and_without_killing_it_regrows():
    model, no_kill = CarTumor(), CarTumor(kkill=0.0)
    ind, t = _individual((30.0,)), jnp.asarray([[0.0, 28.0, 90.0]])
    tumour, code = model.tumour(ind, t)
    tumour_free, _ = no_kill.tumour(ind, t)
    assert int(code[0]) == 0
    assert float(tumour[0, 1]) < 0.05 * 30.0  # deep reduction by day 28
    np.testing.assert_allclose(np.asarray(tumour_free[0]), 30.0 * np.exp(no_kill.kg * np.asarray(t[0])), rtol=1e-6)


def test_matches_an_independent_scipy_solve_to_1e6():
    model = CarTumor(options=ODEOptions(rtol=1e-10, atol=1e-12))
    sol = model.solve(_individual(BURDENS), jnp.tile(jnp.asarray(TIMES), (len(BURDENS), 1)))
    tumour, _ = model.tumour(_individual(BURDENS), jnp.tile(jnp.asarray(TIMES), (len(BURDENS), 1)))
    for i, burden in enumerate(BURDENS):
        log_c, t_ref = _scipy(TYPICAL, burden, TIMES, model)
        np.testing.assert_allclose(np.exp(np.asarray(sol.log_concentration[i])), np.exp(log_c), rtol=1e-6)
        np.testing.assert_allclose(np.asarray(tumour[i]), t_ref, rtol=1e-6, atol=1e-9 * max(burden, 1.0))


def test_gradients_match_central_finite_differences():
    model = CarTumor(options=ODEOptions(rtol=1e-10, atol=1e-12))
    names = model.argument_names  # individual parameters, then the tumour input
    x0 = jnp.asarray([TYPICAL[k] for k in model.individual_parameters] + [30.0])
    weights = jnp.asarray(np.linspace(0.5, 1.5, TIMES.size))

    def f(x):
        return jnp.sum(weights * model.log_concentration({k: x[i][None] for i, k in enumerate(names)},
                                                          jnp.asarray(TIMES)[None])[0])

    grad = np.asarray(jax.jit(jax.grad(f))(x0))
    f_jit = jax.jit(f)
    fd = np.array([(float(f_jit(x0.at[i].mul(1 + 1e-6))) - float(f_jit(x0.at[i].mul(1 - 1e-6)))) / (2e-6 * float(x0[i]))
                   for i in range(x0.size)])
    np.testing.assert_allclose(grad, fd, rtol=1e-5)


def test_shipped_spec_documents_the_module_constants_and_maps_the_tumour_input():
    spec = load_spec("cart_tumor")
    data = tomllib.loads((default_models_dir() / "cart_tumor.toml").read_text())
    defaults = CarTumor()
    assert {k: getattr(defaults, k) for k in CarTumor.constants} == data["constants"]
    assert [(i.name, i.column) for i in spec.inputs] == [("tumor0", "TUMOR_BURDEN")]
    assert spec.kinetic_model.options.solver == "tsit5"  # not stiff (module docstring)
    assert set(spec.parameter_names) == set(CarTumor.individual_parameters)


def test_constants_are_validated():
    with pytest.raises(ValueError, match="CarTumor.kc50 = 0.0 must be positive"):
        CarTumor(kc50=0.0)


def test_the_observation_is_log_e_plus_m_plus_x_even_after_the_effectors_have_died_out():
    """log C = log e0 + log(e^u + m) + log(1 + r): checked where e^-u overflows (u = -2000, effectors gone,
    memory left), where memory has not formed (m = 0, with a finite derivative in m), and in between."""
    model = CarTumor()
    e0 = jnp.asarray(6.0)
    for u, m, r in ((-2000.0, 0.5, 0.1), (-2000.0, 0.0, 0.0), (3.0, 0.0, 0.2), (3.0, 40.0, 0.2), (-1.0, 2.0, 0.0)):
        got = float(model.observe((jnp.asarray(u), jnp.asarray(m), jnp.asarray(r), jnp.asarray(0.0)), {"e0": e0}))
        expected = np.log(6.0) + np.logaddexp(u, np.log(m) if m > 0 else -np.inf) + np.log1p(r)
        assert got == pytest.approx(expected, rel=1e-12), (u, m, r)
    d_dm = jax.grad(lambda m: model.observe((jnp.asarray(3.0), m, jnp.asarray(0.0), jnp.asarray(0.0)), {"e0": e0}))
    assert float(d_dm(jnp.asarray(0.0))) == pytest.approx(np.exp(-3.0), rel=1e-12)  # 1 / (e^u + m) at m = 0
