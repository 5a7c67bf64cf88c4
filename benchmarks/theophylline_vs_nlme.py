"""carkin's Bayesian fit of Theoph (models/theophylline.toml) beside R nlme's maximum-likelihood fits.

Usage:  python benchmarks/theophylline_vs_nlme.py [--seed 1] [--no-readme] [--quick]

Fits the shipped data (``src/carkin/_data/theophylline/theophylline.csv``, R's ``datasets::Theoph``) with
the shipped spec at the default NUTS settings (``SamplerSettings()``: 4 chains x (500 warm-up + 1,000
draws)), the same way ``carkin fit`` does, and compares the posterior with nlme's ML estimates in
``tests/reference/pk_nlme.json`` (made by ``benchmarks/peers/r/nlme_reference.R``; see
``docs/pk-references.md``):

the spec as shipped (diagonal IIV on log ke, log ka, log CL) against ``fm2Theo.nlme`` (the same model:
``pdDiag(lKe + lKa + lCl ~ 1)``) and ``fm3Theo.nlme`` (no IIV on ke, the book's preferred model), with
``fm1Theo.nlme`` (general 3 x 3 covariance, ``pdSymm``) recorded in the JSON for reference. No correlated fit
is made: the spec's ``[iiv] correlation`` is parsed but not yet used by carkin's sampler.

For each typical value it reports the posterior median and 90% interval of its log (nlme's scale) and on
the natural scale, nlme's estimate and SE, and the difference in nlme SEs; for the IIV SDs and the
residual SD, the posterior median and 90% interval beside nlme's estimate. It also reports how far the prior
could have moved each typical value: for a normal likelihood and a normal prior, the posterior median moves
towards the prior median by about (posterior SD / prior SD)^2 x (prior median - posterior median), on the
log scale.

Outputs (``--prefix``, default ``benchmarks/results/theophylline-vs-nlme-<UTC date>``; ``-quick`` with
``--quick``): ``<prefix>.json`` (every number, the commit, date, versions, settings, wall times) and
``<prefix>.md`` (the tables). Unless ``--quick`` or ``--no-readme``, it rewrites the block between
``<!-- theophylline:begin -->`` and ``<!-- theophylline:end -->`` in the top-level ``README.md``.

Time: about 1-2 minutes on the shared 2-core dev box. Not part of the test suite
(``tests/inference/test_pk_fit.py`` checks the same comparison).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # this checkout's carkin, whatever is installed

import carkin  # noqa: E402
from carkin._resources import shipped_data_file  # noqa: E402
from carkin.inference import population_draws  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
README = REPO / "README.md"
REFERENCE = REPO / "tests" / "reference" / "pk_nlme.json"
SPEC = REPO / "models" / "theophylline.toml"
BEGIN, END = "<!-- theophylline:begin -->", "<!-- theophylline:end -->"
#: carkin parameter -> nlme's fixed-effect / random-effect name
NLME_NAMES = {"ke": "lKe", "ka": "lKa", "cl": "lCl"}


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _quantiles(x: np.ndarray) -> dict:
    q05, q50, q95 = np.quantile(np.asarray(x).reshape(-1), [0.05, 0.5, 0.95])
    return {"q05": float(q05), "q50": float(q50), "q95": float(q95), "sd": float(np.std(x, ddof=1))}


def run_fit(spec, dataset, seed: int, settings) -> tuple[carkin.Fit, float]:
    start = time.perf_counter()
    fit = carkin.fit(dataset, spec, seed=seed, settings=settings)
    return fit, time.perf_counter() - start


def compare(fit, spec, nlme: dict) -> dict:
    """Posterior summaries beside one nlme fit's estimates (log scale for the typical values, as nlme)."""
    draws = population_draws(fit.idata.posterior, spec)
    out = {"typical": {}, "omega": {}, "derived": {}, "residual_sd": {}}
    fixed, se = nlme["fixed_effects"]["estimate"], nlme["fixed_effects"]["std_error"]
    sds = nlme["random_effects"]["sd"]
    for p in spec.parameters:
        name = NLME_NAMES[p.name]
        log_draws = np.log(draws[f"typical_{p.name}"])
        post = _quantiles(log_draws)
        prior_pull = (post["sd"] / p.prior_sd) ** 2 * (p.prior_loc - post["q50"])
        out["typical"][p.name] = {
            "carkin_log": post, "carkin": _quantiles(draws[f"typical_{p.name}"]),
            "nlme_log": fixed[name], "nlme_log_se": se[name], "nlme": math.exp(fixed[name]),
            "difference_in_se": (post["q50"] - fixed[name]) / se[name],
            "prior_median": p.typical, "prior_sd": p.prior_sd, "approx_prior_pull_log": prior_pull,
        }
        out["omega"][p.name] = {"carkin": _quantiles(draws[f"omega_{p.name}"]), "nlme": sds.get(name)}
    out["residual_sd"] = {"carkin": _quantiles(draws["sigma_add"]), "nlme": nlme["residual_sd"]}
    derived = nlme["derived"]
    for key, nlme_key in (("v", "V_over_F_L_per_kg"), ("half_life", "half_life_h")):
        out["derived"][key] = {"carkin": _quantiles(draws[f"typical_{key}"]), "nlme": derived[nlme_key]}
    return out


