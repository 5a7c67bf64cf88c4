"""The immutable result of a fit: posterior (arviz InferenceData), manifest, and the tables users read."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import arviz as az
import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..population import PopulationSpec, correlation_cholesky, correlation_pairs, correlation_sites, natural_parameters

__all__ = ["Fit", "population_draws", "parameter_table", "TABLE_COLUMNS"]

TABLE_COLUMNS = ["parameter", "mean", "sd", "q05", "q50", "q95", "r_hat", "ess_bulk", "ess_tail"]


def population_draws(posterior, spec: PopulationSpec) -> dict[str, np.ndarray]:
    """Population quantities on the natural scale, each of shape (chains, draws).

    Returns ``typical_<name>`` for every individual parameter, the model's derived typical values
    (``typical_alpha``, ``typical_foldx`` for the multiphasic model), ``omega_<name>`` (IIV SD on the
    transformed scale), ``corr_<a>_<b>`` (the correlation of the random effects of a and b, for every pair
    in an [iiv] block, a before b in spec order), ``beta_<covariate>_<name>``,
    ``gamma_<comedication>_<process>`` (log multipliers) with
    ``fold_<comedication>_<process>`` = exp(gamma), the residual parameters (``sigma``, ``sigma_add``; per
    analyte ``sigma_<analyte>``, ``sigma_add_<analyte>`` when the spec has several) and each scaled analyte's
    factor ``scale_<analyte>``.
    """
    mu = np.asarray(posterior["mu"])
    typical = {k: np.asarray(v) for k, v in natural_parameters(spec, jnp.asarray(mu)).items()}
    out = {f"typical_{k}": v for k, v in typical.items()}
    derived = spec.kinetic_model.derived({k: jnp.asarray(v) for k, v in typical.items()})
    out.update({f"typical_{k}": np.asarray(v) for k, v in derived.items()})
    omega = np.asarray(posterior["omega"])
    out.update({f"omega_{p.name}": omega[..., k] for k, p in enumerate(spec.parameters)})
    if spec.iiv_blocks:
        correlation = _correlation_draws(posterior, spec)
        names = spec.parameter_names
        for a, b in correlation_pairs(spec):
            out[f"corr_{a}_{b}"] = correlation[..., names.index(a), names.index(b)]
    if spec.effects:
        beta = np.asarray(posterior["beta"])
        out.update({name: beta[..., e] for e, name in enumerate(spec.effect_names)})
    if spec.comedications:
        gamma = np.asarray(posterior["gamma"])
        for e, name in enumerate(spec.comedication_effect_names):
            out[name] = gamma[..., e]
            out[name.replace("gamma_", "fold_", 1)] = np.exp(gamma[..., e])
    for analyte in spec.analytes:
        for site in spec.residual_sites(analyte):
            if site:
                out[site] = np.asarray(posterior[site])
        site = spec.scale_site(analyte)
        if site:
            out[f"scale_{analyte.name}"] = np.exp(np.asarray(posterior[site]))
    return out


def _correlation_draws(posterior, spec: PopulationSpec) -> np.ndarray:
    """Draws of the random effects' correlation matrix L L^T, (..., params, params), from the blocks' factors."""
    chol = np.asarray(
        correlation_cholesky(spec, {site: np.asarray(posterior[site]) for site in correlation_sites(spec)})
    )
    return chol @ np.swapaxes(chol, -1, -2)


def _diagnostic(fn, draws: np.ndarray, **kwargs) -> float:
    if draws.shape[0] < 2 and fn is az.rhat:
        return math.nan
    try:
        return float(fn(draws, **kwargs))
    except Exception:  # arviz refuses too few draws; the gate then fails on NaN
        return math.nan


def parameter_table(draws: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per quantity: mean, sd, 5/50/95% quantiles, R-hat, bulk and tail ESS (arviz)."""
    rows = []
    for name, x in draws.items():
        flat = x.reshape(-1)
        rows.append(
            {
                "parameter": name,
                "mean": float(flat.mean()),
                "sd": float(flat.std(ddof=1)) if flat.size > 1 else 0.0,
                "q05": float(np.quantile(flat, 0.05)),
                "q50": float(np.quantile(flat, 0.50)),
                "q95": float(np.quantile(flat, 0.95)),
                "r_hat": _diagnostic(az.rhat, x),
                "ess_bulk": _diagnostic(az.ess, x, method="bulk"),
                "ess_tail": _diagnostic(az.ess, x, method="tail"),
            }
        )
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


