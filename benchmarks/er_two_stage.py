"""Wall time of the exposure-response analyses on one simulated study: plug-in, two-stage (resample, cut), joint.

Usage:  python benchmarks/er_two_stage.py [--patients 225] [--seed 0] [--joint] [--json OUT]

Data: `carkin.er.simulate_er_study` (SIMULATED; models/multiphasic.toml [simulation] CK with 12 samples per
patient, true HR 0.75 per doubling of Cmax). CK fit: NUTS, 2 chains x 500 draws (warm-up 500), tree depth 7.
Each analysis is timed from the analysis set to the summary, compilation included (what a user waits for),
with the default PH settings (2 chains x 500 draws after 500 warm-up, piecewise baseline): plug-in (lifelines
Cox + KM + trend test), two-stage "resample" (1000 CK draws, HMC-within-Gibbs) and "cut" (40 copies), and
with ``--joint`` the joint CK + PFS NUTS run. Prints one JSON line; ratios are to the plug-in time.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

from carkin.er import er_analysis_set, joint_ph, plugin_analysis, simulate_er_study, two_stage  # noqa: E402
from carkin.exposure import exposure_quartiles, posterior_exposures  # noqa: E402
from carkin.inference import SamplerSettings, fit  # noqa: E402
from carkin.population import load_spec  # noqa: E402


def _hr(result) -> list[float]:
    h = result.hr_per_doubling
    return [round(h.hr, 4), round(h.ci_low, 4), round(h.ci_high, 4)]


def run(patients: int, seed: int, joint: bool) -> dict:
    spec = load_spec("multiphasic")
    study = simulate_er_study(jax.random.key(seed), n=patients, seed=seed)
    started = time.perf_counter()
    ck_fit = fit(study.dataset, spec, seed=seed,
                 settings=SamplerSettings(chains=2, warmup=500, samples=500, max_tree_depth=7, progress_bar=False))
    fit_s = time.perf_counter() - started
    exposure = posterior_exposures(ck_fit, study.dataset, metrics=["cmax"])
    out = {"benchmark": "er_two_stage", "simulated": True, "patients": patients, "seed": seed,
           "true_hr_per_doubling": round(float(np.exp(study.log_hr_per_doubling)), 4), "ck_fit_s": round(fit_s, 1),
           "ck_max_r_hat": ck_fit.manifest["diagnostics"]["max_r_hat"], "cpu_devices": jax.local_device_count()}

    started = time.perf_counter()
    data = er_analysis_set(exposure, study.patients, metric="cmax", adjust=study.prognostic_factors)
    quartiles = exposure_quartiles(2.0 ** data.log2_draws, patient_ids=data.ids)
    cox = plugin_analysis(data, quartiles).hr_per_doubling
    out["plugin_s"] = round(time.perf_counter() - started, 2)
    out["plugin_hr"] = [round(cox.hazard_ratio, 4), round(cox.hr_ci_low, 4), round(cox.hr_ci_high, 4)]
    out["analysed"], out["events"] = data.n, int(data.event.sum())
    for scheme in ("resample", "cut"):
        started = time.perf_counter()
        stage, plug_in = two_stage(data, key=jax.random.key(seed), scheme=scheme)
        wall = time.perf_counter() - started
        out[f"two_stage_{scheme}_s"] = round(wall, 1)
        out[f"two_stage_{scheme}_hr"] = _hr(stage)
        out[f"two_stage_{scheme}_ess_per_s"] = round(stage.diagnostics["min_ess_bulk"] / wall, 1)
        out[f"two_stage_{scheme}_width_ratio"] = round(stage.hr_per_doubling.log_width / plug_in.hr_per_doubling.log_width, 3)
        out[f"two_stage_{scheme}_vs_plugin"] = round(wall / max(out["plugin_s"], 1e-9), 1)
    if joint:
        started = time.perf_counter()
        result = joint_ph(ck_fit, study.dataset, data, key=jax.random.key(seed))
        out["joint_s"] = round(time.perf_counter() - started, 1)
        out["joint_hr"] = _hr(result)
        out["joint_min_ess_bulk_ck"] = round(result.diagnostics["min_ess_bulk_ck"], 1)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=225)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--joint", action="store_true", help="also time the joint CK + PFS run")
    parser.add_argument("--json", default=None, help="append the JSON line to this file")
    args = parser.parse_args(argv)
    line = json.dumps(run(args.patients, args.seed, args.joint))
    print(line, flush=True)
    if args.json:
        with open(args.json, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")


if __name__ == "__main__":
    main()
