"""Safety of the infused in the virtual KarMMa-3 trial: CRS, neurotoxicity, tocilizumab and corticosteroids.

SIMULATED: an assumed exposure-toxicity model calibrated to the published rates (``models/karmma3_cohort.toml``,
sections ``[crs]``, ``[neurotoxicity]``, ``[tocilizumab]``, ``[corticosteroids]``; the module docs of
`carkin.cohorts.karmma3` give every number's source). Per infused patient:

- CRS maximal grade 0-4 from a proportional-odds model, ``P(grade >= k) = sigmoid(eta - theta_k)`` with
  ``eta = log_or_per_doubling_cmax * log2(cmax / cmax_typical) + log_or_burden * x_burden`` (true,
  noiseless Cmax; ``x_burden`` as in the generator);
- neurotoxicity grade 0-4 the same way, ``eta = log_or_per_doubling_cmax * log2(cmax / cmax_typical) +
  log_or_per_crs_grade * CRS grade``;
- onset ``max(1, ceil(X))`` whole days after infusion, ``X`` log-normal; duration ``max(1, round(Y))`` days,
  ``Y`` log-normal (CRS: longer at higher grade);
- tocilizumab for CRS with a probability by grade, from ``onset + floor(Exp(mean delay))``; corticosteroids
  for CRS (probability by grade, at least a day after tocilizumab, or after onset without it) or for
  neurotoxicity (from its onset + a delay), the earlier of the two;
- the data cut-off: an event (or a drug start) after the cut-off is not recorded; a CRS or neurotoxicity
  still going on at the cut-off has no duration.

The co-medication has **no effect on the kinetics** (the transgene records do not depend on it; a fitted
co-medication effect should come out near zero). Every component draws from its own stream
(`carkin.cohorts._simulate.stream_key`), so the efficacy and CK draws of a seed are unchanged.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from ._config import KarMMa3Config
from ._simulate import stream_key

__all__ = ["simulate_safety"]


def _grade(key: Array, eta: Float[Array, " patients"], thresholds: tuple[float, ...]) -> Array:
    """Maximal grade 0..len(thresholds) of a proportional-odds model: count of cut points below eta + logistic noise."""
    latent = eta + jax.random.logistic(key, eta.shape)
    return jnp.sum(latent[:, None] > jnp.asarray(thresholds)[None, :], axis=1)


def _onset_days(key: Array, median: float, sd_log: float, n: int) -> Float[Array, " patients"]:
    """Whole days after infusion, >= 1: ``ceil`` of a log-normal time (an event on day d happened in (d-1, d])."""
    x = median * jnp.exp(sd_log * jax.random.normal(key, (n,)))
    return jnp.maximum(1.0, jnp.ceil(x))


def _delay_days(key: Array, mean: float, n: int) -> Float[Array, " patients"]:
    """Whole days of delay, ``floor(Exp(mean))`` (0 = the same day)."""
    return jnp.floor(mean * jax.random.exponential(key, (n,)))


@functools.partial(jax.jit, static_argnums=1)
def simulate_safety(
    key: Array,
    cfg: KarMMa3Config,
    cmax: Float[Array, " patients"],
    burden_percent: Float[Array, " patients"],
    infused: Bool[Array, " patients"],
    window_days: Float[Array, " patients"],
) -> dict[str, Array]:
    """Draw CRS, neurotoxicity and their treatment for every infused patient (run under float64).

    Parameters
    ----------
    key : jax.Array
        The trial's key (the same one `carkin.cohorts._simulate.simulate_arrays` got).
    cfg : KarMMa3Config
        The assumptions (static).
    cmax : Float[Array, "patients"]
        True individual Cmax, copies/ug gDNA (any value where not infused).
    burden_percent : Float[Array, "patients"]
        Marrow plasma cells, % (as written).
    infused : Bool[Array, "patients"]
    window_days : Float[Array, "patients"]
        Whole days from infusion to the data cut-off (events later than this are not recorded).

    Returns
    -------
    dict of per-patient arrays, NaN where not infused or not recorded: ``crs_grade`` and ``nt_grade`` (0 =
    none; 0 where not infused), ``crs_onset_day``, ``crs_duration_days``, ``nt_onset_day``,
    ``nt_duration_days`` (days; NaN when none or still going on at the cut-off), ``toci_day``,
    ``steroid_day`` (days after infusion; NaN = never), and the true linear predictors ``crs_eta``,
    ``nt_eta``.
    """
    n = cmax.shape[0]
    crs, nt, toci, cs = cfg.crs, cfg.neurotoxicity, cfg.tocilizumab, cfg.corticosteroids
    x_burden = (burden_percent - cfg.tumor_burden.reference_percent) / cfg.tumor_burden.per_percent
    log2_cmax_rel = jnp.log2(jnp.where(infused, cmax, cfg.ck.cmax_typical) / cfg.ck.cmax_typical)

    # CRS: maximal grade, onset, duration (true, before the cut-off is applied).
    crs_eta = crs.log_or_per_doubling_cmax * log2_cmax_rel + crs.log_or_burden * x_burden
    crs_grade = _grade(stream_key(key, "crs"), crs_eta, crs.thresholds)
    crs_onset = _onset_days(stream_key(key, "crs_onset"), crs.onset_median_days, crs.onset_sd_log, n)
    z = jax.random.normal(stream_key(key, "crs_duration"), (n,))
    log_duration = (
        jnp.log(crs.duration_median_days) + crs.duration_log_per_grade * (crs_grade - 1) + crs.duration_sd_log * z
    )
    crs_duration = jnp.maximum(1.0, jnp.round(jnp.exp(log_duration)))

    # Neurotoxicity: driven by exposure and by the (true) CRS grade.
    nt_eta = nt.log_or_per_doubling_cmax * log2_cmax_rel + nt.log_or_per_crs_grade * crs_grade
    nt_grade = _grade(stream_key(key, "nt"), nt_eta, nt.thresholds)
    nt_onset = _onset_days(stream_key(key, "nt_onset"), nt.onset_median_days, nt.onset_sd_log, n)
    z = jax.random.normal(stream_key(key, "nt_duration"), (n,))
    nt_duration = jnp.maximum(1.0, jnp.round(nt.duration_median_days * jnp.exp(nt.duration_sd_log * z)))

    # Tocilizumab for CRS, by grade; corticosteroids for CRS (after tocilizumab) or for neurotoxicity.
    grade_index = jnp.clip(crs_grade - 1, 0, len(toci.p_by_crs_grade) - 1)
    k_give, k_delay = jax.random.split(stream_key(key, "tocilizumab"))
    has_crs = crs_grade >= 1
    gets_toci = has_crs & (jax.random.uniform(k_give, (n,)) < jnp.asarray(toci.p_by_crs_grade)[grade_index])
    toci_day = crs_onset + _delay_days(k_delay, toci.delay_mean_days, n)
    k_crs, k_nt, k_crs_delay, k_nt_delay = jax.random.split(stream_key(key, "corticosteroids"), 4)
    steroid_for_crs = has_crs & (jax.random.uniform(k_crs, (n,)) < jnp.asarray(cs.p_by_crs_grade)[grade_index])
    steroid_for_nt = (nt_grade >= 1) & (jax.random.uniform(k_nt, (n,)) < cs.p_neurotoxicity)
    crs_steroid_day = (
        jnp.where(gets_toci, toci_day, crs_onset) + 1.0 + _delay_days(k_crs_delay, cs.crs_delay_mean_days, n)
    )
    nt_steroid_day = nt_onset + _delay_days(k_nt_delay, cs.nt_delay_mean_days, n)
    steroid_day = jnp.minimum(
        jnp.where(steroid_for_crs, crs_steroid_day, jnp.inf), jnp.where(steroid_for_nt, nt_steroid_day, jnp.inf)
    )

    # What is recorded by the data cut-off (infused patients only).
    seen_crs = infused & has_crs & (crs_onset <= window_days)
    seen_nt = infused & (nt_grade >= 1) & (nt_onset <= window_days)
    nan = jnp.nan
    return {
        "crs_grade": jnp.where(seen_crs, crs_grade, 0),
        "crs_onset_day": jnp.where(seen_crs, crs_onset, nan),
        "crs_duration_days": jnp.where(seen_crs & (crs_onset + crs_duration <= window_days), crs_duration, nan),
        "nt_grade": jnp.where(seen_nt, nt_grade, 0),
        "nt_onset_day": jnp.where(seen_nt, nt_onset, nan),
        "nt_duration_days": jnp.where(seen_nt & (nt_onset + nt_duration <= window_days), nt_duration, nan),
        "toci_day": jnp.where(infused & gets_toci & (toci_day <= window_days), toci_day, nan),
        "steroid_day": jnp.where(infused & jnp.isfinite(steroid_day) & (steroid_day <= window_days), steroid_day, nan),
        "crs_eta": jnp.where(infused, crs_eta, nan),
        "nt_eta": jnp.where(infused, nt_eta, nan),
    }