def _interval(q: dict, digits: int = 3) -> str:
    return f"{q['q50']:.{digits}g} ({q['q05']:.{digits}g}, {q['q95']:.{digits}g})"


def markdown(result: dict) -> str:
    meta = result["meta"]
    diag = result["fits"]["diagonal"]
    lines = [
        f"`benchmarks/theophylline_vs_nlme.py` at commit `{meta['commit']}`, {meta['date']}: NUTS, "
        f"{meta['settings']['chains']} chains x ({meta['settings']['warmup']} warm-up + {meta['settings']['samples']} "
        f"draws), seed {meta['seed']}; nlme {meta['nlme']} (ML), from `tests/reference/pk_nlme.json`.",
        "",
        f"**Diagonal IIV** (`models/theophylline.toml` as shipped) against `fm2Theo.nlme` (the same model) and "
        f"`fm3Theo.nlme` (no IIV on ke). Fit: {diag['wall_s']:.0f} s wall, gates "
        f"{'passed' if diag['converged'] else 'FAILED'} (max R-hat {diag['diagnostics']['max_r_hat']:.3f}, min bulk "
        f"ESS {diag['diagnostics']['min_ess_bulk']:.0f}, divergences {diag['diagnostics']['divergences']}).",
        "",
        "| quantity | carkin median (90% interval) | nlme fm2Theo: estimate (SE) | carkin - nlme, in SEs | nlme fm3Theo |",
        "|---|---|---|---|---|",
    ]
    fm2, fm3 = diag["vs"]["fm2Theo.nlme"], diag["vs"]["fm3Theo.nlme"]
    for name in ("ke", "ka", "cl"):
        a, b = fm2["typical"][name], fm3["typical"][name]
        lines.append(
            f"| log typical {name} ({NLME_NAMES[name]}) | {_interval(a['carkin_log'], 4)} | {a['nlme_log']:.4f} "
            f"({a['nlme_log_se']:.4f}) | {a['difference_in_se']:+.2f} | {b['nlme_log']:.4f} ({b['nlme_log_se']:.4f}) |"
        )
    units = {"ke": "1/h", "ka": "1/h", "cl": "L/h/kg"}
    for name in ("ke", "ka", "cl"):
        a, b = fm2["typical"][name], fm3["typical"][name]
        lines.append(f"| typical {name} ({units[name]}) | {_interval(a['carkin'])} | {a['nlme']:.3g} | | {b['nlme']:.3g} |")
    for key, label in (("v", "typical V = CL / ke (L/kg)"), ("half_life", "half-life ln 2 / ke (h)")):
        a, b = fm2["derived"][key], fm3["derived"][key]
        lines.append(f"| {label} | {_interval(a['carkin'])} | {a['nlme']:.3g} | | {b['nlme']:.3g} |")
    for name in ("ke", "ka", "cl"):
        a, b = fm2["omega"][name], fm3["omega"][name]
        nlme3 = "-" if b["nlme"] is None else f"{b['nlme']:.3g}"
        lines.append(f"| IIV SD of log {name} | {_interval(a['carkin'])} | {a['nlme']:.3g} | | {nlme3} |")
    a, b = fm2["residual_sd"], fm3["residual_sd"]
    lines.append(f"| residual SD (mg/L) | {_interval(a['carkin'])} | {a['nlme']:.3g} | | {b['nlme']:.3g} |")
    pulls = ", ".join(f"{n} {fm2['typical'][n]['approx_prior_pull_log'] / fm2['typical'][n]['nlme_log_se']:+.2f}"
                      for n in ("ke", "ka", "cl"))
    lines += ["", f"Approximate pull of the priors on the log typical values, in nlme SEs: {pulls}."]
    return "\n".join(lines) + "\n"


