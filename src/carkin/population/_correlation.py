"""Correlated random effects: the block-diagonal IIV correlation matrix, its Cholesky factor and its density.

A spec's ``[iiv] correlation = "full"`` or ``blocks = [[...], ...]`` (``PopulationSpec.iiv_blocks``) correlates
the random effects within each block; parameters outside every block stay independent. The individual
parameters are then

    phi_i ~ N(loc_i, Omega),    Omega = diag(omega) C diag(omega),    C = L L^T

with C block-diagonal (1 on the diagonal) and ``L`` its lower Cholesky factor. Each block k has its own
factor ``L_k`` (sample site ``corr_chol_<k>``, ``dist.LKJCholesky(len(block), lkj_concentration)``, blocks
numbered from 0 in spec order); `correlation_cholesky` scatters them into the (params, params) factor ``L``
(identity rows and columns for the independent parameters). Because every block lists its parameters in spec
order, the scattered matrix is lower triangular with a positive diagonal, so it *is* the Cholesky factor of C.

The per-patient density uses ``L`` directly: with ``r_i = (phi_i - loc_i) / omega`` and ``L u_i = r_i``,

    log N(phi_i | loc_i, Omega) = -|u_i|^2 / 2 - sum log omega - sum log diag L - params / 2 log(2 pi),

a forward substitution written out entry by entry on (patients,) columns (`solve_correlation`): for the
small factors of CK models (6 x 6 at most) XLA fuses it into a few elementwise kernels instead of a batched
``solve_triangular``. Whether that is faster than ``dist.MultivariateNormal``'s log density depends on the
machine and the cohort size: benchmarks/correlated_iiv.py measures both (no result is recorded yet).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from jaxtyping import Array, Float
from numpyro.distributions import constraints

from ._spec import PopulationSpec

__all__ = ["CorrelatedNormal", "correlation_sites", "correlation_pairs", "correlation_cholesky", "iiv_log_density",
           "solve_correlation"]


def correlation_sites(spec: PopulationSpec) -> tuple[str, ...]:
    """The sample sites of the correlation factors, one per block: ``corr_chol_0``, ``corr_chol_1``, ..."""
    return tuple(f"corr_chol_{k}" for k in range(len(spec.iiv_blocks)))


def correlation_pairs(spec: PopulationSpec) -> tuple[tuple[str, str], ...]:
    """Every correlated pair of parameters (a before b in spec order), block by block: what the parameter
    table reports as ``corr_<a>_<b>``."""
    return tuple((block[i], block[j]) for block in spec.iiv_blocks for i in range(len(block))
                 for j in range(i + 1, len(block)))


def correlation_cholesky(spec: PopulationSpec, values: dict) -> Float[Array, "... params params"] | None:
    """The Cholesky factor of the block-diagonal correlation matrix from the blocks' factors; None for a spec
    without correlated IIV.

    Parameters
    ----------
    spec : PopulationSpec
    values : dict
        ``corr_chol_<k>`` -> (..., len(block k), len(block k)) lower Cholesky factors of the blocks'
        correlation matrices (e.g. one posterior draw, or draws with leading batch axes; other keys ignored).

    Returns
    -------
    Float[Array, "... params params"] or None
        ``L`` (spec order), identity outside the blocks; leading axes those of the factors.
    """
    if not spec.iiv_blocks:
        return None
    names = spec.parameter_names
    factors = [jnp.asarray(values[site]) for site in correlation_sites(spec)]
    batch = jnp.broadcast_shapes(*[f.shape[:-2] for f in factors])
    chol = jnp.broadcast_to(jnp.eye(len(names), dtype=factors[0].dtype), batch + (len(names), len(names)))
    for block, factor in zip(spec.iiv_blocks, factors, strict=True):
        index = np.asarray([names.index(name) for name in block])
        chol = chol.at[..., index[:, None], index[None, :]].set(jnp.broadcast_to(factor, batch + factor.shape[-2:]))
    return chol


def solve_correlation(
    chol: Float[Array, "params params"], r: Float[Array, "patients params"]
) -> Float[Array, "patients params"]:
    """``u`` with ``L u_i = r_i`` for every patient (row) ``r_i``: forward substitution, written out entry by entry."""
    u = []
    for i in range(r.shape[-1]):
        u.append((r[:, i] - sum(chol[i, k] * u[k] for k in range(i))) / chol[i, i])
    return jnp.stack(u, axis=-1)


def iiv_log_density(
    phi: Float[Array, "patients params"],
    loc: Float[Array, "patients params"],
    omega: Float[Array, " params"],
    chol: Float[Array, "params params"] | None = None,
) -> Float[Array, " patients"]:
    """Each patient's log N(phi_i | loc_i, diag(omega) L L^T diag(omega)) (transformed scale).

    ``chol``: the correlation matrix's Cholesky factor (`correlation_cholesky`); None: independent random
    effects (``L = I``). Batch over draws with ``jax.vmap``.
    """
    if chol is None:
        return jnp.sum(jax.scipy.stats.norm.logpdf(phi, loc, omega[None, :]), axis=-1)
    u = solve_correlation(chol, (phi - loc) / omega[None, :])
    constant = (
        jnp.sum(jnp.log(omega)) + jnp.sum(jnp.log(jnp.diagonal(chol))) + 0.5 * omega.shape[-1] * jnp.log(2 * jnp.pi)
    )
    return -0.5 * jnp.sum(u**2, axis=-1) - constant


class CorrelatedNormal(dist.Distribution):
    """Each patient's phi_i ~ N(loc_i, diag(omega) L L^T diag(omega)): batch (patients,), event (params,).

    The density of `iiv_log_density`; what ``dist.MultivariateNormal(loc, scale_tril=omega[:, None] * L)``
    computes, without its batched triangular solve.
    """

    arg_constraints = {"loc": constraints.real_vector, "omega": constraints.positive, "chol": constraints.corr_cholesky}
    support = constraints.real_vector
    reparametrized_params = ["loc", "omega", "chol"]

    def __init__(self, loc, omega, chol, *, validate_args=None):
        self.loc, self.omega, self.chol = loc, omega, chol
        super().__init__(batch_shape=jnp.shape(loc)[:-1], event_shape=jnp.shape(loc)[-1:], validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        eta = jax.random.normal(key, sample_shape + self.batch_shape + self.event_shape)
        return self.loc + self.omega * (eta @ self.chol.T)

    def log_prob(self, value):
        return iiv_log_density(value, self.loc, self.omega, self.chol)
