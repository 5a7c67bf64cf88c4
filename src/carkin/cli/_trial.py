"""``carkin trial design`` and ``carkin trial simulate``, on the ``trial`` group of ``_survival.py``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from ..trial import simulate_trials
from ._common import console, default_of, user_errors
from ._survival import trial_app

_DESIGN = typer.Option(
    ..., "--design", help="Trial design (TOML), e.g. designs/karmma3.toml (or a shipped name: karmma3)."
)
_JSON = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")


@trial_app.command("design")
def trial_design_command(design: Path = _DESIGN, as_json: bool = _JSON) -> None:
    """Group-sequential boundaries (Lan-DeMets, recursive integration) and Schoenfeld power; no simulation."""
    from ..trial import analyse_design, load_design

    with user_errors():
        report = analyse_design(load_design(design)).to_dict()
    if as_json:
        typer.echo(json.dumps(report, indent=2, allow_nan=False))
        return
    _print_looks(report["design"], report["boundaries"]["looks"], simulated=False)
    console.print(
        f"Schoenfeld power (fixed design, {report['design']['events']} events, "
        f"HR {report['design']['hazard_ratio']:.3f}): "
        f"{report['schoenfeld_power']:.3f}; group-sequential power {report['group_sequential_power']:.3f} "
        f"(futility ignored: {report['group_sequential_power_nonbinding']:.3f}); expected events under H1 "
        f"{report['expected_events_h1']:.1f}, under H0 {report['expected_events_h0']:.1f}",
        highlight=False,
    )


@trial_app.command("simulate")
def trial_simulate_command(
    design: Path = _DESIGN,
    replicates: int = typer.Option(10_000, "--replicates", min=1, help="Number of simulated trials."),
    seed: int = typer.Option(0, "--seed", help="Seed of the jax.random key (recorded in the output)."),
    null: bool = typer.Option(
        False, "--null", help="Simulate under H0 (experimental arm = control arm): type I error."
    ),
    batch_size: int = typer.Option(
        default_of(simulate_trials, "batch_size"), "--batch-size", min=1, help="Replicates per compiled call."
    ),
    as_json: bool = _JSON,
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Simulate trials: power, stopping probabilities per look, expected events and duration (with MC SEs)."""
    import jax

    from ..trial import load_design

    with user_errors():
        trial = load_design(design)
        if null:
            trial = trial.under_null()
        sim = simulate_trials(
            trial, key=jax.random.PRNGKey(seed), replicates=replicates, batch_size=batch_size, progress=progress,
            seed=seed,
        )
    summary = sim.summary()
    if as_json:
        typer.echo(json.dumps(summary, indent=2, allow_nan=False))
        return
    _print_looks(summary["design"], summary["looks"], simulated=True)

    def est(d, digits=3):
        se = "-" if d["mc_se"] is None else f"{d['mc_se']:.{digits}f}"
        return f"{d['estimate']:.{digits}f} (MC SE {se})"

    what = "type I error" if null else "power"
    console.print(
        f"{summary['replicates']} replicates, seed {seed}, {'H0' if null else 'H1 (design assumptions)'}: "
        f"{what} {est(summary['power'])}, futility ignored {est(summary['power_nonbinding'])}; analytic "
        f"{summary['analytic']['group_sequential_power']:.3f}, "
        f"Schoenfeld fixed-design {summary['analytic']['schoenfeld_power_fixed']:.3f}\n"
        f"expected events {est(summary['expected_events'], 1)}, expected duration "
        f"{est(summary['expected_duration_months'], 2)} months",
        highlight=False,
    )


def _print_looks(design: dict, looks: list[dict], *, simulated: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{design['name']}: {design['n_patients']} patients {design['ratio'][0]}:{design['ratio'][1]}, "
                  f"{design['events']} events, one-sided alpha {design['alpha']:g}", title_justify="left")
    columns = ["look", "events", "info", "eff z", "eff p", "fut z", "fut p"]
    columns += ["P(eff)", "P(fut)", "months"] if simulated else ["P(eff|H1)", "P(fut|H1)", "P(eff|H0)"]
    for name in columns:
        table.add_column(name, justify="right")

    def num(v, fmt):
        return "-" if v is None else format(v, fmt)

    for look in looks:
        row = [str(look["look"]), str(look["events"]), f"{look['information']:.3f}", num(look["efficacy_z"], ".3f"),
               num(look["efficacy_p"], ".4f"), num(look["futility_z"], ".3f"), num(look["futility_p"], ".3f")]
        if simulated:
            row += [f"{look['prob_stop_efficacy']['estimate']:.3f}", f"{look['prob_stop_futility']['estimate']:.3f}",
                    f"{look['mean_time_months']['estimate']:.1f}"]
        else:
            row += [
                f"{look['alternative']['efficacy']:.3f}",
                f"{look['alternative']['futility']:.3f}",
                f"{look['null']['efficacy']:.4f}",
            ]
        table.add_row(*row)
    Console(width=None if sys.stdout.isatty() else 120).print(table)
