"""Stan (PyStan 3) vs carkin: the same hierarchical population model, the same simulated data, ESS per second.

Usage:  python benchmarks/peers/stan_vs_carkin.py [--patients 250] [--config defaults|tuned|both] [--seed 0]
                                                  [--chains 4] [--samples 1000] [--warmup N] [--out FILE]

Needs PyStan 3 (``pip install pystan``; it compiles the model with g++), an optional dependency that nothing
else in carkin imports. See benchmarks/peers/README.md.

The model is models/multiphasic.toml as carkin fits it (benchmarks/peers/multiphasic.stan is its Stan twin);
the data are the 250-patient reference problem of benchmarks/nuts_ess.py (``simulate_cohort`` with key
``PRNGKey(1000 + seed)``). Before anything is timed the two log densities are compared at three points
(Stan ``log_prob(adjust_transform=False)`` against numpyro's ``log_density``, constants included); after the
fits, the posterior means of the typical values must agree within Monte Carlo error.

Each tool runs alone (Stan in a subprocess that never imports JAX, then carkin in this process), with the same
settings: chains x draws, warmup, target acceptance (Stan ``delta``), maximum tree depth, and the same
initialisation (prior medians as numpyro's ``init_to_median(num_samples=15)`` draws them, per chain). Bulk ESS
and R-hat come from arviz for both tools, over the population parameters: typical values on the log/logit
scale (``mu``), ``omega``, the covariate coefficients and ``sigma``.

Output: JSON lines on stdout (and appended to --out): one "machine" line, one "logdensity_check" line, then per
configuration one line per tool, a "posterior_mean_check" line and a "comparison" line with the ratio of
carkin's ESS/s to Stan's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
STAN_FILE = HERE / "multiphasic.stan"
PARAMETER_ORDER = ("cmax", "tmax", "rho", "beta", "delta", "fb")  # the columns of phi in multiphasic.stan
CONFIGS = {
    "defaults": {"warmup": 500, "target_accept": 0.8, "max_tree_depth": 8},
    "tuned": {"warmup": 300, "target_accept": 0.7, "max_tree_depth": 6},
    # carkin's whitened sampler (its default) needs the default target acceptance: at 0.7 its step size is
    # too large for the omegas (1 divergence, min bulk ESS 126 of 2000 draws vs 1038 at 0.8; 2026-12-06)
    "short": {"warmup": 300, "target_accept": 0.8, "max_tree_depth": 6},
}
POPULATION_SITES = ("mu", "omega", "beta", "sigma")
MISSING_STAN = (
    "stan_vs_carkin.py needs PyStan 3, an optional dependency of this benchmark only: pip install pystan "
    "(it compiles the Stan model with a C++ compiler, g++ or clang++)."
)


def _require_stan():
    try:
        import stan  # noqa: F401
    except ImportError:
        sys.exit(MISSING_STAN)


# ----------------------------------------------------------------------------------------------------------
# Stan side (runs in a subprocess: httpstan forks worker processes, which must not inherit JAX's threads)
# ----------------------------------------------------------------------------------------------------------


def _stan_worker(payload_path: str, result_path: str) -> None:
    _require_stan()
    import httpstan
    import httpstan.cache
    import httpstan.models
    import numpy as np
    import stan

    payload = json.loads(Path(payload_path).read_text())
    # A build tag (a comment, the same for every configuration of one run) makes a new program text, thus a
    # new model name for httpstan's cache: the first configuration measures a real compilation, the others
    # reuse it, and the last one deletes it from the cache.
    program = STAN_FILE.read_text() + payload["program_suffix"]
    model_name = httpstan.models.calculate_model_name(program)
    cached = model_name in httpstan.cache.list_model_names()
    out: dict = {"stan_version": None, "pystan_version": stan.__version__, "httpstan_version": httpstan.__version__}
    try:
        version_hpp = Path(httpstan.__file__).parent / "include" / "stan" / "version.hpp"
        parts = {}
        for line in version_hpp.read_text().splitlines():
            for key in ("MAJOR", "MINOR", "PATCH"):
                if line.startswith(f"#define STAN_{key} "):
                    parts[key] = line.split()[-1]
        out["stan_version"] = f"{parts['MAJOR']}.{parts['MINOR']}.{parts['PATCH']}"
    except (OSError, KeyError):
        pass

    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # PyStan writes its progress to stdout
        posterior = stan.build(program, data=payload["data"], random_seed=payload["seed"])
    out["build_s"] = time.perf_counter() - started
    out["build_cached"] = cached
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out["build_cpu_s"] = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)

    if payload.get("check_points"):
        lps = []
        for point in payload["check_points"]:
            upars = posterior.unconstrain_pars(point)
            lps.append(posterior.log_prob(upars, adjust_transform=False))
        out["check_log_prob"] = lps

    s = payload["settings"]
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        fit = posterior.sample(
            num_chains=s["chains"], num_samples=s["samples"], num_warmup=s["warmup"], delta=s["target_accept"],
            max_depth=s["max_tree_depth"], init=payload["inits"], refresh=max(1, (s["warmup"] + s["samples"]) // 4),
        )
    out["sampling_s"] = time.perf_counter() - started

    chains, draws = s["chains"], s["samples"]

    def by_chain(name):
        # fit._draws is (values, draws, chains), a parameter's values being its entries in column-major order.
        # (fit[name] flattens draws x chains with the chain index fastest: it cannot be reshaped to
        # (chains, draws) naively, which would interleave the chains and inflate the ESS.)
        x = np.asarray(fit._draws[list(fit._parameter_indexes(name)), :, :])
        assert x.shape[1:] == (draws, chains), x.shape
        x = x.transpose(2, 1, 0)  # (chains, draws, values)
        return x[..., 0] if x.shape[-1] == 1 else x

    arrays = {site: by_chain(site) for site in POPULATION_SITES if site in fit.param_names}
    arrays["diverging"] = by_chain("divergent__")
    arrays["n_leapfrog"] = by_chain("n_leapfrog__")
    arrays["treedepth"] = by_chain("treedepth__")
    np.savez(result_path + ".npz", **arrays)
    if payload["delete_build"]:
        with contextlib.suppress(Exception):
            httpstan.cache.delete_model_directory(model_name)
    Path(result_path).write_text(json.dumps(out))


def run_stan(payload: dict, workdir: Path) -> tuple[dict, dict]:
    """Run the Stan worker in a subprocess; returns its report (timings, versions, log_prob) and the draws."""
    import numpy as np

    payload_path = workdir / "payload.json"
    result_path = workdir / "stan_result.json"
    payload_path.write_text(json.dumps(payload))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--stan-worker", str(payload_path), str(result_path)]
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=sys.stderr, stderr=sys.stderr, check=False)
    wall = time.perf_counter() - started
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"the Stan worker failed (exit code {proc.returncode}); see its messages above")
    report = json.loads(result_path.read_text())
    report["process_wall_s"] = wall
    report["cpu_s"] = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    with np.load(str(result_path) + ".npz") as f:
        arrays = {k: f[k] for k in f.files}
    return report, arrays


# ----------------------------------------------------------------------------------------------------------
# Shared: problem, inits, diagnostics, load
# ----------------------------------------------------------------------------------------------------------


class LoadSampler:
    """Samples the 1-minute load average every few seconds while a tool runs."""

    def __init__(self, every: float = 5.0):
        self.every = every
        self.values: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.values.append(os.getloadavg()[0])
            self._stop.wait(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.values.append(os.getloadavg()[0])

    def summary(self) -> dict:
        v = self.values
        return {"load1_start": round(v[0], 2), "load1_mean": round(sum(v) / len(v), 2), "load1_max": round(max(v), 2),
                "load1_end": round(v[-1], 2)}


def build_problem(patients: int, seed: int):
    import jax
    import numpy as np

    from carkin.population import covariate_design, load_spec
    from carkin.simulate import simulate_cohort

    spec = load_spec("multiphasic")
    if spec.parameter_names != PARAMETER_ORDER or [p.transform for p in spec.parameters] != ["log"] * 5 + ["logit"]:
        raise SystemExit(f"multiphasic.stan expects parameters {PARAMETER_ORDER} (log x5, logit); the spec has "
                         f"{spec.parameter_names}")
    if spec.iiv != "centred" or spec.residual != "additive_log" or spec.blq != "m3":
        raise SystemExit("multiphasic.stan implements centred IIV, additive_log residual and M3 BLQ only")
    cohort = simulate_cohort(spec, key=jax.random.PRNGKey(1000 + seed), n=patients)  # as benchmarks/nuts_ess.py
    dataset = cohort.dataset
    rec = dataset.flat()
    blq = np.asarray(rec.blq)
    z = covariate_design(dataset, spec)
    m = np.zeros((len(spec.effects), 6))
    for e, (_, target) in enumerate(spec.effects):
        m[e, spec.parameter_names.index(target)] = 1.0
    stan_data = {
        "N": int(dataset.n_patients), "E": int(z.shape[1]), "Z": z.tolist(), "M": m.tolist(),
        "R": int(blq.size), "patient": (np.asarray(rec.patient) + 1).tolist(), "time": np.asarray(rec.times).tolist(),
        "log_dv": np.asarray(rec.log_dv).tolist(),
        "Q": int((~blq).sum()), "quantified": (np.flatnonzero(~blq) + 1).tolist(),
        "C": int(blq.sum()), "censored": (np.flatnonzero(blq) + 1).tolist(),
        "prior_loc": [p.prior_loc for p in spec.parameters], "prior_sd": [p.prior_sd for p in spec.parameters],
        "omega_scale": [p.omega_scale for p in spec.parameters],
        "beta_sd": [c.prior_sd for c in spec.covariates for _ in c.parameters], "sigma_scale": spec.sigma_scale,
    }
    return spec, cohort, stan_data


def prior_median_inits(stan_data: dict, chains: int, seed: int) -> list[dict]:
    """Per chain, what numpyro's init_to_median(num_samples=15) does: the median of 15 prior draws per site,
    site by site in model order (phi drawn around the already initialised mu, beta and omega)."""
    import numpy as np

    rng = np.random.default_rng(seed + 12345)
    loc, sd = np.array(stan_data["prior_loc"]), np.array(stan_data["prior_sd"])
    oscale, bsd = np.array(stan_data["omega_scale"]), np.array(stan_data["beta_sd"])
    z, m, n = np.array(stan_data["Z"]).reshape(stan_data["N"], -1), np.array(stan_data["M"]).reshape(-1, 6), stan_data["N"]
    inits = []
    for _ in range(chains):
        mu = np.median(rng.normal(loc, sd, (15, 6)), axis=0)
        omega = np.median(np.abs(rng.normal(0.0, oscale, (15, 6))), axis=0)
        beta = np.median(rng.normal(0.0, bsd, (15, bsd.size)), axis=0) if bsd.size else np.zeros(0)
        mean = mu[None, :] + (z * beta[None, :]) @ m
        phi = np.median(rng.normal(mean, omega, (15, n, 6)), axis=0)
        sigma = float(np.median(np.abs(rng.normal(0.0, stan_data["sigma_scale"], 15))))
        inits.append({"mu": mu.tolist(), "omega": omega.tolist(), "beta": beta.tolist(), "phi": phi.tolist(),
                      "sigma": sigma})
    return inits


def check_points(spec, cohort, stan_data, inits) -> list[dict]:
    """Three parameter sets: chain 1's init, the simulation truth, and the truth moved at random."""
    import numpy as np

    from carkin.population._spec import to_transformed

    truth = cohort.truth
    phi = np.stack([to_transformed(p.transform, np.asarray(cohort.individual[p.name])) for p in spec.parameters], axis=1)
    true_point = {"mu": np.asarray(truth.mu).tolist(), "omega": np.asarray(truth.omega).tolist(),
                  "beta": np.asarray(truth.beta).tolist(), "phi": phi.tolist(), "sigma": float(truth.sigma)}
    rng = np.random.default_rng(7)
    moved = {
        "mu": (np.asarray(truth.mu) + rng.normal(0, 0.3, 6)).tolist(),
        "omega": (np.asarray(truth.omega) * np.exp(rng.normal(0, 0.3, 6))).tolist(),
        "beta": (np.asarray(truth.beta) + rng.normal(0, 0.3, len(true_point["beta"]))).tolist(),
        "phi": (phi + rng.normal(0, 0.3, phi.shape)).tolist(),
        "sigma": float(truth.sigma) * 1.3,
    }
    return [inits[0], true_point, moved]


