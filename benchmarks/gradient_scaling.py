"""Log-density gradient time vs number of patients (10^2 .. 10^5), closed-form multiphasic model.

Usage:  python benchmarks/gradient_scaling.py [--patients 100 1000 10000 100000] [--dtype float64|float32]

Each patient has 12 observations (~10% BLQ, models/multiphasic.toml [simulation]). Reports the median
time of one jitted value-and-gradient call of the numpyro potential (all sites: population + individual
parameters), measured after compilation, as JSON lines, with the device it ran on.

Peak memory, per patient count: XLA's compiled memory analysis of the gradient
(``jax.jit(...).lower(...).compile().memory_analysis()``: temporaries + arguments + outputs, plus the
dataset arrays, which the potential closes over and XLA holds as constants) as ``peak_bytes``; on a GPU
also the allocator's ``peak_bytes_in_use``; on CPU the process's peak resident set (``VmHWM``, reset
before each patient count where the kernel allows, else ``ru_maxrss``, the peak since the start).
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import jax


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) of this process; False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes(reset_worked: bool) -> tuple[int, str]:
    """Peak resident set of this process: VmHWM since the last reset, else ru_maxrss since the start."""
    if reset_worked:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return 1024 * int(line.split()[1]), "VmHWM since reset"
    return 1024 * resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "ru_maxrss since start"


def memory_record(compiled, constants) -> dict:
    """XLA's memory analysis of a compiled function, with the bytes of the arrays it closes over."""
    stats = compiled.memory_analysis()
    const = int(sum(getattr(x, "nbytes", 0) for x in jax.tree_util.tree_leaves(constants)))
    out = {"data_bytes": const}
    if stats is not None:
        temp, arg, res = (int(stats.temp_size_in_bytes), int(stats.argument_size_in_bytes),
                          int(stats.output_size_in_bytes))
        out.update(temp_bytes=temp, argument_bytes=arg, output_bytes=res, peak_bytes=temp + arg + res + const)
    device = jax.devices()[0]
    if device.platform != "cpu":
        mem = device.memory_stats() or {}
        if "peak_bytes_in_use" in mem:
            out["device_peak_bytes_in_use"] = int(mem["peak_bytes_in_use"])  # process peak so far
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, nargs="+", default=[100, 1000, 10000, 100000])
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", args.dtype == "float64")
    from numpyro.infer.util import initialize_model

    from carkin.population import load_spec, population_model, prepare
    from carkin.simulate import simulate_cohort

    spec = load_spec("multiphasic")
    for n in args.patients:
        reset = _reset_peak_rss()
        cohort = simulate_cohort(spec, key=jax.random.PRNGKey(0), n=n)
        data = prepare(cohort.dataset, spec)
        info, potential, _, _ = initialize_model(jax.random.PRNGKey(1), population_model, model_args=(data, spec))
        grad = jax.jit(jax.value_and_grad(potential))
        z = info.z
        jax.block_until_ready(grad(z))
        memory = memory_record(grad.lower(z).compile(), data)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            jax.block_until_ready(grad(z))
            times.append(time.perf_counter() - start)
        times.sort()
        print(json.dumps({"benchmark": "gradient", "patients": n, "records": int(cohort.dataset.n_observations),
                          "dtype": args.dtype, "device": str(jax.devices()[0].device_kind),
                          "median_ms": round(1e3 * times[len(times) // 2], 4),
                          "min_ms": round(1e3 * times[0], 4), **memory,
                          **dict(zip(("max_rss_bytes", "max_rss_kind"), peak_rss_bytes(reset), strict=True))}), flush=True)


if __name__ == "__main__":
    main()
