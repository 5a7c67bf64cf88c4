"""The hierarchical numpyro model: fixed effects + covariates + IIV + residual error + M3 BLQ.

One function serves the prior predictive, the fit and the posterior predictive (house rule 8). The
log-likelihood is computed on flat arrays of the real records: the kinetic model is evaluated once per
record with the patient's parameters gathered, and the M3 term only on censored records (gathered
indices), which the prototype measured as the cheapest layout on CPU.

Sample sites (a stable contract with arviz and the manifest):

=========  ======================  ============================================================
site       shape                   meaning
=========  ======================  ============================================================
mu         (params,)               typical values on the transformed scale (log or logit)
omega      (params,)               IIV standard deviations on the transformed scale
beta       (effects,)              covariate coefficients (only if the spec has covariates)
phi        (patients, params)      individual parameters, transformed scale (centred IIV)
eta        (patients, params)      standardised random effects (non-centred IIV; phi is then
                                   a deterministic site)
sigma      ()                      residual SD on the log scale
sigma_add  ()                      additive residual SD, copies/ug ("combined" error only)
=========  ======================  ============================================================
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jaxtyping import Array, Bool, Float, Int

from ..data import Dataset, FlatObservations
from ..errors import SpecError
from ._spec import PopulationSpec

__all__ = ["PopulationData", "prepare", "population_model", "natural_parameters", "covariate_design"]


class PopulationData(eqx.Module):
    """Arrays the numpyro model needs, built once from a Dataset and a spec (see ``prepare``).

    Attributes
    ----------
    records : FlatObservations
        Real records in flat layout (patient index, time in days, log DV, BLQ flags, index sets).
    covariate_z : Float[Array, "patients effects"]
        Standardised covariate value for each coefficient of the spec (``spec.effects`` order).
    n_patients : int, static
    """

    records: FlatObservations
    covariate_z: Float[Array, "patients effects"]
    n_patients: int = eqx.field(static=True)


def covariate_design(dataset: Dataset, spec: PopulationSpec) -> np.ndarray:
    """Standardised covariates, one column per coefficient (``spec.effects`` order): shape (patients, effects).

    Raises
    ------
    SpecError
        If a covariate column named in the spec is missing from the dataset, or a log-transformed
        covariate has a non-positive value (naming the patient).
    """
    columns = []
    for cov in spec.covariates:
        try:
            x = np.asarray(dataset.covariate(cov.column), dtype=float)
        except KeyError as err:
            raise SpecError(
                f"{spec.source}: covariates.{cov.name} uses column {cov.column!r}, which the data "
                f"({dataset.source}) does not have: {err.args[0]}. Give a covariate table with that column "
                f"(--covariates) or remove [covariates.{cov.name}] from the spec."
            ) from None
        if cov.transform == "log" and np.any(x <= 0):
            bad = int(np.flatnonzero(x <= 0)[0])
            raise SpecError(
                f"{spec.source}: covariates.{cov.name} takes log({cov.column}), but patient "
                f"{dataset.patient_ids[bad]} has {cov.column} = {x[bad]:g} (must be > 0); use "
                f'transform = "linear" or fix the data ({dataset.source})'
            )
        z = cov.standardise(x)
        columns += [z] * len(cov.parameters)
    if not columns:
        return np.zeros((dataset.n_patients, 0))
    return np.stack(columns, axis=1)


def prepare(dataset: Dataset, spec: PopulationSpec) -> PopulationData:
    """Build the model's arrays from a dataset and a spec (outside ``jit``; concrete index sets)."""
    records = dataset.flat()
    if spec.blq == "drop":
        keep = np.flatnonzero(~np.asarray(records.blq))
        records = FlatObservations(
            patient=records.patient[keep],
            times=records.times[keep],
            log_dv=records.log_dv[keep],
            blq=records.blq[keep],
            quantified_index=jnp.arange(keep.size, dtype=jnp.int32),
            censored_index=jnp.zeros((0,), dtype=jnp.int32),
        )
    return PopulationData(
        records=records,
        covariate_z=jnp.asarray(covariate_design(dataset, spec)),
        n_patients=dataset.n_patients,
    )