def carkin_log_density(spec, dataset, points) -> list[float]:
    import jax.numpy as jnp
    from numpyro.infer.util import log_density

    from carkin.population import population_model, prepare

    data = prepare(dataset, spec)
    out = []
    for p in points:
        params = {k: jnp.asarray(v, dtype=jnp.float64) for k, v in p.items() if k != "beta" or spec.effects}
        out.append(float(log_density(population_model, (data, spec), {}, params)[0]))
    return out


def population_columns(arrays: dict) -> dict:
    """(chains, draws) arrays named like carkin's table, on the sampled (log/logit) scale."""
    import numpy as np

    cols = {}
    for k, name in enumerate(PARAMETER_ORDER):
        cols[f"mu_{name}"] = np.asarray(arrays["mu"])[..., k]
    for k, name in enumerate(PARAMETER_ORDER):
        cols[f"omega_{name}"] = np.asarray(arrays["omega"])[..., k]
    if "beta" in arrays:
        b = np.asarray(arrays["beta"])
        for e in range(b.shape[-1]):
            cols[f"beta_{e}"] = b[..., e]
    cols["sigma"] = np.asarray(arrays["sigma"]).reshape(arrays["mu"].shape[:2])
    return cols


def diagnostics(cols: dict) -> dict:
    import arviz as az
    import numpy as np

    ess = {k: float(az.ess(v, method="bulk")) for k, v in cols.items()}
    rhat = {k: float(az.rhat(v)) for k, v in cols.items()}
    worst = min(ess, key=ess.get)
    return {"min_ess_bulk": round(ess[worst], 1), "min_ess_parameter": worst,
            "max_r_hat": round(float(np.nanmax(list(rhat.values()))), 4),
            "max_r_hat_parameter": max(rhat, key=lambda k: -np.inf if np.isnan(rhat[k]) else rhat[k])}


