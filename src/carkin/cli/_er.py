"""``carkin exposure`` and ``carkin er``: thin layers over `carkin.exposure` and `carkin.er`."""

from __future__ import annotations

import dataclasses
import enum
import json
import warnings
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from ..er import BASELINES, DEFAULT_SETTINGS, METHODS, analyze_exposure_response
from ..er._bayes import _DEFAULT_DRAWS, SCHEMES
from ..exposure import METRICS, nca, posterior_exposures
from ..exposure._posterior import METHODS as EXPOSURE_METHODS
from ._app import app
from ._common import console, default_of, split_list, user_errors

#: Choices of the string options, from the library's own dispatch tables.
ERMethod = enum.StrEnum("ERMethod", {m: m for m in METHODS})
Scheme = enum.StrEnum("Scheme", {s: s for s in SCHEMES})
BaselineOption = enum.StrEnum("BaselineOption", {b: b for b in BASELINES})
ExposureMethod = enum.StrEnum("ExposureMethod", {m: m for m in EXPOSURE_METHODS})
_PATTERNS = "auc:A-B (days A to B), c:D (level at day D), persistence:H (horizon H days)"
# Help texts of the choice options, built once here (a call inside an argument default reads as shared state).
_METRICS_HELP = f"Metrics (repeat or comma-separate): {', '.join(METRICS)}, {_PATTERNS}. Default: all presets."
_EXPOSURE_METHODS_HELP = " | ".join(EXPOSURE_METHODS)
_METHODS_HELP = " | ".join(METHODS)
_SCHEMES_HELP = f"Two-stage scheme: {' | '.join(SCHEMES)}."
_BASELINES_HELP = f"Bayesian PH baseline: {' | '.join(BASELINES)}."


def _banner(simulated: bool) -> None:
    if simulated:
        console.print("[bold yellow]SIMULATED data[/bold yellow]: a virtual cohort, not trial data")


