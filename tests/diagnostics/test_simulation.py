"""Posterior predictive simulation goes through the shared generative model and keeps its numbers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from carkin.diagnostics import npde, vpc
from carkin.diagnostics._simulation import design, simulate_records
from carkin.simulate import PopulationParameters, simulate_cohort, truth_from_spec

from ..helpers import multiphasic_spec_as_at_9913582
from .helpers import truth_fit

# Values computed with the code of main at 9913582 (before the simulators shared carkin.population's
# generative model), for the same keys.
RECORDS_HEAD = [[5.807213958438649, 6.277868299211605, 8.379138431203952, 8.778659163807976],
                [4.795945355075144, 6.433452778317293, 9.229043228679604, 9.244350508645429],
                [4.17376681504281, 5.364242912839172, 7.046545953603861, 8.680481238423816]]
VPC_BLQ_MEDIAN = [0.5083333333333333, 0.3208333333333333, 0.125, 0.0375, 0.016666666666666666, 0.0, 0.0, 0.0, 0.0,
                  0.008333333333333333, 0.025, 0.08333333333333333]
NPDE_HEAD = [0.3853205629596293, 0.1256613769732702, 0.8416212761534521, 0.5244004784222136, 0.253347164847509, 0.0]


def test_replicates_are_censored_at_each_records_lloq_with_the_same_numbers_as_before():
    spec = multiphasic_spec_as_at_9913582().replace(residual="combined")
    t = truth_from_spec(spec)
    truth = PopulationParameters(mu=t.mu, omega=t.omega, beta=t.beta, sigma=t.sigma, sigma_add=jnp.asarray(30.0))
    cohort = simulate_cohort(spec, key=jax.random.PRNGKey(4), n=6, truth=truth, lloq=20.0)
    des = design(cohort.dataset, spec)
    draws = {"mu": np.stack([np.asarray(t.mu)] * 3), "omega": np.stack([np.asarray(t.omega)] * 3),
             "beta": np.stack([np.asarray(t.beta)] * 3), "sigma": np.full(3, 0.5), "sigma_add": np.full(3, 30.0)}
    sims = simulate_records(spec, des.data, draws, key=jax.random.PRNGKey(5), log_lloq=des.log_lloq)
    log_value = np.asarray(sims.log_value)
    np.testing.assert_allclose(log_value[:, :4], RECORDS_HEAD, rtol=1e-12)
    assert log_value.sum() == pytest.approx(1342.1914121488035, rel=1e-12)
    blq = np.asarray(sims.blq)
    np.testing.assert_array_equal(blq, log_value < np.log(20.0))
    assert blq.sum() == 20
    np.testing.assert_array_equal(np.asarray(sims.log_dv), np.where(blq, np.log(20.0), log_value))


def test_vpc_and_npde_give_the_same_numbers_as_before():
    spec = multiphasic_spec_as_at_9913582()  # the session's truth_setup, as it was at 9913582
    cohort = simulate_cohort(spec, key=jax.random.PRNGKey(0), n=120)
    fit = truth_fit(spec, cohort)
    result = vpc(fit, cohort.dataset, key=jax.random.PRNGKey(6), replicates=20)
    np.testing.assert_allclose(np.asarray(result.blq_median).ravel(), VPC_BLQ_MEDIAN, rtol=1e-12)
    sums = [np.nansum(result.simulated_median), np.nansum(result.simulated_lower), np.nansum(result.simulated_upper)]
    np.testing.assert_allclose(sums, [215.99028735767382, 204.92654474936003, 226.71082251508486], rtol=1e-12)
    values = npde(fit, cohort.dataset, key=jax.random.PRNGKey(7), replicates=20)
    np.testing.assert_allclose(values[:6], NPDE_HEAD, rtol=1e-12, atol=1e-15)
    assert values.sum() == pytest.approx(34.835991565650055, rel=1e-12)
