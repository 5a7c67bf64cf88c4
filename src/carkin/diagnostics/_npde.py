"""Normalised prediction discrepancies from posterior predictive simulation (NPDE-style, vectorised).

For record j with observation y_j and K posterior predictive replicates y_jk (new patients with the
observed patient's design (doses, co-medication, analyte), one posterior draw of the population values each;
residual error of the record's analyte included):

    pd_j   = (1/K) sum_k 1[y_jk < y_j]                               (quantified record)
    pd_j   ~ Uniform(0, (1/K) sum_k 1[y_jk < LLOQ_j])                 (BLQ record: Nguyen et al. 2012)
    npde_j = Phi^-1(clip(pd_j, 1/(2K), 1 - 1/(2K)))

Under the model, npde ~ N(0, 1). This is the decorrelation-free variant (NPD in the npde package's terms,
Comets et al. 2008): records of one patient are correlated through the random effects, so tests that
assume independence across records are approximate; the mean, SD and the trends against time and
prediction are what the report shows.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtri
from jaxtyping import PRNGKeyArray

from ..data import Dataset
from ._simulation import Design, design, replicate_draws, simulate_records

__all__ = ["npde"]


def npde(
    fit, dataset: Dataset, *, key: PRNGKeyArray, replicates: int = 500, design_: Design | None = None
) -> np.ndarray:
    """NPDE of every observation record of ``dataset`` (flat record layout of ``Dataset.flat()``).

    Parameters
    ----------
    fit : carkin.inference.Fit
    dataset : Dataset
    key : PRNGKeyArray
        Split for the simulation and for the uniform draws of BLQ records.
    replicates : int
        Posterior predictive replicates K (draws are evenly thinned, cycled when the posterior has fewer).

    Returns
    -------
    numpy array (records,)

    Raises
    ------
    ValueError
        For ``replicates`` < 2.
    """
    if not (isinstance(replicates, int) and replicates >= 2):
        raise ValueError(f"npde: replicates must be an integer >= 2, got {replicates!r} ({type(replicates).__name__})")
    des = design_ if design_ is not None else design(dataset, fit.spec)
    k_sim, k_blq = jax.random.split(key)
    sims = simulate_records(fit.spec, des.data, replicate_draws(fit, replicates), key=k_sim, log_lloq=des.log_lloq)
    log_dv, blq = jnp.asarray(des.log_dv), jnp.asarray(des.blq)
    # on the analyte's own scale: log values for a log-scale error model, DV itself for a linear one (DV <= 0)
    below = jnp.where(jnp.asarray(des.on_log)[None, :], sims.log_value < log_dv[None, :],
                      sims.value < jnp.asarray(des.dv)[None, :])
    below_obs = jnp.mean(below, axis=0)
    below_lloq = jnp.mean(sims.blq, axis=0)
    u = jax.random.uniform(k_blq, below_obs.shape)
    pd_ = jnp.where(blq, u * below_lloq, below_obs)
    eps = 1.0 / (2 * replicates)
    return np.asarray(ndtri(jnp.clip(pd_, eps, 1 - eps)))
