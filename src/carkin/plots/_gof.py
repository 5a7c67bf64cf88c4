"""Goodness-of-fit panels per analyte: DV vs PRED, DV vs IPRED, IWRES vs time, IWRES vs IPRED.

A log-scale analyte (CAR-T transgene) is drawn on log axes; a linear-scale one (a PK concentration, which can be
0) on linear axes. Time is drawn as the data give it (`carkin.diagnostics.GoodnessOfFit.labels`).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..diagnostics._labels import Labels
from ._axes import labels_or_default, set_time_axis

__all__ = ["plot_gof"]


def _identity(ax, x, y):
    finite = np.concatenate([x[np.isfinite(x)], y[np.isfinite(y)]])
    if finite.size:
        lo, hi = finite.min(), finite.max()
        ax.plot([lo, hi], [lo, hi], color="tab:red", lw=1)


def plot_gof(gof, *, simulated: bool = False):
    """Four panels per analyte from a `carkin.diagnostics.GoodnessOfFit`; BLQ records drawn as open triangles at
    the LLOQ. One analyte: a 2 x 2 grid; several: one row of four panels per analyte.

    Returns
    -------
    matplotlib.figure.Figure
    """
    labels = labels_or_default(gof.labels)
    analyte = gof.analyte if gof.analyte is not None else np.zeros(gof.dv.shape, dtype=int)
    n = len(labels.analytes)
    if n == 1:
        fig, grid = plt.subplots(2, 2, figsize=(9, 7.5))
        blocks = [grid.ravel()]
    else:
        fig, grid = plt.subplots(n, 4, figsize=(16, 3.6 * n), squeeze=False)
        blocks = list(grid)
    for k, axes in enumerate(blocks):
        _analyte_panels(axes, gof, labels, k, analyte == k, title=n > 1)
    blocks[0][0].legend(fontsize=7)
    for ax in np.ravel(grid):
        ax.grid(alpha=0.3, lw=0.5)
    fig.suptitle("Goodness of fit" + (" - SIMULATED data" if simulated else ""))
    fig.tight_layout()
    return fig


def _analyte_panels(axes, gof, labels: Labels, k: int, mine: np.ndarray, *, title: bool) -> None:
    """The four panels of analyte ``k`` (records ``mine``)."""
    q, c = mine & ~gof.blq, mine & gof.blq
    log = labels.log_scale[k]
    scale = "log" if log else "linear"
    prefix = f"{labels.analytes[k]}: " if title else ""
    for ax, pred, name in ((axes[0], gof.pred, "PRED"), (axes[1], gof.ipred, "IPRED")):
        ax.plot(pred[q], gof.dv[q], "o", ms=2.5, alpha=0.4, color="black", label="observed")
        ax.plot(pred[c], gof.dv[c], "v", ms=3.5, mfc="none", mec="tab:red", alpha=0.6, label="BLQ (at LLOQ)")
        shown = mine & (pred > 0) & (gof.dv > 0) if log else mine
        _identity(ax, pred[shown], gof.dv[shown])
        ax.set_xscale(scale)
        ax.set_yscale(scale)
        ax.set_xlabel(labels.value_label(k, name))
        ax.set_ylabel(labels.value_label(k, "DV"))
        ax.set_title(f"{prefix}Observed vs {name}", **({"fontsize": 9} if title else {}))
    axes[2].plot(gof.times[q], gof.iwres[q], "o", ms=2.5, alpha=0.4, color="black")
    set_time_axis(axes[2], labels)
    axes[3].plot(gof.ipred[q], gof.iwres[q], "o", ms=2.5, alpha=0.4, color="black")
    axes[3].set_xscale(scale)
    axes[3].set_xlabel(labels.value_label(k, "IPRED"))
    for ax in axes[2:]:
        ax.axhline(0, color="tab:red", lw=1)
        for y in (-2, 2):
            ax.axhline(y, color="tab:red", lw=0.7, ls="--")
        ax.set_ylabel(f"IWRES ({scale} scale)")
        ax.set_title(f"{prefix}Individual residuals", **({"fontsize": 9} if title else {}))
