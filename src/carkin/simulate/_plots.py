"""Figures of a dose scenario: profiles by dose with both bands, and exposure distributions by dose.

Functions return a matplotlib Figure and never show or save it (house rule 12).
"""

from __future__ import annotations

import numpy as np

from ._scenario_result import ScenarioResult

__all__ = ["plot_scenario_exposure", "plot_scenario_profiles"]


def _title(result: ScenarioResult, what: str) -> str:
    simulated = " - fit to SIMULATED data" if result.fit_info.get("simulated") else ""
    return f"{result.scenario.name}: {what}{simulated}"


def plot_scenario_profiles(result: ScenarioResult):
    """One panel per dose: the typical curve (median across draws), its parameter-uncertainty band, the
    between-patient (population) band and the LLOQ the observations are censored at, on a log scale
    (copies/ug) against days after infusion."""
    import matplotlib.pyplot as plt

    bands = result.bands()
    n = len(result.doses)
    cols = 2 if n == 4 else min(n, 3)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), sharex=True, sharey=True, squeeze=False)
    pct = round(100 * result.scenario.interval)
    t = result.times
    for i, dose in enumerate(result.doses):
        ax = axes.flat[i]
        ax.fill_between(t, bands["population_lower"][i], bands["population_upper"][i], color="tab:blue", alpha=0.18,
                        lw=0, label=f"between-patient {pct}% band")
        ax.plot(t, bands["population_median"][i], color="tab:blue", lw=1, ls="--", label="population median")
        ax.fill_between(t, bands["typical_lower"][i], bands["typical_upper"][i], color="tab:orange", alpha=0.45, lw=0,
                        label=f"typical patient, {pct}% parameter uncertainty")
        ax.plot(t, bands["typical_median"][i], color="tab:red", lw=1.5, label="typical patient (posterior median)")
        if result.lloq is not None:
            ax.axhline(result.lloq, color="0.4", lw=0.8, ls=":", label=f"LLOQ ({result.lloq:g} copies/ug)")
        ax.set_yscale("log")
        ax.set_title(f"dose {dose:g} x10^6 CAR+ T cells", fontsize=9)
        ax.grid(alpha=0.3, which="both", lw=0.4)
        if i % cols == 0:
            ax.set_ylabel("transgene, copies/ug gDNA")
        if i >= (rows - 1) * cols:
            ax.set_xlabel("days after infusion")
    for j in range(n, rows * cols):
        axes.flat[j].set_visible(False)
    # levels far below any assay's LLOQ (e.g. the 5th percentile at day 0) only squash the plot
    floor = max(1e-2, 0.5 * float(np.min(bands["typical_lower"][:, result.times > 0])) * 1e-3)
    axes.flat[0].set_ylim(bottom=floor)
    axes.flat[0].legend(fontsize=7, loc="lower left")
    fig.suptitle(_title(result, f"profiles ({result.n_draws} draws x {result.n_patients} patients)"), fontsize=10)
    fig.tight_layout()
    return fig


def plot_scenario_exposure(result: ScenarioResult, metrics: tuple[str, ...] | None = None):
    """Box plots (5-25-50-75-95%) of the predictive distribution of exposure metrics by dose, log scale,
    with the target threshold when the scenario has one."""
    import matplotlib.pyplot as plt

    names = metrics or tuple(m for m in result.metrics if m != "tmax")
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6), squeeze=False)
    labels = [f"{d:g}" for d in result.doses]
    target = result.scenario.target
    prob = result.target_probability()
    for ax, name in zip(axes.flat, names, strict=True):
        q = result.exposure_quantiles(name)  # (doses, 5): 5, 25, 50, 75, 95%
        stats = [
            {"med": row[2], "q1": row[1], "q3": row[3], "whislo": row[0], "whishi": row[4], "label": lab, "fliers": []}
            for row, lab in zip(q, labels, strict=True)
        ]
        ax.bxp(stats, showfliers=False)
        ax.set_yscale("log")
        ax.set_xlabel("dose, x10^6 CAR+ T cells")
        unit = "copies/ug" if name == "cmax" else "copies/ug x day"
        ax.set_ylabel(f"{name} ({unit})")
        ax.grid(alpha=0.3, which="both", lw=0.4, axis="y")
        if target is not None and target.metric == name:
            ax.axhline(target.threshold, color="tab:red", lw=1, ls="--")
            for i, p in enumerate(prob["pooled"]):
                ax.annotate(f"P={p:.2f}", (i + 1, target.threshold), textcoords="offset points", xytext=(0, 4),
                            ha="center", fontsize=7, color="tab:red")
    fig.suptitle(_title(result, "exposure by dose (whiskers 5-95%)"), fontsize=10)
    fig.tight_layout()
    return fig
