"""``fit``: one entry point, a dispatch table of methods (NUTS by default; Laplace, SVI, MAP as fast options)."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import importlib.metadata
import math
import platform
import time
from typing import Callable, Literal

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import optax
from numpyro.infer import SVI, Trace_ELBO, init_to_median
from numpyro.infer.autoguide import AutoDelta, AutoLaplaceApproximation, AutoLowRankMultivariateNormal

from ..data import Dataset
from ..errors import SolverError
from ..population import (
    PopulationSpec,
    check_solves,
    individual_means,
    natural_parameters,
    population_model,
    prepare,
    shard_records,
)
from ._fit import Fit, parameter_table, population_draws
from ._gates import Gates, judge_convergence, table_extremes, warn_if_failed
from ._nuts import run_nuts
from ._stages import second_stage

__all__ = ["fit", "SamplerSettings", "METHODS"]

Method = Literal["nuts", "laplace", "svi", "map"]


@dataclasses.dataclass(frozen=True)
class SamplerSettings:
    """Settings of the inference run (defaults are the safe choice).

    Main settings: ``chains``, ``warmup``, ``samples``. NUTS: ``target_accept``, ``max_tree_depth``,
    ``chain_method`` ("auto": parallel over host devices when there are enough, else vectorized).
    ``shard``: split the records (blocks of patients) across the local devices with ``jax.sharding``
    (`carkin.population.shard_records`) and run the chains vectorized; for many patients on several
    GPUs, or for one chain's gradient spread over host devices. Results equal the unsharded run to rounding.
    ``whitening`` (NUTS, default True): warm up in two stages. The first half of the warm-up runs in the
    spec's IIV parameterisation; the rest and the draws run with each patient's parameters whitened by a
    Gaussian approximation of that patient's likelihood at the first stage's posterior mean
    (`carkin.population.Whitening`): same posterior, several times the ESS per gradient
    (benchmarks/RESULTS.md). Keep ``target_accept`` at 0.8 or above with it: at 0.7 the adapted step
    is too large for the omegas (measured). Between the stages, a patient that one chain holds in a minor
    local mode (mean conditional log density ``STRANDED_GAP`` nats below the best chain's) restarts from the
    best chain's draws (warning; manifest ``restarted_patients``). False: one stage, in the spec's
    parameterisation.
    Optimisation methods (laplace, svi, map): ``steps``, ``learning_rate``, and ``samples`` draws from
    the approximation.
    """

    chains: int = 4
    warmup: int = 500
    samples: int = 1000
    target_accept: float = 0.8
    max_tree_depth: int = 8
    chain_method: Literal["auto", "parallel", "vectorized", "sequential"] = "auto"
    steps: int = 5000
    learning_rate: float = 0.01
    progress_bar: bool = True
    shard: bool = False
    whitening: bool = True

    def __post_init__(self):
        for name in ("chains", "samples", "max_tree_depth", "steps"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"SamplerSettings.{name} must be a positive integer, got {value!r}")
        if not (isinstance(self.warmup, int) and self.warmup >= 0):
            raise ValueError(f"SamplerSettings.warmup must be a non-negative integer, got {self.warmup!r}")
        if not 0 < self.target_accept < 1:
            raise ValueError(f"SamplerSettings.target_accept must lie in (0, 1), got {self.target_accept!r}")
        if self.chain_method not in ("auto", "parallel", "vectorized", "sequential"):
            raise ValueError(
                f"SamplerSettings.chain_method = {self.chain_method!r}; choose auto, parallel, vectorized or sequential"
            )
        if self.shard and self.chain_method == "parallel":
            raise ValueError(
                "SamplerSettings: shard=True uses the devices for the records, so chains cannot also run in "
                "parallel over them; use chain_method 'vectorized' (or 'auto')"
            )


def _dims(spec: PopulationSpec, dataset: Dataset) -> tuple[dict, dict]:
    coords = {"patient": list(dataset.patient_ids), "parameter": list(spec.parameter_names)}
    dims = {
        "mu": ["parameter"],
        "omega": ["parameter"],
        "phi": ["patient", "parameter"],
        "eta": ["patient", "parameter"],
        "phi_raw": ["patient", "parameter"],
        "phi_z": ["patient", "parameter"],
    }
    if spec.effects:
        coords["effect"] = list(spec.effect_names)
        dims["beta"] = ["effect"]
    return coords, dims


MIN_FIRST_STAGE = 20  # warm-up iterations below which a first stage could not place the whitening


def _run_nuts(data, spec, dataset, settings: SamplerSettings, key) -> tuple[az.InferenceData, dict]:
    init = init_to_median(num_samples=15)
    first_stage = settings.warmup // 2 if settings.whitening else 0
    model_args, init_params, stages = (data, spec), None, {}
    if first_stage >= MIN_FIRST_STAGE:
        # Stage 1: warm up in the spec's parameterisation; its second half places each patient's Gaussian.
        key, first_key = jax.random.split(key)
        first = run_nuts(population_model, (data, spec), settings=dataclasses.replace(settings, warmup=first_stage),
                         key=first_key, init_strategy=init, warmup_only=True)
        whitening, init_params, restarted = second_stage(spec, data, dataset.patient_ids, first.samples)
        model_args = (data, spec, whitening)
        stages = {"whitening": True, "warmup_stages": [first_stage, settings.warmup - first_stage],
                  "first_stage_mean_leapfrog_steps": first.mean_leapfrog_steps,
                  "restarted_patients": restarted}
        settings = dataclasses.replace(settings, warmup=settings.warmup - first_stage)
    run = run_nuts(
        population_model, model_args, settings=settings, key=key, init_strategy=init, init_params=init_params
    )
    coords, dims = _dims(spec, dataset)
    info = {
        "chain_method": run.chain_method,
        "divergences": run.divergences,
        "mean_leapfrog_steps": run.mean_leapfrog_steps,
        "whitening": False,
        **stages,
    }
    return run.to_arviz(coords=coords, dims=dims), info


def _run_optimisation(guide_cls, data, spec, dataset, settings: SamplerSettings, key):
    guide = guide_cls(population_model, init_loc_fn=init_to_median(num_samples=15))
    svi = SVI(population_model, guide, optax.adam(settings.learning_rate), Trace_ELBO())
    fit_key, draw_key = jax.random.split(key)
    result = svi.run(fit_key, settings.steps, data, spec, progress_bar=settings.progress_bar)
    losses = np.asarray(result.losses)
    tail = max(1, settings.steps // 10)
    # Relative change of the loss over the last 10% of steps: the optimiser's own convergence check.
    loss_change = (
        float(abs(losses[-tail:].mean() - losses[-2 * tail : -tail].mean()) / (abs(losses[-tail:].mean()) + 1.0))
        if losses.size >= 2 * tail
        else math.nan
    )
    n = 1 if guide_cls is AutoDelta else settings.samples
    draws = guide.sample_posterior(draw_key, result.params, data, spec, sample_shape=(n,))
    posterior = {k: np.asarray(v)[None] for k, v in draws.items() if k != "log_likelihood"}
    coords, dims = _dims(spec, dataset)
    idata = az.from_dict(posterior=posterior, coords=coords, dims={k: v for k, v in dims.items() if k in posterior})
    info = {"final_loss": float(losses[-1]), "relative_loss_change_last_10pct": loss_change, "divergences": 0}
    return idata, info


METHODS: dict[str, Callable] = {
    "nuts": _run_nuts,
    "laplace": lambda *a: _run_optimisation(AutoLaplaceApproximation, *a),
    "svi": lambda *a: _run_optimisation(AutoLowRankMultivariateNormal, *a),
    "map": lambda *a: _run_optimisation(AutoDelta, *a),
}


def _data_lloq(dataset: Dataset) -> float | None:
    """The data's LLOQ, copies/ug: the median over the records that give one (one assay: its LLOQ); None if none.

    Recorded in the manifest (``data.lloq``): dose scenarios censor their simulated observations at it.
    """
    lloq = np.asarray(dataset.lloq, dtype=float)[np.asarray(dataset.obs_mask)]
    lloq = lloq[np.isfinite(lloq)]
    return float(np.median(lloq)) if lloq.size else None


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("carkin", "jax", "jaxlib", "numpyro", "arviz", "diffrax", "optax", "numpy", "pandas"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _judge(table, info: dict, gates: Gates, method: str) -> dict:
    """The verdict: the MCMC gate (`judge_convergence`) for NUTS; an approximation never passes."""
    if method == "nuts":
        return {**judge_convergence(table, info["divergences"], gates), **info}
    failures = [
        f"method {method!r} is an approximation: no MCMC convergence diagnostics; use NUTS for inference you report"
    ]
    change = info.get("relative_loss_change_last_10pct", math.nan)
    if not change < 1e-3:
        failures.append(f"optimisation has not settled (relative loss change {change:.2g} over the last 10% of steps)")
    return {"passed": False, "failures": failures, "gates": dataclasses.asdict(gates), **table_extremes(table), **info}


def _preflight_ode(spec: PopulationSpec, dataset: Dataset, data) -> None:
    """Solve an ODE model at the prior's typical values before sampling (raises SolverError naming patients); the
    co-medication effects at their prior's centre, 0."""
    mu = jnp.asarray([p.prior_loc for p in spec.parameters])
    loc = individual_means(spec, mu, jnp.zeros((len(spec.effects),)), data.covariate_z)
    check_solves(spec, dataset, natural_parameters(spec, loc), data=data)


def _posterior_ode_failures(spec: PopulationSpec, dataset: Dataset, data, idata, max_sets: int = 100) -> str | None:
    """Re-solve a thinned set of posterior draws; the SolverError message if any patient's solve fails."""
    phi = np.asarray(idata.posterior["phi"].values)  # (chains, draws, patients, params)
    flat = phi.reshape(-1, *phi.shape[2:])
    take = np.linspace(0, flat.shape[0] - 1, min(max_sets, flat.shape[0])).astype(int)
    gamma = None  # each draw's co-medication effects, with its parameters
    if "gamma" in idata.posterior:
        values = np.asarray(idata.posterior["gamma"].values)
        gamma = jnp.asarray(values.reshape(-1, values.shape[-1])[take])
    try:
        check_solves(spec, dataset, natural_parameters(spec, jnp.asarray(flat[take])), data=data, gamma=gamma)
    except SolverError as err:
        return str(err)
    return None


def fit(
    dataset: Dataset,
    spec: PopulationSpec,
    *,
    seed: int = 0,
    method: Method = "nuts",
    settings: SamplerSettings | None = None,
    gates: Gates | None = None,
    data_files: dict[str, str] | None = None,
    data_hash: str | None = None,
) -> Fit:
    """Fit a hierarchical population model to CK data.

    Main arguments
    --------------
    dataset : Dataset
        Validated CK records (``carkin.data.load_dataset``).
    spec : PopulationSpec
        The model (``carkin.population.load_spec("models/multiphasic.toml")``).
    seed : int
        Seed of the ``jax.random`` key of the run; recorded in the manifest. Same seed, same numbers.
    method : {"nuts", "laplace", "svi", "map"}
        NUTS (default, the one to report); the others are fast approximations whose manifest says so.

    Other arguments
    ---------------
    settings : SamplerSettings, optional
    gates : Gates, optional
        Convergence gates (defaults: R-hat <= 1.01, bulk/tail ESS >= 400, no divergences).
    data_files, data_hash : provenance recorded in the manifest.

    Returns
    -------
    Fit
        Its ``converged`` is False (and a ``ConvergenceWarning`` is issued) if any gate failed.

    Raises
    ------
    ValueError
        For an unknown method (the message lists the valid ones).
    SolverError
        For an ODE model whose solve fails at the prior's typical values (naming the patients), before
        any sampling. Failures on posterior draws fail the gates instead (the fit is kept).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r} (type {type(method).__name__}); valid: {', '.join(METHODS)}")
    settings = settings or SamplerSettings()
    gates = gates or Gates()
    data = prepare(dataset, spec)
    ode = not spec.kinetic_model.elementwise
    if ode:
        _preflight_ode(spec, dataset, data)
    key = jax.random.PRNGKey(seed)
    started = time.perf_counter()
    sampled_data = shard_records(data) if settings.shard else data
    idata, info = METHODS[method](sampled_data, spec, dataset, settings, key)
    elapsed = time.perf_counter() - started
    draws = population_draws(idata.posterior, spec)
    table = parameter_table(draws)
    diagnostics = _judge(table, info, gates, method)
    if ode and "phi" in idata.posterior:
        failure = _posterior_ode_failures(spec, dataset, data, idata)
        diagnostics["ode_solve_failures"] = failure
        if failure is not None:
            diagnostics["failures"].append(failure)
            diagnostics["passed"] = False
    if "phi" in idata.posterior and method == "nuts":
        diagnostics["max_r_hat_individual"] = float(np.nanmax(az.rhat(idata, var_names=["phi"])["phi"].values))
    manifest = {
        "carkin_manifest_version": 1,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "method": method,
        "seed": seed,
        "settings": dataclasses.asdict(settings),
        "model": {"source": spec.source, "hash": spec.hash, "spec": __import__("json").loads(spec.raw),
                  **({"ode": {**spec.ode.to_dict(), "resolved_batching": spec.ode.resolved_batching}}
                     if spec.ode is not None else {})},
        "data": {
            "source": dataset.source,
            "files": data_files or {},
            "hash": data_hash,
            "patients": dataset.n_patients,
            "observations": dataset.n_observations,
            "blq": dataset.n_blq,
            "lloq": _data_lloq(dataset),
            "simulated": dataset.simulated,
        },
        "devices": {"platform": jax.default_backend(), "count": jax.local_device_count(),
                    "x64": bool(jax.config.read("jax_enable_x64"))},
        "versions": _versions(),
        "runtime_seconds": elapsed,
        "diagnostics": diagnostics,
    }
    result = Fit(idata=idata, spec=spec, manifest=manifest, table=table, patient_ids=dataset.patient_ids)
    warn_if_failed(diagnostics, "the fit")
    return result
