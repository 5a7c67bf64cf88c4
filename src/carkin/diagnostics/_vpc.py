"""Prediction-corrected visual predictive check (pcVPC) with a BLQ panel, per analyte, stratifiable by a covariate.

Simulation. ``replicates`` posterior predictive replicates of the whole study: replicate r takes one
posterior draw of the population values (evenly thinned over the chains, cycled when there are fewer
draws than replicates), draws new patients (new random effects) with each observed patient's design
(times, covariates, model inputs, doses, co-medication, analyte, LLOQ), adds residual error with the record's
analyte's error model and censors below the record's LLOQ. One jitted function of a draw, vmapped over
replicates; no Python loop over patients or draws.

Strata. One per analyte (when the spec declares several) and covariate level: each analyte is drawn on its own
scale and in its own unit.

Binning. `auto_bins` on the observation times (clusters of nominal times, k-means on log time when there
are many), or edges given by the caller; bins are shared by the strata.

Prediction correction (Bergstrand et al. 2011, AAPS J 13:143): for a record j in bin b (of stratum s), with
PRED_j its typical prediction (`GoodnessOfFit.pred`), on the log scale for a log-scale analyte

    pc log y_j = log y_j - log PRED_j + median_{k in (s, b)} log PRED_k

and multiplicatively for a linear-scale one (PK: DV may be 0)

    pc y_j = y_j * median_{k in (s, b)} PRED_k / PRED_j      (no correction where a PRED is 0)

applied identically to observed and simulated values.

BLQ convention. A censored value (observed or simulated) enters the percentiles at its LLOQ (prediction
corrected like any value). An observed percentile q is shown only where q exceeds the observed fraction
BLQ of the bin (below that it is the LLOQ, not a measurement); the simulated bands are shown on the same
points, so observed and simulated are compared on identically censored data. The BLQ panel compares the
observed fraction below the LLOQ per bin with its simulated median and band.

Bands. For each bin and percentile, the simulated percentile's median and ``level`` interval over
replicates. Under the model, each observed percentile lies in its band with probability ``level``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from jaxtyping import PRNGKeyArray

from ..data import Dataset
from ._binning import assign_bins, auto_bins
from ._labels import labels_of
from ._simulation import design, log_prediction_draws, replicate_draws, simulate_records, typical_extras, typical_phi

__all__ = ["VPCResult", "vpc", "strata_of"]


@dataclasses.dataclass(frozen=True)
class VPCResult:
    """A VPC: observed and simulated percentiles and BLQ fractions per stratum and bin.

    Arrays are indexed (strata, bins, quantiles) or (strata, bins); NaN marks a hidden point (empty bin,
    or a percentile below the bin's observed BLQ fraction). Values are on each stratum's analyte's scale
    (``scale``): log of the analyte's unit for a log-scale analyte, the unit itself for a linear one
    (prediction corrected when ``prediction_corrected``); `natural` and `to_frame` give them in the unit.

    Attributes
    ----------
    strata : tuple of str
        Stratum labels ("all" when neither stratified nor with several analytes).
    edges : (bins + 1,) bin edges, time unit of the data
    time : (strata, bins) median record time of each bin
    count : (strata, bins) observed records per bin
    quantiles : (quantiles,) e.g. (0.05, 0.5, 0.95)
    level : float, width of the bands
    observed : (strata, bins, quantiles)
    simulated_median, simulated_lower, simulated_upper : (strata, bins, quantiles)
    blq_observed : (strata, bins) observed fraction below LLOQ
    blq_median, blq_lower, blq_upper : (strata, bins) simulated fraction below LLOQ, median and band
    log_lloq : (strata, bins) median LLOQ of each bin on the stratum's scale (prediction corrected like the data)
    points_time, points_value, points_blq, points_stratum : observed records (for scatter), flat
    prediction_corrected : bool
    stratify : str or None, the covariate
    replicates : int
    scale : tuple of str
        Per stratum, "log" or "linear": the scale of its values.
    analyte : tuple of str
        Per stratum, its analyte's name.
    unit : tuple of str
        Per stratum, its analyte's unit ("" when unknown).
    time_unit : str
        The data's time unit ("days" for the CAR-T models).
    time_scale : str
        "symlog" or "linear": how the time axis is best drawn.
    time_label : str
        The time axis' label (e.g. "days after infusion", "time after the first dose, h").
    """

    strata: tuple[str, ...]
    edges: np.ndarray
    time: np.ndarray
    count: np.ndarray
    quantiles: tuple[float, ...]
    level: float
    observed: np.ndarray
    simulated_median: np.ndarray
    simulated_lower: np.ndarray
    simulated_upper: np.ndarray
    blq_observed: np.ndarray
    blq_median: np.ndarray
    blq_lower: np.ndarray
    blq_upper: np.ndarray
    log_lloq: np.ndarray
    points_time: np.ndarray
    points_value: np.ndarray
    points_blq: np.ndarray
    points_stratum: np.ndarray
    prediction_corrected: bool
    stratify: str | None
    replicates: int
    scale: tuple[str, ...] = ()
    analyte: tuple[str, ...] = ()
    unit: tuple[str, ...] = ()
    time_unit: str = "days"
    time_scale: str = "symlog"
    time_label: str = "days after infusion"

    def natural(self, values: np.ndarray, strata: np.ndarray | int | None = None) -> np.ndarray:
        """Values of this VPC's arrays in the analyte's unit: exp on the log-scale strata.

        ``strata``: the stratum of each value (broadcast against ``values``); default: the leading axis of
        ``values`` is the strata axis.
        """
        values = np.asarray(values, dtype=float)
        on_log = np.asarray([sc != "linear" for sc in self.scale] or [True] * len(self.strata), dtype=bool)
        if strata is None:
            flags = on_log.reshape((-1,) + (1,) * (values.ndim - 1))
        else:
            flags = on_log[np.asarray(strata)]
        values, flags = np.broadcast_arrays(values, flags)
        out = values.copy()
        out[flags] = np.exp(values[flags])  # exp only where log (a linear value of 1e3 would overflow)
        return out

    def inside(self) -> np.ndarray:
        """(strata, bins, quantiles) bool: observed percentile inside its band (False where hidden)."""
        shown = np.isfinite(self.observed)
        with np.errstate(invalid="ignore"):
            return shown & (self.observed >= self.simulated_lower) & (self.observed <= self.simulated_upper)

    def coverage(self) -> float:
        """Fraction of the shown observed percentiles inside their bands (nominal: ``level``)."""
        shown = np.isfinite(self.observed)
        return float(self.inside()[shown].mean()) if shown.any() else float("nan")

    def blq_coverage(self) -> float:
        """Fraction of bins whose observed BLQ fraction lies inside its simulated band."""
        ok = np.isfinite(self.blq_observed)
        inside = (self.blq_observed >= self.blq_lower) & (self.blq_observed <= self.blq_upper)
        return float(inside[ok].mean()) if ok.any() else float("nan")

    def to_frame(self) -> pd.DataFrame:
        """Long table: stratum, (analyte,) bin, time, count, quantile, observed, simulated median/lower/upper (in
        the analyte's unit), observed and simulated BLQ fraction."""
        s, b, q = np.meshgrid(
            np.arange(len(self.strata)), np.arange(self.time.shape[1]), np.arange(len(self.quantiles)), indexing="ij"
        )
        s, b, q = s.ravel(), b.ravel(), q.ravel()
        columns = {"stratum": np.asarray(self.strata, dtype=object)[s]}
        if len(set(self.analyte)) > 1:
            columns["analyte"] = np.asarray(self.analyte, dtype=object)[s]
        columns.update({
            "bin": b, "time": self.time[s, b], "count": self.count[s, b], "quantile": np.asarray(self.quantiles)[q],
            "observed": self.natural(self.observed[s, b, q], s),
            "simulated_median": self.natural(self.simulated_median[s, b, q], s),
            "simulated_lower": self.natural(self.simulated_lower[s, b, q], s),
            "simulated_upper": self.natural(self.simulated_upper[s, b, q], s),
            "blq_observed": self.blq_observed[s, b], "blq_simulated_median": self.blq_median[s, b],
        })
        return pd.DataFrame(columns)

    def to_dict(self) -> dict:
        """JSON-ready summary: settings, coverage, and the per-bin table."""
        frame = self.to_frame().astype(object).where(lambda f: f.notna(), None)
        edges = [float(e) if np.isfinite(e) else None for e in self.edges]
        return {
            "prediction_corrected": self.prediction_corrected, "stratify": self.stratify, "strata": list(self.strata),
            "analytes": list(self.analyte), "scale": list(self.scale), "units": list(self.unit),
            "replicates": self.replicates, "level": self.level, "quantiles": list(self.quantiles),
            "time_unit": self.time_unit, "edges": edges,
            # the key the CAR-T (days) layout has always had
            **({"edges_days": edges} if self.time_unit == "days" else {}),
            "coverage": self.coverage(), "blq_coverage": self.blq_coverage(), "bins": frame.to_dict(orient="records"),
        }


def strata_of(dataset: Dataset, covariate: str | None, *, max_levels: int = 4) -> tuple[np.ndarray, tuple[str, ...]]:
    """Stratum index per patient and the labels: by level when a covariate has at most ``max_levels``
    distinct values, else by tertiles (labelled with their ranges).

    Raises
    ------
    KeyError
        If the dataset has no such covariate (the message lists the available ones).
    """
    n = dataset.n_patients
    if covariate is None:
        return np.zeros(n, dtype=int), ("all",)
    x = np.asarray(dataset.covariate(covariate), dtype=float)
    levels = np.unique(x)
    if levels.size <= max_levels:
        return np.searchsorted(levels, x), tuple(f"{covariate} = {v:.4g}" for v in levels)
    cuts = np.quantile(x, [1 / 3, 2 / 3])
    index = np.searchsorted(cuts, x, side="right")
    labels = tuple(f"{covariate} {x[index == k].min():.3g}-{x[index == k].max():.3g}" for k in range(3))
    return index, labels


def _band(values: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = (1 - level) / 2
    return tuple(np.quantile(values, p, axis=0) for p in (0.5, a, 1 - a))


def vpc(
    fit,
    dataset: Dataset,
    *,
    key: PRNGKeyArray,
    replicates: int = 200,
    bins: np.ndarray | None = None,
    stratify: str | None = None,
    prediction_corrected: bool = True,
    quantiles: tuple[float, ...] = (0.05, 0.5, 0.95),
    level: float = 0.9,
) -> VPCResult:
    """Prediction-corrected VPC of ``dataset`` under a fit's posterior (see the module docstring).

    Main arguments
    --------------
    fit : carkin.inference.Fit
        Population posterior (``mu``, ``omega``, ``beta``, the residual sites, scaling factors and ``gamma``);
        individual ``phi`` are not used.
    dataset : Dataset
        The observed data; its design (times, covariates, doses, co-medication, analytes, LLOQs) is replicated.
    key : PRNGKeyArray
        Replicate r uses ``jax.random.fold_in(key, r)``.

    Other arguments
    ---------------
    replicates : int
        Simulated studies (default 200).
    bins : array of edges (time unit of the data), optional
        Default: `auto_bins` of the observation times.
    stratify : str, optional
        A covariate name of the dataset (e.g. ``"DOSE"``): levels, or tertiles when continuous.
    prediction_corrected : bool
        pcVPC (default) or a plain VPC.
    quantiles, level : percentiles shown and the width of their bands.

    Raises
    ------
    ValueError
        For ``replicates`` < 2, a ``level`` outside (0, 1) or quantiles outside (0, 1).
    """
    if not (isinstance(replicates, int) and replicates >= 2):
        raise ValueError(f"vpc: replicates must be an integer >= 2, got {replicates!r} ({type(replicates).__name__})")
    if not 0 < level < 1:
        raise ValueError(f"vpc: level must lie in (0, 1), got {level!r}")
    if not all(0 < q < 1 for q in quantiles):
        raise ValueError(f"vpc: quantiles must lie in (0, 1), got {quantiles!r}")
    spec = fit.spec
    labels = labels_of(spec)
    des = design(dataset, spec)
    edges = auto_bins(des.times) if bins is None else np.asarray(bins, dtype=float)
    n_bins = edges.size - 1
    patient_stratum, cov_labels = strata_of(dataset, stratify)
    n_cov = len(cov_labels)
    several = len(spec.analytes) > 1
    if several:  # one stratum per analyte and covariate level
        labels_ = tuple(a if stratify is None else f"{a}, {c}" for a in labels.analytes for c in cov_labels)
        record_stratum = des.analyte * n_cov + patient_stratum[des.patient]
        stratum_analyte = np.repeat(np.arange(len(spec.analytes)), n_cov)
    else:
        labels_, record_stratum, stratum_analyte = cov_labels, patient_stratum[des.patient], np.zeros(n_cov, dtype=int)
    group = record_stratum * n_bins + assign_bins(des.times, edges)
    n_groups = len(labels_) * n_bins

    sims = simulate_records(spec, des.data, replicate_draws(fit, replicates), key=key, log_lloq=des.log_lloq)
    sim_blq = np.asarray(sims.blq)
    on_log = des.on_log
    lloq = np.exp(des.log_lloq)
    # censored at the LLOQ, like the data; each record on its analyte's scale
    sim_val = np.where(on_log[None, :], np.asarray(sims.log_dv), np.asarray(sims.dv))
    obs_val = np.where(on_log, np.where(des.blq, des.log_lloq, des.log_dv), np.where(des.blq, lloq, des.dv))
    log_lloq = np.where(on_log, des.log_lloq, lloq)
    if prediction_corrected:
        log_pred = np.asarray(log_prediction_draws(spec, des.data, np.asarray(typical_phi(fit, des.data))[None],
                                                   **_typical(fit)))[0]
        shift, ratio = np.zeros_like(log_pred), np.ones_like(log_pred)
        pred = np.exp(log_pred)
        for g in np.unique(group):  # over bins x strata (a handful), not over patients or draws
            members = group == g
            if on_log[members][0]:
                shift[members] = np.median(log_pred[members]) - log_pred[members]
            else:
                centre = np.median(pred[members])
                ok = (pred[members] > 0) & (centre > 0)
                ratio[members] = np.where(ok, centre / np.where(ok, pred[members], 1.0), 1.0)
        with np.errstate(invalid="ignore"):
            sim_val = np.where(on_log[None, :], sim_val + shift[None, :], sim_val * ratio[None, :])
            obs_val = np.where(on_log, obs_val + shift, obs_val * ratio)
            log_lloq = np.where(on_log, log_lloq + shift, log_lloq * ratio)

    nq = len(quantiles)
    shape = (n_groups,)
    out = {name: np.full(shape + (nq,), np.nan) for name in ("obs", "med", "lo", "hi")}
    blq = {name: np.full(shape, np.nan) for name in ("obs", "med", "lo", "hi")}
    time, count, lloq_bin = np.full(shape, np.nan), np.zeros(shape, dtype=int), np.full(shape, np.nan)
    q = np.asarray(quantiles)
    for g in np.unique(group):  # vectorised over replicates inside each bin
        members = group == g
        count[g] = members.sum()
        time[g] = np.median(des.times[members])
        lloq_bin[g] = np.median(log_lloq[members])
        frac_obs = des.blq[members].mean()
        blq["obs"][g] = frac_obs
        blq["med"][g], blq["lo"][g], blq["hi"][g] = _band(sim_blq[:, members].mean(axis=1), level)
        shown = q > frac_obs
        sim_q = np.quantile(sim_val[:, members], q, axis=1).T  # (replicates, quantiles)
        med, lo, hi = _band(sim_q, level)
        out["obs"][g] = np.where(shown, np.quantile(obs_val[members], q), np.nan)
        out["med"][g], out["lo"][g], out["hi"][g] = (np.where(shown, v, np.nan) for v in (med, lo, hi))

    def grid(a):
        return a.reshape((len(labels_), n_bins) + a.shape[1:])

    return VPCResult(
        strata=labels_, edges=edges, time=grid(time), count=grid(count), quantiles=tuple(float(v) for v in quantiles),
        level=float(level), observed=grid(out["obs"]), simulated_median=grid(out["med"]),
        simulated_lower=grid(out["lo"]), simulated_upper=grid(out["hi"]), blq_observed=grid(blq["obs"]),
        blq_median=grid(blq["med"]), blq_lower=grid(blq["lo"]), blq_upper=grid(blq["hi"]), log_lloq=grid(lloq_bin),
        points_time=des.times, points_value=obs_val, points_blq=des.blq, points_stratum=record_stratum,
        prediction_corrected=prediction_corrected, stratify=stratify, replicates=replicates,
        scale=tuple("log" if labels.log_scale[k] else "linear" for k in stratum_analyte),
        analyte=tuple(labels.analytes[k] for k in stratum_analyte),
        unit=tuple(labels.units[k] for k in stratum_analyte),
        time_unit=labels.time_unit,
        time_scale=labels.time_scale,
        time_label=labels.time_label,
    )


def _typical(fit) -> dict:
    """The typical patient's log scaling factors and co-medication effects, as `log_prediction_draws` takes them
    (a draws axis of 1)."""
    typical = typical_extras(fit)
    return {k: None if typical[k] is None else typical[k][None] for k in ("log_scale", "gamma")}
