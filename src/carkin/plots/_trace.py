"""Trace plot of the population sites (arviz), one row per site, chains overlaid."""

from __future__ import annotations

import arviz as az

__all__ = ["plot_trace"]

_SITES = ("mu", "omega", "beta", "sigma", "sigma_add")


def plot_trace(fit, *, var_names: list[str] | None = None, simulated: bool | None = None):
    """Posterior densities and traces of the population sites (``mu``, ``omega``, ``beta``, ``sigma``).

    Parameters
    ----------
    fit : carkin.Fit
    var_names : list of str, optional
        Sites to draw (default: every population site present).
    simulated : bool, optional
        Adds "SIMULATED data" to the title; default: the fit's data say so (``fit.simulated``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    simulated = fit.simulated if simulated is None else simulated
    names = var_names or [s for s in _SITES if s in fit.idata.posterior]
    axes = az.plot_trace(fit.idata, var_names=names, compact=True, show=False,
                         backend_kwargs={"figsize": (10, 1.9 * len(names))})
    fig = axes.ravel()[0].figure
    fig.suptitle(f"Trace of the population sites ({fit.spec.model})" + (" - SIMULATED data" if simulated else ""))
    fig.tight_layout()
    return fig



