"""``carkin simulate``: dose scenarios from a fitted model (a thin layer over `carkin.simulate`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from ._app import app
from ._common import console, user_errors


@app.command("simulate")
def simulate_command(
    fit_dir: Path = typer.Argument(..., help="A fit directory written by `carkin fit` (posterior.nc, manifest.json)."),
    scenario: Path = typer.Option(
        ..., "--scenario", help="Dose scenario (TOML), e.g. scenarios/doses.toml (or a shipped name: doses)."
    ),
    n: int | None = typer.Option(
        None, "--n", min=1, help="Virtual patients per posterior draw (default: the scenario's)."
    ),
    draws: int | None = typer.Option(None, "--draws", min=1, help="Posterior draws used (default: the scenario's)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the jax.random key (recorded in the outputs)."),
    out: Path | None = typer.Option(
        None, "--out", help="Output directory (written atomically); default fits/<fit>-<scenario>."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Simulate profiles and exposures per dose level from a fit's posterior, with both kinds of bands."""
    import warnings

    import jax

    from ..inference import load_fit
    from ..simulate import (
        SCENARIO_FILES,
        load_scenario,
        simulate_scenario,
        write_scenario_report,
    )

    out = out if out is not None else Path("fits") / f"{Path(fit_dir).name}-{scenario.stem}"
    with user_errors():
        fit = load_fit(fit_dir)
        spec_scenario = load_scenario(scenario)  # "doses" names the shipped one
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the gate verdict is reported in the notes below
            result = simulate_scenario(
                fit,
                spec_scenario,
                key=jax.random.PRNGKey(seed),
                n_patients=n,
                draws=draws,
                progress=progress,
                seed=seed,
            )
        summary = write_scenario_report(result, out, extra={"fit_dir": str(fit_dir)})
    if as_json:
        typer.echo(json.dumps(summary, indent=2, allow_nan=False))
    else:
        _print_table(summary)
    for note in summary["notes"]:
        console.print(f"[yellow]note:[/yellow] {note}", highlight=False)
    tag = " - built on a fit to SIMULATED data" if summary["simulated_data"] else ""
    console.print(f"wrote {out}/ ({', '.join(SCENARIO_FILES)}){tag}", highlight=False)


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
        table.add_column(
            f"P({t['metric']}{'>=' if t['direction'] == 'above' else '<='}{t['threshold']:g})", justify="right"
        )
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
