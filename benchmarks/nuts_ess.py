"""NUTS bulk ESS per second for the 250-patient closed-form fit (design.md's reference problem).

Usage:  python benchmarks/nuts_ess.py [--patients 250] [--seeds 0] [--config default|tuned|...] [--json OUT]
                                      [--chain-method auto|parallel|vectorized|sequential] [--iiv centred|noncentred]
                                      [--chains 4] [--warmup W] [--samples S]   (overrides, e.g. for smoke runs)
                                      [--no-whitening]   (one warm-up stage; default: carkin's two-stage warm-up)

Data: 250 simulated patients x 12 observations (models/multiphasic.toml [simulation], ~10% BLQ), float64,
4 chains x 1000 draws. ESS/s = min bulk ESS over the population parameters / wall seconds of the whole
run (warmup + sampling, compilation included: what a user waits for). Reported with R-hat and divergences.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

from carkin.inference import SamplerSettings, fit  # noqa: E402
from carkin.population import load_spec  # noqa: E402
from carkin.simulate import simulate_cohort  # noqa: E402

CONFIGS = {
    "numpyro-defaults": dict(warmup=1000, samples=1000, target_accept=0.8, max_tree_depth=10),
    "carkin-defaults": dict(),
    "depth6": dict(max_tree_depth=6),
    "depth6-ta07-w300": dict(max_tree_depth=6, target_accept=0.7, warmup=300),
}


def run(config: str, patients: int, seed: int, chain_method: str = "auto", iiv: str = "centred",
        overrides: dict | None = None, whitening: bool = True) -> dict:
    spec = load_spec("multiphasic").replace(iiv=iiv)
    cohort = simulate_cohort(spec, key=jax.random.PRNGKey(1000 + seed), n=patients)
    settings = SamplerSettings(**{"chains": 4, "samples": 1000, "progress_bar": False,
                                  "chain_method": chain_method, "whitening": whitening, **CONFIGS[config],
                                  **(overrides or {})})
    started = time.perf_counter()
    result = fit(cohort.dataset, spec, seed=seed, settings=settings)
    wall = time.perf_counter() - started
    d = result.manifest["diagnostics"]
    core = result.table[~result.table.parameter.isin(["typical_alpha", "typical_foldx"])]
    return {
        "config": config, "iiv": iiv, "chain_method": d["chain_method"], "patients": patients, "seed": seed,
        "whitening": bool(d.get("whitening", False)), "warmup_stages": d.get("warmup_stages"),
        "wall_s": round(wall, 1), "min_ess_bulk": round(float(core.ess_bulk.min()), 1),
        "ess_per_s": round(float(core.ess_bulk.min()) / wall, 2), "max_r_hat": round(float(core.r_hat.max()), 4),
        "divergences": d["divergences"], "mean_leapfrog_steps": d["mean_leapfrog_steps"],
        "chains": settings.chains, "warmup": settings.warmup, "samples": settings.samples,
        "max_tree_depth": settings.max_tree_depth, "target_accept": settings.target_accept,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=250)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--config", nargs="+", default=["carkin-defaults"], choices=sorted(CONFIGS))
    parser.add_argument("--chain-method", default="auto")
    parser.add_argument("--iiv", default="centred")
    parser.add_argument("--chains", type=int, default=None, help="override the config's chains (default 4)")
    parser.add_argument("--warmup", type=int, default=None, help="override the config's warm-up")
    parser.add_argument("--samples", type=int, default=None, help="override the config's draws per chain")
    parser.add_argument("--no-whitening", action="store_true",
                        help="one warm-up stage in the spec's parameterisation (SamplerSettings(whitening=False))")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in (("chains", args.chains), ("warmup", args.warmup), ("samples", args.samples)) if v is not None}
    rows = []
    for config in args.config:
        for seed in args.seeds:
            row = run(config, args.patients, seed, args.chain_method, args.iiv, overrides, not args.no_whitening)
            print(json.dumps(row), flush=True)
            rows.append(row)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    sys.exit(main())
