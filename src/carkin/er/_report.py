"""Writing an exposure-response analysis to a folder: JSON, tables, figures and a short report, atomically.

Layout of ``OUT``:

=======================  ==============================================================================
file                     content
=======================  ==============================================================================
``er.json``              `ERAnalysis.to_dict` (stable keys) plus ``fit_dir``/``patients`` when given
``report.md``            a one-page summary (its first line says SIMULATED for a simulated cohort)
``analysis_set.csv``     analysed patients: time since landmark, event, plug-in exposure, quartile,
                         membership probabilities, covariates
``excluded.csv``         every patient left out, with the reason
``hazard_ratios.csv``    every hazard ratio (Cox and Bayesian) with its interval
``quartile_cuts.csv``    quartile cut points: plug-in and posterior 5/50/95%
``quartile_by_dose.csv`` quartile by dose level (when the doses are known)
``km_by_quartile.png``   KM by exposure quartile with numbers at risk
``forest.png``           forest plot of the hazard ratios
=======================  ==============================================================================

CSV files of a simulated analysis start with a ``# SIMULATED ...`` comment line (read them with
`carkin.data.read_table` or ``pandas.read_csv(..., comment="#", na_values=".")``).
"""

from __future__ import annotations

import json
from pathlib import Path

from .._atomic import atomic_directory
from ..data import SIMULATED_NOTE, write_table
from ._analysis import ERAnalysis
from ._plots import plot_forest, plot_km_by_quartile

__all__ = ["write_er_report", "er_report_text"]


def _fmt(x) -> str:
    return "NR" if x is None else f"{x:.2f}"


def _gate_line(name: str, diagnostics: dict) -> str:
    """One line: the convergence gate's verdict of a Bayesian fit (its failures, at most three, when it failed)."""
    if diagnostics.get("passed"):
        return (f"- {name}: passed the convergence gates (max R-hat {diagnostics['max_r_hat']:.3f}, min bulk ESS "
                f"{diagnostics['min_ess_bulk']:.0f}, min tail ESS {diagnostics['min_ess_tail']:.0f}, "
                f"{diagnostics['divergences']} divergences).")
    failures = list(diagnostics.get("failures", []))
    more = f"; and {len(failures) - 3} more (er.json)" if len(failures) > 3 else ""
    return f"- WARNING: {name} FAILED its convergence gates: {'; '.join(failures[:3])}{more}."


def er_report_text(analysis: ERAnalysis, result: dict | None = None) -> str:
    """A short markdown report of the analysis (says SIMULATED first when it is)."""
    r = result or analysis.to_dict()
    lines = []
    if r["simulated"]:
        lines += [f"**{SIMULATED_NOTE}.** Every number below is from a simulated cohort.", ""]
    lines += [
        f"# Exposure-response: PFS by {r['metric_label']} ({r['method']})",
        "",
        f"- Landmark: day {r['landmark_days']:g} after infusion; PFS measured from the landmark (months).",
        f"- Adjusted for: {', '.join(r['adjusted_for']) or 'nothing'}.",
        f"- HR per doubling of {r['metric_label']}: {_fmt(r['hr_per_doubling'])} "
        f"({100 * r['interval']:g}% interval {_fmt(r['hr_ci_low'])}-{_fmt(r['hr_ci_high'])}).",
        f"- Plug-in Cox (adjusted): {_fmt(r['plugin']['hr_per_doubling'])} "
        f"({_fmt(r['plugin']['hr_ci_low'])}-{_fmt(r['plugin']['hr_ci_high'])}); unadjusted "
        f"{_fmt(r['plugin']['unadjusted']['hr_per_doubling'])} "
        f"({_fmt(r['plugin']['unadjusted']['hr_ci_low'])}-{_fmt(r['plugin']['unadjusted']['hr_ci_high'])}).",
    ]
    if r["width_ratio"] is not None:
        lines.append(
            f"- Interval width (log scale) relative to the plug-in Bayesian PH: x{r['width_ratio']:.2f}; "
            f"relative to the plug-in Cox: x{r['width_ratio_vs_cox']:.2f}."
        )
    for key, label in (("bayes", "Bayesian PH"), ("plugin_bayes", "plug-in Bayesian PH")):
        if r.get(key) is not None:
            lines.append(_gate_line(f"{label} ({r[key]['method']})", r[key]["diagnostics"]))
    lines.append(f"- Log-rank trend across quartiles: z = {r['trend_z']:.2f}, p = {r['trend_p']:.3g}.")
    lines.append(f"- Exposure reliability Var(E[x|CK])/Var(x): {r['exposure_reliability']:.2f}; expected share of "
                 f"patients off their plug-in quartile: {r['quartile_misclassification']:.2f}.")
    lines += ["", "| quartile | n | events | median PFS (months) |", "|---|---|---|---|"]
    for q, median in r["median_pfs_by_quartile"].items():
        counts = r["quartile_counts"].get(q, {"n": 0, "events": 0})
        lines.append(f"| {q} | {counts['n']} | {counts['events']} | {_fmt(median)} |")
    c = r["counts"]
    lines += [
        "",
        "## Who is analysed",
        f"- randomised {c['randomised']}; other arm {c['other_arm']}; CAR-T arm {c['car_t_arm']}",
        f"- not infused (excluded) {c['not_infused']}; infused {c['infused']}; not CK-evaluable (excluded) "
        f"{c['not_ck_evaluable']}; CK-evaluable {c['ck_evaluable']}",
        f"- event by the landmark (excluded) {c['event_before_landmark']}; censored by the landmark (excluded) "
        f"{c['censored_before_landmark']}; analysed {c['analysed']} with {c['events']} events",
    ]
    if r["warnings"] or r["notes"]:
        lines += ["", "## Notes"] + [f"- WARNING: {w}" for w in r["warnings"]] + [f"- {n}" for n in r["notes"]]
    return "\n".join(lines) + "\n"


def write_er_report(analysis: ERAnalysis, out_dir: str | Path, *, extra: dict | None = None) -> dict:
    """Write the analysis into ``out_dir`` (replaced atomically); see the module docstring for the files.

    Parameters
    ----------
    analysis : ERAnalysis
    out_dir : path
    extra : dict, optional
        Added to ``er.json`` (e.g. ``{"fit_dir": ..., "patients": ...}``).

    Returns
    -------
    dict
        The content of ``er.json``, so that a caller prints it without reading the file back.
    """
    result = analysis.to_dict() | (extra or {})
    out_dir = Path(out_dir)
    with atomic_directory(out_dir) as tmp:
        (tmp / "er.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        (tmp / "report.md").write_text(er_report_text(analysis, result), encoding="utf-8")
        for name, table in analysis.tables().items():
            write_table(tmp / f"{name}.csv", table, simulated=analysis.simulated)
        for name, figure in (
            ("km_by_quartile.png", plot_km_by_quartile(analysis)),
            ("forest.png", plot_forest(analysis)),
        ):
            figure.savefig(tmp / name, dpi=110)
    return result
