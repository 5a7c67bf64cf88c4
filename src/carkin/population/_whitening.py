"""Likelihood-informed whitening of the individual parameters: the geometry NUTS samples in after its first
warm-up stage.

Why: in the centred parameterisation each patient's parameters are correlated a posteriori (the multiphasic
model's log Cmax and log delta at +0.7, tmax and rho at -0.7; the mechanistic model's log e0 and kexp at
-0.8), which a diagonal mass matrix cannot undo, so every NUTS draw runs the full 63 leapfrog steps of depth
6; a parameter the data barely inform (memory persistence) forms a funnel with its omega instead, which the
non-centred form fixes at the price of the well-informed ones (design.md). Both are the two ends of one
family: for each patient, approximate the likelihood by a Gaussian in phi with precision ``H_i`` and linear
term ``b_i`` (taken once, at the first stage's posterior mean), combine it with the population prior
N(loc_i, Omega) and sample z_i where

    Q_i = H_i (sigma_ref / sigma)^2 + Omega^{-1},    Q_i = L_i L_i^T
    phi_i = Q_i^{-1} (Omega^{-1} loc_i + b_i (sigma_ref / sigma)^2) + L_i^{-T} z_i

with Omega = diag(omega^2) for independent random effects and diag(omega) C diag(omega) for correlated ones
(C the block-diagonal correlation matrix, `carkin.population._correlation`; Omega^{-1} is then full within
each block, and the map stays exact), so that z_i is close to standard normal whatever the patient's data:
H_i = 0 (no information) gives the non-centred form phi_i = loc_i + A z_i with A A^T = Omega (omega z_i for
independent random effects), a dominant H_i a whitened centred form. The map z -> phi is exact (its
log-Jacobian -sum log diag L_i is part of the density), so the posterior is the model's; only the sampler's
efficiency depends on how good the Gaussian is. The likelihood's curvature in phi scales as
1 / sigma^2 for the normal records, hence the (sigma_ref / sigma)^2 factor that lets it follow sigma.

This is partial non-centring with data-informed weights (Papaspiliopoulos, Roberts & Skold 2007, Stat Sci
22:59) applied as a full per-patient affine map; the Gaussian is built from finite differences of the
log-likelihood's gradient, so any kinetic model with a gradient (closed form or ODE) can use it.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._correlation import solve_correlation
from ._spec import PopulationSpec

__all__ = ["Whitening", "likelihood_whitening"]


class Whitening(eqx.Module):
    """A per-patient Gaussian approximation of the likelihood in phi, and the affine map it defines.

    Attributes
    ----------
    precision : Float[Array, "patients params params"]
        H_i: minus the Hessian of patient i's log-likelihood at the expansion point (eigenvalues clipped at
        0, so positive semi-definite), at residual SD ``sigma_ref``.
    shift : Float[Array, "patients params"]
        b_i = H_i phi_hat_i + gradient_i (the Gaussian's linear term), at ``sigma_ref``.
    sigma_ref : Float[Array, ""]
        The residual SD the two were computed at.
    """

    precision: Float[Array, "patients params params"]
    shift: Float[Array, "patients params"]
    sigma_ref: Float[Array, ""]

    def _factor(self, loc, omega, sigma, chol=None):
        """Cholesky factor of Q_i (rows of (patients,) columns) and the Gaussian's centre Q_i^{-1} r_i."""
        scale = (self.sigma_ref / sigma) ** 2
        n_params = self.shift.shape[-1]
        if chol is None:  # independent random effects: a diagonal prior precision
            prior_precision = 1.0 / omega**2
            q = [[self.precision[:, i, j] * scale + (prior_precision[i] if i == j else 0.0) for j in range(n_params)]
                 for i in range(n_params)]
            rhs = prior_precision * loc + self.shift * scale
        else:
            prior = _prior_precision(omega, chol)
            q = [[self.precision[:, i, j] * scale + prior[i, j] for j in range(n_params)] for i in range(n_params)]
            rhs = loc @ prior + self.shift * scale  # prior is symmetric
        chol_q = _cholesky(q)
        centre = _solve_upper(chol_q, _solve_lower(chol_q, [rhs[:, i] for i in range(n_params)]))
        return chol_q, centre

    def individuals(self, loc, omega, sigma, z, chol=None) -> tuple[Float[Array, "patients params"], Float[Array, ""]]:
        """phi for whitened z (both (patients, params)), and log |det d phi / d z| summed over patients.

        ``chol``: the Cholesky factor of the IIV correlation matrix (`carkin.population.correlation_cholesky`);
        None: independent random effects.
        """
        chol_q, centre = self._factor(loc, omega, sigma, chol)
        n_params = len(chol_q)
        deviation = _solve_upper(chol_q, [z[:, i] for i in range(n_params)])
        log_jacobian = -sum(jnp.sum(jnp.log(chol_q[i][i])) for i in range(n_params))
        return jnp.stack([c + d for c, d in zip(centre, deviation, strict=True)], axis=-1), log_jacobian

    def whiten(self, loc, omega, sigma, phi, chol=None) -> Float[Array, "patients params"]:
        """The inverse map: z for individual parameters phi (patients, params)."""
        chol_q, centre = self._factor(loc, omega, sigma, chol)
        n_params = len(chol_q)
        deviation = [phi[:, i] - centre[i] for i in range(n_params)]
        # z = L^T (phi - centre)
        return jnp.stack([sum(chol_q[k][i] * deviation[k] for k in range(i, n_params)) for i in range(n_params)],
                         axis=-1)


def _prior_precision(omega, chol) -> Float[Array, "params params"]:
    """The population prior's precision Omega^{-1} = diag(1 / omega) C^{-1} diag(1 / omega), C = chol chol^T."""
    n_params = omega.shape[-1]
    chol_inverse_t = solve_correlation(chol, jnp.eye(n_params, dtype=chol.dtype))  # L^{-T}, written out
    return (chol_inverse_t @ chol_inverse_t.T) / (omega[:, None] * omega[None, :])


# The per-patient matrices are small (params x params, 6 for the shipped models): written out entry by entry
# on (patients,) arrays, the factorisation and solves fuse into a few elementwise kernels. Batched
# jnp.linalg.cholesky / solve_triangular made the log-density gradient 2.7x the centred model's on CPU
# (1.16 vs 0.42 ms at 250 patients); written out it is close to the centred one.
def _cholesky(q):
    n = len(q)
    chol = [[None] * n for _ in range(n)]
    for j in range(n):
        diagonal = jnp.sqrt(q[j][j] - sum(chol[j][k] ** 2 for k in range(j)))
        chol[j][j] = diagonal
        for i in range(j + 1, n):
            chol[i][j] = (q[i][j] - sum(chol[i][k] * chol[j][k] for k in range(j))) / diagonal
    return chol


def _solve_lower(chol, rhs):
    """y with L y = rhs (rhs and y as lists of (patients,) columns)."""
    y = []
    for i in range(len(chol)):
        y.append((rhs[i] - sum(chol[i][k] * y[k] for k in range(i))) / chol[i][i])
    return y


def _solve_upper(chol, rhs):
    """x with L^T x = rhs."""
    n = len(chol)
    x = [None] * n
    for i in reversed(range(n)):
        x[i] = (rhs[i] - sum(chol[k][i] * x[k] for k in range(i + 1, n))) / chol[i][i]
    return x


def likelihood_whitening(
    spec: PopulationSpec, data, phi_hat: Float[Array, "patients params"], sigma, sigma_add=None, *, log_scale=None,
    gamma=None, step: float = 1e-3
) -> Whitening:
    """Build the `Whitening` from the log-likelihood around ``phi_hat`` (e.g. a first warm-up's posterior mean).

    The patients' log-likelihoods are separate, so the block-diagonal Hessian comes from 2 x params gradients
    of the total, each shifting one parameter of every patient at once (central differences, ``step`` on
    the transformed scale). A patient whose curvature is not finite gets H_i = 0, b_i = 0: the non-centred
    form, which needs no information about it (every patient, if an ODE solve failed at one of the points).
    ``sigma``, ``sigma_add``, ``log_scale``, ``gamma``: the other parameters' values, as `log_likelihood` takes
    them (e.g. the first stage's posterior means); the curvature is recorded at `whitening_reference`.
    """
    from ._model import log_likelihood, whitening_reference  # the model module imports this one

    phi_hat = jnp.asarray(phi_hat)
    n_params = phi_hat.shape[-1]
    value_and_gradient = jax.jit(jax.value_and_grad(
        lambda p: log_likelihood(spec, data, p, sigma, sigma_add, log_scale=log_scale, gamma=gamma)))
    value, centre_gradient = value_and_gradient(phi_hat)
    columns, solved = [], bool(jnp.isfinite(value))
    for k in range(n_params):
        (up, gradient_up), (down, gradient_down) = (value_and_gradient(phi_hat.at[:, k].add(s)) for s in (step, -step))
        solved = solved and bool(jnp.isfinite(up)) and bool(jnp.isfinite(down))
        columns.append((gradient_up - gradient_down) / (2.0 * step))
    hessian = jnp.stack(columns, axis=-1)
    precision = -0.5 * (hessian + jnp.swapaxes(hessian, -1, -2))
    # An ODE log-likelihood is -inf with a zero gradient for everyone when any patient's solve fails:
    # then nobody's differences can be trusted, and every patient gets the non-centred form.
    finite = jnp.all(jnp.isfinite(precision), axis=(-2, -1)) & jnp.all(jnp.isfinite(centre_gradient), axis=-1) & solved
    precision = jnp.where(finite[:, None, None], precision, 0.0)
    eigenvalues, vectors = jnp.linalg.eigh(precision)
    precision = jnp.einsum("nij,nj,nkj->nik", vectors, jnp.clip(eigenvalues, 0.0), vectors)
    shift = jnp.einsum("nij,nj->ni", precision, phi_hat) + jnp.where(finite[:, None], centre_gradient, 0.0)
    return Whitening(precision=precision, shift=shift,
                     sigma_ref=jnp.asarray(whitening_reference(spec, sigma, sigma_add), dtype=precision.dtype))
