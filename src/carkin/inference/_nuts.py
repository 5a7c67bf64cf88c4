"""``run_nuts``: build a NUTS kernel and a numpyro MCMC driver, run it, and hand back draws and sample statistics.

Every Bayesian fit of carkin samples through this one function: the CK fit (`carkin.inference.fit`, each stage
of its two-stage warm-up), the two-stage and plug-in Bayesian PH (`carkin.er.two_stage`, with a Gibbs step
over the exposure draws) and the joint CK + PFS model (`carkin.er.joint_ph`). Their verdicts come from one
gate (`carkin.inference.judge_convergence`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import arviz as az
import jax
import numpy as np
from numpyro.infer import MCMC, NUTS, HMCGibbs

if TYPE_CHECKING:
    from ._run import SamplerSettings

__all__ = ["SAMPLE_STATS", "NutsRun", "make_mcmc", "resolve_chain_method", "run_nuts"]

#: numpyro's NUTS state field -> arviz's name in ``sample_stats`` (``potential_energy`` is negated into ``lp``).
SAMPLE_STATS: dict[str, str] = {
    "diverging": "diverging",
    "num_steps": "n_steps",
    "accept_prob": "acceptance_rate",
    "adapt_state.step_size": "step_size",
    "energy": "energy",
    "potential_energy": "lp",
}


def resolve_chain_method(settings: SamplerSettings) -> str:
    """The chain method a run with these settings uses ("auto": parallel over enough host devices, else vectorized)."""
    if settings.chain_method != "auto":
        return settings.chain_method
    if settings.shard:
        return "vectorized"
    if settings.chains == 1:
        return "sequential"
    return "parallel" if jax.local_device_count() >= settings.chains else "vectorized"


def make_mcmc(kernel, settings: SamplerSettings) -> MCMC:
    """A numpyro MCMC driver for ``kernel`` with the warm-up, draws, chains, chain method and progress bar of
    ``settings``."""
    return MCMC(
        kernel,
        num_warmup=settings.warmup,
        num_samples=settings.samples,
        num_chains=settings.chains,
        chain_method=resolve_chain_method(settings),
        progress_bar=settings.progress_bar,
    )


@dataclasses.dataclass(frozen=True, eq=False)
class NutsRun:
    """Draws and sample statistics of one NUTS run, by chain.

    Attributes
    ----------
    samples : dict of str -> numpy array (chains, draws, ...)
        Every sampled and deterministic site of the model.
    stats : dict of str -> numpy array (chains, draws)
        Per draw, under arviz's names: ``diverging``, ``n_steps`` (leapfrog steps), ``tree_depth``,
        ``step_size``, ``acceptance_rate``, ``energy``, ``lp`` (log density of the sampled parameterisation).
    chain_method : str
        How the chains ran (`resolve_chain_method`).
    runtime_seconds : float
        Wall time of the run (compilation included), draws copied to the host.
    """

    samples: dict[str, np.ndarray]
    stats: dict[str, np.ndarray]
    chain_method: str
    runtime_seconds: float

    @property
    def divergences(self) -> int:
        """Divergent transitions over every chain and draw."""
        return int(self.stats["diverging"].sum())

    @property
    def mean_leapfrog_steps(self) -> float:
        return float(self.stats["n_steps"].mean())

    def to_arviz(self, *, coords: dict | None = None, dims: dict | None = None) -> az.InferenceData:
        """The draws as arviz ``posterior`` and the statistics as ``sample_stats`` (``dims`` of absent sites
        dropped)."""
        return az.from_dict(
            posterior=self.samples,
            sample_stats=self.stats,
            coords=coords,
            dims={k: v for k, v in (dims or {}).items() if k in self.samples},
        )


def run_nuts(
    model: Callable,
    model_args: Sequence = (),
    *,
    settings: SamplerSettings,
    key: jax.Array,
    init_strategy: Callable,
    init_params: Any = None,
    gibbs: tuple[Callable, Sequence[str]] | None = None,
    warmup_only: bool = False,
) -> NutsRun:
    """Sample ``model(*model_args)`` with NUTS.

    Main arguments
    --------------
    model : callable
        A numpyro model.
    model_args : sequence
        Its positional arguments.
    settings : SamplerSettings
        ``chains``, ``warmup``, ``samples``, ``target_accept``, ``max_tree_depth``, ``chain_method``,
        ``progress_bar``.
    key : jax.Array
        PRNG key of the run. Same key and settings, same draws.
    init_strategy : callable
        numpyro init strategy (e.g. ``init_to_median(num_samples=15)`` or ``init_to_value(values=...)``).

    Other arguments
    ---------------
    init_params : pytree, optional
        Unconstrained starting values (one per chain on a leading axis); take precedence over ``init_strategy``.
    gibbs : (gibbs_fn, gibbs_sites), optional
        Update these sites by ``gibbs_fn`` between NUTS steps (`numpyro.infer.HMCGibbs`).
    warmup_only : bool
        Run only the warm-up and return its draws (adaptation included), e.g. a first warm-up stage.

    Returns
    -------
    NutsRun
    """
    kernel = NUTS(
        model,
        target_accept_prob=settings.target_accept,
        max_tree_depth=settings.max_tree_depth,
        init_strategy=init_strategy,
    )
    prefix = ""
    if gibbs is not None:
        gibbs_fn, gibbs_sites = gibbs
        kernel = HMCGibbs(kernel, gibbs_fn=gibbs_fn, gibbs_sites=list(gibbs_sites))
        prefix = "hmc_state."
    fields = tuple(prefix + name for name in SAMPLE_STATS)
    mcmc = make_mcmc(kernel, settings)
    started = time.perf_counter()
    if warmup_only:
        mcmc.warmup(key, *model_args, init_params=init_params, collect_warmup=True, extra_fields=fields)
    else:
        mcmc.run(key, *model_args, init_params=init_params, extra_fields=fields)
    samples = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    extra = mcmc.get_extra_fields(group_by_chain=True)
    stats = {arviz: np.asarray(extra[prefix + name]) for name, arviz in SAMPLE_STATS.items()}
    stats["lp"] = -stats["lp"]
    # NUTS doubles its trajectory: a tree of depth d takes 2^(d-1) to 2^d - 1 leapfrog steps
    stats["tree_depth"] = np.floor(np.log2(np.maximum(stats["n_steps"], 1))).astype(int) + 1
    return NutsRun(samples=samples, stats=stats, chain_method=resolve_chain_method(settings),
                   runtime_seconds=time.perf_counter() - started)
