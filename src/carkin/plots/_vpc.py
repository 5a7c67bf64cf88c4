"""The pcVPC figure: percentiles with simulated bands per stratum, and the BLQ-fraction panel below."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["plot_vpc"]


def plot_vpc(result, *, simulated: bool = False, show_points: bool = True):
    """Draw a `carkin.diagnostics.VPCResult`: one column per stratum; top row percentiles, bottom row BLQ.

    Observed percentiles are lines (median solid, outer dashed), simulated bands are shaded (median band
    red, outer bands blue); hidden points (below the BLQ fraction) are left out. Each stratum is drawn in its
    analyte's unit: on a log axis for a log-scale analyte, on a linear one for a linear-scale analyte (PK
    concentrations, 0 before the first dose). Time is drawn as the data give it (``result.time_unit``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    n_strata = len(result.strata)
    fig, axes = plt.subplots(2, n_strata, figsize=(4.6 * n_strata + 0.6, 6.4), squeeze=False,
                             gridspec_kw={"height_ratios": [3, 1.3]}, sharex=True)
    colours = ["tab:blue", "tab:red", "tab:blue"]
    mid = len(result.quantiles) // 2
    several = len(set(result.analyte)) > 1
    for s in range(n_strata):
        ax, bx = axes[0, s], axes[1, s]
        t = result.time[s]
        ok = np.isfinite(t)
        log = not result.scale or result.scale[s] != "linear"

        def natural(values, s=s):
            return result.natural(values, s)

        if show_points:
            members = result.points_stratum == s
            q, c = members & ~result.points_blq, members & result.points_blq
            ax.plot(result.points_time[q], natural(result.points_value[q]), "o", ms=1.8, alpha=0.25, color="0.3")
            ax.plot(result.points_time[c], natural(result.points_value[c]), "v", ms=2.5, alpha=0.3, color="tab:red",
                    mfc="none")
        for k, qv in enumerate(result.quantiles):
            colour = colours[1] if k == mid else colours[0]
            ax.fill_between(t[ok], natural(result.simulated_lower[s, ok, k]), natural(result.simulated_upper[s, ok, k]),
                            color=colour, alpha=0.2, lw=0)
            ax.plot(t[ok], natural(result.observed[s, ok, k]), color=colour if k == mid else "black",
                    ls="-" if k == mid else "--", lw=1.5, marker=".", label=f"observed {100 * qv:g}th")
        lloq = natural(result.log_lloq[s, ok])
        if np.any(np.isfinite(lloq) & (lloq > 0)):
            ax.plot(t[ok], np.where(lloq > 0, lloq, np.nan), color="0.5", lw=0.8, ls=":", label="LLOQ")
        ax.set_yscale("log" if log else "linear")
        if result.time_scale == "symlog":
            ax.set_xscale("symlog", linthresh=30)
        ax.set_title(result.strata[s] + f" ({int(result.count[s].sum())} records)", fontsize=9)
        ax.grid(alpha=0.3, lw=0.5)
        if several or s == 0:
            unit = result.unit[s] if result.unit else "copies/ug"
            name = result.analyte[s] if result.analyte else "transgene"
            ax.set_ylabel(("prediction-corrected " if result.prediction_corrected else "") + name
                          + (f", {unit}" if unit else ""))
        bx.fill_between(t[ok], result.blq_lower[s, ok], result.blq_upper[s, ok], color="tab:blue", alpha=0.25, lw=0,
                        label=f"simulated {100 * result.level:g}%")
        bx.plot(t[ok], result.blq_median[s, ok], color="tab:blue", lw=1)
        bx.plot(t[ok], result.blq_observed[s, ok], "o-", color="black", ms=3, lw=1, label="observed")
        bx.set_ylim(-0.02, 1.02)
        bx.set_xlabel(result.time_label)
        bx.grid(alpha=0.3, lw=0.5)
    axes[1, 0].set_ylabel("fraction BLQ")
    axes[0, 0].legend(fontsize=6, loc="upper right")
    axes[1, 0].legend(fontsize=6, loc="upper left")
    kind = "pcVPC" if result.prediction_corrected else "VPC"
    fig.suptitle(
        f"{kind}: observed percentiles vs simulated {100 * result.level:g}% bands ({result.replicates} replicates)"
        + (" - SIMULATED data" if simulated else "")
    )
    fig.tight_layout()
    return fig
