"""NPDE panels per analyte: histogram against N(0, 1), NPDE vs time and vs population prediction."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from scipy import stats

from ._axes import labels_or_default, set_time_axis

__all__ = ["plot_npde"]


def plot_npde(gof, *, simulated: bool = False):
    """Three panels per analyte from a `carkin.diagnostics.GoodnessOfFit` (BLQ records included, drawn in red).

    PRED is on a log axis for a log-scale analyte, on a linear one for a linear-scale analyte (e.g. a PK
    concentration, 0 before the first dose).

    Returns
    -------
    matplotlib.figure.Figure
    """
    labels = labels_or_default(gof.labels)
    analyte = gof.analyte if gof.analyte is not None else np.zeros(gof.npde.shape, dtype=int)
    n = len(labels.analytes)
    fig, grid = plt.subplots(n, 3, figsize=(12, 3.6 * n), squeeze=False)
    bins = np.linspace(-4, 4, 200)
    for k, axes in enumerate(grid):
        mine = analyte == k
        x = gof.npde[mine]
        prefix = f"{labels.analytes[k]}: " if n > 1 else ""
        axes[0].hist(x, bins=30, range=(-4, 4), density=True, color="0.7", edgecolor="white")
        axes[0].plot(bins, stats.norm.pdf(bins), color="tab:red")
        axes[0].set_xlabel("NPDE")
        sd = np.std(x, ddof=1) if x.size > 1 else float("nan")
        axes[0].set_title(f"{prefix}mean {np.mean(x):.2f}, SD {sd:.2f} (ideal 0, 1)", fontsize=9)
        for ax, xv in ((axes[1], gof.times), (axes[2], gof.pred)):
            q, c = mine & ~gof.blq, mine & gof.blq
            ax.plot(xv[q], gof.npde[q], "o", ms=2.5, alpha=0.4, color="black")
            ax.plot(xv[c], gof.npde[c], "v", ms=3, alpha=0.5, color="tab:red")
            for y, ls in ((0, "-"), (-1.645, "--"), (1.645, "--")):
                ax.axhline(y, color="tab:red", lw=0.8, ls=ls)
            ax.set_ylabel("NPDE")
        set_time_axis(axes[1], labels)
        axes[2].set_xscale("log" if labels.log_scale[k] else "linear")
        axes[2].set_xlabel(labels.value_label(k, "PRED"))
        for ax in axes:
            ax.grid(alpha=0.3, lw=0.5)
    fig.suptitle("Normalised prediction discrepancies" + (" - SIMULATED data" if simulated else ""))
    fig.tight_layout()
    return fig
