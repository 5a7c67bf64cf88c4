"""The one-page summary of a trial analysis, and writing results.json, km.png and summary.md atomically."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from .._atomic import atomic_directory
from ._plots import plot_trial_km
from ._result import format_p
from ._trial_analysis import STRATIFICATION_FACTORS, TrialAnalysis

__all__ = ["REPORT_FILES", "trial_summary", "write_trial_report"]

REPORT_FILES = ("results.json", "km.png", "summary.md")


def trial_summary(analysis: TrialAnalysis) -> str:
    """A one-page markdown summary of `analyze_trial`'s results (says SIMULATED when the cohort is)."""
    first, second = analysis.arms
    level = f"{100 * (1 - analysis.alpha):g}%"
    hr, lr, cmh, fu = analysis.hazard_ratio, analysis.logrank, analysis.cmh, analysis.followup
    lines = ["# Primary analysis: progression-free survival (intention to treat)", ""]
    if analysis.simulated:
        lines += ["> **SIMULATED cohort.** These numbers come from a simulated table, not from trial data.", ""]
    if analysis.source:
        lines += [f"Data: `{analysis.source}`.", ""]
    total = sum(analysis.n_randomized.values())
    lines += [
        f"{total} patients randomized, {sum(analysis.events.values())} PFS events; median follow-up "
        f"{_num(fu.median)} months by reverse Kaplan-Meier (range {fu.min:.1f}-{fu.max:.1f}).",
        "",
        f"| | {first} | {second} |",
        "|---|---|---|",
        f"| randomized | {analysis.n_randomized[first]} | {analysis.n_randomized[second]} |",
    ]
    if analysis.n_infused:
        lines.append(f"| infused / treated | {analysis.n_infused[first]} | {analysis.n_infused[second]} |")
    lines.append(f"| PFS events | {analysis.events[first]} | {analysis.events[second]} |")
    cells = [
        _interval(analysis.km[a].median, analysis.km[a].median_ci_low, analysis.km[a].median_ci_high)
        for a in analysis.arms
    ]
    lines.append(f"| median PFS, months ({level} CI) | {cells[0]} | {cells[1]} |")
    for t in sorted({e.time for e in analysis.landmarks.estimates}):
        cells = []
        for arm in analysis.arms:
            e = analysis.landmarks.get(arm, t)
            cells.append(_interval(100 * e.survival, 100 * e.ci_low, 100 * e.ci_high, digits=0, unit="%"))
        lines.append(f"| PFS at {t:g} months ({level} CI) | {cells[0]} | {cells[1]} |")
    cells = []
    for arm in analysis.arms:
        r = analysis.orr[arm]
        cells.append(
            f"{r.responders}/{r.n} = " + _interval(100 * r.rate, 100 * r.ci_low, 100 * r.ci_high, digits=0, unit="%")
        )
    lines.append(f"| overall response, PR or better ({level} exact CI) | {cells[0]} | {cells[1]} |")
    factors = ", ".join(STRATIFICATION_FACTORS)
    hr_text = _interval(hr.hazard_ratio, hr.hr_ci_low, hr.hr_ci_high, digits=2)
    or_text = _interval(cmh.odds_ratio, cmh.ci_low, cmh.ci_high, digits=2)
    lines += [
        "",
        f"- **Hazard ratio** {first} vs {second}: {hr_text} ({level} CI), Cox model stratified by {factors} "
        f"(Efron ties); Wald p {format_p(hr.p_value)}.",
        f"- **Stratified log-rank test** (two-sided): chi-square {lr.statistic:.2f} on {lr.df} df, "
        f"p {format_p(lr.p_value)} (p = {lr.p_value:.2g}); {first} observed {lr.groups[0].observed:g} events vs "
        f"{lr.groups[0].expected:.1f} expected.",
        f"- **Odds ratio for response** (Cochran-Mantel-Haenszel, same strata): {or_text} ({level} CI, "
        f"Robins-Breslow-Greenland); CMH p {format_p(cmh.p_value)}.",
        "",
        "Methods: Kaplan-Meier medians with Brookmeyer-Crowley intervals (log-log transform); landmark PFS with "
        "log-log pointwise intervals; response rates with Clopper-Pearson intervals; every randomized patient "
        "analysed in the arm assigned (ITT); NE counts as no response. Figure: `km.png`.",
        "",
    ]
    return "\n".join(lines)


def write_trial_report(analysis: TrialAnalysis, out_dir: str | os.PathLike[str]) -> Path:
    """Write ``results.json``, ``km.png`` and ``summary.md`` into ``out_dir``, all or nothing.

    The files are written into a temporary sibling directory that then replaces ``out_dir``
    (`carkin._atomic.atomic_directory`), so a failure never leaves a half-written report. An existing
    ``out_dir`` is replaced only if it holds nothing but these three files (a previous report); otherwise
    nothing is touched and an error is raised.

    Returns
    -------
    pathlib.Path
        The output directory.

    Raises
    ------
    FileExistsError
        If ``out_dir`` exists and is not a previous report directory.
    """
    out = Path(out_dir).absolute()
    with atomic_directory(out, owned=REPORT_FILES) as staging:
        (staging / "results.json").write_text(
            json.dumps(analysis.to_dict(), indent=2, allow_nan=False) + "\n", encoding="utf-8"
        )
        (staging / "summary.md").write_text(trial_summary(analysis), encoding="utf-8")
        plot_trial_km(analysis).savefig(staging / "km.png", dpi=150)
        staging.chmod(0o755)  # mkdtemp makes it owner-only
    return out


def _num(value: float, digits: int = 1) -> str:
    """A number, 'NR' when infinite (not reached) and 'NA' when NaN (not estimable)."""
    if math.isinf(value):
        return "NR"
    if math.isnan(value):
        return "NA"
    return f"{value:.{digits}f}"


def _interval(value: float, low: float, high: float, *, digits: int = 1, unit: str = "") -> str:
    """'13.3 (11.8-16.1)'; NR marks a bound not reached, NA one not estimable."""
    return f"{_num(value, digits)}{unit} ({_num(low, digits)}-{_num(high, digits)})"
