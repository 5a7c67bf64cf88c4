"""Goodness of fit: observed values against population (PRED) and individual (IPRED) predictions, per analyte.

Definitions (each record on its analyte's scale: the log for a log-scale error model, DV itself for a
linear-scale one, e.g. a PK concentration):

- PRED: the typical patient with the record's covariates (random effects 0), doses and co-medication, at the
  posterior median of the population values (``mu``, ``beta``, the analytes' scaling factors, ``gamma``);
- IPRED: the posterior median, over draws, of the patient's own prediction (individual ``phi`` draws, with
  each draw's scaling factors and co-medication effects);
- IRES = DV - IPRED on the analyte's scale (log DV - log IPRED for a log-scale analyte); IWRES = IRES / SD,
  the SD of the analyte's error model (`carkin.population.residual_sd`) at IPRED with the posterior median
  residual parameters (sigma for ``additive_log``; sqrt(sigma_add^2 + (sigma IPRED)^2) for
  ``additive_proportional``, ...);
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
from ..population import residual_sd
from ..simulate import posterior_population_draws
from ._labels import Labels, labels_of
from ._npde import npde
from ._simulation import design, log_prediction_draws, observation_draws, typical_extras, typical_phi

__all__ = ["GoodnessOfFit", "goodness_of_fit"]


@dataclasses.dataclass(frozen=True)
class GoodnessOfFit:
    """Record-level predictions and residuals (flat record layout of ``Dataset.flat()``).

    Attributes
    ----------
    patient_ids : tuple of str
    patient : (records,) row of each record's patient
    times : (records,) time after the first dose (``labels.time_unit``)
    dv : (records,) observed value in the analyte's unit (the LLOQ on BLQ records)
    blq : (records,) bool
    pred, ipred : (records,) population and individual predictions, analyte's unit (0 before a first dose)
    ires, iwres : (records,) individual residuals on the analyte's scale (NaN on BLQ records)
    npde : (records,) normalised prediction discrepancies (see `npde`)
    analyte : (records,) int, index into ``labels.analytes``
    labels : Labels
        Analyte names, units, scales and the time unit (from the spec).
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
    analyte: np.ndarray | None = None
    labels: Labels | None = None

    @property
    def several(self) -> bool:
        """More than one analyte."""
        return self.labels is not None and len(self.labels.analytes) > 1

    def to_frame(self) -> pd.DataFrame:
        """One row per record: ID, TIME, (ANALYTE when there are several), DV, BLQ, PRED, IPRED, IRES, IWRES, NPDE."""
        columns = {"ID": np.asarray(self.patient_ids, dtype=object)[self.patient], "TIME": self.times}
        if self.several:
            columns["ANALYTE"] = np.asarray(self.labels.analytes, dtype=object)[self.analyte]
        columns.update({"DV": self.dv, "BLQ": self.blq.astype(int), "PRED": self.pred, "IPRED": self.ipred,
                        "IRES": self.ires, "IWRES": self.iwres, "NPDE": self.npde})
        return pd.DataFrame(columns)

    def summary(self) -> dict:
        """Mean and SD of IWRES and NPDE over the records where they are defined (ideal: 0 and 1); with several
        analytes, the same per analyte under ``by_analyte``."""
        out = _moments(self.iwres, self.npde, self.blq)
        if self.several:
            out["by_analyte"] = {name: _moments(self.iwres[self.analyte == k], self.npde[self.analyte == k],
                                                self.blq[self.analyte == k])
                                 for k, name in enumerate(self.labels.analytes)}
        return out


def _moments(iwres: np.ndarray, npde_: np.ndarray, blq: np.ndarray) -> dict:
    out = {}
    for name, x in (("iwres", iwres), ("npde", npde_)):
        x = x[np.isfinite(x)]
        out[f"{name}_mean"] = float(x.mean()) if x.size else None
        out[f"{name}_sd"] = float(x.std(ddof=1)) if x.size > 1 else None
    out["records"] = int(blq.size)
    out["blq_records"] = int(blq.sum())
    return out


def goodness_of_fit(
    fit, dataset: Dataset, *, key: PRNGKeyArray, max_draws: int = 200, replicates: int = 500
) -> GoodnessOfFit:
    """PRED, IPRED, individual residuals and NPDE of every observation record of ``dataset``.

    Parameters
    ----------
    fit : carkin.inference.Fit
        Must hold the individual parameters ``phi`` of the patients of ``dataset`` (same order).
    dataset : Dataset
        The data the fit used (its doses, analytes and co-medication columns).
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
    _, values = posterior_population_draws(fit)
    draws = observation_draws(spec, values)
    typical = typical_extras(fit)

    def with_typical(name):  # the typical patient's value first, then the draws'
        if draws[name] is None:
            return None
        return np.concatenate([typical[name][None], draws[name][take]])

    both = np.asarray(
        log_prediction_draws(
            spec,
            des.data,
            np.concatenate([np.asarray(typical_phi(fit, des.data))[None], phi[take]]),
            log_scale=with_typical("log_scale"),
            gamma=with_typical("gamma"),
        )
    )
    log_pred, log_ipred = both[0], np.median(both[1:], axis=0)
    ipred = np.exp(log_ipred)
    sd = np.ones_like(log_ipred)
    for k, analyte in enumerate(spec.analytes):
        mine = des.analyte == k
        sd[mine] = np.asarray(
            residual_sd(analyte.residual, log_ipred[mine], typical["sigma"][k], typical["sigma_add"][k])
        )
    with np.errstate(invalid="ignore"):
        ires = np.where(des.blq, np.nan, np.where(des.on_log, des.log_dv - log_ipred, des.dv - ipred))
    return GoodnessOfFit(
        patient_ids=tuple(dataset.patient_ids),
        patient=des.patient,
        times=des.times,
        dv=des.dv,
        blq=des.blq,
        pred=np.exp(log_pred),
        ipred=ipred,
        ires=ires,
        iwres=ires / sd,
        npde=npde(fit, dataset, key=key, replicates=replicates, design_=des),
        analyte=des.analyte,
        labels=labels_of(spec),
    )
