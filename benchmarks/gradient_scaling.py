"""Log-density gradient time vs number of patients (10^2 .. 10^5), closed-form multiphasic model.

Usage:  python benchmarks/gradient_scaling.py [--patients 100 1000 10000 100000] [--dtype float64|float32]

Each patient has 12 observations (~10% BLQ, models/multiphasic.toml [simulation]). Reports the median
time of one jitted value-and-gradient call of the numpyro potential (all sites: population + individual
parameters), measured after compilation, as JSON lines, with the device it ran on.
"""

from __future__ import annotations

import argparse
import json
import time

import jax


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
        cohort = simulate_cohort(spec, key=jax.random.PRNGKey(0), n=n)
        data = prepare(cohort.dataset, spec)
        info, potential, _, _ = initialize_model(jax.random.PRNGKey(1), population_model, model_args=(data, spec))
        grad = jax.jit(jax.value_and_grad(potential))
        z = info.z
        jax.block_until_ready(grad(z))
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            jax.block_until_ready(grad(z))
            times.append(time.perf_counter() - start)
        times.sort()
        print(json.dumps({"benchmark": "gradient", "patients": n, "records": int(cohort.dataset.n_observations),
                          "dtype": args.dtype, "device": str(jax.devices()[0].device_kind),
                          "median_ms": round(1e3 * times[len(times) // 2], 4),
                          "min_ms": round(1e3 * times[0], 4)}), flush=True)


if __name__ == "__main__":
    main()
