"""Trial replicates per second: KarMMa-3-sized group-sequential trials, JAX (vmap) vs a lifelines loop.

Usage:  python benchmarks/trial_replicates.py [--replicates 10000] [--baseline 200] [--seed 0] [--devices 2]
                                              [--design designs/karmma3.toml]

Problem: designs/karmma3.toml (381 patients 2:1, looks at 95 / 231 / 289 events, stratified log-rank with
three factors), float64. One replicate = simulate the patients (allocation, strata, accrual, PFS, dropout),
find the calendar time of each look's event count, and compute the log-rank Z at each look.

- JAX: `carkin.trial.simulate_trials` (vmap over replicates, batches of 2000, sharded over ``--devices``
  host devices). The first call (compilation included) and a second, warm call are timed separately; the
  warm call is the throughput. The unstratified test is timed too (like for like with lifelines).
- Baseline: a plain Python loop over ``--baseline`` replicates: the same model simulated with numpy and
  ``lifelines.statistics.logrank_test`` at each look (unstratified: lifelines has no stratified log-rank),
  extrapolated linearly to ``--replicates``.

Prints one JSON line. Wall-clock numbers depend on the machine and its load; the ratio, measured in one
run, is the number to quote.

Scaling (``--scaling 100 1000 10000 100000``): afterwards, for each replicate count, one warm-up call that
compiles the batch shape that count uses (``min(count, --batch-size)`` replicates), then the timed call;
one JSON line per count (``"benchmark": "trial_scaling"``) with the seconds, replicates/s and peak memory:
XLA's memory analysis of one compiled batch (temporaries + arguments + outputs, per device), the bytes of
the (replicates x looks) results gathered on the host, and the process's peak resident set during the
timed call (``VmHWM`` reset before it where the kernel allows, else ``ru_maxrss`` since the start).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--design", default=os.path.join(os.path.dirname(__file__), "..", "designs", "karmma3.toml"))
    parser.add_argument("--replicates", type=int, default=10_000)
    parser.add_argument("--baseline", type=int, default=200, help="replicates of the lifelines loop")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--devices", type=int, default=os.cpu_count() or 1, help="host devices to shard over")
    parser.add_argument("--scaling", type=int, nargs="*", default=[], help="replicate counts to time one by one")
    parser.add_argument("--batch-size", type=int, default=2000, help="replicates per compiled call")
    return parser.parse_args()


ARGS = _parse()
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={ARGS.devices}").strip()

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np
from lifelines.statistics import logrank_test

from carkin.trial import load_design, simulate_trials

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gradient_scaling import _reset_peak_rss, peak_rss_bytes  # noqa: E402


def lifelines_loop(design, replicates: int, seed: int) -> tuple[float, np.ndarray]:
    """The same trials, one at a time: numpy draws and lifelines' log-rank test at each look."""
    rng = np.random.default_rng(seed)
    n, n_exp = design.n_patients, design.n_experimental
    rate = {1: design.experimental.pfs.hazards[0], 0: design.control.pfs.hazards[0]}
    if len(design.experimental.pfs.hazards) + len(design.control.pfs.hazards) != 2:
        raise SystemExit("the baseline loop supports exponential PFS only")
    accrual_end = design.accrual.end(n)
    z = np.zeros((replicates, len(design.look_events)))
    start = time.perf_counter()
    for r in range(replicates):
        arm = (np.arange(n) < n_exp).astype(int)
        entry = rng.uniform(0, accrual_end, n)
        pfs = rng.exponential(1.0, n) / np.where(arm == 1, rate[1], rate[0])
        dropout = rng.exponential(1.0, n) / np.where(arm == 1, design.experimental.dropout_per_month, design.control.dropout_per_month)
        calendar = np.where(pfs <= dropout, entry + pfs, np.inf)
        ordered = np.sort(calendar)
        for k, events in enumerate(design.look_events):
            cut = ordered[events - 1]
            on = entry <= cut
            event = (calendar <= cut)[on]
            t = np.minimum.reduce([pfs, dropout, cut - entry])[on]
            a = arm[on] == 1
            result = logrank_test(t[a], t[~a], event[a], event[~a])
            z[r, k] = np.sqrt(result.test_statistic)
    return time.perf_counter() - start, z


