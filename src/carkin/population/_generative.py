"""The generative model of CK observations: individual parameters, residual error, censoring at the LLOQ.

Every simulator of carkin draws observations the same way, and this module is the one place that says how:

1. individual parameters (transformed scale) from population values and standard-normal draws,
   ``phi = mu + covariate effects(beta, z) + omega * (L eta)`` (`individual_parameters`; ``L`` the Cholesky
   factor of the IIV correlation matrix, the identity without correlated IIV);
2. the kinetic model's prediction log C (the caller's layout: records, a common grid, a padded schedule);
3. residual error, on the log scale for the log-scale error models (``log y = log C + sd * eps``) and on
   DV's own scale for the linear ones (``y = C + sd * eps``), ``eps ~ N(0, 1)`` and ``sd`` from the
   analyte's error model (`residual_sd`, the formula the likelihood uses too);
4. censoring at the LLOQ: ``BLQ = y < LLOQ``, and the recorded DV is the LLOQ on a BLQ record (the
   Monolix / nlmixr2 convention of carkin's data format) (`censor`).

`sample_observations` is steps 3 and 4 for one error model; `sample_analyte_observations` applies each
record's analyte's error model (specs with several analytes). The functions take the standard-normal draws
(``eta``, ``eps``) as arrays instead of a key, so that each caller keeps its own random-stream layout: per-patient
``fold_in`` keys in `carkin.simulate.simulate_cohort`, one key per replicate in the posterior predictive
checks (`carkin.diagnostics`), one per posterior draw in dose scenarios. All functions are pure, elementwise
or broadcasting over leading batch axes, and jit-, vmap- and grad-safe.
"""

from __future__ import annotations

from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from ._spec import LOG_SCALE_RESIDUALS, RESIDUAL_MODELS, PopulationSpec

__all__ = [
    "Observations", "censor", "individual_means", "individual_parameters", "residual_sd", "sample_analyte_observations",
    "sample_observations",
]

ResidualModel = Literal["additive_log", "combined", "additive", "proportional", "additive_proportional"]


def residual_sd(
    residual: ResidualModel,
    log_c: Float[ArrayLike, "..."],
    sigma: Float[ArrayLike, "..."] | None,
    sigma_add: Float[ArrayLike, "..."] | None = None,
) -> Float[Array, "..."]:
    """Residual SD of an error model (`carkin.population.RESIDUAL_MODELS`), on the scale the model works on.

    Log scale (the SD of log DV):

    - ``"additive_log"``: ``sd = sigma`` (a constant coefficient of variation, in log units);
    - ``"combined"``: ``sd = sqrt(sigma^2 + (sigma_add / C)^2)``, the first-order log-scale SD of
      proportional plus additive error, so that the additive part dominates near the LLOQ.

    Linear scale (the SD of DV):

    - ``"additive"``: ``sd = sigma_add``;
    - ``"proportional"``: ``sd = sigma C``;
    - ``"additive_proportional"``: ``sd = sqrt(sigma_add^2 + (sigma C)^2)``.

    Parameters
    ----------
    residual : str
        The error model.
    log_c : Float[ArrayLike, "..."]
        Predicted log concentration (log of the analyte's unit); any shape.
    sigma : Float[ArrayLike, "..."], optional
        Log-scale SD, or the proportional coefficient; scalar or broadcastable against ``log_c``.
    sigma_add : Float[ArrayLike, "..."], optional
        Additive SD, in the analyte's unit.

    Returns
    -------
    Float[Array, "..."]
        ``sigma`` or ``sigma_add`` itself where the SD does not depend on C; else shaped like ``log_c``.

    Raises
    ------
    ValueError
        For an unknown error model, or a parameter it needs given as None.
    """
    needs_sigma = residual in ("additive_log", "combined", "proportional", "additive_proportional")
    needs_add = residual in ("combined", "additive", "additive_proportional")
    if residual not in RESIDUAL_MODELS:
        raise ValueError(f"residual_sd: unknown error model {residual!r}; choose one of {', '.join(RESIDUAL_MODELS)}")
    missing = [n for n, need, value in (("sigma", needs_sigma, sigma), ("sigma_add", needs_add, sigma_add))
               if need and value is None]
    if missing:
        raise ValueError(f"residual_sd: the {residual!r} error model needs {' and '.join(missing)}; got None")
    if residual == "additive_log":
        return jnp.asarray(sigma)
    if residual == "additive":
        return jnp.asarray(sigma_add)
    log_c = jnp.asarray(log_c)
    if residual == "combined":
        return jnp.sqrt(sigma**2 + (sigma_add * jnp.exp(-log_c)) ** 2)
    c = jnp.exp(log_c)
    if residual == "proportional":
        return sigma * c
    return jnp.sqrt(sigma_add**2 + (sigma * c) ** 2)


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
    chol: Float[Array, "params params"] | None = None,
) -> Float[Array, "patients params"]:
    """Individual parameters on the transformed scale: ``individual_means(spec, mu, beta, z) + omega * (L eta)``.

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
    chol : Float[Array, "params params"], optional
        ``L``, the lower Cholesky factor of the random effects' correlation matrix (spec order;
        `carkin.population.correlation_cholesky`, or ``PopulationParameters.chol``); None: independent random
        effects (``L = I``). Each patient's random effects are then ``omega * (L eta_i)``, with covariance
        diag(omega) L L^T diag(omega).

    Returns
    -------
    Float[Array, "patients params"]
        ``phi``; `natural_parameters` turns it into the kinetic model's parameters. Batch over draws with
        ``jax.vmap``.
    """
    deviation = eta if chol is None else eta @ jnp.swapaxes(chol, -1, -2)
    return individual_means(spec, mu, beta, covariate_z) + omega[None, :] * deviation


