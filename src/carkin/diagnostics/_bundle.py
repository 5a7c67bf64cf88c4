"""All diagnostics of a fit in one call (`diagnose`), their figures, and their files (`write_diagnostics`).

Files written by `write_diagnostics` into ``out_dir`` (replaced atomically):

=====================  ================================================================================
``diagnostics.json``   convergence verdict, GOF/NPDE summary, shrinkage, VPC settings, coverage and bins
``convergence.csv``    arviz summary of the population sites
``shrinkage.csv``      eta-shrinkage per IIV term
``gof.csv``            per record: ID, TIME, (ANALYTE), DV, BLQ, PRED, IPRED, IRES, IWRES, NPDE
``vpc.csv``            per stratum, bin and percentile: observed and simulated percentiles (analyte's unit)
``*.png``              trace, rank, gof, npde, vpc, individual_fits
=====================  ================================================================================
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import numpy as np
import pandas as pd
from jaxtyping import PRNGKeyArray

from .._atomic import atomic_directory
from ..data import Dataset, write_table
from ._convergence import convergence_table, convergence_verdict
from ._gof import GoodnessOfFit, goodness_of_fit
from ._shrinkage import eta_shrinkage
from ._vpc import VPCResult, vpc

__all__ = ["Diagnostics", "diagnose", "diagnostic_figures", "write_diagnostics"]


@dataclasses.dataclass(frozen=True)
class Diagnostics:
    """The diagnostics of one fit: convergence, goodness of fit (with NPDE), shrinkage and the VPC."""

    convergence: pd.DataFrame
    verdict: dict
    gof: GoodnessOfFit
    shrinkage: pd.DataFrame
    vpc: VPCResult
    simulated: bool

    def to_dict(self) -> dict:
        """JSON-ready summary (tables as records; NaN as null)."""
        def records(frame):
            return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")

        return {
            "simulated": self.simulated,
            "verdict": {k: v for k, v in self.verdict.items() if k in
                        ("passed", "failures", "max_r_hat", "min_ess_bulk", "min_ess_tail", "divergences",
                         "max_r_hat_individual")},
            "convergence": records(self.convergence),
            "gof": self.gof.summary(),
            "shrinkage": records(self.shrinkage),
            "vpc": self.vpc.to_dict(),
        }


def diagnose(
    fit,
    dataset: Dataset,
    *,
    key: PRNGKeyArray,
    replicates: int = 200,
    npde_replicates: int = 500,
    stratify: str | None = None,
    simulated: bool | None = None,
) -> Diagnostics:
    """Convergence table, GOF + NPDE, eta-shrinkage and pcVPC of a fit on the data it used.

    Parameters
    ----------
    fit : carkin.inference.Fit
    dataset : Dataset
        The data the fit used (patients in the fit's order).
    key : PRNGKeyArray
        Split between the NPDE and the VPC simulations.
    replicates : int
        VPC replicates.
    npde_replicates : int
        Posterior predictive replicates for the NPDE.
    stratify : str, optional
        VPC stratification covariate (e.g. ``"DOSE"``).
    simulated : bool, optional
        Whether the data are simulated (default: the fit's or the dataset's provenance).
    """
    k_gof, k_vpc = jax.random.split(key)
    if simulated is None:
        simulated = fit.simulated or dataset.simulated
    return Diagnostics(
        convergence=convergence_table(fit),
        verdict=convergence_verdict(fit),
        gof=goodness_of_fit(fit, dataset, key=k_gof, replicates=npde_replicates),
        shrinkage=eta_shrinkage(fit, dataset),
        vpc=vpc(fit, dataset, key=k_vpc, replicates=replicates, stratify=stratify),
        simulated=simulated,
    )


def diagnostic_figures(diagnostics: Diagnostics, fit, dataset: Dataset) -> dict:
    """File name -> matplotlib Figure for every diagnostic plot (trace and rank only for MCMC fits)."""
    from ..plots import plot_gof, plot_individual_fits, plot_npde, plot_rank, plot_trace, plot_vpc

    s = diagnostics.simulated
    figures = {}
    if fit.idata.posterior.sizes["draw"] > 1:
        figures["trace.png"] = plot_trace(fit, simulated=s)
        if fit.idata.posterior.sizes["chain"] > 1:
            figures["rank.png"] = plot_rank(fit, simulated=s)
    figures["gof.png"] = plot_gof(diagnostics.gof, simulated=s)
    figures["npde.png"] = plot_npde(diagnostics.gof, simulated=s)
    figures["vpc.png"] = plot_vpc(diagnostics.vpc, simulated=s)
    figures["individual_fits.png"] = plot_individual_fits(fit, dataset, simulated=s)
    return figures


def write_diagnostics(diagnostics: Diagnostics, fit, dataset: Dataset, out_dir: str | Path) -> Path:
    """Write tables, ``diagnostics.json`` and the figures into ``out_dir`` (replaced atomically).

    CSV files of a simulated fit start with a ``# SIMULATED ...`` comment line.
    """
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    figures = diagnostic_figures(diagnostics, fit, dataset)
    with atomic_directory(out_dir) as tmp:
        (tmp / "diagnostics.json").write_text(json.dumps(diagnostics.to_dict(), indent=2, default=_default) + "\n")
        for name, frame in (("convergence", diagnostics.convergence), ("shrinkage", diagnostics.shrinkage),
                            ("gof", diagnostics.gof.to_frame()), ("vpc", diagnostics.vpc.to_frame())):
            write_table(tmp / f"{name}.csv", frame, simulated=diagnostics.simulated, float_format="%.6g")
        for name, figure in figures.items():
            figure.savefig(tmp / name, dpi=100)
            plt.close(figure)
    return out_dir


def _default(value):
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    return str(value)
