"""Individual fit panels: observed records (BLQ drawn distinctly) over the posterior predicted curve, per analyte."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np

from ..data import Dataset
from ..diagnostics._labels import labels_of
from ..diagnostics._simulation import grid_data, log_prediction_draws, observation_draws
from ..simulate import posterior_population_draws

__all__ = ["plot_individual_fits"]


def plot_individual_fits(
    fit,
    dataset: Dataset,
    *,
    patients: int | list[str] = 12,
    max_draws: int = 200,
    simulated: bool | None = None,
    grid_points: int = 200,
):
    """Observed values and the posterior median curve with a 90% band, one panel per patient and analyte.

    The curves are the likelihood's predictions (`carkin.population.record_log_predictions`): each patient's
    doses and co-medication, each analyte's model output and scaling factor. A log-scale analyte is drawn on a
    log axis, a linear-scale one (e.g. a PK concentration, 0 before the first dose) on a linear axis; time as the
    data give it (symlog days for the CAR-T models, linear for the dosed PK models).

    Parameters
    ----------
    fit : carkin.Fit
    dataset : Dataset
        The data the fit used.
    patients : int or list of str
        How many patients (the first ones, in data order) or which patient IDs to draw.
    max_draws : int
        Posterior draws used for the band (thinned evenly).
    simulated : bool, optional
        Adds "SIMULATED data" to the title; default: the fit's data say so (``fit.simulated``).
    grid_points : int
        Points of each curve.

    Returns
    -------
    matplotlib.figure.Figure
    """
    simulated = fit.simulated or dataset.simulated if simulated is None else simulated
    spec = fit.spec
    labels = labels_of(spec)
    ids = list(dataset.patient_ids)
    chosen = [ids.index(p) for p in patients] if isinstance(patients, list) else list(range(min(patients, len(ids))))
    phi = np.asarray(fit.idata.posterior["phi"].values, dtype=float)
    phi = phi.reshape(-1, *phi.shape[-2:])
    take = np.unique(np.linspace(0, phi.shape[0] - 1, min(max_draws, phi.shape[0])).astype(int))
    times = np.asarray(dataset.times)
    mask = np.asarray(dataset.obs_mask)
    t_max = float(times[mask].max())
    if labels.time_scale == "symlog":
        grid = np.concatenate([[0.0], np.geomspace(0.5, max(t_max * 1.05, 30.0), grid_points - 1)])
    else:
        grid = np.linspace(0.0, t_max * 1.05 if t_max > 0 else 1.0, grid_points)
    data, n_analytes = grid_data(dataset, spec, chosen, grid)
    _, values = posterior_population_draws(fit)
    extras = observation_draws(spec, {k: v[take] for k, v in values.items()})
    log_c = np.asarray(log_prediction_draws(spec, data, phi[take][:, chosen], log_scale=extras["log_scale"],
                                            gamma=extras["gamma"]))
    curves = np.exp(log_c).reshape(take.size, len(chosen), n_analytes, grid.size)
    lo, med, hi = np.quantile(curves, [0.05, 0.5, 0.95], axis=0)

    codes = dataset.analyte_codes
    analyte_of = {a.code: k for k, a in enumerate(spec.analytes)}
    panels = [(j, k) for j in range(len(chosen)) for k in range(n_analytes)]
    cols = n_analytes * max(1, 4 // n_analytes)
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False, sharey=n_analytes == 1)
    dv, blq = np.asarray(dataset.dv), np.asarray(dataset.blq)
    # the grid may have more axes than panels (the spare ones are hidden below)
    for p, (ax, (j, k)) in enumerate(zip(axes.flat, panels, strict=False)):
        i = chosen[j]
        ax.fill_between(grid, lo[j, k], hi[j, k], color="tab:blue", alpha=0.25, lw=0, label="90% interval")
        ax.plot(grid, med[j, k], color="tab:blue", lw=1.2, label="posterior median")
        mine = mask[i] if n_analytes == 1 and spec.analytes[0].code is None else mask[i] & np.asarray(
            [analyte_of.get(c, -1) == k for c in codes[i]])
        q, c = mine & ~blq[i], mine & blq[i]
        ax.plot(times[i, q], dv[i, q], "o", ms=3.5, color="black", label="observed")
        ax.plot(times[i, c], dv[i, c], "v", ms=5, mfc="white", mec="tab:red", label="BLQ (at LLOQ)")
        ax.set_yscale("log" if labels.log_scale[k] else "linear")
        if labels.time_scale == "symlog":
            ax.set_xscale("symlog", linthresh=30)
        ax.set_title(f"ID {ids[i]}" + (f": {labels.analytes[k]}" if n_analytes > 1 else ""), fontsize=9)
        ax.grid(alpha=0.3, lw=0.5)
        if n_analytes > 1 or p % cols == 0:
            ax.set_ylabel(labels.value_label(k), **({"fontsize": 8} if n_analytes > 1 else {}))
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel(labels.time_label)
    axes.flat[0].legend(fontsize=6, loc="lower left" if labels.log_scale[0] else "upper right")
    title = f"Individual fits ({spec.model}, {fit.method})"
    if simulated:
        title += " - SIMULATED data"
    fig.suptitle(title)
    fig.tight_layout()
    return fig
