"""The result of a dose-scenario simulation and its summaries (bands, exposure quantiles, targets, PFS).

Two sources of spread are kept apart (the arrays keep the draw axis, so nothing is mixed up front):

- **parameter uncertainty**: for each posterior draw, the profile of the *typical patient* (no random
  effect, covariates at the scenario's typical values, the dose of the level); the band is the
  ``interval`` quantiles of that curve across draws, around its median across draws;
- **between-patient variability**: within each draw, quantiles of the virtual patients' profiles at
  each time (the population band of that draw); the reported band is the median across draws of the
  per-draw lower and upper quantiles (and the per-draw median), i.e. the population band at a typical
  draw. ``population_uncertainty`` adds how far the per-draw band edges move across draws.

Exposure metrics are summarised as the posterior predictive distribution of a new patient (quantiles
pooled over draws and patients) and, for the typical patient, the median and interval across draws. The
probability of reaching a target is the pooled fraction of patients beyond the threshold, with the
interval of the per-draw fraction across draws.

Simulated observations (the true level with the model's residual error) are censored at the LLOQ, as the
assay would; the BLQ fraction at each dose and time is the pooled fraction of virtual patients whose
observation falls below it (the posterior predictive probability of a BLQ sample), with the interval of
the per-draw fraction across draws.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from ._scenario import DoseScenario, scenario_metrics

__all__ = ["ScenarioResult"]

PREDICTIVE_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def _num(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _unit(metric: str, auc_windows: tuple[float, ...]) -> str:
    return scenario_metrics(auc_windows)[metric].unit


@dataclasses.dataclass(frozen=True, eq=False)
class ScenarioResult:
    """Simulated profiles and exposures of a dose scenario.

    Attributes
    ----------
    scenario : DoseScenario
    doses : numpy array, shape (doses,)
        Dose levels, 10^6 CAR+ T cells.
    times : numpy array, shape (times,)
        Profile times, days after infusion.
    draw_indices : numpy array, shape (draws,)
        Indices of the posterior draws used (into the flattened chain x draw axis).
    typical : numpy array, shape (draws, doses, times)
        Typical patient's level per draw, copies/ug.
    population : numpy array, shape (draws, 3, doses, times)
        Per-draw lower, median and upper quantiles over patients, copies/ug.
    metrics : dict of str -> numpy array, shape (draws, doses, patients)
        ``cmax`` (copies/ug), ``tmax`` (day), ``auc0_<W>`` (copies/ug x day) of each virtual patient.
    typical_metrics : dict of str -> numpy array, shape (draws, doses)
    pfs_landmarks : numpy array, shape (draws, doses, landmarks), or None
        Population PFS at the hook's landmarks (exposure-response hook only).
    pfs_median : numpy array, shape (draws, doses), or None
        Median PFS of the population (months; NaN if not reached within 600 months).
    blq_fraction : numpy array, shape (draws, doses, times), or None
        Per draw, the fraction of virtual patients whose simulated observation is below the LLOQ.
    lloq : float or None
        The LLOQ the observations were censored at, copies/ug.
    lloq_source : str
        Where the LLOQ comes from (`carkin.simulate.scenario_lloq`).
    seed : int or None
    fit_info : dict
        Method, convergence and provenance of the fit the draws come from.
    notes : tuple of str
        Things the reader must know (e.g. the model has no dose effect).
    """

    scenario: DoseScenario
    doses: np.ndarray
    times: np.ndarray
    draw_indices: np.ndarray
    typical: np.ndarray
    population: np.ndarray
    metrics: dict[str, np.ndarray]
    typical_metrics: dict[str, np.ndarray]
    pfs_landmarks: np.ndarray | None = None
    pfs_median: np.ndarray | None = None
    blq_fraction: np.ndarray | None = None
    lloq: float | None = None
    lloq_source: str = ""
    seed: int | None = None
    fit_info: dict = dataclasses.field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def n_draws(self) -> int:
        return int(self.typical.shape[0])

    @property
    def n_patients(self) -> int:
        return int(next(iter(self.metrics.values())).shape[-1])

    def bands(self) -> dict[str, np.ndarray]:
        """Profile bands, each of shape (doses, times), copies/ug.

        ``typical_lower/median/upper``: parameter uncertainty (quantiles across draws of the typical
        curve); ``population_lower/median/upper``: between-patient variability (median across draws of
        the per-draw quantiles); ``population_outer_lower/upper``: the lower (upper) band edge's own
        lower (upper) quantile across draws.
        """
        lo, mid, hi = self.scenario.quantiles
        log_typ = np.log(self.typical)
        log_pop = np.log(self.population)
        return {
            "typical_lower": np.exp(np.quantile(log_typ, lo, axis=0)),
            "typical_median": np.exp(np.quantile(log_typ, mid, axis=0)),
            "typical_upper": np.exp(np.quantile(log_typ, hi, axis=0)),
            "population_lower": np.exp(np.median(log_pop[:, 0], axis=0)),
            "population_median": np.exp(np.median(log_pop[:, 1], axis=0)),
            "population_upper": np.exp(np.median(log_pop[:, 2], axis=0)),
            "population_outer_lower": np.exp(np.quantile(log_pop[:, 0], lo, axis=0)),
            "population_outer_upper": np.exp(np.quantile(log_pop[:, 2], hi, axis=0)),
        }

    def exposure_quantiles(self, metric: str, q=PREDICTIVE_QUANTILES) -> np.ndarray:
        """Posterior predictive quantiles of a metric per dose (pooled over draws and patients): (doses, len(q))."""
        x = self.metrics[metric]
        pooled = np.moveaxis(x, 1, 0).reshape(x.shape[1], -1)
        return np.quantile(pooled, q, axis=1).T

    def blq(self) -> dict[str, np.ndarray] | None:
        """Fraction of simulated observations below the LLOQ, each (doses, times): ``pooled`` (predictive:
        over draws and patients), ``lower`` / ``upper`` (the ``interval`` quantiles of the per-draw fraction)."""
        if self.blq_fraction is None:
            return None
        lo, _, hi = self.scenario.quantiles
        return {
            "pooled": self.blq_fraction.mean(axis=0),
            "lower": np.quantile(self.blq_fraction, lo, axis=0),
            "upper": np.quantile(self.blq_fraction, hi, axis=0),
        }

    def target_probability(self) -> dict[str, np.ndarray] | None:
        """P(target reached) per dose: ``pooled`` (predictive), ``per_draw`` (draws, doses)."""
        t = self.scenario.target
        if t is None:
            return None
        x = self.metrics[t.metric]
        hit = x >= t.threshold if t.direction == "above" else x <= t.threshold
        per_draw = hit.mean(axis=2)
        return {"pooled": hit.mean(axis=(0, 2)), "per_draw": per_draw}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (stable keys; see the CLI ``carkin simulate --json``)."""
        sc = self.scenario
        lo, _, hi = sc.quantiles
        bands = self.bands()
        target = self.target_probability()
        blq = self.blq()
        doses = []
        for i, dose in enumerate(self.doses):
            exposure = {}
            for name in self.metrics:
                qs = self.exposure_quantiles(name)[i]
                typ = self.typical_metrics[name][:, i]
                exposure[name] = {
                    "unit": _unit(name, sc.auc_windows),
                    "predictive": {
                        f"q{round(100 * q):02d}": _num(v) for q, v in zip(PREDICTIVE_QUANTILES, qs, strict=True)
                    },
                    "typical": {
                        "median": _num(np.median(typ)),
                        "lower": _num(np.quantile(typ, lo)),
                        "upper": _num(np.quantile(typ, hi)),
                    },
                }
            entry: dict[str, Any] = {
                "dose": float(dose),
                "profiles": {
                    "typical": {k: bands[f"typical_{k}"][i].tolist() for k in ("lower", "median", "upper")},
                    "population": {k: bands[f"population_{k}"][i].tolist() for k in ("lower", "median", "upper")},
                },
                "exposure": exposure,
            }
            if blq is not None:
                entry["blq_fraction"] = {k: blq[k][i].tolist() for k in ("pooled", "lower", "upper")}
            if target is not None:
                per_draw = target["per_draw"][:, i]
                entry["target"] = {
                    "probability": float(target["pooled"][i]),
                    "lower": float(np.quantile(per_draw, lo)),
                    "upper": float(np.quantile(per_draw, hi)),
                }
            if self.pfs_median is not None:
                er = sc.exposure_response
                entry["pfs"] = {
                    "landmarks": [
                        {
                            "months": m,
                            "median": _num(np.median(self.pfs_landmarks[:, i, j])),
                            "lower": _num(np.quantile(self.pfs_landmarks[:, i, j], lo)),
                            "upper": _num(np.quantile(self.pfs_landmarks[:, i, j], hi)),
                        }
                        for j, m in enumerate(er.landmarks_months)
                    ],
                    "median_months": {
                        "median": _num(np.nanmedian(self.pfs_median[:, i]))
                        if np.isfinite(self.pfs_median[:, i]).any()
                        else None,
                        "fraction_of_draws_reached": float(np.isfinite(self.pfs_median[:, i]).mean()),
                    },
                }
            doses.append(entry)
        out: dict[str, Any] = {
            "scenario": sc.name,
            "source": sc.source,
            "seed": self.seed,
            "fit": self.fit_info,
            "simulated_data": bool(self.fit_info.get("simulated", False)),
            "n_patients": self.n_patients,
            "n_draws": self.n_draws,
            "interval": sc.interval,
            "quantiles": [round(lo, 12), 0.5, round(hi, 12)],
            "residual_in_population_band": sc.residual,
            "lloq": None if self.lloq is None else {"value": float(self.lloq), "unit": "copies/ug",
                                                    "source": self.lloq_source},
            "times_days": self.times.tolist(),
            "concentration_unit": "copies/ug",
            "bands": {
                "typical": "parameter uncertainty: quantiles across posterior draws of the typical patient's curve",
                "population": "between-patient variability: median across draws of the per-draw quantiles over "
                "virtual patients"
                + (" (observations, censored at the LLOQ)" if sc.residual else ""),
                "blq_fraction": "fraction of simulated observations (residual error included) below the LLOQ: pooled "
                "over draws and patients, with the interval of the per-draw fraction",
            },
            "target": None if sc.target is None else dataclasses.asdict(sc.target),
            "exposure_response": None
            if sc.exposure_response is None
            else {
                "hook": True,
                "note": "assumed exposure-response relation (not estimated by carkin); predicted PFS from infusion",
                **{
                    k: (list(v) if isinstance(v, tuple) else v)
                    for k, v in dataclasses.asdict(sc.exposure_response).items()
                },
            },
            "notes": list(self.notes),
            "doses": doses,
        }
        return out