def posterior_mean_check(carkin_cols: dict, stan_cols: dict, effect_names) -> dict:
    import arviz as az
    import numpy as np

    rows, z_mu, z_all = {}, [], []
    for k, a in carkin_cols.items():
        b = stan_cols[k]
        se = float(np.hypot(az.mcse(a, method="mean"), az.mcse(b, method="mean")))
        z = float((a.mean() - b.mean()) / se)
        name = k if not k.startswith("beta_") else effect_names[int(k.split("_")[1])]
        rows[name] = {"carkin": round(float(a.mean()), 4), "stan": round(float(b.mean()), 4), "z": round(z, 2)}
        z_all.append(abs(z))
        if k.startswith("mu_"):
            z_mu.append(abs(z))
    return {"max_abs_z_typical": round(max(z_mu), 2), "max_abs_z_all": round(max(z_all), 2),
            "passed": bool(max(z_mu) < 4.0), "criterion": "|mean difference| / sqrt(mcse_carkin^2 + mcse_stan^2) < 4 "
            "for every typical value (mu, log/logit scale)", "means": rows}


def emit(row: dict, out_path: str | None) -> None:
    line = json.dumps(row)
    print(line, flush=True)
    if out_path:
        with open(out_path, "a") as handle:
            handle.write(line + "\n")


