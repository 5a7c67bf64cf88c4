"""``carkin simulate``: dose scenarios from a fitted model (a thin layer over `carkin.simulate`)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import typer

from ._app import app
from ._common import console, user_errors


@app.command("simulate")
def simulate_command(
    fit_dir: Path = typer.Argument(..., help="A fit directory written by `carkin fit` (posterior.nc, manifest.json)."),
    scenario: Path = typer.Option(..., "--scenario", help="Dose scenario (TOML), e.g. scenarios/doses.toml (or a shipped name: doses)."),
    n: int | None = typer.Option(None, "--n", min=1, help="Virtual patients per posterior draw (default: the scenario's)."),
    draws: int | None = typer.Option(None, "--draws", min=1, help="Posterior draws used (default: the scenario's)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the jax.random key (recorded in the outputs)."),
    out: Path | None = typer.Option(None, "--out", help="Output directory (written atomically); default fits/<fit>-<scenario>."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Simulate profiles and exposures per dose level from a fit's posterior, with both kinds of bands."""
    import warnings

    import jax

    from .._resources import resolve_shipped
    from ..inference import atomic_directory, load_fit
    from ..simulate import (
        load_scenario,
        plot_scenario_exposure,
        plot_scenario_profiles,
        simulate_scenario,
    )

    with user_errors():
        fit = load_fit(fit_dir)
        scenario = resolve_shipped(scenario, "scenarios")  # as load_scenario does: "doses" names the shipped one
        spec_scenario = load_scenario(scenario)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the gate verdict is reported in the notes below
            result = simulate_scenario(
                fit, spec_scenario, key=jax.random.PRNGKey(seed), n_patients=n, draws=draws, progress=progress, seed=seed
            )
    out = out if out is not None else Path("fits") / f"{Path(fit_dir).name}-{scenario.stem}"
    summary = result.to_dict()
    summary["fit_dir"] = str(fit_dir)
    summary["out"] = str(out)
    simulated = summary["simulated_data"]
    with atomic_directory(out) as tmp:
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
        _write_tables(result, tmp, simulated=simulated)
        shutil.copyfile(scenario, tmp / "scenario.toml")
        for name, figure in (("profiles.png", plot_scenario_profiles(result)), ("exposure.png", plot_scenario_exposure(result))):
            figure.savefig(tmp / name, dpi=110)
    if as_json:
        typer.echo(json.dumps(summary, indent=2, allow_nan=False))
    else:
        _print_table(summary)
    for note in summary["notes"]:
        console.print(f"[yellow]note:[/yellow] {note}", highlight=False)
    tag = " - built on a fit to SIMULATED data" if simulated else ""
    console.print(f"wrote {out}/ (summary.json, profiles.csv, exposure.csv, profiles.png, exposure.png){tag}", highlight=False)


def _write_tables(result, folder: Path, *, simulated: bool) -> None:
    import numpy as np
    import pandas as pd

    comment = "# SIMULATED: predictions from a fit to simulated data; not trial data\n" if simulated else ""
    bands = result.bands()
    blq = result.blq()
    rows = []
    for i, dose in enumerate(result.doses):
        frame = pd.DataFrame({"dose": dose, "time_days": result.times, **{k: v[i] for k, v in bands.items()},
                              **({f"blq_fraction{'' if k == 'pooled' else '_' + k}": v[i] for k, v in blq.items()}
                                 if blq is not None else {})})
        rows.append(frame)
    (folder / "profiles.csv").write_text(comment + pd.concat(rows).to_csv(index=False, float_format="%.8g"))
    lo, _, hi = result.scenario.quantiles
    target = result.target_probability()
    records = []
    for name in result.metrics:
        q = result.exposure_quantiles(name)
        for i, dose in enumerate(result.doses):
            typ = result.typical_metrics[name][:, i]
            record = {"dose": dose, "metric": name, **{f"q{p}": v for p, v in zip((5, 25, 50, 75, 95), q[i])},
                      "typical_median": np.median(typ), "typical_lower": np.quantile(typ, lo), "typical_upper": np.quantile(typ, hi)}
            if target is not None and name == result.scenario.target.metric:
                record["p_target"] = target["pooled"][i]
            records.append(record)
    (folder / "exposure.csv").write_text(comment + pd.DataFrame(records).to_csv(index=False, float_format="%.8g"))


def _short(x: float) -> str:
    """3 significant digits with k / M suffixes (17.1k, 527k, 1.2M)."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.3g}"


def _print_table(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    pct = round(100 * summary["interval"])
    table = Table(title=f"{summary['scenario']}: {summary['n_draws']} draws x {summary['n_patients']} virtual patients "
                  f"(median [{pct}% predictive interval])", title_justify="left")
    metrics = list(summary["doses"][0]["exposure"])
    for name in ["dose", *metrics]:
        table.add_column(name, justify="right")
    if summary["target"]:
        t = summary["target"]
        table.add_column(f"P({t['metric']}{'>=' if t['direction'] == 'above' else '<='}{t['threshold']:g})", justify="right")
    if summary["exposure_response"]:
        table.add_column("PFS, E-R hook", justify="right")
    if summary.get("lloq"):
        table.add_column(f"BLQ at day {summary['times_days'][-1]:g}", justify="right")
    for d in summary["doses"]:
        cells = [f"{d['dose']:g}"]
        for name in metrics:
            p = d["exposure"][name]["predictive"]
            cells.append(f"{_short(p['q50'])} [{_short(p['q05'])}-{_short(p['q95'])}]")
        if summary["target"]:
            cells.append(f"{d['target']['probability']:.2f} [{d['target']['lower']:.2f}-{d['target']['upper']:.2f}]")
        if summary["exposure_response"]:
            cells.append(", ".join(f"{lm['median']:.2f} at {lm['months']:g} mo" for lm in d["pfs"]["landmarks"]))
        if summary.get("lloq"):
            cells.append(f"{d['blq_fraction']['pooled'][-1]:.2f}")
        table.add_row(*cells)
    console_out = Console(width=None if sys.stdout.isatty() else 160)
    console_out.print(table)
    if summary.get("lloq"):
        lloq = summary["lloq"]
        console_out.print(f"simulated observations censored at the LLOQ, {lloq['value']:g} {lloq['unit']} "
                          f"(from {lloq['source']}); BLQ fraction at every time in profiles.csv", highlight=False)
