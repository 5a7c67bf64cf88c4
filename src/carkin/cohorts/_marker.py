"""The tumour marker of the virtual KarMMa-3 trial: serum M-protein (g/dL) of the infused, tied to best
response and PFS.

SIMULATED (``models/karmma3_cohort.toml``, section ``[marker]``; the module docs of `carkin.cohorts.karmma3`
give every number's source). Per infused patient, with ``t`` in days after infusion:

    M(t) = M0 * (f + (1 - f) exp(-k t)) + E * R(t)

- ``M0 = floor + typical * (burden / reference)^slope * exp(sd * z)``: baseline, g/dL, larger with marrow burden;
- ``k = ln 2 / half-life * exp(sd * z)``: the fall once the plasma cells are killed (the M-protein's own
  clearance sets the pace);
- ``f``: the nadir as a fraction of baseline, log-uniform within the band of the patient's best response
  (IMWG: sCR/CR none detectable, VGPR >= 90% reduction, PR >= 50%, MR >= 25%, SD less, PD no fall; NE as SD);
- progression (``E = 1`` for a PFS event, at ``t_p`` days after infusion; every PFS event is treated as a
  progression): regrowth ``R(t) = A (exp(g (t - t_s)) - 1)_+ / (exp(g (t_p - t_s)) - 1)`` with ``g = ln 2 /
  regrowth_doubling_days``, from the last scheduled assessment before the event (``t_s``; ``t_s = t_p - 1
  day`` if that assessment is less than a day before), sized so that at ``t_p`` the level has risen above its
  value at ``t_s`` by the IMWG progression criterion: ``M(t_p) = M_r(t_s) + max(progression_min_increase_g_dl,
  progression_relative_increase * M_r(t_s))`` (``M_r`` the response curve, ``t_s`` taken as 0 if negative),
  i.e. ``A = that rise + M_r(t_s) - M_r(t_p)``. ``M_r(t_s)`` is both the lowest assessed value and at least
  the true nadir up to ``t_p``, so the noiseless curve meets the criterion (>= 25% and >= 0.5 g/dL above the
  nadir) at ``t_p`` (assessed or continuous) whenever the last assessment before it is a day or more earlier;
- observed ``DV = M(t) * exp(N(0, residual_sd^2))``, rounded to 0.01 g/dL, BLQ below ``lloq_g_dl``.

Samples: baseline (day 0, at infusion), then every ``interval_months`` (whole days) strictly before the end
of PFS follow-up, each missed at random with ``missing_sample_prob``; for a PFS event one more sample, the
assessment that documented progression, on the first whole day at or after it. The standard arm and the
never-infused have no marker records. Every draw comes from its own stream, so the rest of a seed is unchanged.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from .._karmma3 import NOT_EVALUABLE, RESPONSE_CATEGORIES
from ._config import KarMMa3Config
from ._simulate import stream_key

__all__ = ["marker_schedule_days", "simulate_marker"]

#: Best response whose nadir band stands in for NE (infused, follow-up too short to assess).
_NE_AS = RESPONSE_CATEGORIES.index("SD")
_NE_INDEX = RESPONSE_CATEGORIES.index(NOT_EVALUABLE)


def marker_schedule_days(cfg: KarMMa3Config) -> tuple[float, ...]:
    """Nominal M-protein sampling days after infusion: 0 (baseline), then every ``interval_months`` as whole days."""
    m, dpm = cfg.marker, cfg.trial.days_per_month
    months = math.floor(m.last_month / m.interval_months + 1e-9)
    return (0.0, *(float(round(k * m.interval_months * dpm)) for k in range(1, months + 1)))


@functools.partial(jax.jit, static_argnums=1)
def simulate_marker(
    key: Array,
    cfg: KarMMa3Config,
    burden_percent: Float[Array, " patients"],
    response_index: Int[Array, " patients"],
    follow_days: Float[Array, " patients"],
    event: Bool[Array, " patients"],
) -> dict[str, Array]:
    """Draw the M-protein curve of every patient and its observations (run under float64).

    Parameters
    ----------
    key : jax.Array
        The trial's key.
    cfg : KarMMa3Config
        The assumptions (static).
    burden_percent : Float[Array, "patients"]
        Marrow plasma cells, % (as written).
    response_index : Int[Array, "patients"]
        Best response, index into `carkin._karmma3.RESPONSE_CATEGORIES`.
    follow_days : Float[Array, "patients"]
        Days from infusion to the end of PFS follow-up (event or censoring), from the written values.
    event : Bool[Array, "patients"]
        Whether PFS ended with an event (then ``follow_days`` is the progression time).

    Returns
    -------
    dict: per patient ``m0`` (g/dL), ``k`` (/day), ``nadir_fraction``, ``increase`` (``A = R(t_p)``, g/dL; 0
    without event), ``progression_day`` (first whole day >= the event; NaN without event); per patient and scheduled
    sample (``(patients, samples)``, `marker_schedule_days`) ``true`` and ``log_dv`` (log g/dL) and
    ``missing``; per patient ``progression_true`` and ``progression_log_dv`` (the sample at
    ``progression_day``).
    """
    m = cfg.marker
    n = burden_percent.shape[0]
    ref = cfg.tumor_burden.reference_percent
    z_base = jax.random.normal(stream_key(key, "marker_baseline"), (n,))
    m0 = m.baseline_floor_g_dl + m.baseline_typical_g_dl * (
        burden_percent / ref
    ) ** m.baseline_log_per_log_burden * jnp.exp(m.baseline_sd_log * z_base)
    z_k = jax.random.normal(stream_key(key, "marker_decline"), (n,))
    k = math.log(2.0) / m.decline_half_life_days * jnp.exp(m.decline_sd_log * z_k)
    band = jnp.where(response_index == _NE_INDEX, _NE_AS, response_index)
    low = jnp.log(jnp.asarray(m.nadir_fraction_low))[band]
    high = jnp.log(jnp.asarray(m.nadir_fraction_high))[band]
    f = jnp.exp(low + (high - low) * jax.random.uniform(stream_key(key, "marker_nadir"), (n,)))
    g = math.log(2.0) / m.regrowth_doubling_days

    def response_curve(t):
        return m0[:, None] * (f[:, None] + (1.0 - f[:, None]) * jnp.exp(-k[:, None] * t))

    # Regrowth from the last scheduled assessment before the event (t_s): the IMWG rise is then measured from
    # M_r(t_s), the lowest value assessed so far and at least the true nadir up to t_p. The span is at least a
    # day so that the sample after the event does not see a steep exponential.
    schedule = jnp.asarray(marker_schedule_days(cfg))
    last_assessed = jnp.max(jnp.where(schedule[None, :] < follow_days[:, None], schedule[None, :], 0.0), axis=1)
    span = jnp.maximum(follow_days - last_assessed, 1.0)
    start = follow_days - span
    at_start = response_curve(jnp.maximum(start, 0.0)[:, None])[:, 0]
    at_progression = response_curve(follow_days[:, None])[:, 0]
    rise = jnp.maximum(m.progression_min_increase_g_dl, m.progression_relative_increase * at_start)
    increase = jnp.where(event, rise + at_start - at_progression, 0.0)
    amplitude = increase / jnp.expm1(g * span)

    def level(t):
        regrowth = amplitude[:, None] * jnp.maximum(jnp.expm1(g * (t - start[:, None])), 0.0)
        return response_curve(t) + regrowth

    times = jnp.asarray(marker_schedule_days(cfg))[None, :]
    true = level(times)
    progression_day = jnp.where(event, jnp.maximum(jnp.ceil(follow_days), 1.0), jnp.nan)
    progression_true = level(jnp.where(event, progression_day, 0.0)[:, None])[:, 0]
    k_sched, k_prog = jax.random.split(stream_key(key, "marker_residual"))
    log_dv = jnp.log(true) + m.residual_sd * jax.random.normal(k_sched, true.shape)
    progression_log_dv = jnp.log(progression_true) + m.residual_sd * jax.random.normal(k_prog, (n,))
    missing = jax.random.bernoulli(stream_key(key, "marker_missing"), m.missing_sample_prob, true.shape)
    return {
        "m0": m0,
        "k": k,
        "nadir_fraction": f,
        "increase": increase,
        "progression_day": progression_day,
        "true": true,
        "log_dv": log_dv,
        "missing": missing,
        "progression_true": progression_true,
        "progression_log_dv": progression_log_dv,
    }
