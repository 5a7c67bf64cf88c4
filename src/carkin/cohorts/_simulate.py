"""The virtual KarMMa-3 generator proper: one jitted, vectorised function from a key to arrays.

Everything here is array math over all patients at once (shape ``(patients,)`` or ``(patients, samples)``);
the config is a static argument, so a new config compiles once and a new key reuses the compiled graph.
Randomness comes only from ``key``: each component draws from ``jax.random.fold_in(key, stream)`` with a
fixed stream number (``_STREAMS``), so that adding a component never changes the draws of the others.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._hazards import PiecewiseExponential
from .._karmma3 import NOT_EVALUABLE, RESPONSE_CATEGORIES
from ..exposure import exposure_metrics
from ..models import Multiphasic
from ..population import sample_observations
from ._config import BurdenConfig, HazardConfig, KarMMa3Config

__all__ = ["schedule_days", "simulate_arrays", "stream_key", "tumor_burden_percent"]

# Fixed random stream of each component (never renumber: it would change every realisation).
_STREAMS = {
    "entry": 1,
    "arm": 2,
    "age": 3,
    "prior": 4,
    "high_risk": 5,
    "burden": 6,
    "frailty": 7,
    "latent": 8,
    "bridging": 9,
    "not_infused": 10,
    "dose": 11,
    "ck_iiv": 12,
    "event": 13,
    "dropout": 14,
    "response": 15,
    "residual": 16,
    "missing": 17,
    # Safety and the tumour marker (issue #20): new streams, so every earlier draw is unchanged.
    "crs": 18,
    "crs_onset": 19,
    "crs_duration": 20,
    "nt": 21,
    "nt_onset": 22,
    "nt_duration": 23,
    "tocilizumab": 24,
    "corticosteroids": 25,
    "marker_baseline": 26,
    "marker_decline": 27,
    "marker_nadir": 28,
    "marker_residual": 29,
    "marker_missing": 30,
}
#: Written resolution of the marrow plasma-cell percentage (TUMOR_BURDEN), and its floor: never 0.0%.
BURDEN_RESOLUTION_PERCENT = 0.1
#: Index of the categories set outside the score model.
PD_INDEX = RESPONSE_CATEGORIES.index("PD")
NE_INDEX = RESPONSE_CATEGORIES.index(NOT_EVALUABLE)  # follows the scored categories (ASSESSED_RESPONSES)


def stream_key(key: Array, name: str) -> Array:
    """The key of one component's random stream: ``fold_in(key, _STREAMS[name])``."""
    return jax.random.fold_in(key, _STREAMS[name])


def schedule_days(cfg: KarMMa3Config) -> tuple[float, ...]:
    """Nominal CK sampling days after infusion: the day list, then the months converted to whole days."""
    dpm = cfg.trial.days_per_month
    return tuple(cfg.ck.schedule_days) + tuple(float(round(m * dpm)) for m in cfg.ck.schedule_months)


def _event_time(y: Float[Array, "..."], hazard: HazardConfig) -> Float[Array, "..."]:
    """Time t (months) at which the piecewise-constant cumulative hazard reaches ``y`` (>= 0).

    With ``y = E * exp(-lp)``, ``E ~ Exp(1)``, this draws an event time from the hazard ``h0(t) * exp(lp)``
    (inverse-transform sampling, `carkin._hazards.PiecewiseExponential`).
    """
    return PiecewiseExponential(hazard.breaks_months, hazard.hazard_per_month).inverse_cumulative_hazard(y)


