"""The exposure-response hook of the trial simulator: per-patient log-hazard offsets from CK exposure.

A trial can be driven by an *assumed* log-linear exposure-response (for instance a slope estimated with
carkin's exposure-response module, `carkin.er` / ``carkin er``, or the generating value of the virtual
KarMMa-3 cohort, as in ``scenarios/doses.toml``): an experimental-arm patient with
exposure ``x`` (e.g. Cmax in copies/ug, drawn from the CK model, for instance the pooled posterior
predictive exposures of a dose scenario, `carkin.simulate.simulate_scenario`) has hazard

    h(t) = h_experimental(t) * exp(log_hr_per_doubling * log2(x / reference)),

so that ``h_experimental`` is the hazard at the reference exposure. Control patients get offset 0. The
function returned plugs into ``simulate_trials(..., log_hazard_offset=...)``; any other pure JAX function
with the same signature does too (this is the documented hook).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray

from ._simulate import LogHazardOffset

__all__ = ["exposure_log_hazard_offsets"]


def exposure_log_hazard_offsets(
    exposures: Float[ArrayLike, " samples"],
    *,
    log_hr_per_doubling: float,
    reference: float,
) -> LogHazardOffset:
    """A ``log_hazard_offset`` hook that resamples exposures for the experimental arm.

    Parameters
    ----------
    exposures : Float[ArrayLike, " samples"]
        Exposure values (> 0) to resample with replacement, one per virtual patient (e.g. Cmax, copies/ug).
    log_hr_per_doubling : float
        Natural-log hazard ratio per doubling of exposure (negative: more exposure, fewer events).
    reference : float
        Exposure at which the experimental arm's hazard is the design's (same unit as ``exposures``).

    Returns
    -------
    LogHazardOffset
        ``fn(key, arm, stratum) -> offsets`` of shape (n,).

    Raises
    ------
    ValueError
        Non-positive or non-finite exposures, reference or slope.
    """
    x = np.asarray(exposures, dtype=float).reshape(-1)
    if x.size == 0 or not np.all(np.isfinite(x)) or np.any(x <= 0):
        raise ValueError("exposures must be a non-empty array of positive finite values (e.g. Cmax in copies/ug)")
    if not (math.isfinite(reference) and reference > 0):
        raise ValueError(f"reference = {reference!r} must be a positive exposure")
    if not math.isfinite(log_hr_per_doubling):
        raise ValueError(f"log_hr_per_doubling = {log_hr_per_doubling!r} must be finite")
    log2_ratio = jnp.asarray(np.log2(x / reference))
    slope = float(log_hr_per_doubling)

    def offsets(key: PRNGKeyArray, arm: Int[Array, " n"], stratum: Int[Array, " n"]) -> Float[Array, " n"]:
        del stratum
        pick = jax.random.randint(key, arm.shape, 0, log2_ratio.shape[0])
        return jnp.where(arm == 1, slope * log2_ratio[pick], 0.0)

    return offsets
