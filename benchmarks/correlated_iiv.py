"""Gradient cost of correlated random effects against independent ones (multiphasic model, closed form).

Usage:  python benchmarks/correlated_iiv.py [--patients 250] [--rounds 15] [--calls 40]

Times one jitted value-and-gradient call of the numpyro potential (unconstrained space, float64) of the
multiphasic population model on a simulated cohort (12 records per patient) with [iiv] diagonal, with two
correlated blocks (cmax/tmax, beta/delta) and with a full 6 x 6 correlation; each centred (NUTS's first
warm-up stage) and whitened (its second stage and draws, `carkin.population.Whitening`). Also the IIV density
alone: carkin's written-out forward substitution (`carkin.population.iiv_log_density`) against numpyro's
``MultivariateNormal(loc, scale_tril=...)``. The variants run in interleaved rounds (a block of ``calls`` calls
each per round) and each reports the median over rounds of its per-call time, so that load on a shared machine
hits them alike (the minimum over rounds is reported too: the least disturbed); the time is the process's CPU time (``time.process_time``), less sensitive than wall time
to other processes on a shared machine (run with ``XLA_FLAGS="--xla_cpu_multi_thread_eigen=false
intra_op_parallelism_threads=1"`` so that it counts one thread's work), and the wall time is reported beside it.
Ratios are to the diagonal model of the same parameterisation (CPU time). Prints JSON lines.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from numpyro.infer.util import initialize_model

from carkin.population import (
    Whitening,
    correlation_cholesky,
    correlation_sites,
    iiv_log_density,
    load_spec,
    population_model,
    prepare,
)
from carkin.simulate import simulate_cohort

IIV = {
    "diagonal": {"parameterization": "centred"},
    "blocks": {"blocks": [["cmax", "tmax"], ["beta", "delta"]]},
    "full": {"correlation": "full"},
}


def potentials(n_patients: int) -> dict:
    """name -> (jitted value-and-gradient, unconstrained point) for every spec x parameterisation."""
    base = load_spec("multiphasic")
    cohort = simulate_cohort(base, key=jax.random.PRNGKey(0), n=n_patients)
    out = {}
    for name, iiv in IIV.items():
        spec = base.replace(iiv=iiv)
        data = prepare(cohort.dataset, spec)
        p = len(spec.parameters)
        a = jax.random.normal(jax.random.PRNGKey(1), (n_patients, p, p))
        whitening = Whitening(precision=jnp.einsum("nij,nkj->nik", a, a), shift=jnp.zeros((n_patients, p)),
                              sigma_ref=jnp.asarray(0.4))
        for form, args in (("centred", (data, spec)), ("whitened", (data, spec, whitening))):
            info = initialize_model(jax.random.PRNGKey(2), population_model, model_args=args)
            out[f"{name}/{form}"] = (jax.jit(jax.value_and_grad(info.potential_fn)), info.param_info.z)
    # The IIV density alone, full correlation: carkin's against numpyro's MultivariateNormal.
    spec = base.replace(iiv=IIV["full"])
    key = jax.random.PRNGKey(3)
    values = {site: dist.LKJCholesky(6, 2.0).sample(key) for site in correlation_sites(spec)}
    chol = correlation_cholesky(spec, values)
    loc = jax.random.normal(key, (n_patients, 6))
    phi = loc + jax.random.normal(jax.random.PRNGKey(4), (n_patients, 6))
    x = (phi, jnp.full(6, 0.5), chol)
    out["density/carkin"] = (jax.jit(jax.value_and_grad(lambda x: iiv_log_density(x[0], loc, x[1], x[2]).sum())), x)
    out["density/numpyro_mvn"] = (jax.jit(jax.value_and_grad(lambda x: dist.MultivariateNormal(
        loc, scale_tril=x[1][:, None] * x[2]).log_prob(x[0]).sum())), x)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=250)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=40)
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)
    variants = potentials(args.patients)
    for f, x in variants.values():
        jax.block_until_ready(f(x))
    cpu, wall = ({name: [] for name in variants} for _ in range(2))
    for _ in range(args.rounds):
        for name, (f, x) in variants.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            for _ in range(args.calls):
                jax.block_until_ready(f(x))
            cpu[name].append((time.process_time() - start_cpu) / args.calls)
            wall[name].append((time.perf_counter() - start) / args.calls)
    median = {name: 1e3 * float(np.median(t)) for name, t in cpu.items()}
    for name, ms in median.items():
        group, form = name.split("/")
        reference = median[f"diagonal/{form}"] if group != "density" else median["density/carkin"]
        print(json.dumps({"variant": name, "patients": args.patients, "median_cpu_ms": round(ms, 4),
                          "min_cpu_ms": round(1e3 * float(np.min(cpu[name])), 4),
                          "median_wall_ms": round(1e3 * float(np.median(wall[name])), 4),
                          "ratio": round(ms / reference, 3), "rounds": args.rounds, "calls": args.calls,
                          "device": str(jax.devices()[0])}))


if __name__ == "__main__":
    main()
