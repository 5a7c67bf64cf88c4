"""The effector/memory ODE twin against the closed form: values, gradients (d/dtmax included), shapes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from carkin.models import EffectorMemory, Multiphasic, ODEOptions

STEIN = dict(cmax=24000.0, tmax=9.3, rho=0.89, beta=0.0032, delta=0.1568, fb=0.0079)
OTHER = dict(cmax=3000.0, tmax=14.0, rho=0.55, beta=0.01, delta=0.4, fb=0.05)
NAMES = tuple(STEIN)
# A grid that straddles tmax on both sides for both patients, with tmax itself and points just around it.
GRID = np.concatenate([[0.0, 0.5, 3.0, 9.0, 9.299, 9.3, 9.301, 11.0, 13.99, 14.0, 14.01], np.geomspace(15, 400, 9)])
TIGHT = ODEOptions(rtol=1e-10, atol=1e-13)


def _individual(*patients):
    return {k: jnp.asarray([p[k] for p in patients]) for k in NAMES}


def _closed(p, t):
    return np.asarray(Multiphasic().log_concentration({k: jnp.asarray(v) for k, v in p.items()}, jnp.asarray(t)))


@pytest.mark.parametrize(
    "model",
    [
        EffectorMemory(options=TIGHT),
        EffectorMemory(options=TIGHT.replace(batching="patient")),
        EffectorMemory(options=TIGHT, expansion="ode"),
    ],
    ids=["population", "per-patient", "ode-expansion"],
)
def test_ode_twin_matches_the_closed_form_to_1e6_relative_on_a_grid_straddling_tmax(model):
    t = jnp.asarray(np.stack([GRID, GRID]))
    sol = model.solve(_individual(STEIN, OTHER), t)
    assert np.all(np.asarray(sol.code) == 0)
    for i, p in enumerate((STEIN, OTHER)):
        got = np.exp(np.asarray(sol.log_concentration[i]))
        np.testing.assert_allclose(got, np.exp(_closed(p, GRID)), rtol=1e-6)


@pytest.mark.parametrize("adjoint", ["forward", pytest.param("recursive_checkpoint", marks=pytest.mark.slow)])
def test_gradients_match_the_closed_form_to_1e5_including_d_dtmax(adjoint):
    """d log C / d(every parameter) at every grid time, tmax included, on both sides of the kink and at it."""
    model = EffectorMemory(options=TIGHT.replace(adjoint=adjoint, batching="auto"))
    t = jnp.asarray(GRID)[None, :]
    weights = jnp.asarray(np.linspace(0.3, 1.7, GRID.size))

    def ode(x):
        return jnp.sum(weights * model.log_concentration({k: x[j][None] for j, k in enumerate(NAMES)}, t)[0])

    def closed(x):
        return jnp.sum(weights * Multiphasic().log_concentration(dict(zip(NAMES, x, strict=True)), jnp.asarray(GRID)))

    for p in (STEIN, OTHER):
        x0 = jnp.asarray([p[k] for k in NAMES])
        got, expected = np.asarray(jax.grad(ode)(x0)), np.asarray(jax.grad(closed)(x0))
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-9)
        assert abs(expected[NAMES.index("tmax")]) > 1e-3  # d/dtmax is really tested


def test_the_derivative_in_tmax_of_each_observation_matches_finite_differences_through_the_kink():
    model = EffectorMemory(options=TIGHT)
    t = jnp.asarray([[5.0, 9.0, 9.5, 12.0, 60.0]])

    def f(tmax):
        ind = {**{k: jnp.asarray([v]) for k, v in STEIN.items()}, "tmax": jnp.asarray([tmax])}
        return model.log_concentration(ind, t)[0]

    jac = np.asarray(jax.jacfwd(f)(9.3))
    h = 1e-5
    fd = (np.asarray(f(9.3 + h)) - np.asarray(f(9.3 - h))) / (2 * h)
    np.testing.assert_allclose(jac, fd, rtol=1e-6, atol=1e-8)
    assert jac[0] == pytest.approx(-STEIN["rho"], rel=1e-8)  # before tmax: log C = log cmax + rho (t - tmax)


def test_model_is_jit_vmap_and_grad_safe_with_documented_shapes():
    model = EffectorMemory()
    n, m = 5, 7
    ind = {k: jnp.full((n,), v) for k, v in STEIN.items()}
    t = jnp.broadcast_to(jnp.linspace(0.0, 200.0, m), (n, m))
    out = jax.jit(model.log_concentration)(ind, t)
    assert out.shape == (n, m)
    # vmap over posterior draws: the batch joins the population (one solve) and gives the same values
    draws = {k: jnp.stack([v, v * 1.01]) for k, v in ind.items()}
    batched = jax.vmap(model.log_concentration, in_axes=(0, None))(draws, t)
    assert batched.shape == (2, n, m)
    # shared steps: values agree to the tolerance (the step sequence depends on the whole batch)
    np.testing.assert_allclose(batched[0], out, rtol=1e-6)
    grads = jax.grad(lambda d: jnp.sum(model.log_concentration(d, t)))(ind)
    assert all(g.shape == (n,) and bool(jnp.all(jnp.isfinite(g))) for g in grads.values())
    derived = model.derived({k: v[0] for k, v in ind.items()})
    assert float(derived["alpha"]) == pytest.approx(STEIN["beta"] + STEIN["delta"])


def test_expansion_choice_is_validated():
    with pytest.raises(ValueError, match="EffectorMemory.expansion = 'exact'; choose analytic or ode"):
        EffectorMemory(expansion="exact")
