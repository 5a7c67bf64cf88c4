"""NPDE panels: histogram against N(0, 1), NPDE vs time and vs population prediction."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from scipy import stats

__all__ = ["plot_npde"]


def plot_npde(gof, *, simulated: bool = False):
    """Three panels from a `carkin.diagnostics.GoodnessOfFit` (BLQ records included, drawn in red).

    Returns
    -------
    matplotlib.figure.Figure
    """
    x = gof.npde
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    grid = np.linspace(-4, 4, 200)
    axes[0].hist(x, bins=30, range=(-4, 4), density=True, color="0.7", edgecolor="white")
    axes[0].plot(grid, stats.norm.pdf(grid), color="tab:red")
    axes[0].set_xlabel("NPDE")
    axes[0].set_title(f"mean {np.mean(x):.2f}, SD {np.std(x, ddof=1):.2f} (ideal 0, 1)", fontsize=9)
    linear = getattr(gof, "linear", False)  # a linear-scale error model (PK): linear axes
    labels = ("time after the first dose", "PRED") if linear else ("days after infusion", "PRED, copies/ug")
    for ax, xv, label in ((axes[1], gof.times, labels[0]), (axes[2], gof.pred, labels[1])):
        ax.plot(xv[~gof.blq], x[~gof.blq], "o", ms=2.5, alpha=0.4, color="black")
        ax.plot(xv[gof.blq], x[gof.blq], "v", ms=3, alpha=0.5, color="tab:red")
        for y, ls in ((0, "-"), (-1.645, "--"), (1.645, "--")):
            ax.axhline(y, color="tab:red", lw=0.8, ls=ls)
        if not linear:
            ax.set_xscale("symlog", linthresh=30) if xv is gof.times else ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("NPDE")
    for ax in axes:
        ax.grid(alpha=0.3, lw=0.5)
    fig.suptitle("Normalised prediction discrepancies" + (" - SIMULATED data" if simulated else ""))
    fig.tight_layout()
    return fig