def batch_memory(design, key, count: int) -> dict:
    """XLA's memory analysis of the compiled batch that ``simulate_trials`` runs for ``count`` replicates."""
    from carkin.trial._simulate import DesignArrays, _replicate_function

    devices = jax.local_devices()
    size = min(ARGS.batch_size, count)
    size = -(-size // len(devices)) * len(devices)
    idx = jax.numpy.arange(size, dtype=jax.numpy.int32)
    if len(devices) > 1:
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        idx = jax.device_put(idx, NamedSharding(Mesh(np.asarray(devices), ("replicates",)), PartitionSpec("replicates")))
    batch = _replicate_function(design.stratified, None)
    stats = batch.lower(DesignArrays.from_design(design), jax.numpy.asarray(design.look_events), key, idx).compile().memory_analysis()
    out = {"batch_replicates": size}
    if stats is not None:
        out["batch_peak_bytes_per_device"] = int(stats.temp_size_in_bytes + stats.argument_size_in_bytes + stats.output_size_in_bytes)
    return out


def scaling(design, key) -> None:
    for count in ARGS.scaling:
        simulate_trials(design, key=key, replicates=min(count, ARGS.batch_size), batch_size=ARGS.batch_size)  # compile
        reset = _reset_peak_rss()
        start = time.perf_counter()
        sim = simulate_trials(design, key=jax.random.fold_in(key, 2), replicates=count, batch_size=ARGS.batch_size)
        seconds = time.perf_counter() - start
        rss, rss_kind = peak_rss_bytes(reset)
        results = int(sum(np.asarray(x).nbytes for x in jax.tree_util.tree_leaves(sim.looks)))
        print(json.dumps({
            "benchmark": "trial_scaling", "design": design.name, "n_patients": design.n_patients,
            "replicates": count, "seconds": seconds, "replicates_per_second": count / seconds,
            **batch_memory(design, key, count), "result_bytes": results, "max_rss_bytes": rss,
            "max_rss_kind": rss_kind, "devices": jax.local_device_count(), "device": str(jax.devices()[0].device_kind),
        }), flush=True)


def main() -> None:
    design = load_design(ARGS.design)
    key = jax.random.PRNGKey(ARGS.seed)
    timings = {}
    for label, d in (("stratified", design), ("unstratified", design.replace(stratified=False))):
        start = time.perf_counter()
        simulate_trials(d, key=key, replicates=ARGS.replicates, batch_size=ARGS.batch_size)
        first = time.perf_counter() - start
        start = time.perf_counter()
        sim = simulate_trials(d, key=jax.random.fold_in(key, 1), replicates=ARGS.replicates, batch_size=ARGS.batch_size)
        timings[label] = {"first_call_seconds": first, "seconds": time.perf_counter() - start, "power": sim.summary()["power"]}
    base_seconds, _ = lifelines_loop(design, ARGS.baseline, ARGS.seed)
    per_replicate = base_seconds / ARGS.baseline
    jax_seconds = timings["stratified"]["seconds"]
    record = {
        "benchmark": "trial_replicates",
        "design": design.name,
        "n_patients": design.n_patients,
        "look_events": design.look_events.tolist(),
        "replicates": ARGS.replicates,
        "jax_seconds": jax_seconds,
        "jax_replicates_per_second": ARGS.replicates / jax_seconds,
        "jax_first_call_seconds": timings["stratified"]["first_call_seconds"],
        "jax_unstratified_seconds": timings["unstratified"]["seconds"],
        "jax_unstratified_replicates_per_second": ARGS.replicates / timings["unstratified"]["seconds"],
        "lifelines_replicates": ARGS.baseline,
        "lifelines_seconds": base_seconds,
        "lifelines_replicates_per_second": 1.0 / per_replicate,
        "lifelines_extrapolated_seconds": per_replicate * ARGS.replicates,
        "speedup_vs_lifelines": per_replicate * ARGS.replicates / jax_seconds,
        "speedup_vs_lifelines_unstratified": per_replicate * ARGS.replicates / timings["unstratified"]["seconds"],
        "power": timings["stratified"]["power"],
        "devices": jax.local_device_count(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "x64": True,
        "platform": platform.platform(),
        "jax": jax.__version__,
        "seed": ARGS.seed,
    }
    print(json.dumps(record))
    sys.stdout.flush()
    scaling(design, key)


if __name__ == "__main__":
    main()
