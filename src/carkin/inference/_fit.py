"""The immutable result of a fit: posterior (arviz InferenceData), manifest, and the tables users read."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import arviz as az
import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..population import PopulationSpec, natural_parameters

__all__ = ["Fit", "population_draws", "parameter_table", "TABLE_COLUMNS"]

TABLE_COLUMNS = ["parameter", "mean", "sd", "q05", "q50", "q95", "r_hat", "ess_bulk", "ess_tail"]


def population_draws(posterior, spec: PopulationSpec) -> dict[str, np.ndarray]:
    """Population quantities on the natural scale, each of shape (chains, draws).

    Returns ``typical_<name>`` for every individual parameter, the model's derived typical values
    (``typical_alpha``, ``typical_foldx`` for the multiphasic model), ``omega_<name>`` (IIV SD on the
    transformed scale), ``beta_<covariate>_<name>``, ``sigma`` (and ``sigma_add`` for combined error).
    """
    mu = np.asarray(posterior["mu"])
    typical = {k: np.asarray(v) for k, v in natural_parameters(spec, jnp.asarray(mu)).items()}
    out = {f"typical_{k}": v for k, v in typical.items()}
    derived = spec.kinetic_model.derived({k: jnp.asarray(v) for k, v in typical.items()})
    out.update({f"typical_{k}": np.asarray(v) for k, v in derived.items()})
    omega = np.asarray(posterior["omega"])
    out.update({f"omega_{p.name}": omega[..., k] for k, p in enumerate(spec.parameters)})
    if spec.effects:
        beta = np.asarray(posterior["beta"])
        out.update({name: beta[..., e] for e, name in enumerate(spec.effect_names)})
    out["sigma"] = np.asarray(posterior["sigma"])
    if spec.residual == "combined":
        out["sigma_add"] = np.asarray(posterior["sigma_add"])
    return out


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
        Posterior draws of every site (``mu``, ``omega``, ``beta``, ``phi``, ``sigma``; see
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