# ----------------------------------------------------------------------------------------------------------
# carkin side
# ----------------------------------------------------------------------------------------------------------


def run_carkin(spec, dataset, settings: dict, seed: int, compile_estimate: bool) -> tuple[dict, dict]:
    import logging
    import warnings

    import numpy as np

    from carkin.errors import ConvergenceWarning
    from carkin.inference import SamplerSettings, fit

    def usage():
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    base = {"chains": settings["chains"], "target_accept": settings["target_accept"],
            "max_tree_depth": settings["max_tree_depth"], "progress_bar": False}
    report = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if compile_estimate:
            # A 2-iteration run of the same sampler: its wall time is essentially the JIT compilation that the
            # full fit below repeats (numpyro compiles anew for every MCMC object). With whitening the full fit
            # compiles a second sampler for its second stage, which this one-stage estimate does not count.
            arviz_log = logging.getLogger("arviz")
            level = arviz_log.level
            arviz_log.setLevel(logging.ERROR)  # arviz and numpy complain about 1-draw diagnostics
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                started = time.perf_counter()
                fit(dataset, spec, seed=seed, settings=SamplerSettings(warmup=1, samples=1, **base))
                report["compile_estimate_s"] = time.perf_counter() - started
            arviz_log.setLevel(level)
        cpu0 = usage()
        started = time.perf_counter()
        result = fit(dataset, spec, seed=seed,
                     settings=SamplerSettings(warmup=settings["warmup"], samples=settings["samples"], **base))
        report["fit_s"] = time.perf_counter() - started
        report["cpu_s"] = usage() - cpu0
    post = result.idata.posterior
    arrays = {site: np.asarray(post[site].values) for site in POPULATION_SITES if site in post}
    stats = result.idata.sample_stats
    arrays["diverging"] = np.asarray(stats["diverging"].values)
    arrays["n_leapfrog"] = np.asarray(stats["n_steps"].values)
    report["chain_method"] = result.manifest["diagnostics"]["chain_method"]
    report["whitening"] = result.manifest["diagnostics"].get("whitening", False)  # two-stage warm-up (carkin default)
    report["warmup_stages"] = result.manifest["diagnostics"].get("warmup_stages")
    return report, arrays


