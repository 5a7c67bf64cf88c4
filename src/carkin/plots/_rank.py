"""Rank plot of the population sites (arviz): uniform ranks across chains indicate mixing."""

from __future__ import annotations

import arviz as az
import matplotlib.pyplot as plt
import numpy as np

__all__ = ["plot_rank"]


def plot_rank(fit, *, simulated: bool | None = None):
    """Rank histograms (arviz ``plot_rank``) of ``mu`` and ``omega`` per parameter, and ``sigma``.

    Needs at least two chains. ``simulated`` adds "SIMULATED data" to the title; default: ``fit.simulated``.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If the fit has a single chain.
    """
    simulated = fit.simulated if simulated is None else simulated
    n_chains = fit.idata.posterior.sizes["chain"]
    if n_chains < 2:
        raise ValueError(f"plot_rank needs at least 2 chains; the fit has {n_chains}")
    names = [s for s in ("mu", "omega", "sigma") if s in fit.idata.posterior]
    n_panels = sum(int(np.prod(fit.idata.posterior[s].shape[2:])) for s in names)
    cols = 4
    rows = -(-n_panels // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.2 * rows), squeeze=False)
    az.plot_rank(fit.idata, var_names=names, ax=axes.ravel()[:n_panels], show=False)
    for ax in axes.ravel()[n_panels:]:
        ax.set_visible(False)
    fig.suptitle("Rank plots by chain" + (" - SIMULATED data" if simulated else ""))
    fig.tight_layout()
    return fig
