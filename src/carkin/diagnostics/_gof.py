"""Goodness of fit: observed levels against population (PRED) and individual (IPRED) predictions.

Definitions (on the natural log of copies/ug; for a linear-scale error model such as a PK model's additive
error, IRES and IWRES are on DV's own scale: IRES = DV - IPRED, IWRES = IRES / the record's residual SD):

- PRED: the typical patient with the record's covariates (random effects 0) at the posterior median of
  the population values ``mu`` and ``beta``;
- IPRED: the posterior median, over draws, of the patient's own prediction (individual ``phi`` draws);
- IRES = log DV - log IPRED (individual residual, log scale); IWRES = IRES / the record's residual SD at
  the posterior medians of sigma, sigma_add (`carkin.population.residual_sd`);
- NPDE: see `carkin.diagnostics.npde`.

BLQ records carry the LLOQ as DV; their residuals are not defined and are reported as NaN (they are drawn
separately in the plots and enter the NPDE through their censoring probability).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from jaxtyping import PRNGKeyArray

from ..data import Dataset
from ._npde import npde
from ..population import residual_sd
from ._simulation import design, log_prediction_draws, typical_phi

__all__ = ["GoodnessOfFit", "goodness_of_fit"]


@dataclasses.dataclass(frozen=True)
class GoodnessOfFit:
    """Record-level predictions and residuals (flat record layout of ``Dataset.flat()``).

    Attributes
    ----------
    patient_ids : tuple of str
    patient : (records,) row of each record's patient
    times : (records,) days after infusion
    dv : (records,) observed level, copies/ug (the LLOQ on BLQ records)
    blq : (records,) bool
    pred, ipred : (records,) population and individual predictions, copies/ug
    ires, iwres : (records,) individual residuals on the log scale, or on DV's own scale when ``linear``
        (NaN on BLQ records)
    npde : (records,) normalised prediction discrepancies (see `npde`)
    linear : bool, the error model is linear-scale (additive, proportional, ...): IRES = DV - IPRED,
        IWRES = IRES / its residual SD
    """

    patient_ids: tuple[str, ...]
    patient: np.ndarray
    times: np.ndarray
    dv: np.ndarray
    blq: np.ndarray
    pred: np.ndarray
    ipred: np.ndarray
    ires: np.ndarray
    iwres: np.ndarray
    npde: np.ndarray
    linear: bool = False

    def to_frame(self) -> pd.DataFrame:
        """One row per record: ID, TIME, DV, BLQ, PRED, IPRED, IRES, IWRES, NPDE."""
        return pd.DataFrame({
            "ID": np.asarray(self.patient_ids, dtype=object)[self.patient], "TIME": self.times, "DV": self.dv,
            "BLQ": self.blq.astype(int), "PRED": self.pred, "IPRED": self.ipred, "IRES": self.ires,
            "IWRES": self.iwres, "NPDE": self.npde,
        })

    def summary(self) -> dict:
        """Mean and SD of IWRES and NPDE over the records where they are defined (ideal: 0 and 1)."""
        out = {}
        for name in ("iwres", "npde"):
            x = getattr(self, name)
            x = x[np.isfinite(x)]
            out[f"{name}_mean"] = float(x.mean()) if x.size else None
            out[f"{name}_sd"] = float(x.std(ddof=1)) if x.size > 1 else None
        out["records"] = int(self.times.size)
        out["blq_records"] = int(self.blq.sum())
        return out


def goodness_of_fit(fit, dataset: Dataset, *, key: PRNGKeyArray, max_draws: int = 200, replicates: int = 500) -> GoodnessOfFit:
    """PRED, IPRED, individual residuals and NPDE of every observation record of ``dataset``.

    Parameters
    ----------
    fit : carkin.inference.Fit
        Must hold the individual parameters ``phi`` of the patients of ``dataset`` (same order).
    dataset : Dataset
        The data the fit used.
    key : PRNGKeyArray
        For the NPDE's posterior predictive simulation.
    max_draws : int
        Posterior draws of ``phi`` used for IPRED (evenly thinned).
    replicates : int
        Posterior predictive replicates for the NPDE.

    Raises
    ------
    ValueError
        If the fit's patients are not the dataset's.
    """
    if tuple(fit.patient_ids) != tuple(dataset.patient_ids):
        raise ValueError(
            f"goodness_of_fit: the fit has {len(fit.patient_ids)} patients and the dataset ({dataset.source}) "
            f"{dataset.n_patients}, or they are in another order; pass the data the fit used"
        )
    spec = fit.spec
    des = design(dataset, spec)
    phi = np.asarray(fit.idata.posterior["phi"].values, dtype=float)
    phi = phi.reshape(-1, *phi.shape[-2:])
    take = np.unique(np.round(np.linspace(0, phi.shape[0] - 1, min(max_draws, phi.shape[0]))).astype(int))
    both = np.asarray(log_prediction_draws(spec, des.data, np.concatenate([np.asarray(typical_phi(fit, des.data))[None], phi[take]])))
    log_pred, log_ipred = both[0], np.median(both[1:], axis=0)
    post = fit.idata.posterior
    sigma, sigma_add = (float(np.median(np.asarray(post[n].values))) if n in post else None for n in ("sigma", "sigma_add"))
    sd = np.asarray(residual_sd(spec.residual, log_ipred, sigma, sigma_add))
    # residuals on the scale the error model works on: log DV for log-scale models, DV for linear ones
    ires = np.where(des.blq, np.nan, des.dv - np.exp(log_ipred) if des.linear else des.log_dv - log_ipred)
    return GoodnessOfFit(
        patient_ids=tuple(dataset.patient_ids),
        patient=des.patient,
        times=des.times,
        dv=des.dv,
        blq=des.blq,
        pred=np.exp(log_pred),
        ipred=np.exp(log_ipred),
        ires=ires,
        iwres=ires / sd,
        npde=npde(fit, dataset, key=key, replicates=replicates, design_=des),
        linear=des.linear,
    )
