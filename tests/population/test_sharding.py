"""Records sharded across 4 host devices give the log density, its gradient and a NUTS run of 1 device.

The conftest splits the CPU into 4 host devices (XLA_FLAGS), as a multi-GPU machine would have 4 GPUs.
"""

import jax
import numpy as np
import pytest
from numpyro.infer import init_to_median
from numpyro.infer.util import initialize_model, potential_energy

from carkin.inference import SamplerSettings, fit
from carkin.population import load_spec, population_model, prepare, shard_records
from carkin.simulate import simulate_cohort

pytestmark = pytest.mark.skipif(jax.local_device_count() < 4, reason="needs 4 (host) devices")


def _initial_point(data, spec):
    """Unconstrained starting values (numpyro's initialisation runs op by op: ~20 s, so once per test)."""
    info = initialize_model(jax.random.PRNGKey(0), population_model, model_args=(data, spec),
                            init_strategy=init_to_median(num_samples=15))
    return info.param_info.z


def _value_and_grad(data, spec):
    """The jitted potential (minus the log density, unconstrained space) and its gradient."""
    return jax.jit(jax.value_and_grad(lambda z: potential_energy(population_model, (data, spec), {}, z)))


@pytest.mark.parametrize("name, n", [("multiphasic", 37), ("effector_memory", 13)])
def test_one_and_four_devices_give_the_same_log_density_and_gradient(name, n):
    spec = load_spec(name)
    cohort = simulate_cohort(load_spec("multiphasic"), key=jax.random.PRNGKey(3), n=n, lloq=300.0)  # ~20% BLQ
    data = prepare(cohort.dataset, spec)
    z = _initial_point(data, spec)
    z = jax.tree.map(lambda v: v + 0.1 * jax.random.normal(jax.random.PRNGKey(1), v.shape), z)  # off the init point
    reference = _value_and_grad(data, spec)(z)
    one = shard_records(data, jax.local_devices()[:1])
    four = shard_records(data, jax.local_devices()[:4])
    assert len(four.records.log_dv.sharding.device_set) == 4
    assert four.records.log_dv.shape[0] % 4 == 0 and four.records.log_dv.shape[0] > data.records.log_dv.shape[0]
    for sharded in (one, four):
        value, grad = _value_and_grad(sharded, spec)(z)
        np.testing.assert_allclose(value, reference[0], rtol=1e-10)
        for key in grad:
            np.testing.assert_allclose(grad[key], reference[1][key], rtol=1e-10, atol=1e-10)


def test_padding_records_are_refused_twice_and_carry_zero_weight():
    spec = load_spec("multiphasic")
    data = prepare(simulate_cohort(spec, key=jax.random.PRNGKey(0), n=5).dataset, spec)
    sharded = shard_records(data, jax.local_devices()[:4])
    weight = np.asarray(sharded.record_weight)
    assert weight.sum() == data.records.log_dv.shape[0] and set(np.unique(weight)) == {0.0, 1.0}
    with pytest.raises(ValueError, match="already padded"):
        shard_records(sharded)


@pytest.mark.slow  # minutes on 2 cores (a NUTS or joint fit); run with pytest -m slow
def test_a_sharded_nuts_run_samples_the_same_posterior_and_is_reproducible():
    """NUTS with sharded records: same seed -> identical draws; same posterior as the unsharded run.

    The draws of the two runs are not equal: the sharded sum rounds differently (~1e-13, see the test
    above) and a NUTS trajectory amplifies any difference, so the runs agree in distribution only.
    """
    spec = load_spec("multiphasic")
    cohort = simulate_cohort(spec, key=jax.random.PRNGKey(5), n=30)
    settings = dict(chains=2, warmup=150, samples=150, max_tree_depth=5, progress_bar=False, chain_method="vectorized")
    plain = fit(cohort.dataset, spec, seed=4, settings=SamplerSettings(**settings))
    sharded = fit(cohort.dataset, spec, seed=4, settings=SamplerSettings(**settings, shard=True))
    again = fit(cohort.dataset, spec, seed=4, settings=SamplerSettings(**settings, shard=True))
    np.testing.assert_array_equal(np.asarray(again.idata.posterior["mu"]), np.asarray(sharded.idata.posterior["mu"]))
    a = np.asarray(plain.idata.posterior["mu"]).reshape(-1, len(spec.parameters))
    b = np.asarray(sharded.idata.posterior["mu"]).reshape(-1, len(spec.parameters))
    assert np.all(np.abs(a.mean(0) - b.mean(0)) < 0.5 * a.std(0)), (a.mean(0), b.mean(0), a.std(0))
    assert sharded.manifest["diagnostics"]["chain_method"] == "vectorized"


def test_parallel_chains_and_sharding_cannot_be_combined():
    with pytest.raises(ValueError, match="vectorized"):
        SamplerSettings(shard=True, chain_method="parallel")