def rewrite_readme(text: str) -> None:
    readme = README.read_text()
    if BEGIN not in readme or END not in readme:
        raise SystemExit(f"{README}: no {BEGIN} ... {END} block to rewrite (use --no-readme)")
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    README.write_text(pattern.sub(lambda _: f"{BEGIN}\n{text}{END}", readme))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-readme", action="store_true", help="do not rewrite the README block")
    parser.add_argument("--quick", action="store_true", help="2 chains x (200 + 200): a smoke run")
    parser.add_argument("--prefix", type=Path, default=None)
    args = parser.parse_args(argv)

    reference = json.loads(REFERENCE.read_text())
    theoph = reference["theophylline"]
    settings = (carkin.SamplerSettings(chains=2, warmup=200, samples=200, progress_bar=False) if args.quick
                else carkin.SamplerSettings(progress_bar=False))
    spec = carkin.load_spec(SPEC)
    dataset = carkin.load_dataset(shipped_data_file("theophylline", "theophylline.csv"), spec=spec, verbose=False)
    date = dt.datetime.now(dt.timezone.utc)
    result = {"meta": {
        "commit": _git("rev-parse", "--short", "HEAD"), "dirty": bool(_git("status", "--porcelain", "--", "src", "models")),
        "date": date.strftime("%Y-%m-%d %H:%M:%S UTC"), "seed": args.seed,
        "settings": {k: getattr(settings, k) for k in ("chains", "warmup", "samples", "target_accept",
                                                        "max_tree_depth", "whitening")},
        "nlme": reference["software"]["nlme"], "R": reference["software"]["R"],
        "python": platform.python_version(), "jax": jax.__version__, "machine": platform.machine(),
        "cpus": os.cpu_count(), "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "spec": str(SPEC.relative_to(REPO)), "data": str(dataset.source),
    }, "fits": {}}

    variants = [("diagonal", spec, ("fm2Theo.nlme", "fm3Theo.nlme", "fm1Theo.nlme"))]
    for label, variant, references in variants:
        print(f"fitting {label} ...", flush=True)
        fit, wall = run_fit(variant, dataset, args.seed, settings)
        diag = fit.manifest["diagnostics"]
        entry = {
            "wall_s": wall, "converged": bool(fit.converged),
            "diagnostics": {k: diag.get(k) for k in ("max_r_hat", "min_ess_bulk", "min_ess_tail", "divergences",
                                                    "failures")},
            "vs": {name: compare(fit, variant, theoph[name]) for name in references},
        }
        result["fits"][label] = entry
        print(f"  {wall:.0f} s, converged: {fit.converged}", flush=True)

    prefix = args.prefix or RESULTS / f"theophylline-vs-nlme-{date:%Y-%m-%d}{'-quick' if args.quick else ''}"
    prefix.parent.mkdir(parents=True, exist_ok=True)
    text = markdown(result)
    Path(f"{prefix}.json").write_text(json.dumps(result, indent=2) + "\n")
    Path(f"{prefix}.md").write_text(text)
    print(text)
    print(f"wrote {prefix}.json, {prefix}.md")
    if not (args.quick or args.no_readme):
        rewrite_readme(text.replace("`benchmarks/theophylline_vs_nlme.py`",
                                    f"[`benchmarks/theophylline_vs_nlme.py`](benchmarks/theophylline_vs_nlme.py)")
                       + f"\nAll numbers: [`{prefix.relative_to(REPO)}.json`]({prefix.relative_to(REPO)}.json).\n")
        print(f"rewrote the {BEGIN} block of {README}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
