"""The generative model of CK observations: individual parameters, residual error, censoring at the LLOQ.

Every simulator of carkin draws observations the same way, and this module is the one place that says how:

1. individual parameters (transformed scale) from population values and standard-normal draws,
   ``phi = mu + covariate effects(beta, z) + omega * eta`` (`individual_parameters`);
2. the kinetic model's prediction log C (the caller's layout: records, a common grid, a padded schedule);
3. residual error on the log scale, ``log y = log C + sd * eps`` with ``eps ~ N(0, 1)`` and ``sd`` from
   the spec's error model (`residual_sd`, the formula the likelihood uses too);
4. censoring at the LLOQ: ``BLQ = log y < log LLOQ``, and the recorded DV is the LLOQ on a BLQ record (the
   Monolix / nlmixr2 convention of carkin's data format) (`censor`).

`sample_observations` is steps 3 and 4. The functions take the standard-normal draws (``eta``, ``eps``)
as arrays instead of a key, so that each caller keeps its own random-stream layout: per-patient
``fold_in`` keys in `carkin.simulate.simulate_cohort`, one key per replicate in the posterior predictive
checks (`carkin.diagnostics`), one per posterior draw in dose scenarios. All functions are pure, elementwise
or broadcasting over leading batch axes, and jit-, vmap- and grad-safe.
"""

from __future__ import annotations

from typing import Literal

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float

from ._spec import RESIDUAL_MODELS, PopulationSpec

__all__ = [
    "Observations", "censor", "individual_means", "individual_parameters", "residual_sd", "sample_observations",
]

ResidualModel = Literal["additive_log", "combined"]


def residual_sd(
    residual: ResidualModel,
    log_c: Float[ArrayLike, "..."],
    sigma: Float[ArrayLike, ""],
    sigma_add: Float[ArrayLike, ""] | None = None,
) -> Float[Array, "..."]:
    """Residual SD on the log scale of the spec's error model (``PopulationSpec.residual``).

    - ``"additive_log"``: ``sd = sigma`` (a constant coefficient of variation, in log units);
    - ``"combined"``: ``sd = sqrt(sigma^2 + (sigma_add / C)^2)``, the first-order log-scale SD of
      proportional plus additive error, so that the additive part dominates near the LLOQ.

    Parameters
    ----------
    residual : {"additive_log", "combined"}
    log_c : Float[ArrayLike, "..."]
        Predicted log concentration, log(copies/ug gDNA); any shape.
    sigma : Float[ArrayLike, ""]
        Log-scale residual SD.
    sigma_add : Float[ArrayLike, ""], optional
        Additive residual SD, copies/ug gDNA ("combined" only).

    Returns
    -------
    Float[Array, "..."]
        ``sigma`` itself (a scalar) for ``"additive_log"``; the per-prediction SD, shaped like ``log_c``,
        for ``"combined"``.

    Raises
    ------
    ValueError
        For an unknown error model, or ``"combined"`` without ``sigma_add``.
    """
    if residual == "additive_log":
        return jnp.asarray(sigma)
    if residual == "combined":
        if sigma_add is None:
            raise ValueError('residual_sd: the "combined" error model needs sigma_add (copies/ug); got None')
        return jnp.sqrt(sigma**2 + (sigma_add * jnp.exp(-jnp.asarray(log_c))) ** 2)
    raise ValueError(f"residual_sd: unknown error model {residual!r}; choose one of {', '.join(RESIDUAL_MODELS)}")


def _effect_matrix(spec: PopulationSpec) -> np.ndarray:
    """(effects, params) one-hot: which parameter each coefficient acts on."""
    names = spec.parameter_names
    m = np.zeros((len(spec.effects), len(names)))
    for e, (_, target) in enumerate(spec.effects):
        m[e, names.index(target)] = 1.0
    return m


def individual_means(
    spec: PopulationSpec,
    mu: Float[Array, " params"],
    beta: Float[Array, " effects"],
    covariate_z: Float[Array, "patients effects"],
) -> Float[Array, "patients params"]:
    """Mean of each patient's transformed parameters: ``mu`` + covariate effects (``z * beta`` on their targets)."""
    if len(spec.effects) == 0:
        return jnp.broadcast_to(mu[None, :], (covariate_z.shape[0], mu.shape[-1]))
    return mu[None, :] + (covariate_z * beta[None, :]) @ jnp.asarray(_effect_matrix(spec))


