"""Exposure quartiles with their uncertainty: cut points and each patient's quartile as posterior quantities.

For every posterior draw s the quartile cut points are the 25/50/75% quantiles of that draw's exposures
across the patients (numpy's default linear interpolation), and patient i's quartile in that draw is the
group its value falls in. Over draws this gives the posterior of the cut points and, per patient, the
probability of membership in each quartile; the plug-in label is the quartile of the patient's posterior
median among the posterior medians (what an analysis on point estimates uses), and the modal label the
most probable quartile. Quartiles are defined within the patients given (the analysis set), so that each
holds a quarter of them.

`quartile_by_dose` cross-tabulates quartiles with the actual dose level (KarMMa-3: the lowest expansion
quartile occurs at every dose level), both as counts of plug-in labels and as posterior expected counts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["ExposureQuartiles", "exposure_quartiles", "quartile_by_dose", "quartile_of", "DOSE_LEVELS"]

#: Target dose levels, 10^6 CAR+ T cells (ide-cel KarMMa levels 150 / 300 / 450 [Munshi2021]; KarMMa-3 target
#: 150-450 x10^6 [RodriguezOtero2023]; docs/references.md). Each actual dose is assigned to the nearest level.
DOSE_LEVELS: tuple[float, ...] = (150.0, 300.0, 450.0)


def quartile_of(values: np.ndarray, n_groups: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Cut points and group index (1 = lowest) along the last axis.

    Parameters
    ----------
    values : array (..., patients)
    n_groups : int

    Returns
    -------
    cuts : array (..., n_groups - 1)
    groups : int array (..., patients), values 1..n_groups
    """
    values = np.asarray(values, dtype=float)
    probs = np.arange(1, n_groups) / n_groups
    cuts = np.moveaxis(np.quantile(values, probs, axis=-1), 0, -1)
    groups = 1 + np.sum(values[..., None, :] > cuts[..., :, None], axis=-2)
    return cuts, groups


@dataclasses.dataclass(frozen=True, eq=False)
class ExposureQuartiles:
    """Quartiles of one exposure metric with their posterior uncertainty.

    Attributes
    ----------
    metric : str
    patient_ids : tuple of str
    cut_draws : array (samples, 3)
        Cut points per posterior draw (metric unit).
    plug_in_cuts : array (3,)
        Cut points of the plug-in values (posterior medians).
    probabilities : array (patients, 4)
        Posterior probability that each patient is in Q1..Q4.
    plug_in : int array (patients,)
        Quartile (1-4) of the patient's posterior median among all posterior medians.
    modal : int array (patients,)
        Most probable quartile.
    plug_in_values : array (patients,)
    """

    metric: str
    patient_ids: tuple[str, ...]
    cut_draws: np.ndarray
    plug_in_cuts: np.ndarray
    probabilities: np.ndarray
    plug_in: np.ndarray
    modal: np.ndarray
    plug_in_values: np.ndarray

    @property
    def n_groups(self) -> int:
        return self.probabilities.shape[1]

    def membership(self) -> pd.DataFrame:
        """One row per patient: plug-in value, plug-in and modal quartile, P(Q1)..P(Q4), P(plug-in label)."""
        table = pd.DataFrame({"ID": self.patient_ids, "metric": self.metric, "plug_in_value": self.plug_in_values,
                              "quartile_plug_in": self.plug_in, "quartile_modal": self.modal})
        for k in range(self.n_groups):
            table[f"P_Q{k + 1}"] = self.probabilities[:, k]
        table["P_plug_in_label"] = self.probabilities[np.arange(len(self.plug_in)), self.plug_in - 1]
        return table

    def cut_points(self) -> pd.DataFrame:
        """One row per cut point: plug-in value and posterior mean, 5/50/95% quantiles."""
        rows = []
        for k in range(self.cut_draws.shape[1]):
            x = self.cut_draws[:, k]
            rows.append({"metric": self.metric, "cut": f"Q{k + 1}|Q{k + 2}", "plug_in": self.plug_in_cuts[k],
                         "mean": x.mean(), "q05": np.quantile(x, 0.05), "q50": np.median(x),
                         "q95": np.quantile(x, 0.95)})
        return pd.DataFrame(rows)

    def misclassification(self) -> float:
        """Expected fraction of patients whose quartile differs from their plug-in label."""
        return float(1.0 - np.mean(self.probabilities[np.arange(len(self.plug_in)), self.plug_in - 1]))


