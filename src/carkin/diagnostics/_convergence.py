"""The convergence table of the population sites (arviz) and the fit's gate verdict."""

from __future__ import annotations

import arviz as az
import pandas as pd

__all__ = ["POPULATION_SITES", "convergence_table", "convergence_verdict"]

POPULATION_SITES = ("mu", "omega", "beta", "sigma", "sigma_add")
"""The population sites of a single-analyte spec without co-medication (`carkin.population.population_sites`
gives any spec's)."""


def convergence_table(fit) -> pd.DataFrame:
    """arviz summary (mean, sd, 90% HDI, MCSE, bulk/tail ESS, R-hat) of every population site present.

    Individual parameters (``phi``) are left out: one row per patient would bury the population rows
    (the manifest records their worst R-hat).
    """
    from ..population import population_sites

    names = [s for s, _ in population_sites(fit.spec) if s in fit.idata.posterior]
    one_chain = fit.idata.posterior.sizes["chain"] < 2
    table = az.summary(fit.idata, var_names=names, hdi_prob=0.9, kind="all" if not one_chain else "stats")
    return table.reset_index(names="site")


def convergence_verdict(fit) -> dict:
    """The manifest's verdict: ``passed``, ``failures``, ``max_r_hat``, ``min_ess_bulk``, ``divergences``..."""
    diag = dict(fit.manifest.get("diagnostics", {}))
    diag.setdefault("passed", False)
    diag.setdefault("failures", ["the manifest records no convergence diagnostics"])
    return diag
