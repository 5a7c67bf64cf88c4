"""Figures of the exposure-response analysis: KM by exposure quartile and a forest plot. Both return a Figure."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from ..survival import plot_km
from ..survival._result import format_p
from ._analysis import ERAnalysis

__all__ = ["plot_km_by_quartile", "plot_forest"]


def plot_km_by_quartile(analysis: ERAnalysis, *, at_risk_times: Sequence[float] | None = None) -> Figure:
    """PFS by plug-in exposure quartile from the landmark, with bands, medians and a number-at-risk table.

    The title says "SIMULATED" for a simulated cohort; the HR per doubling of the analysis' method and the
    log-rank trend p-value are printed on the plot.
    """
    d = analysis.data
    hr, low, high = analysis.hr_per_doubling
    title = f"PFS by {d.metric.label} quartile (landmark day {d.landmark_days:g}, n = {d.n})"
    if analysis.simulated:
        title = "SIMULATED cohort, not trial data\n" + title
    note = (
        f"HR per doubling {hr:.2f} ({100 * analysis.level:g}% {'CI' if analysis.bayes is None else 'CrI'} "
        f"{low:.2f}-{high:.2f}), {analysis.method}\nlog-rank trend p {format_p(analysis.plugin.trend.p_value)}"
    )
    if at_risk_times is None:
        last = float(np.max(d.time))
        step = 3.0 if last > 12 else 1.0
        at_risk_times = np.arange(0.0, last + 1e-9, step)
    return plot_km(
        analysis.plugin.km,
        at_risk_times=at_risk_times,
        title=title,
        xlabel=f"Months since landmark (day {d.landmark_days:g} after infusion)",
        ylabel="Progression-free survival",
        note=note,
    )


def plot_forest(analysis: ERAnalysis) -> Figure:
    """Hazard ratios with their intervals on a log axis, one row per model term (`ERAnalysis.hazard_ratio_table`)."""
    table = analysis.hazard_ratio_table()
    table = table[np.isfinite(table["hr"]) & (table["hr"] > 0)].reset_index(drop=True)
    n = len(table)
    fig = Figure(figsize=(8.5, 1.2 + 0.32 * n), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    models = list(dict.fromkeys(table["model"]))
    colors = {m: f"C{k}" for k, m in enumerate(models)}
    y = np.arange(n)[::-1]
    for row, yy in zip(table.itertuples(), y, strict=True):
        ax.plot([row.ci_low, row.ci_high], [yy, yy], color=colors[row.model], lw=1.5)
        ax.plot([row.hr], [yy], "s", color=colors[row.model], ms=5)
        ax.text(1.01, yy, f"{row.hr:.2f} ({row.ci_low:.2f}-{row.ci_high:.2f})", transform=ax.get_yaxis_transform(),
                va="center", fontsize=7)
    ax.axvline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_yticks(y, labels=[f"{r.term}" for r in table.itertuples()], fontsize=7)
    for label, row in zip(ax.get_yticklabels(), table.itertuples(), strict=True):
        label.set_color(colors[row.model])
    handles = [ax.plot([], [], "s-", color=colors[m], label=m)[0] for m in models]
    fig.legend(handles=handles, fontsize=7, loc="outside lower center", ncol=2, frameon=False)
    level = f"{100 * analysis.level:g}%"
    title = f"Hazard ratios for PFS ({level} intervals; exposure = {analysis.data.metric.label})"
    if analysis.simulated:
        title = "SIMULATED cohort, not trial data\n" + title
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("Hazard ratio (log scale; < 1 = lower hazard)")
    return fig
