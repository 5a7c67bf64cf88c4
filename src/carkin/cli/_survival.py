"""``carkin survival km | logrank | cox`` and ``carkin trial analyze``: thin layers over `carkin.survival`."""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table

from ._app import app
from ._common import split_list, user_errors

survival_app = typer.Typer(
    name="survival",
    help="Kaplan-Meier, log-rank and Cox analyses of a CSV table (one row per subject).",
    no_args_is_help=True,
)
trial_app = typer.Typer(name="trial", help="Trial analyses: the KarMMa-3 primary PFS analysis.", no_args_is_help=True)
app.add_typer(survival_app, name="survival")
app.add_typer(trial_app, name="trial")


class TiesOption(enum.StrEnum):
    efron = "efron"
    breslow = "breslow"


_DATA = typer.Argument(..., help="CSV table, one row per subject ('#' comment lines skipped, '.' = missing).")
_TIME = typer.Option(..., "--time", help="Column of follow-up times (>= 0).")
_EVENT = typer.Option(..., "--event", help="Column of the event indicator (1 event, 0 censored).")
_STRATA = typer.Option(None, "--strata", help="Stratification column; repeat the option or separate names by commas.")
_JSON = typer.Option(False, "--json", help="Print machine-readable JSON instead of a table.")


@survival_app.command("km")
def km_command(
    data: Path = _DATA,
    time: str = _TIME,
    event: str = _EVENT,
    group: str | None = typer.Option(None, "--group", help="Column defining the curves (one curve without)."),
    as_json: bool = _JSON,
) -> None:
    """Kaplan-Meier medians with 95% CIs (Brookmeyer-Crowley, log-log), per group."""
    from ..data import read_table
    from ..survival import kaplan_meier

    with user_errors():
        result = kaplan_meier(read_table(data), time=time, event=event, group=group)
    if as_json:
        _print_json(result.to_dict(), data)
        return
    table = Table(title=f"Kaplan-Meier: {data}", title_justify="left")
    for name in ("group", "n", "events", "median", "95% CI"):
        table.add_column(name, justify="left" if name == "group" else "right")
    for curve in result.curves:
        d = curve.to_dict()
        table.add_row(
            d["label"],
            str(d["n"]),
            str(d["events"]),
            _num(d["median"]),
            f"{_num(d['median_ci_low'])}-{_num(d['median_ci_high'])}",
        )
    _stdout().print(table)


@survival_app.command("logrank")
def logrank_command(
    data: Path = _DATA,
    time: str = _TIME,
    event: str = _EVENT,
    group: str = typer.Option(..., "--group", help="Column defining the groups (two or more)."),
    strata: list[str] | None = _STRATA,
    trend: bool = typer.Option(False, "--trend", help="Test for trend across the sorted groups (scores 1, 2, ...)."),
    as_json: bool = _JSON,
) -> None:
    """Log-rank test (stratified with --strata), or the log-rank test for trend (--trend)."""
    from ..data import read_table
    from ..survival import logrank_test, logrank_trend_test

    test = logrank_trend_test if trend else logrank_test
    with user_errors():
        result = test(read_table(data), time=time, event=event, group=group, strata=split_list(strata))
    if as_json:
        _print_json(result.to_dict(), data)
        return
    d = result.to_dict()
    table = Table(title=f"{'Log-rank test for trend' if trend else 'Log-rank test'}: {data}", title_justify="left")
    for name in ("group", "n", "observed", "expected"):
        table.add_column(name, justify="left" if name == "group" else "right")
    for g in d["groups"]:
        table.add_row(g["label"], str(g["n"]), f"{g['observed']:g}", f"{g['expected']:.2f}")
    out = _stdout()
    out.print(table)
    strata_note = f", stratified by {', '.join(d['strata'])} ({d['n_strata']} strata)" if d["strata"] else ""
    z = f", z = {d['z']:.3f}" if d.get("z") is not None else ""
    out.print(
        f"chi-square = {d['statistic']:.3f} on {d['df']} df{z}, p = {d['p_value']:.3g} (two-sided){strata_note}",
        highlight=False,
    )


@survival_app.command("cox")
def cox_command(
    data: Path = _DATA,
    time: str = _TIME,
    event: str = _EVENT,
    covariates: list[str] = typer.Option(
        ..., "--covariates", help="Numeric covariate columns; repeat the option or separate names by commas."
    ),
    strata: list[str] | None = _STRATA,
    ties: TiesOption = typer.Option(TiesOption.efron, "--ties", help="Approximation for tied event times."),
    robust: bool = typer.Option(False, "--robust", help="Robust (sandwich) standard errors."),
    as_json: bool = _JSON,
) -> None:
    """Cox proportional hazards model: hazard ratios with 95% CIs and Wald p-values."""
    from ..data import read_table
    from ..survival import cox_ph

    with user_errors():
        result = cox_ph(
            read_table(data),
            time=time,
            event=event,
            covariates=split_list(covariates),
            strata=split_list(strata),
            ties=ties.value,
            robust=robust,
        )
    if as_json:
        _print_json(result.to_dict(), data)
        return
    d = result.to_dict()
    table = Table(title=f"Cox model ({d['ties']} ties{', robust SE' if robust else ''}): {data}", title_justify="left")
    for name in ("covariate", "HR", "95% CI", "coef", "SE", "p"):
        table.add_column(name, justify="left" if name == "covariate" else "right")
    for c in d["coefficients"].values():
        table.add_row(
            c["name"],
            f"{c['hazard_ratio']:.3f}",
            f"{c['hr_ci_low']:.3f}-{c['hr_ci_high']:.3f}",
            f"{c['coef']:.4f}",
            f"{c['se']:.4f}",
            f"{c['p_value']:.3g}",
        )
    out = _stdout()
    out.print(table)
    strata_note = f"; strata: {', '.join(d['strata'])}" if d["strata"] else ""
    out.print(
        f"n = {d['n']}, events = {d['n_events']}, concordance = {d['concordance']:.3f}{strata_note}", highlight=False
    )


@trial_app.command("analyze")
def trial_analyze_command(
    patients: Path = typer.Argument(
        ..., help="Patients table (CSV): ID, ARM, strata, PFS_MONTHS, PFS_EVENT, BEST_RESPONSE, ..."
    ),
    as_json: bool = _JSON,
    out: Path | None = typer.Option(
        None, "--out", help="Directory for results.json, km.png and summary.md (written atomically)."
    ),
) -> None:
    """The KarMMa-3 primary analysis: stratified log-rank, Cox HR, KM medians, PFS landmarks, ORR, CMH odds ratio."""
    from ..data import read_table
    from ..survival import analyze_trial, trial_summary, write_trial_report

    with user_errors():
        analysis = analyze_trial(read_table(patients))
        if out is not None:
            write_trial_report(analysis, out)
    if as_json:
        _print_json(analysis.to_dict(), None)
    else:
        _stdout().print(Markdown(trial_summary(analysis)))
    if out is not None:
        typer.echo(
            f"wrote {out}/ (results.json, km.png, summary.md){' - SIMULATED cohort' if analysis.simulated else ''}",
            err=True,
        )


def _print_json(payload: dict[str, Any], source: Path | None) -> None:
    if source is not None:
        payload = {"source": str(source), **payload}
    typer.echo(json.dumps(payload, indent=2, allow_nan=False))


def _stdout() -> Console:
    return Console()  # made per call, so that it writes to the current sys.stdout


def _num(value: float | None) -> str:
    return "NR" if value is None else f"{value:.2f}"
