"""``carkin report``: one self-contained HTML report of a fit (a thin layer over `carkin.report`)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..report import build_report
from ._app import app
from ._common import console, default_of, user_errors


@app.command("report")
def report_command(
    fit_dir: Path = typer.Argument(..., help="A fit directory written by `carkin fit` (with input/ data copies)."),
    out: Path = typer.Option(..., "--out", help="Output HTML file (written atomically)."),
    er: Path | None = typer.Option(None, "--er", help="Output folder of `carkin er` (er.json, figures) to include."),
    sim: Path | None = typer.Option(None, "--sim", help="Output folder of `carkin simulate` (summary.json, figures)."),
    exposure: Path | None = typer.Option(None, "--exposure", help="Output folder of `carkin exposure` "
                                         "(default FIT_DIR/exposure when present)."),
    diagnostics: Path | None = typer.Option(None, "--diagnostics", help="Diagnostics folder written by `carkin demo` "
                                            "(default: computed from the fit)."),
    stratify: str | None = typer.Option(None, "--stratify", help="VPC strata covariate, e.g. DOSE."),
    replicates: int = typer.Option(
        default_of(build_report, "replicates"), "--replicates", min=2, help="VPC replicates."
    ),
    seed: int = typer.Option(default_of(build_report, "seed"), "--seed", help="Seed of the diagnostics' simulations."),
) -> None:
    """Data, model, convergence verdict, parameters, GOF/NPDE/VPC, exposure, E-R and scenario results in one HTML file."""  # noqa: E501 (typer shows the first paragraph's line breaks)
    import warnings

    from ..report import write_report

    with user_errors(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # arviz/matplotlib chatter; the verdict is in the report
        path = write_report(fit_dir, out, er_dir=er, sim_dir=sim, exposure_dir=exposure, diagnostics_dir=diagnostics,
                            stratify=stratify, replicates=replicates, seed=seed)
    console.print(f"wrote {path}", highlight=False)
