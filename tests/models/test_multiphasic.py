"""The closed-form multiphasic model against its definition, the E/M ODE (scipy), and finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from carkin.models import Multiphasic, MultiphasicParams, multiphasic_log_concentration

STEIN = dict(cmax=24000.0, tmax=9.3, rho=0.89, alpha=0.16, beta=0.0032, fb=0.0079)


def piecewise(p, t):
    """The two-branch definition of [Stein2019] (docs/references.md, section 1.1), written independently in numpy."""
    t = np.asarray(t, float)
    before = p["cmax"] * np.exp(p["rho"] * (t - p["tmax"]))
    dt = t - p["tmax"]
    after = p["cmax"] * ((1 - p["fb"]) * np.exp(-p["alpha"] * dt) + p["fb"] * np.exp(-p["beta"] * dt))
    return np.where(t < p["tmax"], before, after)


def test_closed_form_equals_the_piecewise_definition_on_both_sides_of_tmax():
    t = np.linspace(0, 400, 2001)
    got = np.exp(np.asarray(multiphasic_log_concentration(MultiphasicParams(**STEIN), t)))
    np.testing.assert_allclose(got, piecewise(STEIN, t), rtol=1e-12)


def test_level_at_infusion_is_cmax_over_fold_expansion():
    p = MultiphasicParams(**STEIN)
    c0 = float(jnp.exp(multiphasic_log_concentration(p, 0.0)))
    assert c0 == pytest.approx(STEIN["cmax"] / float(p.foldx), rel=1e-12)
    assert float(p.foldx) == pytest.approx(np.exp(0.89 * 9.3), rel=1e-12)


def test_closed_form_solves_the_effector_memory_ode():
    """E expands at rho until tmax, then decays at alpha and feeds M at k = fb (alpha - beta)."""
    p = STEIN
    r0 = p["cmax"] * np.exp(-p["rho"] * p["tmax"])
    k = p["fb"] * (p["alpha"] - p["beta"])

    def rhs(t, y):
        e, m = y
        if t < p["tmax"]:
            return [p["rho"] * e, 0.0]
        return [-p["alpha"] * e, k * e - p["beta"] * m]

    t_eval = np.array([0.5, 3.0, 9.0, 9.3, 9.5, 14.0, 30.0, 90.0, 365.0])
    first = solve_ivp(rhs, (0, p["tmax"]), [r0, 0.0], rtol=1e-11, atol=1e-12, dense_output=True)
    second = solve_ivp(rhs, (p["tmax"], 365.0), first.y[:, -1], rtol=1e-11, atol=1e-12, dense_output=True)
    ode = np.array([first.sol(t).sum() if t <= p["tmax"] else second.sol(t).sum() for t in t_eval])
    got = np.exp(np.asarray(multiphasic_log_concentration(MultiphasicParams(**STEIN), t_eval)))
    np.testing.assert_allclose(got, ode, rtol=1e-7)


@pytest.mark.parametrize("t", [2.0, 8.0, 10.5, 60.0, 300.0])
def test_gradients_match_central_finite_differences_away_from_the_kink(t):
    names = list(STEIN)

    def f(x):
        return multiphasic_log_concentration(MultiphasicParams(**dict(zip(names, x, strict=True))), t)

    x0 = jnp.asarray([STEIN[n] for n in names])
    grad = np.asarray(jax.grad(f)(x0))
    fd = np.zeros(len(names))
    for i in range(len(names)):
        h = 1e-6 * max(abs(float(x0[i])), 1e-3)
        fd[i] = (float(f(x0.at[i].add(h))) - float(f(x0.at[i].add(-h)))) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-8)


def test_gradient_at_the_kink_is_finite_and_between_the_one_sided_derivatives():
    names = list(STEIN)

    def f(x, t):
        return multiphasic_log_concentration(MultiphasicParams(**dict(zip(names, x, strict=True))), t)

    x0 = jnp.asarray([STEIN[n] for n in names])
    at = np.asarray(jax.grad(f)(x0, STEIN["tmax"]))
    left = np.asarray(jax.grad(f)(x0, STEIN["tmax"] - 1e-9))
    right = np.asarray(jax.grad(f)(x0, STEIN["tmax"] + 1e-9))
    assert np.all(np.isfinite(at))
    lo, hi = np.minimum(left, right), np.maximum(left, right)
    assert np.all(at >= lo - 1e-6) and np.all(at <= hi + 1e-6)


def test_model_is_jit_and_vmap_safe_with_expected_shapes():
    model = Multiphasic()
    n_patients, n_times = 7, 5
    individual = {k: jnp.full((n_patients,), v) for k, v in
                  dict(cmax=2e4, tmax=11.0, rho=0.8, beta=0.003, delta=0.15, fb=0.01).items()}
    times = jnp.linspace(0.0, 100.0, n_times)
    out = jax.jit(jax.vmap(lambda ind: model.log_concentration(ind, times)))(individual)
    assert out.shape == (n_patients, n_times)
    broadcast = model.log_concentration({k: v[:, None] for k, v in individual.items()}, times[None, :])
    np.testing.assert_allclose(out, broadcast, rtol=1e-14)
    assert float(model.derived({k: v[0] for k, v in individual.items()})["alpha"]) == pytest.approx(0.153)


def test_alpha_exceeds_beta_for_any_positive_gap():
    model = Multiphasic()
    p = model.structural(dict(cmax=1.0, tmax=1.0, rho=1.0, beta=jnp.asarray([1e-4, 1.0, 10.0]),
                              delta=jnp.asarray([1e-9, 1e-3, 5.0]), fb=0.5))
    assert bool(jnp.all(p.alpha > p.beta))
