"""Goodness-of-fit panels: DV vs PRED, DV vs IPRED, IWRES vs time, IWRES vs IPRED (log axes, or linear ones for a
linear-scale error model)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["plot_gof"]


def _identity(ax, x, y):
    lo = np.nanmin([np.nanmin(x), np.nanmin(y)])
    hi = np.nanmax([np.nanmax(x), np.nanmax(y)])
    ax.plot([lo, hi], [lo, hi], color="tab:red", lw=1)


def plot_gof(gof, *, simulated: bool = False):
    """Four panels from a `carkin.diagnostics.GoodnessOfFit`; BLQ records drawn as open triangles at the LLOQ.

    Returns
    -------
    matplotlib.figure.Figure
    """
    q, c = ~gof.blq, gof.blq
    linear = getattr(gof, "linear", False)  # a linear-scale error model (PK): linear axes, DV may be 0
    unit, time_label = ("", "time after the first dose") if linear else (", copies/ug", "days after infusion")
    fig, axes = plt.subplots(2, 2, figsize=(9, 7.5))
    for ax, pred, label in ((axes[0, 0], gof.pred, "PRED"), (axes[0, 1], gof.ipred, "IPRED")):
        ax.plot(pred[q], gof.dv[q], "o", ms=2.5, alpha=0.4, color="black", label="observed")
        ax.plot(pred[c], gof.dv[c], "v", ms=3.5, mfc="none", mec="tab:red", alpha=0.6, label="BLQ (at LLOQ)")
        if not linear:
            ax.set_xscale("log")
            ax.set_yscale("log")
        _identity(ax, pred, gof.dv)
        ax.set_xlabel(f"{label}{unit}")
        ax.set_ylabel(f"DV{unit}")
        ax.set_title(f"Observed vs {label}")
    axes[0, 0].legend(fontsize=7)
    ax = axes[1, 0]
    ax.plot(gof.times[q], gof.iwres[q], "o", ms=2.5, alpha=0.4, color="black")
    if not linear:
        ax.set_xscale("symlog", linthresh=30)
    ax.set_xlabel(time_label)
    ax = axes[1, 1]
    ax.plot(gof.ipred[q], gof.iwres[q], "o", ms=2.5, alpha=0.4, color="black")
    if not linear:
        ax.set_xscale("log")
    ax.set_xlabel(f"IPRED{unit}")
    for ax in axes[1]:
        ax.axhline(0, color="tab:red", lw=1)
        for y in (-2, 2):
            ax.axhline(y, color="tab:red", lw=0.7, ls="--")
        ax.set_ylabel("IWRES" if linear else "IWRES (log scale)")
        ax.set_title("Individual residuals")
    for ax in axes.ravel():
        ax.grid(alpha=0.3, lw=0.5)
    fig.suptitle("Goodness of fit" + (" - SIMULATED data" if simulated else ""))
    fig.tight_layout()
    return fig
