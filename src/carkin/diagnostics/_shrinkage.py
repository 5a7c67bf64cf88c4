"""Eta-shrinkage of each inter-individual variability (IIV) term.

Standard definition (Savic & Karlsson 2009), on the transformed (log or logit) scale of each parameter:

    eta_i       = phi_i - (mu + covariate effects of patient i)            per posterior draw
    EBE eta_i   = posterior mean of eta_i                                 (the Bayesian analogue of the EBE)
    shrinkage   = 1 - SD_i(EBE eta_i) / omega                             omega = posterior mean IIV SD

Near 0: the data inform every patient's parameter; above ~0.3, individual estimates (and plots or
exposure metrics built on them) regress towards the typical value and mask covariate relations.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..data import Dataset
from ..population import covariate_design, individual_means

__all__ = ["eta_shrinkage"]


def eta_shrinkage(fit, dataset: Dataset) -> pd.DataFrame:
    """Shrinkage of each IIV term of a fit: one row per parameter.

    Parameters
    ----------
    fit : carkin.inference.Fit
        With posterior ``mu``, ``omega``, ``phi`` (and ``beta`` if the model has covariates).
    dataset : Dataset
        The data the fit used (for the covariates).

    Returns
    -------
    pandas.DataFrame
        Columns ``parameter``, ``omega`` (posterior mean), ``sd_ebe`` (SD over patients of the posterior-mean
        eta), ``shrinkage``.
    """
    spec = fit.spec
    post = fit.idata.posterior
    mu = np.asarray(post["mu"].values, dtype=float)
    n_chain, n_draw, n_par = mu.shape
    mu = mu.reshape(-1, n_par)
    phi = np.asarray(post["phi"].values, dtype=float).reshape(n_chain * n_draw, -1, n_par)
    beta = (np.asarray(post["beta"].values, dtype=float).reshape(n_chain * n_draw, -1) if spec.effects
            else np.zeros((mu.shape[0], 0)))
    z = jnp.asarray(covariate_design(dataset, spec))
    loc = jax.vmap(lambda m, b: individual_means(spec, m, b, z))(jnp.asarray(mu), jnp.asarray(beta))
    ebe = (phi - np.asarray(loc)).mean(axis=0)  # (patients, params)
    omega = np.asarray(post["omega"].values, dtype=float).reshape(-1, n_par).mean(axis=0)
    sd_ebe = ebe.std(axis=0, ddof=1)
    return pd.DataFrame({"parameter": list(spec.parameter_names), "omega": omega, "sd_ebe": sd_ebe,
                         "shrinkage": 1.0 - sd_ebe / omega})