# ----------------------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=250)
    parser.add_argument("--config", choices=("defaults", "tuned", "short", "both"), default="both")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--samples", type=int, default=1000, help="draws per chain after warmup")
    parser.add_argument("--warmup", type=int, default=None, help="override the configuration's warmup (quick checks)")
    parser.add_argument("--reuse-build", action="store_true",
                        help="let PyStan reuse (and keep) a cached compiled model (default: compile afresh once per run, so "
                             "the build time is real, and delete that build at the end)")
    parser.add_argument("--no-compile-estimate", action="store_true",
                        help="skip the short carkin run that estimates its JIT compilation time")
    parser.add_argument("--out", default=None, help="also append the JSON lines to this file")
    parser.add_argument("--stan-worker", nargs=2, metavar=("PAYLOAD", "RESULT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.stan_worker:
        _stan_worker(*args.stan_worker)
        return 0
    _require_stan()  # fail before any work, with the install hint

    os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={args.chains}")
    # Measure the carkin of the checkout this file lives in, whatever an editable install points at.
    sys.path.insert(0, str(HERE.parents[1] / "src"))
    import arviz
    import jax

    jax.config.update("jax_enable_x64", True)
    import numpyro

    import carkin

    configs = ["tuned", "defaults"] if args.config == "both" else [args.config]
    spec, cohort, stan_data = build_problem(args.patients, args.seed)
    dataset = cohort.dataset
    inits = prior_median_inits(stan_data, args.chains, args.seed)
    points = check_points(spec, cohort, stan_data, inits)
    carkin_lp = carkin_log_density(spec, dataset, points)

    emit({
        "kind": "machine", "cpu_count": os.cpu_count(), "affinity_cpus": len(os.sched_getaffinity(0)),
        "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(), "jax": jax.__version__, "numpyro": numpyro.__version__,
        "arviz": arviz.__version__, "carkin": getattr(carkin, "__version__", "?"),
        "carkin_path": str(Path(carkin.__file__).parent),
        "jax_devices": jax.local_device_count(), "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "problem": {"patients": dataset.n_patients, "records": stan_data["R"], "blq": stan_data["C"],
                    "data_key": f"PRNGKey({1000 + args.seed})", "seed": args.seed, "model": "models/multiphasic.toml"},
    }, args.out)

    effect_names = list(spec.effect_names)
    build_tag = f"\n// stan_vs_carkin build {time.time_ns()}\n"
    with tempfile.TemporaryDirectory(prefix="stan_vs_carkin_") as tmp:
        workdir = Path(tmp)
        for n_config, config in enumerate(configs):
            settings = {"chains": args.chains, "samples": args.samples, **CONFIGS[config]}
            if args.warmup is not None:
                settings["warmup"] = args.warmup
            common = {"config": config, "settings": settings, "patients": dataset.n_patients,
                      "init": "prior median per chain (numpyro init_to_median(num_samples=15))"}

            # --- Stan --------------------------------------------------------------------------------
            payload = {"data": stan_data, "seed": args.seed + 1, "inits": inits, "settings": settings,
                       "program_suffix": "" if args.reuse_build else build_tag,
                       "delete_build": (not args.reuse_build) and n_config == len(configs) - 1,
                       "check_points": points if n_config == 0 else None}
            with LoadSampler() as load:
                stan_report, stan_arrays = run_stan(payload, workdir)
            stan_cols = population_columns(stan_arrays)
            stan_diag = diagnostics(stan_cols)
            versions = {k: stan_report[k] for k in ("stan_version", "pystan_version", "httpstan_version")}
            if n_config == 0:
                diffs = [s - c for s, c in zip(stan_report["check_log_prob"], carkin_lp)]
                rel = max(abs(d) / max(1.0, abs(c)) for d, c in zip(diffs, carkin_lp))
                emit({"kind": "logdensity_check", "points": ["init (chain 1)", "simulation truth", "truth moved"],
                      "carkin": [round(x, 6) for x in carkin_lp],
                      "stan": [round(x, 6) for x in stan_report["check_log_prob"]],
                      "abs_diff": [float(f"{d:.3g}") for d in diffs], "max_rel_diff": float(f"{rel:.3g}"),
                      "passed": bool(rel < 1e-8),
                      "note": "Stan log_prob(adjust_transform=False) vs numpyro log_density, constants included"},
                     args.out)
            stan_ess = stan_diag["min_ess_bulk"]
            stan_row = {
                "kind": "tool", "tool": "stan", **common, **versions,
                "build_s": round(stan_report["build_s"], 1), "build_cached": stan_report["build_cached"],
                "sampling_s": round(stan_report["sampling_s"], 1),
                "total_s": round(stan_report["build_s"] + stan_report["sampling_s"], 1),
                "process_wall_s": round(stan_report["process_wall_s"], 1),
                **stan_diag,
                "divergences": int(stan_arrays["diverging"].sum()),
                "mean_leapfrog_steps": round(float(stan_arrays["n_leapfrog"].mean()), 1),
                "ess_per_s_sampling": round(stan_ess / stan_report["sampling_s"], 3),
                "ess_per_s_total": round(stan_ess / (stan_report["build_s"] + stan_report["sampling_s"]), 3),
                "cpu_s": round(stan_report["cpu_s"], 1), **load.summary(),
            }
            emit(stan_row, args.out)

            # --- carkin ------------------------------------------------------------------------------
            with LoadSampler() as load:
                carkin_report, carkin_arrays = run_carkin(spec, dataset, settings, args.seed,
                                                          compile_estimate=not args.no_compile_estimate)
            carkin_cols = population_columns(carkin_arrays)
            carkin_diag = diagnostics(carkin_cols)
            carkin_ess = carkin_diag["min_ess_bulk"]
            compile_s = carkin_report.get("compile_estimate_s")
            sampling_s = carkin_report["fit_s"] - compile_s if compile_s is not None else None
            carkin_row = {
                "kind": "tool", "tool": "carkin", **common, "chain_method": carkin_report["chain_method"],
                "whitening": carkin_report["whitening"], "warmup_stages": carkin_report["warmup_stages"],
                "fit_s": round(carkin_report["fit_s"], 1),
                "compile_estimate_s": round(compile_s, 1) if compile_s is not None else None,
                "sampling_s_estimate": round(sampling_s, 1) if sampling_s is not None else None,
                **carkin_diag,
                "divergences": int(carkin_arrays["diverging"].sum()),
                "mean_leapfrog_steps": round(float(carkin_arrays["n_leapfrog"].mean()), 1),
                "ess_per_s_total": round(carkin_ess / carkin_report["fit_s"], 3),
                "ess_per_s_sampling": round(carkin_ess / sampling_s, 3) if sampling_s else None,
                "cpu_s": round(carkin_report["cpu_s"], 1), **load.summary(),
            }
            emit(carkin_row, args.out)

            emit({"kind": "posterior_mean_check", "config": config,
                  **posterior_mean_check(carkin_cols, stan_cols, effect_names)}, args.out)
            ratio_total = carkin_row["ess_per_s_total"] / stan_row["ess_per_s_total"]
            ratio_headline = carkin_row["ess_per_s_total"] / stan_row["ess_per_s_sampling"]
            emit({"kind": "comparison", "config": config,
                  "ratio_carkin_over_stan_ess_per_s": round(ratio_headline, 2),
                  "ratio_definition": "carkin ESS / whole fit wall (JIT compilation included) over Stan ESS / "
                                      "sampling wall (C++ build excluded): conservative for carkin",
                  "ratio_total": round(ratio_total, 2),
                  "ratio_sampling_only": round(carkin_row["ess_per_s_sampling"] / stan_row["ess_per_s_sampling"], 2)
                  if carkin_row["ess_per_s_sampling"] else None,
                  "target": ">= 5 (issue 10)"}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
