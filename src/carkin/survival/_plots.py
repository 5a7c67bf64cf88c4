"""Kaplan-Meier figures with a number-at-risk table. Functions return a Figure and never show it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from ._kaplan_meier import KaplanMeierResult
from ._result import format_p, json_label
from ._trial_analysis import TrialAnalysis

__all__ = ["plot_km", "plot_trial_km"]

_TRIAL_AT_RISK_TIMES = tuple(range(0, 37, 3))  # months 0, 3, ..., 36


def plot_km(
    km: KaplanMeierResult,
    *,
    at_risk_times: Sequence[float] | None = None,
    title: str | None = None,
    xlabel: str = "Time",
    ylabel: str = "Survival probability",
    show_ci: bool = True,
    show_median: bool = True,
    note: str | None = None,
) -> Figure:
    """Kaplan-Meier curves with pointwise bands, censoring ticks, medians marked and a number-at-risk table.

    Parameters
    ----------
    km : KaplanMeierResult
        From `kaplan_meier`.
    at_risk_times : sequence of float, optional
        Times (unit of the data) at which the table under the plot counts subjects at risk; they also set
        the x ticks and the x range. Default: six evenly spaced times up to the last observed time.
    title, xlabel, ylabel : str
        Labels.
    show_ci, show_median : bool
        Draw the pointwise bands; mark each reached median with dashed guides and in the legend.
    note : str, optional
        Text printed above the legend, upper right (e.g. the hazard ratio).

    Returns
    -------
    matplotlib.figure.Figure
        A new figure (not attached to pyplot); save it with ``fig.savefig(path)``.
    """
    last = max(float(c.max_time) for c in km.curves)
    ticks = np.asarray(at_risk_times if at_risk_times is not None else np.linspace(0, last, 6), dtype=float)
    height = 4.2 + 0.28 * len(km.curves)
    fig = Figure(figsize=(7.5, height), layout="constrained")
    grid = fig.add_gridspec(2, 1, height_ratios=[4.2, 0.45 + 0.28 * len(km.curves)])
    ax = fig.add_subplot(grid[0])
    table = fig.add_subplot(grid[1], sharex=ax)
    colors = [f"C{k}" for k in range(len(km.curves))]
    for curve, color in zip(km.curves, colors, strict=True):
        label = json_label(curve.label)
        if show_median and np.isfinite(curve.median):
            label += f" (median {curve.median:.1f})"
        ax.step(curve.timeline, curve.survival, where="post", color=color, label=label)
        if show_ci:
            ax.fill_between(
                curve.timeline, curve.ci_low, curve.ci_high, step="post", color=color, alpha=0.15, linewidth=0
            )
        censored = curve.censored > 0
        ax.plot(curve.timeline[censored], curve.survival[censored], "|", color=color, markersize=6)
        if show_median and np.isfinite(curve.median):
            ax.plot([0, curve.median], [0.5, 0.5], ls=":", color="grey", lw=0.8)
            ax.plot([curve.median, curve.median], [0, 0.5], ls="--", color=color, lw=0.8)
    ax.set_ylim(0, 1.02)
    ax.set_xlim(0, max(ticks.max(), 1e-9))
    ax.set_ylabel(ylabel)
    ax.legend(loc="upper right", frameon=False, title=note, title_fontsize=9, alignment="left")
    ax.tick_params(labelbottom=False)
    if title:
        ax.set_title(title)
    _at_risk_table(table, km, ticks, colors)
    table.set_xlabel(xlabel)
    return fig


def _at_risk_table(ax, km: KaplanMeierResult, ticks: np.ndarray, colors: list[str]) -> None:
    n = len(km.curves)
    rows = [n - 1 - row for row in range(n)]
    for y, curve, color in zip(rows, km.curves, colors, strict=True):
        for t, count in zip(ticks, curve.number_at_risk(ticks), strict=True):
            ax.text(t, y, str(count), ha="center", va="center", fontsize=8, color=color)
    ax.set_ylim(-0.6, n - 0.4)
    ax.set_xticks(ticks)
    ax.set_yticks(rows, labels=[json_label(c.label) for c in km.curves], fontsize=8)
    ax.tick_params(axis="y", length=0, pad=16)
    for label, color in zip(ax.get_yticklabels(), colors, strict=True):
        label.set_color(color)
    ax.set_title("Number at risk", loc="left", fontsize=8)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)


def plot_trial_km(analysis: TrialAnalysis, *, at_risk_times: Sequence[float] = _TRIAL_AT_RISK_TIMES) -> Figure:
    """PFS by arm for `analyze_trial`: both arms, bands, medians, at-risk table at 0, 3, ..., 36 months.

    The title says "SIMULATED cohort" when the analysed table is simulated; the hazard ratio and the
    stratified log-rank p-value are printed on the plot.
    """
    hr = analysis.hazard_ratio
    title = "Progression-free survival (ITT)"
    if analysis.simulated:
        title += ": SIMULATED cohort, not trial data"
    note = (
        f"HR {hr.hazard_ratio:.2f} ({100 * (1 - analysis.alpha):g}% CI {hr.hr_ci_low:.2f}-{hr.hr_ci_high:.2f})\n"
        f"stratified log-rank p {format_p(analysis.logrank.p_value)}"
    )
    return plot_km(
        analysis.km,
        at_risk_times=at_risk_times,
        title=title,
        xlabel="Months since randomization",
        ylabel="Progression-free survival",
        note=note,
    )
