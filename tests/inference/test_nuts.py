"""run_nuts: the one NUTS runner (CK fits and the Bayesian E-R fits): draws, sample statistics, arviz."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import init_to_median, init_to_value

from carkin.inference import SamplerSettings, run_nuts

SETTINGS = SamplerSettings(chains=2, warmup=100, samples=150, max_tree_depth=5, progress_bar=False)


def model(y):
    mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
    sigma = numpyro.sample("sigma", dist.HalfNormal(2.0))
    numpyro.sample("y", dist.Normal(mu, sigma), obs=y)


Y = jnp.asarray(np.random.default_rng(1).normal(3.0, 1.5, size=50))


def test_draws_and_sample_statistics_are_by_chain_and_reproducible():
    run = run_nuts(model, (Y,), settings=SETTINGS, key=jax.random.PRNGKey(0), init_strategy=init_to_median())
    assert run.samples["mu"].shape == (2, 150) and run.samples["sigma"].shape == (2, 150)
    assert set(run.stats) == {"diverging", "n_steps", "tree_depth", "step_size", "acceptance_rate", "energy", "lp"}
    assert all(v.shape == (2, 150) for v in run.stats.values())
    steps, depth = run.stats["n_steps"], run.stats["tree_depth"]
    assert np.all((2 ** (depth - 1) <= steps) & (steps <= 2**depth - 1)) and depth.max() <= 5
    assert np.all((run.stats["acceptance_rate"] >= 0) & (run.stats["acceptance_rate"] <= 1))
    assert run.divergences == 0 and run.mean_leapfrog_steps == steps.mean()
    assert abs(run.samples["mu"].mean() - float(Y.mean())) < 0.5
    again = run_nuts(model, (Y,), settings=SETTINGS, key=jax.random.PRNGKey(0), init_strategy=init_to_median())
    np.testing.assert_array_equal(again.samples["mu"], run.samples["mu"])


def test_to_arviz_holds_the_posterior_and_the_sample_stats():
    run = run_nuts(model, (Y,), settings=SETTINGS, key=jax.random.PRNGKey(1), init_strategy=init_to_median())
    idata = run.to_arviz(dims={"mu": [], "absent": ["x"]})
    assert set(idata.posterior.data_vars) == {"mu", "sigma"}
    assert {"diverging", "n_steps", "tree_depth", "step_size", "acceptance_rate", "lp"} <= set(
        idata.sample_stats.data_vars
    )
    assert idata.posterior.sizes["chain"] == 2 and idata.posterior.sizes["draw"] == 150


def test_warmup_only_returns_the_warmup_draws():
    run = run_nuts(model, (Y,), settings=SETTINGS, key=jax.random.PRNGKey(2), init_strategy=init_to_median(),
                   warmup_only=True)
    assert run.samples["mu"].shape == (2, 100)


def test_a_gibbs_step_updates_its_sites_between_nuts_steps():
    def mixture(y):
        numpyro.sample("z", dist.Bernoulli(0.5))
        numpyro.sample("mu", dist.Normal(0.0, 10.0))
        numpyro.sample("y", dist.Normal(numpyro.sample("m", dist.Normal(0.0, 1.0)), 1.0), obs=y)

    def gibbs_fn(rng_key, gibbs_sites, hmc_sites):
        return {"z": jax.random.bernoulli(rng_key, 0.5).astype(gibbs_sites["z"].dtype)}

    run = run_nuts(
        mixture,
        (Y,),
        settings=SETTINGS,
        key=jax.random.PRNGKey(3),
        init_strategy=init_to_value(values={"z": jnp.asarray(0), "mu": 0.0, "m": 0.0}),
        gibbs=(gibbs_fn, ["z"]),
    )
    assert run.samples["z"].shape == (2, 150) and 0.3 < run.samples["z"].mean() < 0.7
    assert run.stats["diverging"].shape == (2, 150)