def censor(
    log_y: Float[ArrayLike, "..."], log_lloq: Float[ArrayLike, "..."]
) -> tuple[Float[Array, "..."], Bool[Array, "..."]]:
    """Censor log observations at the LLOQ: ``BLQ = log y < log LLOQ``; the recorded value is the LLOQ there.

    Parameters
    ----------
    log_y : Float[ArrayLike, "..."]
        Log observations (log of the analyte's unit).
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
        log of the observation before censoring (NaN where a linear-scale observation is <= 0): what NPDE
        compares with on the log scale.
    log_dv : Float[Array, "..."]
        log of the recorded DV: ``log_value``, or the log LLOQ on a BLQ record.
    blq : Bool[Array, "..."]
        Below the LLOQ (all False when no LLOQ was given).
    value : Float[Array, "..."]
        The observation before censoring, in the analyte's unit (may be <= 0 for a linear-scale error model).
    dv : Float[Array, "..."]
        The recorded DV: ``value``, or the LLOQ on a BLQ record.

    The log fields of a log-scale error model are computed on the log scale (``log C + sd * eps``), exactly.
    """

    log_value: Float[Array, "..."]
    log_dv: Float[Array, "..."]
    blq: Bool[Array, "..."]
    value: Float[Array, "..."]
    dv: Float[Array, "..."]


def _safe_log(x):
    """log x, NaN where x <= 0 (a linear-scale observation can be), without a warning or a NaN gradient."""
    positive = x > 0
    return jnp.where(positive, jnp.log(jnp.where(positive, x, 1.0)), jnp.nan)


def sample_observations(
    log_c: Float[ArrayLike, "..."],
    eps: Float[ArrayLike, "..."],
    *,
    residual: ResidualModel,
    sigma: Float[ArrayLike, "..."] | None,
    sigma_add: Float[ArrayLike, "..."] | None = None,
    log_lloq: Float[ArrayLike, "..."] | None = None,
) -> Observations:
    """Observations from predictions: residual error (`residual_sd`), then censoring at the LLOQ.

    Log-scale error models: ``log y = log C + sd * eps``; linear ones: ``y = C + sd * eps``. Then ``BLQ =
    y < LLOQ`` and the recorded DV is the LLOQ where BLQ.

    Parameters
    ----------
    log_c : Float[ArrayLike, "..."]
        Predicted log concentration (log of the analyte's unit); any shape (records, patients x times, ...).
    eps : Float[ArrayLike, "..."]
        Standard-normal draws of ``log_c``'s shape (the caller's random stream).
    residual : str
        The analyte's error model.
    sigma, sigma_add
        As in `residual_sd`.
    log_lloq : Float[ArrayLike, "..."], optional
        Log LLOQ, broadcastable against ``log_c``; None: nothing is censored.

    Returns
    -------
    Observations
        ``value`` (uncensored), ``dv`` (censored) and ``blq``.

    Examples
    --------
    >>> obs = sample_observations(jnp.log(jnp.array([5.0, 500.0])), jnp.zeros(2), residual="additive_log",
    ...                           sigma=0.5, log_lloq=jnp.log(10.0))
    >>> obs.blq.tolist()
    [True, False]
    """
    log_c = jnp.asarray(log_c)
    sd = residual_sd(residual, log_c, sigma, sigma_add)
    if residual in LOG_SCALE_RESIDUALS:
        log_value = log_c + sd * eps
        if log_lloq is None:
            blq, log_dv = jnp.zeros(log_value.shape, dtype=bool), log_value
        else:
            log_dv, blq = censor(log_value, log_lloq)
        return Observations(log_value=log_value, log_dv=log_dv, blq=blq, value=jnp.exp(log_value), dv=jnp.exp(log_dv))
    value = jnp.exp(log_c) + sd * eps
    if log_lloq is None:
        blq, dv = jnp.zeros(value.shape, dtype=bool), value
    else:
        lloq = jnp.exp(jnp.asarray(log_lloq))
        blq = ~(value >= lloq) & (lloq > 0)
        dv = jnp.where(blq, lloq, value)
    return Observations(log_value=_safe_log(value), log_dv=_safe_log(dv), blq=blq, value=value, dv=dv)