def individual_parameters(
    spec: PopulationSpec,
    mu: Float[Array, " params"],
    omega: Float[Array, " params"],
    beta: Float[Array, " effects"],
    covariate_z: Float[Array, "patients effects"],
    eta: Float[Array, "patients params"],
) -> Float[Array, "patients params"]:
    """Individual parameters on the transformed scale: ``individual_means(spec, mu, beta, z) + omega * eta``.

    Parameters
    ----------
    spec : PopulationSpec
        Says which parameter each covariate coefficient acts on.
    mu, omega : Float[Array, " params"]
        Typical values and IIV SDs, transformed scale (log or logit), spec order.
    beta : Float[Array, " effects"]
        Covariate coefficients (``spec.effect_names`` order; empty without covariates).
    covariate_z : Float[Array, "patients effects"]
        Standardised covariates (`covariate_design`).
    eta : Float[Array, "patients params"]
        Standard-normal random effects.

    Returns
    -------
    Float[Array, "patients params"]
        ``phi``; `natural_parameters` turns it into the kinetic model's parameters. Batch over draws with
        ``jax.vmap``.
    """
    return individual_means(spec, mu, beta, covariate_z) + omega[None, :] * eta


def censor(
    log_y: Float[ArrayLike, "..."], log_lloq: Float[ArrayLike, "..."]
) -> tuple[Float[Array, "..."], Bool[Array, "..."]]:
    """Censor log observations at the LLOQ: ``BLQ = log y < log LLOQ``; the recorded value is the LLOQ there.

    Parameters
    ----------
    log_y : Float[ArrayLike, "..."]
        Log observations, log(copies/ug gDNA).
    log_lloq : Float[ArrayLike, "..."]
        Log LLOQ, broadcastable against ``log_y``; ``-inf`` for a record that cannot be censored.

    Returns
    -------
    log_dv : Float[Array, "..."]
        ``log_y``, or ``log_lloq`` where censored (DV = LLOQ on a BLQ record, as in carkin's data format).
    blq : Bool[Array, "..."]
        True where the observation is below the LLOQ.
    """
    log_y, log_lloq = jnp.asarray(log_y), jnp.asarray(log_lloq)
    blq = log_y < log_lloq
    return jnp.where(blq, log_lloq, log_y), blq


class Observations(eqx.Module):
    """Simulated observations (`sample_observations`), all of the prediction's shape.

    Attributes
    ----------
    log_value : Float[Array, "..."]
        Log observation before censoring, log(copies/ug gDNA) (what NPDE compares with).
    log_dv : Float[Array, "..."]
        The recorded log DV: ``log_value``, or the log LLOQ on a BLQ record.
    blq : Bool[Array, "..."]
        Below the LLOQ (all False when no LLOQ was given).
    """

    log_value: Float[Array, "..."]
    log_dv: Float[Array, "..."]
    blq: Bool[Array, "..."]


def sample_observations(
    log_c: Float[ArrayLike, "..."],
    eps: Float[ArrayLike, "..."],
    *,
    residual: ResidualModel,
    sigma: Float[ArrayLike, ""],
    sigma_add: Float[ArrayLike, ""] | None = None,
    log_lloq: Float[ArrayLike, "..."] | None = None,
) -> Observations:
    """Observations from predictions: log-scale residual error (`residual_sd`), then censoring at the LLOQ.

    ``log y = log C + sd * eps``; ``BLQ = log y < log LLOQ``; the recorded DV is the LLOQ where BLQ.

    Parameters
    ----------
    log_c : Float[ArrayLike, "..."]
        Predicted log concentration, log(copies/ug gDNA); any shape (records, patients x times, ...).
    eps : Float[ArrayLike, "..."]
        Standard-normal draws of ``log_c``'s shape (the caller's random stream).
    residual : {"additive_log", "combined"}
        The error model (``spec.residual``).
    sigma, sigma_add
        As in `residual_sd` (log-scale SD; additive SD in copies/ug, "combined" only).
    log_lloq : Float[ArrayLike, "..."], optional
        Log LLOQ, broadcastable against ``log_c``; None: nothing is censored.

    Returns
    -------
    Observations
        ``log_value`` (uncensored), ``log_dv`` (censored) and ``blq``.

    Examples
    --------
    >>> obs = sample_observations(jnp.log(jnp.array([5.0, 500.0])), jnp.zeros(2), residual="additive_log",
    ...                           sigma=0.5, log_lloq=jnp.log(10.0))
    >>> obs.blq.tolist()
    [True, False]
    """
    log_c = jnp.asarray(log_c)
    log_value = log_c + residual_sd(residual, log_c, sigma, sigma_add) * eps
    if log_lloq is None:
        return Observations(log_value=log_value, log_dv=log_value, blq=jnp.zeros(log_value.shape, dtype=bool))
    log_dv, blq = censor(log_value, log_lloq)
    return Observations(log_value=log_value, log_dv=log_dv, blq=blq)
