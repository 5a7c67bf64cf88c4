"""A fit's [comedication.*] tables and second infusions reach the kinetic model: the log-likelihood against a hand
computation of the switched, re-infused multiphasic curve; the ODE twin's likelihood and gradient; check_solves."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from carkin.data import load_dataset
from carkin.errors import SolverError
from carkin.population import (
    check_solves,
    log_likelihood,
    natural_parameters,
    prepare,
    spec_from_dict,
)

PARAMETER = {"transform": "log", "typical": 1.0, "prior_sd": 1.0, "omega_scale": 1.0}
PARAMETERS = {n: dict(PARAMETER) for n in ("cmax", "tmax", "rho", "beta", "delta")}
PARAMETERS["fb"] = {"transform": "logit", "typical": 0.01, "prior_sd": 1.0, "omega_scale": 1.0}
# Patient 1: tocilizumab from day 3 (during expansion), a second infusion of half the cells at day 40; patient 2:
# never tocilizumab ('.'), one infusion.
CK = ("ID,TIME,DV,EVID,AMT,MDV\n"
      "1,0,.,1,400,1\n1,2,60,0,.,0\n1,7,900,0,.,0\n1,20,3000,0,.,0\n1,40,.,1,200,1\n1,45,700,0,.,0\n1,80,300,0,.,0\n"
      "2,0,.,1,300,1\n2,5,100,0,.,0\n2,30,200,0,.,0\n")
PATIENTS = "ID,TOCI_DAY\n1,3\n2,.\n"
SIGMA = 0.4
GAMMA = np.array([0.5, -0.6])  # toci on expansion, on contraction (spec order)
P = [dict(cmax=20000.0, tmax=11.0, rho=0.75, beta=0.003, delta=0.15, fb=0.01),
     dict(cmax=5000.0, tmax=9.0, rho=0.6, beta=0.004, delta=0.2, fb=0.02)]


def _spec(model):
    return spec_from_dict({
        "model": model, "parameters": PARAMETERS, "residual": {"model": "additive_log"},
        "comedication": {"toci": {"start_column": "TOCI_DAY", "effects": ["expansion", "contraction"],
                                  "prior_sd": 1.0}},
    }, source="toci.toml")


def _phi():
    return jnp.asarray([[math.log(p[k]) if k != "fb" else math.log(p[k] / (1 - p[k])) for k in PARAMETERS] for p in P])


def _cohort(p, tau, toci, ge, gc):
    """C of one infusion's cells tau days after it (weight 1), tocilizumab from ``toci`` on the same clock: rho
    times e^ge from it, alpha times e^gc from max(toci, tmax) (written out for toci <= tmax, as here)."""
    tmax, rho, beta = p["tmax"], p["rho"], p["beta"]
    alpha = beta + p["delta"]
    k = p["fb"] * p["delta"]
    start = min(max(toci, 0.0), tmax)
    log_r0 = math.log(p["cmax"]) - rho * tmax
    if tau <= tmax:
        grown = min(tau, start) + math.exp(ge) * max(tau - start, 0.0)
        return math.exp(log_r0 + rho * grown)
    peak = math.exp(log_r0 + rho * (start + math.exp(ge) * (tmax - start)))
    a = alpha * math.exp(gc)  # the whole decline is after the start
    u = tau - tmax
    return peak * (math.exp(-a * u) + k * (math.exp(-beta * u) - math.exp(-a * u)) / (a - beta))


def _expected(gamma):
    ge, gc = gamma
    c1 = {t: _cohort(P[0], t, 3.0, ge, gc) + (0.5 * _cohort(P[0], t - 40, 3.0 - 40, ge, gc) if t >= 40 else 0.0)
          for t in (2, 7, 20, 45, 80)}
    # Patient 2 never receives it: the plain multiphasic curve.
    c2 = {t: _cohort(P[1], t, math.inf, 0.0, 0.0) for t in (5, 30)}
    dv = {(1, 2): 60, (1, 7): 900, (1, 20): 3000, (1, 45): 700, (1, 80): 300, (2, 5): 100, (2, 30): 200}
    conc = {(1, t): c for t, c in c1.items()} | {(2, t): c for t, c in c2.items()}
    return sum(stats.norm.logpdf(math.log(dv[key]), math.log(conc[key]), SIGMA) for key in dv)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("toci")
    (root / "ck.csv").write_text(CK)
    (root / "patients.csv").write_text(PATIENTS)
    return root / "ck.csv", root / "patients.csv"


def test_the_log_likelihood_uses_the_co_medication_and_the_second_infusion(files):
    spec = _spec("multiphasic")
    data = prepare(load_dataset(*files, spec=spec, verbose=False), spec)
    np.testing.assert_array_equal(np.asarray(data.comedication_start), [[3.0], [np.inf]])
    got = float(log_likelihood(spec, data, _phi(), SIGMA, gamma=jnp.asarray(GAMMA)))
    assert got == pytest.approx(_expected(GAMMA), rel=1e-12)
    # gamma moves it: the effects are not dropped on the way.
    assert abs(float(log_likelihood(spec, data, _phi(), SIGMA, gamma=jnp.zeros(2))) - got) > 1.0
    assert float(log_likelihood(spec, data, _phi(), SIGMA, gamma=jnp.zeros(2))) == pytest.approx(
        _expected(np.zeros(2)), rel=1e-12)


@pytest.mark.slow
def test_the_ode_twins_likelihood_and_gradient_match_the_closed_forms(files):
    closed, ode = _spec("multiphasic"), _spec("effector_memory")
    dataset = load_dataset(*files, spec=ode, verbose=False)
    data_c, data_o = prepare(dataset, closed), prepare(dataset, ode)

    def ll(spec, data):
        return lambda phi, gamma: log_likelihood(spec, data, phi, SIGMA, gamma=gamma)

    value = float(ll(ode, data_o)(_phi(), jnp.asarray(GAMMA)))
    assert value == pytest.approx(_expected(GAMMA), abs=1e-4)
    grad_o = jax.grad(ll(ode, data_o), argnums=(0, 1))(_phi(), jnp.asarray(GAMMA))
    grad_c = jax.grad(ll(closed, data_c), argnums=(0, 1))(_phi(), jnp.asarray(GAMMA))
    for g_o, g_c in zip(grad_o, grad_c, strict=True):
        np.testing.assert_allclose(np.asarray(g_o), np.asarray(g_c), rtol=1e-4, atol=1e-4)
    assert np.all(np.asarray(grad_o[1]) != 0)


def test_check_solves_solves_with_each_draws_co_medication_effects(files):
    """A parameter set whose co-medication effect cannot be solved (NaN) fails for the patient who receives the
    co-medication; the other set and the prior's centre (gamma omitted: 0) solve."""
    spec = _spec("effector_memory")
    dataset = load_dataset(*files, spec=spec, verbose=False)
    data = prepare(dataset, spec)
    individual = natural_parameters(spec, jnp.stack([_phi(), _phi()]))  # two parameter sets
    check_solves(spec, dataset, individual, data=data)
    check_solves(spec, dataset, individual, data=data, gamma=jnp.asarray([GAMMA, -GAMMA]))
    with pytest.raises(SolverError, match=r"patient 1: 1 of 2 parameter set\(s\) failed") as err:
        check_solves(spec, dataset, individual, data=data, gamma=jnp.asarray([GAMMA, [0.0, np.nan]]))
    assert "patient 2" not in str(err.value)
