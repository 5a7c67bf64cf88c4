"""``carkin demo``: the whole workflow on the shipped SIMULATED virtual KarMMa-3 cohort."""

from __future__ import annotations

from pathlib import Path

import typer

from ..demo import run_demo
from ._app import app
from ._common import default_of, user_errors


@app.command("demo")
def demo_command(
    out: Path = typer.Option(Path(default_of(run_demo, "out_dir")), "--out", help="Output folder."),
    quick: bool = typer.Option(
        False, "--quick", help="Short chains and small simulations (for tests and smoke runs; the fit fails its gates)."
    ),
    seed: int = typer.Option(default_of(run_demo, "seed"), "--seed", help="Seed of the NUTS run."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Trial analysis, CK fit, diagnostics/VPC, exposure + E-R, a dose scenario and the HTML report (SIMULATED cohort)."""  # noqa: E501 (typer shows the first paragraph's line breaks)
    with user_errors():
        result = run_demo(out, quick=quick, seed=seed, progress=progress)
    if not result.fit_converged and not quick:
        raise typer.Exit(code=1)