def sample_analyte_observations(
    spec: PopulationSpec,
    analyte: Int[ArrayLike, " records"] | None,
    log_c: Float[ArrayLike, " records"],
    eps: Float[ArrayLike, " records"],
    *,
    sigma: Float[ArrayLike, "..."] | None,
    sigma_add: Float[ArrayLike, "..."] | None = None,
    log_lloq: Float[ArrayLike, " records"] | None = None,
) -> Observations:
    """`sample_observations` with each record's analyte's error model (``spec.analytes``).

    Parameters
    ----------
    spec : PopulationSpec
        Its analytes' error models (``AnalyteSpec.residual``).
    analyte : Int[ArrayLike, " records"] or None
        Index into ``spec.analytes`` of every record (``PopulationData.record_analyte``); None: one analyte.
    log_c : Float[ArrayLike, " records"]
        Predicted log value of every record, the analyte's scaling factor included (log of the analyte's unit).
    eps : Float[ArrayLike, " records"]
        Standard-normal draws of ``log_c``'s shape.
    sigma, sigma_add
        One analyte: scalars (as in `residual_sd`); several: arrays (analytes,), an analyte's unused entry
        ignored (the form `population_extras` gives).
    log_lloq : Float[ArrayLike, " records"], optional
        Each record's log LLOQ (``-inf``: never censored); None: nothing is censored.

    Returns
    -------
    Observations
        Fields of ``log_c``'s shape; each record drawn with its analyte's error model (on the log scale for
        the log-scale models, on DV's scale for the linear ones).
    """
    analytes = spec.analytes
    if len(analytes) == 1:  # the single error model, called exactly as every single-analyte simulator does
        return sample_observations(log_c, eps, residual=analytes[0].residual, sigma=_first(sigma),
                                   sigma_add=_first(sigma_add), log_lloq=log_lloq)
    if analyte is None:
        raise ValueError(f"sample_analyte_observations: {spec.source} declares {len(analytes)} analytes; pass each "
                         "record's analyte index (PopulationData.record_analyte)")
    zeros = jnp.zeros(len(analytes))
    sigma = zeros if sigma is None else jnp.broadcast_to(jnp.asarray(sigma), (len(analytes),))
    sigma_add = zeros if sigma_add is None else jnp.broadcast_to(jnp.asarray(sigma_add), (len(analytes),))
    analyte = jnp.asarray(analyte)
    out = None
    for k, a in enumerate(analytes):  # a handful of analytes, each with its own (static) error model
        obs = sample_observations(log_c, eps, residual=a.residual, sigma=sigma[k], sigma_add=sigma_add[k],
                                  log_lloq=log_lloq)
        if out is None:
            out = obs
        else:
            out = jax.tree_util.tree_map(lambda new, old, k=k: jnp.where(analyte == k, new, old), obs, out)
    return out


def _first(value):
    """A single analyte's residual parameter as a scalar (None stays None)."""
    if value is None:
        return None
    value = jnp.asarray(value)
    return value if value.ndim == 0 else value.reshape(-1)[0]
