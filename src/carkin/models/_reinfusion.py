"""Re-infusion: each CAR-T infusion's cells as a cohort on its own clock, scaled by the infused amount.

A patient's infusions come as ``DoseEvents`` (patients, doses), times in days from the first infusion (which is
at time 0, index 0; ``carkin.data`` sorts them). The CAR-T models take infusion d's cells to be ``A_d / A_1``
times the first infusion's (the individual parameters describe the first: cmax or e0), starting at t_d:

- the linear models (``Multiphasic``, ``EffectorMemory``) follow each cohort on its own clock and sum them
  (superposition: exact for the linear E/M system when every cohort runs the same kinetic programme);
- the mechanistic ``CarTumor`` adds the cells to its effector state at t_d (a jump), because its expansion
  depends on the tumour that all cohorts share.

A cohort contributes from its infusion time on, the record at t_d included (NONMEM's order: a dose record
comes before an observation at the same time, so the observation sees the dose).
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float

from ..data._doses import DoseEvents

__all__ = ["infusion_weights"]


def infusion_weights(doses: DoseEvents) -> tuple[Float[Array, "patients doses"], Float[Array, "patients doses"]]:
    """Each infusion's time and the log of its size relative to the first, -inf for padding.

    Parameters
    ----------
    doses : DoseEvents (patients, doses), the first real infusion of every patient at index 0 and time 0.

    Returns
    -------
    (time, log_weight): days after the first infusion; log(A_d / A_1) (0 for the first infusion, -inf for
    padded events and zero amounts, which add nothing).
    """
    amount = jnp.asarray(doses.amount)
    real = jnp.asarray(doses.mask) & (amount > 0)
    first = amount[..., :1]
    ratio = jnp.where(real, amount, 1.0) / jnp.where(first > 0, first, 1.0)
    return jnp.asarray(doses.time), jnp.where(real, jnp.log(ratio), -jnp.inf)