@app.command("exposure")
def exposure_command(
    fit_dir: Path = typer.Argument(..., help="Fit directory written by `carkin fit`."),
    metrics: list[str] | None = typer.Option(None, "--metrics", help=_METRICS_HELP),
    out: Path | None = typer.Option(
        None, "--out", help="Output directory (default FIT_DIR/exposure; replaced atomically)."
    ),
    method: ExposureMethod = typer.Option(
        default_of(posterior_exposures, "method"), "--method", help=_EXPOSURE_METHODS_HELP
    ),
    max_draws: int | None = typer.Option(
        None, "--max-draws", help="Keep at most this many draws per chain (thinning)."
    ),
    nca_window: float = typer.Option(
        default_of(nca, "window_days"), "--nca-window", help="End of the NCA AUC window, days."
    ),
    ck: Path | None = typer.Option(None, "--ck", help="CK file to use instead of the fit's copy (FIT_DIR/input/)."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON index to standard output."),
) -> None:
    """Per-patient exposure metrics as posterior draws (mean, sd, 90% interval), quartiles with uncertainty, NCA."""
    from ..exposure import load_fit_dataset, write_exposure_report
    from ..inference import load_fit

    with user_errors():
        fit = load_fit(fit_dir)
        dataset = load_fit_dataset(fit_dir, fit, ck=ck)
        exposure = posterior_exposures(
            fit, dataset, metrics=split_list(metrics) or None, method=str(method), max_draws=max_draws
        )
        nca_table = nca(dataset, window_days=nca_window)
    target = out if out is not None else fit_dir / "exposure"
    with user_errors():
        index = write_exposure_report(exposure, target, nca_table=nca_table, extra={"fit_dir": str(fit_dir)})
    if as_json:
        Console().print_json(data=index)
        return
    _banner(exposure.simulated)
    summary = exposure.summary()
    table = Table(
        title=f"Exposure across {len(exposure.patient_ids)} patients (posterior medians)", title_justify="left"
    )
    for name in ("metric", "unit", "median", "IQR", "median 90% width (x)"):
        table.add_column(name, justify="left" if name in ("metric", "unit") else "right")
    for metric in exposure.metrics:
        rows = summary[summary["metric"] == metric.name]
        q50 = rows["q50"]
        ratio = (rows["q95"] / rows["q05"].where(rows["q05"] > 0)).median()
        table.add_row(
            metric.name,
            metric.unit,
            f"{q50.median():.4g}",
            f"{q50.quantile(0.25):.4g}-{q50.quantile(0.75):.4g}",
            "-" if ratio != ratio else f"{ratio:.3g}",
        )
    console.print(table)
    console.print(f"wrote {target}/ ({', '.join(index['files'])}, exposure.json)")


@app.command("er")
def er_command(
    fit_dir: Path = typer.Argument(..., help="Fit directory written by `carkin fit`."),
    patients: Path = typer.Argument(..., help="Patients table (CSV): ID, PFS_MONTHS, PFS_EVENT; optional ARM, INFUSED, "
                                    "INFUSION_DAY, SIMULATED and the columns named in --adjust."),
    metric: str = typer.Option(default_of(analyze_exposure_response, "metric"), "--metric",
                               help=f"Exposure metric: {' | '.join(METRICS)} | {_PATTERNS}."),
    landmark: float | None = typer.Option(None, "--landmark", help="Landmark, days after infusion (default: end of the "
                                          "metric's window, 28 for cmax/auc28; 0 = none)."),
    method: ERMethod = typer.Option(default_of(analyze_exposure_response, "method"), "--method",
                                    help=_METHODS_HELP),
    scheme: Scheme = typer.Option(default_of(analyze_exposure_response, "scheme"), "--scheme",
                                  help=_SCHEMES_HELP),
    baseline: BaselineOption = typer.Option(default_of(analyze_exposure_response, "baseline"), "--baseline",
                                            help=_BASELINES_HELP),
    adjust: list[str] | None = typer.Option(
        None, "--adjust", help="Columns of the patients table to adjust for, e.g. TUMOR_BURDEN (repeat or "
        "comma-separate). Default: none; the output says which were used.",
    ),
    level: float = typer.Option(default_of(analyze_exposure_response, "level"), "--level", help="Interval level."),
    seed: int = typer.Option(default_of(analyze_exposure_response, "seed"), "--seed",
                             help="Seed of the Bayesian methods' jax.random key (recorded)."),
    draws: int | None = typer.Option(None, "--draws", help="CK posterior draws used by two-stage (default: "
                                     + ", ".join(f"{n} {s}" for s, n in _DEFAULT_DRAWS.items()) + ")."),
    chains: int = typer.Option(DEFAULT_SETTINGS.chains, "--chains", help="Bayesian methods: chains."),
    warmup: int = typer.Option(DEFAULT_SETTINGS.warmup, "--warmup", help="Bayesian methods: warm-up per chain."),
    samples: int = typer.Option(DEFAULT_SETTINGS.samples, "--samples", help="Bayesian methods: draws per chain."),
    ck: Path | None = typer.Option(None, "--ck", help="CK file to use instead of the fit's copy (FIT_DIR/input/)."),
    out: Path | None = typer.Option(None, "--out", help="Output directory (default FIT_DIR/er-METRIC-METHOD)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result JSON to standard output."),
) -> None:
    """PFS by exposure: KM by quartile, log-rank trend, Cox on log2 exposure, Bayesian PH with CK uncertainty."""
    from ..data import read_table
    from ..er import ExposureWindowWarning, write_er_report
    from ..exposure import get_metric, load_fit_dataset
    from ..inference import load_fit

    with user_errors(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ExposureWindowWarning)
        chosen = get_metric(metric)
        fit = load_fit(fit_dir)
        dataset = load_fit_dataset(fit_dir, fit, ck=ck)
        exposure = posterior_exposures(fit, dataset, metrics=[chosen])
        table = read_table(patients)
        settings = dataclasses.replace(DEFAULT_SETTINGS, chains=chains, warmup=warmup, samples=samples)
        analysis = analyze_exposure_response(
            exposure, table, metric=chosen, method=str(method), landmark_days=landmark, fit=fit, dataset=dataset,
            adjust=split_list(adjust), level=level, seed=seed, baseline=str(baseline),
            n_exposure_draws=draws, scheme=str(scheme), settings=settings,
        )
    target = out if out is not None else fit_dir / f"er-{chosen.name.replace(':', '_')}-{method}"
    extra = {"fit_dir": str(fit_dir), "patients": str(patients), "out_dir": str(target)}
    with user_errors():
        result = write_er_report(analysis, target, extra=extra)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    _banner(analysis.simulated)
    for w in caught:
        if issubclass(w.category, ExposureWindowWarning):
            console.print(f"[bold yellow]warning:[/bold yellow] {w.message}", highlight=False)
    out_table = Table(
        title=f"PFS by {chosen.label} ({method}); landmark day {result['landmark_days']:g}", title_justify="left"
    )
    for name in ("quantity", "value"):
        out_table.add_column(name, justify="left" if name == "quantity" else "right")
    pct = f"{100 * level:g}%"
    out_table.add_row(f"HR per doubling ({pct})",
                      f"{result['hr_per_doubling']:.3f} ({result['hr_ci_low']:.3f}-{result['hr_ci_high']:.3f})")
    p = result["plugin"]
    out_table.add_row("plug-in Cox, adjusted",
                      f"{p['hr_per_doubling']:.3f} ({p['hr_ci_low']:.3f}-{p['hr_ci_high']:.3f})")
    u = p["unadjusted"]
    out_table.add_row("plug-in Cox, unadjusted",
                      f"{u['hr_per_doubling']:.3f} ({u['hr_ci_low']:.3f}-{u['hr_ci_high']:.3f})")
    out_table.add_row("adjusted for", ", ".join(result["adjusted_for"]) or "nothing (name columns with --adjust)")
    if result["width_ratio"] is not None:
        out_table.add_row("interval width vs plug-in (Bayesian / Cox)",
                          f"x{result['width_ratio']:.2f} / x{result['width_ratio_vs_cox']:.2f}")
    out_table.add_row("log-rank trend across quartiles", f"z {result['trend_z']:.2f}, p {result['trend_p']:.3g}")
    for q, median in result["median_pfs_by_quartile"].items():
        out_table.add_row(f"median PFS {q} (months from landmark)", "NR" if median is None else f"{median:.1f}")
    c = result["counts"]
    out_table.add_row("analysed / events", f"{c['analysed']} / {c['events']}")
    out_table.add_row("excluded: not infused, not CK-evaluable",
                      f"{c['not_infused']}, {c['not_ck_evaluable']}")
    out_table.add_row("excluded: event, censored by landmark",
                      f"{c['event_before_landmark']}, {c['censored_before_landmark']}")
    console.print(out_table)
    for key in ("bayes", "plugin_bayes"):  # the Bayesian fits' convergence gates (their warnings were caught above)
        if result[key] is not None and not result[key]["diagnostics"]["passed"]:
            failures = result[key]["diagnostics"]["failures"]
            console.print(
                f"[bold red]BAYESIAN PH ({result[key]['method']}) FAILED ITS CONVERGENCE GATES[/bold red]:\n  "
                + "\n  ".join(failures[:8])
                + (f"\n  ... and {len(failures) - 8} more (er.json)" if len(failures) > 8 else ""),
                soft_wrap=True,
            )
    console.print(f"wrote {target}/ (er.json, report.md, tables, km_by_quartile.png, forest.png)")
