"""Individual fit panels: observed records (BLQ drawn distinctly) over the posterior predicted curve."""

from __future__ import annotations

import math

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from ..data import Dataset, DoseEvents
from ..models import log_concentration_grid
from ..population import model_inputs

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
    """Observed transgene levels and the posterior median curve with a 90% band, one panel per patient.

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

    Returns
    -------
    matplotlib.figure.Figure
    """
    simulated = fit.simulated or dataset.simulated if simulated is None else simulated
    ids = list(dataset.patient_ids)
    chosen = [ids.index(p) for p in patients] if isinstance(patients, list) else list(range(min(patients, len(ids))))
    individual = fit.individual_parameters()  # name -> (chains, draws, patients)
    flat = {k: v.reshape(-1, v.shape[-1]) for k, v in individual.items()}
    n_total = next(iter(flat.values())).shape[0]
    take = np.linspace(0, n_total - 1, min(max_draws, n_total)).astype(int)
    times = np.asarray(dataset.times)
    mask = np.asarray(dataset.obs_mask)
    model = fit.spec.kinetic_model
    pk = getattr(model, "dosed", False)  # a PK model: linear axes in the data's units, doses on the grid
    if pk:
        t_end = float(times[mask].max()) * 1.05
        doses = dataset.dose_events
        dose_times = np.asarray(doses.time)[chosen][np.asarray(doses.mask)[chosen]]
        grid = np.unique(np.concatenate([np.linspace(0.0, t_end, grid_points), dose_times[dose_times <= t_end]]))
    else:
        t_end = max(float(times[mask].max()) * 1.05, 30.0)
        grid = np.concatenate([[0.0], np.geomspace(0.5, t_end, grid_points - 1)])
    params = {k: jnp.asarray(v[take][:, chosen][..., None]) for k, v in flat.items()}  # (draws, sel, 1)
    # ODE models also take per-patient inputs from the data (e.g. baseline tumour burden): (1, sel, 1)
    params.update({k: jnp.asarray(v[chosen])[None, :, None] for k, v in model_inputs(dataset, fit.spec).items()})
    if pk:  # each chosen patient's doses, (1, sel, 1, doses)
        curves = np.asarray(model.concentration(params, jnp.asarray(grid)[None, None, :], _select_doses(doses, chosen)))
    else:
        curves = np.exp(np.asarray(log_concentration_grid(model, params, jnp.asarray(grid)[None, None, :])))
    lo, med, hi = np.quantile(curves, [0.05, 0.5, 0.95], axis=0)

    cols = min(4, len(chosen))
    rows = math.ceil(len(chosen) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False, sharey=True)
    dv, blq = np.asarray(dataset.dv), np.asarray(dataset.blq)
    for j, (ax, i) in enumerate(zip(axes.flat, chosen)):
        ax.fill_between(grid, lo[j], hi[j], color="tab:blue", alpha=0.25, lw=0, label="90% interval")
        ax.plot(grid, med[j], color="tab:blue", lw=1.2, label="posterior median")
        q = mask[i] & ~blq[i]
        c = mask[i] & blq[i]
        ax.plot(times[i, q], dv[i, q], "o", ms=3.5, color="black", label="observed")
        ax.plot(times[i, c], dv[i, c], "v", ms=5, mfc="white", mec="tab:red", label="BLQ (at LLOQ)")
        if not pk:
            ax.set_yscale("log")
            ax.set_xscale("symlog", linthresh=30)
        ax.set_title(f"ID {ids[i]}", fontsize=9)
        ax.grid(alpha=0.3, lw=0.5)
    for ax in list(axes.flat)[len(chosen):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("time after the first dose" if pk else "days after infusion")
    for ax in axes[:, 0]:
        ax.set_ylabel("concentration" if pk else "transgene, copies/ug")
    axes.flat[0].legend(fontsize=6, loc="upper right" if pk else "lower left")
    title = f"Individual fits ({fit.spec.model}, {fit.method})"
    if simulated:
        title += " - SIMULATED data"
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _select_doses(doses: DoseEvents, chosen: list[int]) -> DoseEvents:
    """The chosen patients' doses, shaped (1, chosen, 1, doses) to broadcast against (draws, chosen, grid)."""
    index = np.asarray(chosen)
    pick = lambda x: jnp.asarray(x)[index][None, :, None, :]  # noqa: E731
    return DoseEvents(time=pick(doses.time), amount=pick(doses.amount), duration=pick(doses.duration),
                      cmt=pick(doses.cmt), mask=pick(doses.mask))