def exposure_quartiles(
    draws: np.ndarray,
    *,
    patient_ids: Sequence[str],
    metric: str = "exposure",
    n_groups: int = 4,
) -> ExposureQuartiles:
    """Quartiles (or other quantile groups) of an exposure with their posterior uncertainty.

    Parameters
    ----------
    draws : array (samples, patients)
        Posterior draws of the exposure (e.g. ``PosteriorExposure.values("cmax")``).
    patient_ids : sequence of str
    metric : str
        Name for the tables.
    n_groups : int
        4 for quartiles (default), 3 for tertiles.

    Returns
    -------
    ExposureQuartiles

    Raises
    ------
    ValueError
        If ``draws`` is not 2-D with one column per patient, or there are fewer patients than groups.
    """
    draws = np.asarray(draws, dtype=float)
    if draws.ndim != 2 or draws.shape[1] != len(patient_ids):
        raise ValueError(
            f"draws must have shape (samples, patients) = (*, {len(patient_ids)}), got {draws.shape}"
        )
    if not (isinstance(n_groups, int) and 2 <= n_groups <= draws.shape[1]):
        raise ValueError(
            f"n_groups={n_groups!r} must be an integer from 2 to the number of patients ({draws.shape[1]})"
        )
    cut_draws, groups = quartile_of(draws, n_groups)
    probabilities = np.stack([(groups == k + 1).mean(axis=0) for k in range(n_groups)], axis=1)
    plug_in_values = np.median(draws, axis=0)
    plug_in_cuts, plug_in = quartile_of(plug_in_values, n_groups)
    return ExposureQuartiles(
        metric=metric,
        patient_ids=tuple(patient_ids),
        cut_draws=cut_draws,
        plug_in_cuts=plug_in_cuts,
        probabilities=probabilities,
        plug_in=plug_in.astype(int),
        modal=1 + np.argmax(probabilities, axis=1),
        plug_in_values=plug_in_values,
    )


def quartile_by_dose(
    quartiles: ExposureQuartiles,
    dose: np.ndarray,
    *,
    levels: Sequence[float] = DOSE_LEVELS,
) -> pd.DataFrame:
    """Quartile by actual dose level: plug-in counts and posterior expected counts.

    Parameters
    ----------
    quartiles : ExposureQuartiles
    dose : array (patients,)
        Actual infused dose, 10^6 CAR+ T cells, in the order of ``quartiles.patient_ids``.
    levels : sequence of float
        Dose levels; each dose goes to the nearest level (default `DOSE_LEVELS`).

    Returns
    -------
    pandas.DataFrame
        One row per dose level: ``dose_level``, ``n``, ``Q1``..``Q4`` (plug-in counts) and
        ``E_Q1``..``E_Q4`` (sum of membership probabilities), plus a total row.
    """
    dose = np.asarray(dose, dtype=float)
    if dose.shape != (len(quartiles.patient_ids),):
        raise ValueError(f"dose must have one value per patient ({len(quartiles.patient_ids)}), got shape {dose.shape}")
    levels = np.asarray(sorted(levels), dtype=float)
    nearest = levels[np.argmin(np.abs(dose[:, None] - levels[None, :]), axis=1)]
    rows = []
    for level in [*levels, None]:
        member = np.ones_like(nearest, dtype=bool) if level is None else nearest == level
        row = {"dose_level": "all" if level is None else f"{level:g}", "n": int(member.sum())}
        for k in range(quartiles.n_groups):
            row[f"Q{k + 1}"] = int(np.sum(quartiles.plug_in[member] == k + 1))
        for k in range(quartiles.n_groups):
            row[f"E_Q{k + 1}"] = float(quartiles.probabilities[member, k].sum())
        rows.append(row)
    return pd.DataFrame(rows)