@dataclasses.dataclass(frozen=True)
class Fit:
    """A fitted population model.

    Attributes
    ----------
    idata : arviz.InferenceData
        Posterior draws of every site (``mu``, ``omega``, ``corr_chol_<k>``, ``beta``, ``phi``, ``sigma``; see
        ``carkin.population``) plus sample statistics (divergences) for NUTS.
    spec : PopulationSpec
        The model that was fitted.
    manifest : dict
        Data hash, spec, seeds, sampler settings, package versions, diagnostics and the gate verdict.
    table : pandas.DataFrame
        The population parameter table (``parameters.csv``), natural scale.
    patient_ids : tuple of str
    """

    idata: Any
    spec: PopulationSpec
    manifest: dict
    table: pd.DataFrame
    patient_ids: tuple[str, ...]

    def summary(self) -> pd.DataFrame:
        """The parameter table (a copy): one row per population quantity."""
        return self.table.copy()

    @property
    def converged(self) -> bool:
        """True if the fit passed its convergence gates (always False for approximate methods' R-hat)."""
        return bool(self.manifest["diagnostics"]["passed"])

    @property
    def method(self) -> str:
        return self.manifest["method"]

    @property
    def simulated(self) -> bool:
        """True if the fitted data are simulated (``manifest["data"]["simulated"]``, from ``Dataset.simulated``)."""
        return bool(self.manifest.get("data", {}).get("simulated", False))

    def correlation(self, *, prob: float = 0.9) -> pd.DataFrame:
        """The random effects' correlation matrix (transformed scale): posterior mean and equal-tailed interval.

        Parameters
        ----------
        prob : float, default 0.9
            Mass of the interval.

        Returns
        -------
        pandas.DataFrame
            Rows and columns the parameters (spec order); the columns grouped under ``"mean"``, ``"low"`` and
            ``"high"``, so that ``fit.correlation()["mean"]`` is the posterior mean matrix. Pairs outside the
            spec's [iiv] blocks are 0 by the model (not estimated); the diagonal is 1.

        Raises
        ------
        ValueError
            If ``prob`` is not in (0, 1).
        """
        if not 0 < prob < 1:
            raise ValueError(f"Fit.correlation: prob must lie in (0, 1), got {prob!r} ({type(prob).__name__})")
        names = list(self.spec.parameter_names)
        if self.spec.iiv_blocks:
            draws = _correlation_draws(self.idata.posterior, self.spec).reshape(-1, len(names), len(names))
        else:
            draws = np.eye(len(names))[None]
        tail = (1 - prob) / 2
        stats = {"mean": draws.mean(axis=0), "low": np.quantile(draws, tail, axis=0),
                 "high": np.quantile(draws, 1 - tail, axis=0)}
        return pd.concat({k: pd.DataFrame(v, index=names, columns=names) for k, v in stats.items()}, axis=1)

    def individual_parameters(self) -> dict[str, np.ndarray]:
        """Individual parameters on the natural scale, each (chains, draws, patients)."""
        phi = jnp.asarray(self.idata.posterior["phi"].values)
        return {k: np.asarray(v) for k, v in natural_parameters(self.spec, phi).items()}

    def __repr__(self) -> str:
        verdict = "passed" if self.converged else "FAILED"
        return (
            f"Fit(method={self.method!r}, model={self.spec.model!r}, patients={len(self.patient_ids)}, "
            f"gates {verdict})"
        )