def natural_parameters(spec: PopulationSpec, phi: Float[Array, "... params"]) -> dict[str, Float[Array, "..."]]:
    """Transformed-scale parameters (last axis in spec order) -> dict of natural-scale arrays."""
    out = {}
    for k, p in enumerate(spec.parameters):
        out[p.name] = jnp.exp(phi[..., k]) if p.transform == "log" else jax.nn.sigmoid(phi[..., k])
    return out


def _effect_matrix(spec: PopulationSpec) -> np.ndarray:
    """(effects, params) one-hot: which parameter each coefficient acts on."""
    names = spec.parameter_names
    m = np.zeros((len(spec.effects), len(names)))
    for e, (_, target) in enumerate(spec.effects):
        m[e, names.index(target)] = 1.0
    return m


def individual_means(spec: PopulationSpec, mu, beta, covariate_z) -> Float[Array, "patients params"]:
    """Mean of each patient's transformed parameters: mu + covariate effects."""
    if len(spec.effects) == 0:
        return jnp.broadcast_to(mu[None, :], (covariate_z.shape[0], mu.shape[-1]))
    return mu[None, :] + (covariate_z * beta[None, :]) @ jnp.asarray(_effect_matrix(spec))


def log_likelihood(spec: PopulationSpec, data: PopulationData, phi, sigma, sigma_add=None) -> Float[Array, ""]:
    """Sum of the record log-likelihoods: normal on log DV for quantified records, M3 for censored ones."""
    rec = data.records
    individual = natural_parameters(spec, phi[rec.patient])
    log_pred = spec.kinetic_model.log_concentration(individual, rec.times)
    if spec.residual == "combined":
        sd = jnp.sqrt(sigma**2 + (sigma_add * jnp.exp(-log_pred)) ** 2)
    else:
        sd = sigma
    q = rec.quantified_index
    sd_q = sd if jnp.ndim(sd) == 0 else sd[q]
    ll = jnp.sum(dist.Normal(log_pred[q], sd_q).log_prob(rec.log_dv[q]))
    c = rec.censored_index
    if c.shape[0] > 0:
        sd_c = sd if jnp.ndim(sd) == 0 else sd[c]
        ll = ll + jnp.sum(jax.scipy.special.log_ndtr((rec.log_dv[c] - log_pred[c]) / sd_c))
    return ll


def population_model(data: PopulationData, spec: PopulationSpec) -> None:
    """numpyro model of the hierarchical CK population (see the module docstring for the sites)."""
    n_params = len(spec.parameters)
    prior_loc = jnp.asarray([p.prior_loc for p in spec.parameters])
    prior_sd = jnp.asarray([p.prior_sd for p in spec.parameters])
    omega_scale = jnp.asarray([p.omega_scale for p in spec.parameters])
    mu = numpyro.sample("mu", dist.Normal(prior_loc, prior_sd).to_event(1))
    omega = numpyro.sample("omega", dist.HalfNormal(omega_scale).to_event(1))
    if spec.effects:
        beta_sd = jnp.asarray([c.prior_sd for c in spec.covariates for _ in c.parameters])
        beta = numpyro.sample("beta", dist.Normal(jnp.zeros_like(beta_sd), beta_sd).to_event(1))
    else:
        beta = jnp.zeros((0,))
    loc = individual_means(spec, mu, beta, data.covariate_z)
    with numpyro.plate("patients", data.n_patients, dim=-1):
        if spec.iiv == "centred":
            phi = numpyro.sample("phi", dist.Normal(loc, omega[None, :]).to_event(1))
        elif spec.iiv == "noncentred":
            eta = numpyro.sample("eta", dist.Normal(jnp.zeros(n_params), 1.0).to_event(1))
            phi = numpyro.deterministic("phi", loc + omega[None, :] * eta)
        else:  # validated in the spec; kept for a clear message if a spec is built by hand
            raise SpecError(f"unknown IIV parameterization {spec.iiv!r}")
    sigma = numpyro.sample("sigma", dist.HalfNormal(spec.sigma_scale))
    sigma_add = numpyro.sample("sigma_add", dist.HalfNormal(spec.sigma_add_scale)) if spec.residual == "combined" else None
    numpyro.factor("log_likelihood", log_likelihood(spec, data, phi, sigma, sigma_add))