def tumor_burden_percent(key: Array, tb: BurdenConfig, n: int) -> Float[Array, " patients"]:
    """Baseline marrow plasma cells (%) of ``n`` patients: ``100 * Beta(a, b)`` on the written 0.1 grid.

    The draw comes from the ``"burden"`` stream of the trial ``key`` (the generator's own draw). Values are
    rounded to the 0.1 written in the file (the model uses the written value) and floored at 0.1, one step
    of that grid: a Beta draw below 0.0005 would otherwise round to 0.0%, which a log-transformed
    ``TUMOR_BURDEN`` covariate rejects. Only such draws change; every value >= 0.1 is the plain rounding.
    """
    raw = jax.random.beta(stream_key(key, "burden"), tb.beta_a, tb.beta_b, (n,))
    return jnp.maximum(jnp.round(1000.0 * raw) / 10.0, BURDEN_RESOLUTION_PERCENT)


@functools.partial(jax.jit, static_argnums=1)
def simulate_arrays(key: Array, cfg: KarMMa3Config) -> dict[str, Array]:
    """Draw one virtual KarMMa-3 trial as arrays (run under float64; see ``simulate_karmma3``).

    Returns
    -------
    dict of arrays; per patient (shape ``(patients,)``, sorted by randomisation time): ``entry_months``,
    ``ide_cel``, ``age_ge65``, ``prior_3_4``, ``high_risk``, ``burden_percent``, ``latent``, ``frailty``,
    ``infused``, ``infusion_day`` (NaN if none), ``dose`` (NaN if none), the individual CK parameters
    ``cmax``, ``tmax``, ``rho``, ``alpha``, ``beta``, ``fb``, ``delta``, ``auc28`` (true, noiseless;
    meaningful only where infused), ``log_hazard`` (linear predictor incl. frailty), ``start_months``
    (start of treatment: infusion or randomisation), ``event_months`` (latent event time),
    ``dropout_months``, ``admin_months`` (cut-off minus entry), ``pfs_months``, ``pfs_event``,
    ``response_index`` (into `carkin._karmma3.RESPONSE_CATEGORIES`); per patient and scheduled sample
    (shape ``(patients, samples)``): ``log_conc`` (noiseless log copies/ug), ``log_dv`` (with residual
    error), ``missing`` (sample missed at random); ``conc_m6``, ``conc_m12`` (noiseless level 6 and 12
    months after infusion). Which samples exist is decided by the caller from the
    (rounded) follow-up, so that the files agree to the last digit.
    """
    t, st, tb, inf, ck, pr, ex, rs = (
        cfg.trial,
        cfg.strata,
        cfg.tumor_burden,
        cfg.infusion,
        cfg.ck,
        cfg.prognosis,
        cfg.exposure,
        cfg.response,
    )
    n = t.n_ide_cel + t.n_standard
    dpm = t.days_per_month

    # Accrual: entry CDF (u / A)^shape on [0, A]; rows sorted by randomisation time.
    u = jax.random.uniform(stream_key(key, "entry"), (n,))
    entry = jnp.sort(t.accrual_months * u ** (1.0 / t.accrual_shape))
    # 2:1 randomisation with exact arm sizes: a random permutation of the arm labels.
    ide = jax.random.permutation(stream_key(key, "arm"), jnp.arange(n)) < t.n_ide_cel

    age = jax.random.bernoulli(stream_key(key, "age"), st.p_age_ge65, (n,))
    prior = jax.random.bernoulli(stream_key(key, "prior"), st.p_prior_regimens_3_4, (n,))
    p_hr = jnp.where(ide, st.p_high_risk_ide_cel, st.p_high_risk_standard)
    high_risk = jax.random.uniform(stream_key(key, "high_risk"), (n,)) < p_hr
    burden = tumor_burden_percent(key, tb, n)
    x_burden = (burden - tb.reference_percent) / tb.per_percent

    frailty = pr.frailty_sd * jax.random.normal(stream_key(key, "frailty"), (n,))
    latent = jax.random.normal(stream_key(key, "latent"), (n,))
    prognosis = (
        pr.log_hr_burden * x_burden
        + pr.log_hr_high_risk * high_risk
        + pr.log_hr_prior_3_4 * prior
        + pr.log_hr_age_ge65 * age
        + frailty
    )

    # Bridging: planned infusion day (whole days, clipped to the configured window).
    z_bridge = jax.random.normal(stream_key(key, "bridging"), (n,))
    planned = jnp.round(
        jnp.clip(
            inf.bridging_median_days * jnp.exp(inf.bridging_sd_log * z_bridge),
            inf.bridging_min_days,
            inf.bridging_max_days,
        )
    )
    admin = t.cutoff_months - entry  # potential follow-up at the cut-off, months
    admin_days = admin * dpm
    # Who is never infused (exactly n_not_infused of the ide-cel arm): first those whose planned infusion
    # falls after the cut-off, then a weighted draw without replacement (Gumbel top-k) favouring a worse
    # prognosis.
    late = planned > admin_days - 1.0
    gumbel = jax.random.gumbel(stream_key(key, "not_infused"), (n,))
    priority = jnp.where(
        ide,
        jnp.where(late, 1e6 + planned - admin_days, inf.not_infused_prognosis_weight * prognosis + gumbel),
        -jnp.inf,
    )
    chosen = jnp.argsort(-priority)[: t.n_not_infused]
    not_infused = jnp.zeros(n, dtype=bool).at[chosen].set(True)
    infused = ide & ~not_infused
    # Only if more than n_not_infused patients were randomised too late to be infused (improbable with
    # the shipped accrual) is a planned infusion moved to the last whole day before the cut-off.
    infusion_day = jnp.where(infused, jnp.minimum(planned, jnp.floor(admin_days - 1.0)), jnp.nan)

    # Dose (10^6 CAR+ T cells, whole numbers as written): dose_max - (dose_max - dose_min) * Beta(a, b),
    # except a low-dose tail (probability dose_low_tail_prob) uniform on [dose_min, dose_reference].
    k_beta, k_tail, k_low = jax.random.split(stream_key(key, "dose"), 3)
    b = jax.random.beta(k_beta, inf.dose_beta_a, inf.dose_beta_b, (n,))
    tail = jax.random.uniform(k_tail, (n,)) < inf.dose_low_tail_prob
    low = jax.random.uniform(k_low, (n,), minval=inf.dose_min, maxval=inf.dose_reference)
    dose_all = jnp.round(jnp.where(tail, low, inf.dose_max - (inf.dose_max - inf.dose_min) * b))
    dose = jnp.where(infused, dose_all, jnp.nan)

    # Individual CK parameters (log-normal; logit-normal fb), with the latent factor, burden and dose.
    eta = jax.random.normal(stream_key(key, "ck_iiv"), (6, n))
    log_cmax = (
        jnp.log(ck.cmax_typical)
        + ck.latent_log_cmax * latent
        + ck.burden_log_cmax * x_burden
        + ck.dose_log_cmax * jnp.log(dose_all / inf.dose_reference)
        + jnp.sqrt(ck.omega2_cmax) * eta[0]
    )
    tmax = ck.tmax_typical * jnp.exp(jnp.sqrt(ck.omega2_tmax) * eta[1])
    rho = ck.rho_typical * jnp.exp(jnp.sqrt(ck.omega2_rho) * eta[2])
    beta = ck.beta_typical * jnp.exp(jnp.sqrt(ck.omega2_beta) * eta[3])
    delta = ck.delta_typical * jnp.exp(ck.latent_log_delta * latent + jnp.sqrt(ck.omega2_delta) * eta[4])
    fb = jax.nn.sigmoid(jax.scipy.special.logit(ck.fb_typical) + jnp.sqrt(ck.omega2_fb) * eta[5])
    cmax = jnp.exp(log_cmax)
    alpha = beta + delta
    ck_params = {"cmax": cmax, "tmax": tmax, "rho": rho, "beta": beta, "delta": delta, "fb": fb}
    auc28 = exposure_metrics(Multiphasic(), ck_params, "auc28")["auc28"]  # exact (closed form)

    # PFS: log-hazard linear predictor; exposure lowers it for the infused.
    log2_cmax_rel = (log_cmax - jnp.log(ck.cmax_typical)) / jnp.log(2.0)
    log_hazard = jnp.where(
        infused, prognosis + ex.log_hr_per_doubling_cmax * log2_cmax_rel + ex.log_hr_latent * latent, prognosis
    )
    y = jax.random.exponential(stream_key(key, "event"), (n,)) * jnp.exp(-log_hazard)
    start = jnp.where(infused, infusion_day / dpm, 0.0)
    event_time = jnp.where(
        ~ide,
        _event_time(y, cfg.pfs_standard),
        jnp.where(
            infused,
            start + _event_time(y, cfg.pfs_ide_cel_infused),
            _event_time(y, cfg.pfs_not_infused),
        ),
    )
    e_drop = jax.random.exponential(stream_key(key, "dropout"), (n,))
    dropout = start + jnp.where(t.dropout_per_month > 0, e_drop / jnp.maximum(t.dropout_per_month, 1e-300), jnp.inf)
    censor = jnp.minimum(dropout, admin)
    pfs = jnp.minimum(event_time, censor)
    event = event_time <= censor

    # Best response: score cut at arm-specific thresholds, then the timing rules.
    score = -log_hazard + rs.noise_sd * jax.random.normal(stream_key(key, "response"), (n,))
    thresholds = jnp.where(
        ide[:, None], jnp.asarray(rs.thresholds_ide_cel)[None, :], jnp.asarray(rs.thresholds_standard)[None, :]
    )
    response = jnp.sum(score[:, None] <= thresholds, axis=1)
    on_treatment = pfs - start
    early = on_treatment < rs.min_months_to_response
    response = jnp.where(early & event, PD_INDEX, response)
    response = jnp.where(early & ~event, NE_INDEX, response)
    response = jnp.where(ide & ~infused, NE_INDEX, response)

    # CK on the nominal schedule for every patient (the caller keeps the samples that exist).
    times = jnp.asarray(schedule_days(cfg))
    individual = {k: v[:, None] for k, v in ck_params.items()}
    log_conc = Multiphasic().log_concentration(individual, times[None, :])
    # Residual error through carkin's generative model; censoring at the LLOQ happens after the values are
    # rounded to the written precision (`_cohort._tables`), so that the files agree with the flags.
    eps = jax.random.normal(stream_key(key, "residual"), log_conc.shape)
    log_dv = sample_observations(log_conc, eps, residual="additive_log", sigma=ck.residual_sd).log_value
    missing = jax.random.bernoulli(stream_key(key, "missing"), ck.missing_sample_prob, log_conc.shape)
    # Noiseless levels 6 and 12 months after infusion (persistence summaries).
    conc_m6 = jnp.exp(Multiphasic().log_concentration(individual, jnp.full((n, 1), 6 * dpm)))[:, 0]
    conc_m12 = jnp.exp(Multiphasic().log_concentration(individual, jnp.full((n, 1), 12 * dpm)))[:, 0]

    return {
        "entry_months": entry,
        "ide_cel": ide,
        "age_ge65": age,
        "prior_3_4": prior,
        "high_risk": high_risk,
        "burden_percent": burden,
        "latent": latent,
        "frailty": frailty,
        "infused": infused,
        "infusion_day": infusion_day,
        "dose": dose,
        "cmax": cmax,
        "tmax": tmax,
        "rho": rho,
        "alpha": alpha,
        "beta": beta,
        "delta": delta,
        "fb": fb,
        "auc28": auc28,
        "log_hazard": log_hazard,
        "start_months": start,
        "event_months": event_time,
        "dropout_months": dropout,
        "admin_months": admin,
        "pfs_months": pfs,
        "pfs_event": event,
        "response_index": response,
        "log_conc": log_conc,
        "log_dv": log_dv,
        "missing": missing,
        "conc_m6": conc_m6,
        "conc_m12": conc_m12,
    }
