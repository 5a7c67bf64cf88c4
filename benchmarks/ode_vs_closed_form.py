"""ODE models vs the closed form: log-density gradient time (and, with --nuts, NUTS ESS/s), in one run.

Usage:  python benchmarks/ode_vs_closed_form.py [--patients 250] [--rounds 15] [--dtype float64|float32]
                                                [--nuts [--chains 4 --warmup 300 --samples 1000 ...]]

Gradient: one jitted value-and-gradient call of the numpyro potential (every site: population and
individual parameters), called from Python, per model and solver variant, on 250 simulated patients x 12
observations (~10% BLQ). The E/M twin and the closed form share one dataset (simulated from
models/multiphasic.toml); the mechanistic model has its own (models/cart_tumor.toml). Variants are timed
in interleaved rounds (each round times every variant) so that load on the machine hits them alike;
reported: median ms per call, ratio to the closed form measured in the same run, compile seconds.

E/M variants: the default (one population solve with shared steps, forward sensitivities, Tsit5,
rtol 1e-6, analytic expansion segment); looser tolerances; the expansion segment integrated too
(two ODE segments); per-patient vmapped diffrax solves with forward sensitivities; diffrax's reverse-mode
RecursiveCheckpointAdjoint through vmapped solves (the naive starting point).

NUTS (--nuts): closed form, E/M ODE and the mechanistic model at the same patient count and settings
(default: design.md's tuned settings, max_tree_depth 6, target_accept 0.7, warmup 300, 4 chains x 1000).
ESS/s = min bulk ESS over the population quantities / wall seconds of the whole fit, compilation
included. Output: JSON lines on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")

import jax  # noqa: E402


def _args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=250)
    parser.add_argument("--rounds", type=int, default=15, help="interleaved timing rounds")
    parser.add_argument("--calls", type=int, default=3, help="calls per variant per round")
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="*", default=None, help="subset of gradient variants (default all)")
    parser.add_argument("--nuts", action="store_true", help="also run NUTS fits and report ESS/s")
    parser.add_argument("--nuts-models", nargs="*", default=["multiphasic", "effector_memory", "cart_tumor"])
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--max-tree-depth", type=int, default=6)
    parser.add_argument("--target-accept", type=float, default=0.7)
    parser.add_argument("--mechanistic-length", nargs=3, type=int, metavar=("CHAINS", "WARMUP", "SAMPLES"),
                        default=None, help="shorter chains for cart_tumor (its gradient is ~70x the closed form's: "
                        "4 x 1,300 iterations take hours on 2 cores); ESS/s stays a per-second rate")
    parser.add_argument("--progress", action="store_true", help="show the sampler's progress bar (stderr)")
    parser.add_argument("--chain-method", default="auto", choices=["auto", "parallel", "vectorized", "sequential"],
                        help="NUTS chains: parallel over the 4 host devices, or vectorized (one solve for all chains)")
    return parser.parse_args(argv)


def _emit(row: dict) -> None:
    print(json.dumps(row), flush=True)


def _variants():
    """name -> (spec name, [ode] overrides, EffectorMemory expansion or None)."""
    return {
        "closed_form": ("multiphasic", None, None),
        "em_default": ("effector_memory", {}, None),
        "em_rtol1e-5": ("effector_memory", {"rtol": 1e-5, "atol": 1e-8}, None),
        "em_rtol1e-4": ("effector_memory", {"rtol": 1e-4, "atol": 1e-7}, None),
        "em_dopri5": ("effector_memory", {"solver": "dopri5"}, None),
        "em_two_ode_segments": ("effector_memory", {}, "ode"),
        "em_per_patient_forward": ("effector_memory", {"batching": "patient"}, None),
        "em_per_patient_reverse_checkpoint": ("effector_memory", {"adjoint": "recursive_checkpoint"}, None),
        "cart_tumor_default": ("cart_tumor", {}, None),
        "cart_tumor_atol1e-9": ("cart_tumor", {"atol": 1e-9}, None),  # the default before 2026-12-06
        "cart_tumor_per_patient_forward": ("cart_tumor", {"batching": "patient"}, None),
        "cart_tumor_rtol1e-5_atol1e-5": ("cart_tumor", {"rtol": 1e-5, "atol": 1e-5}, None),
    }


def _spec(name: str, ode: dict | None, expansion: str | None):
    from carkin.models import EffectorMemory
    from carkin.population import PopulationSpec, load_spec

    spec = load_spec(name)
    if ode:
        spec = spec.replace(ode=ode)
    if expansion is None:
        return spec

    class _Spec(PopulationSpec):  # the same spec with the two-ODE-segment E/M model
        @property
        def kinetic_model(self):
            return EffectorMemory(options=self.ode, expansion=expansion)

    return _Spec(**{f: getattr(spec, f) for f in spec.__dataclass_fields__})


def gradient_benchmark(args) -> None:
    import numpy as np
    from numpyro.infer import init_to_median
    from numpyro.infer.util import initialize_model

    from carkin.population import load_spec, population_model, prepare
    from carkin.simulate import simulate_cohort

    key = jax.random.PRNGKey(1000 + args.seed)
    datasets = {
        "multiphasic": simulate_cohort(load_spec("multiphasic"), key=key, n=args.patients).dataset,
        "cart_tumor": simulate_cohort(load_spec("cart_tumor"), key=key, n=args.patients).dataset,
    }
    chosen = {k: v for k, v in _variants().items() if args.variants is None or k in args.variants}
    calls, compile_s, values = {}, {}, {}
    for name, (model, ode, expansion) in chosen.items():
        spec = _spec(model, ode, expansion)
        dataset = datasets["cart_tumor" if model == "cart_tumor" else "multiphasic"]
        data = prepare(dataset, spec)
        info = initialize_model(jax.random.PRNGKey(args.seed), population_model, model_args=(data, spec),
                                init_strategy=init_to_median(num_samples=15))
        grad = jax.jit(jax.value_and_grad(info.potential_fn))
        z = info.param_info.z
        started = time.perf_counter()
        value, g = grad(z)
        jax.block_until_ready(g)
        compile_s[name] = time.perf_counter() - started
        values[name] = float(value)
        calls[name] = (grad, z)
    times = {name: [] for name in calls}
    for _ in range(args.rounds):
        for name, (grad, z) in calls.items():
            for _ in range(args.calls):
                started = time.perf_counter()
                jax.block_until_ready(grad(z))
                times[name].append(time.perf_counter() - started)
    reference = float(np.median(times["closed_form"])) if "closed_form" in times else None
    for name in calls:
        ms = 1e3 * float(np.median(times[name]))
        _emit({
            "what": "gradient", "variant": name, "patients": args.patients, "dtype": args.dtype,
            "median_ms": round(ms, 4), "min_ms": round(1e3 * float(np.min(times[name])), 4),
            "ratio_to_closed_form": round(ms / (1e3 * reference), 2) if reference else None,
            "compile_s": round(compile_s[name], 2), "potential": values[name],
        })


def nuts_benchmark(args) -> None:
    import warnings

    from carkin.errors import ConvergenceWarning
    from carkin.inference import SamplerSettings, fit
    from carkin.population import load_spec
    from carkin.simulate import simulate_cohort

    key = jax.random.PRNGKey(1000 + args.seed)
    for model in args.nuts_models:
        chains, warmup, samples = (args.mechanistic_length if model == "cart_tumor" and args.mechanistic_length
                                   else (args.chains, args.warmup, args.samples))
        settings = SamplerSettings(chains=chains, warmup=warmup, samples=samples,
                                   max_tree_depth=args.max_tree_depth, target_accept=args.target_accept,
                                   chain_method=args.chain_method, progress_bar=args.progress)
        spec = load_spec(model)
        source = load_spec("cart_tumor" if model == "cart_tumor" else "multiphasic")
        cohort = simulate_cohort(source, key=key, n=args.patients)
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            result = fit(cohort.dataset, spec, seed=args.seed, settings=settings)
        wall = time.perf_counter() - started
        d = result.manifest["diagnostics"]
        derived = {f"typical_{k}" for k in ("alpha", "foldx", "km")}
        core = result.table[~result.table.parameter.isin(derived)]
        truth = {p.name: p.typical for p in spec.parameters}
        table = result.table.set_index("parameter")
        covered = sum(table.loc[f"typical_{k}", "q05"] <= v <= table.loc[f"typical_{k}", "q95"] for k, v in truth.items())
        _emit({
            "what": "nuts", "model": model, "patients": args.patients, "dtype": args.dtype,
            "chains": chains, "warmup": warmup, "samples": samples, "iiv": spec.iiv,
            "max_tree_depth": args.max_tree_depth, "target_accept": args.target_accept,
            "chain_method": d["chain_method"], "wall_s": round(wall, 1),
            "min_ess_bulk": round(float(core.ess_bulk.min()), 1),
            "ess_per_s": float(f"{float(core.ess_bulk.min()) / wall:.4g}"),
            "max_r_hat": round(float(core.r_hat.max()), 4), "divergences": d["divergences"],
            "mean_leapfrog_steps": d["mean_leapfrog_steps"],
            "typical_values_in_90pct_interval": f"{covered}/{len(truth)}",
            "ode_solve_failures": d.get("ode_solve_failures"),
        })


def main(argv=None) -> None:
    args = _args(argv)
    jax.config.update("jax_enable_x64", args.dtype == "float64")
    _emit({"what": "machine", "platform": jax.default_backend(), "devices": jax.local_device_count(),
           "cpus_available": len(os.sched_getaffinity(0)), "python": platform.python_version(),
           "jax": jax.__version__})
    gradient_benchmark(args)
    if args.nuts:
        nuts_benchmark(args)


if __name__ == "__main__":
    sys.exit(main())
