"""Bayesian PH with the kinetic uncertainty carried through: two-stage over CK posterior draws, and plug-in.

The target
----------
With exposures x, PFS parameters theta and the CK population parameters psi, the joint posterior is
p(x, theta | CK, PFS) ∝ p(x | CK) p(PFS | x, theta) p(theta) once psi is integrated out (PFS does not
depend on psi given x): the CK posterior of the exposures acts as their prior in the PFS model. A
two-stage analysis keeps the CK fit (stage 1) and uses its posterior draws of x in stage 2. Two schemes:

``scheme="resample"`` (default): sample the exposure draws inside
    Each patient i carries a latent index k_i over S CK posterior draws (uniform prior), and x_i is draw
    k_i of patient i. NUTS updates theta given the indices; a Gibbs step (`numpyro.infer.HMCGibbs`)
    redraws every k_i from its exact conditional, P(k_i = s) ∝ p(PFS_i | x_i^(s), theta), patient by
    patient. This samples the joint posterior above with p(x | CK) replaced by the product of its
    per-patient marginals (the CK posterior correlation between patients, through psi, is dropped: small
    when psi is well determined) and by S draws of each marginal. PFS informs which exposures are
    plausible, exactly as in the joint model, so the effect is not attenuated.

``scheme="cut"``: pool PFS posteriors over exposure draws (the "sequential" PK-PD approach)
    The cut posterior p_cut(theta) = ∫ p(theta | PFS, x) p(x | CK) dx (Plummer, Stat Comput 2015; Lunn et
    al., J Pharmacokinet Pharmacodyn 2009): M exposure vectors x_1..x_M are drawn from the CK posterior and
    p(theta | PFS, x_m) is sampled for each, pooled in equal shares. The M conditional posteriors are
    sampled in ONE NUTS run of a model holding M independent copies of the PH parameters (copy m sees
    x_m): the density is their product, so copy m's marginal is exactly p(theta | PFS, x_m). PFS never
    informs the exposures (a misspecified hazard model cannot distort the kinetics), but like any
    imputation that ignores the outcome it attenuates the effect toward the null by about the reliability
    Var(E[x | CK]) / Var(x) of the exposure (`reliability`): fine with rich CK sampling, biased with sparse.

The plug-in Bayesian analysis is the same PH model with x fixed at the posterior-median exposures; it
runs as one more independent copy in the same NUTS run, so its interval compares like with like.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import init_to_value

from ..exposure._quartiles import quartile_of
from ..inference import Gates, SamplerSettings, judge_convergence, parameter_table, run_nuts, warn_if_failed
from ._analysis_set import ERData
from ._ph_model import (
    BASELINES,
    HazardRatio,
    SurvivalArrays,
    check_baseline,
    ph_init_values,
    ph_log_likelihood,
    survival_arrays,
)

__all__ = ["BayesianPH", "two_stage", "reliability", "DEFAULT_SETTINGS", "quartile_contrasts", "SCHEMES"]

#: NUTS settings of the PH fits (small models: 2 chains x 500 draws after 500 warm-up draws).
DEFAULT_SETTINGS = SamplerSettings(chains=2, warmup=500, samples=500, max_tree_depth=8, progress_bar=False)


@dataclasses.dataclass(frozen=True, eq=False)
class BayesianPH:
    """Posterior of a Bayesian PH analysis of exposure.

    Attributes
    ----------
    method : str
        "two-stage", "joint" or "plug-in (Bayesian)".
    log_hr : array (samples,)
        Pooled draws of the log hazard ratio per doubling of exposure.
    hr_per_doubling : HazardRatio
        Posterior median and equal-tailed credible interval at ``level``.
    quartile_hr : dict "Q2".."Q4" -> HazardRatio
        Model-based contrasts: the HR between the median exposure of quartile k and of Q1 implied by the
        continuous model, exp(b (m_k - m_1)) with m_k the median log2 exposure in quartile k; computed per
        draw (the quartiles of each exposure draw), so quartile-assignment uncertainty is included.
    covariate_hr : dict name -> HazardRatio
        Per unit of each adjustment covariate.
    diagnostics : dict
        The convergence gate's verdict (`carkin.inference.judge_convergence`) on the draws of ``log_hr`` and
        ``coef`` (every copy for two-stage; the joint model adds the CK population quantities): ``passed``,
        ``failures``, ``gates``, ``max_r_hat``, ``min_ess_bulk``, ``min_ess_tail``, ``divergences``.
    baseline : str
    n_exposure_draws : int
        Exposure draws integrated over (0 for the plug-in analysis; all CK draws for the joint model).
    settings : dict
    seed : int or None
    runtime_seconds : float
    level : float
    """

    method: str
    log_hr: np.ndarray
    hr_per_doubling: HazardRatio
    quartile_hr: Mapping[str, HazardRatio]
    covariate_hr: Mapping[str, HazardRatio]
    diagnostics: Mapping[str, float]
    baseline: str
    n_exposure_draws: int
    settings: Mapping
    seed: int | None
    runtime_seconds: float
    level: float

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "hr_per_doubling": self.hr_per_doubling.hr,
            "hr_ci_low": self.hr_per_doubling.ci_low,
            "hr_ci_high": self.hr_per_doubling.ci_high,
            "log_hr_sd": float(np.std(self.log_hr, ddof=1)),
            "quartile_hr": {k: v.to_dict() for k, v in self.quartile_hr.items()},
            "covariate_hr": {k: v.to_dict() for k, v in self.covariate_hr.items()},
            "diagnostics": dict(self.diagnostics),
            "baseline": self.baseline,
            "n_exposure_draws": self.n_exposure_draws,
            "settings": dict(self.settings),
            "seed": self.seed,
            "runtime_seconds": self.runtime_seconds,
        }


def reliability(log2_draws: np.ndarray) -> float:
    """Var(E[x | CK]) / Var(x) across patients, x the log2 exposure (posterior-mean spread over total spread).

    1 when the CK data pin every exposure down; toward 0 when the exposures are mostly prior.
    """
    x = np.asarray(log2_draws, dtype=float)
    between = np.var(x.mean(axis=0))
    within = np.mean(np.var(x, axis=0))
    return float(between / (between + within)) if between + within > 0 else float("nan")


def quartile_contrasts(x: np.ndarray, n_groups: int = 4) -> np.ndarray:
    """m_k - m_1 for k = 2..n_groups, m_k the median of x in its quantile group k; x (..., patients)."""
    _, groups = quartile_of(x, n_groups)
    out = []
    for k in range(1, n_groups + 1):
        masked = np.where(groups == k, x, np.nan)
        out.append(np.nanmedian(masked, axis=-1))
    medians = np.stack(out, axis=-1)
    return medians[..., 1:] - medians[..., :1]


def stacked_ph_model(x, arrays: SurvivalArrays, baseline: str, exposure_prior_sd: float, draws=None):
    """Independent PH models side by side, one per row of ``x`` (copies, patients).

    With ``draws`` (S, patients), one more copy sees the exposure ``draws[k_i, i]`` of a per-patient latent
    index ``k_i`` (site ``draw_index``, updated by the Gibbs step of the resample scheme).
    """
    if draws is not None:
        s, n = draws.shape
        index = numpyro.sample("draw_index", dist.Categorical(logits=jnp.zeros(s)).expand([n]).to_event(1))
        x = jnp.concatenate([x, draws[index, jnp.arange(n)][None, :]], axis=0)
    numpyro.factor(
        "pfs_log_likelihood",
        jnp.sum(ph_log_likelihood(arrays, x, baseline=baseline, exposure_prior_sd=exposure_prior_sd)),
    )


def _gibbs_index(arrays: SurvivalArrays, baseline: str, draws, copy: int):
    """The exact conditional update of the per-patient draw indices given the PH parameters of ``copy``."""
    model = BASELINES[baseline]
    names = tuple(model.init(arrays, ()))

    def gibbs_fn(rng_key, gibbs_sites, hmc_sites):
        del gibbs_sites
        lp = hmc_sites["log_hr"][copy] * draws  # (S, patients)
        if arrays.z.shape[1]:
            lp = lp + (arrays.z @ hmc_sites["coef"][copy])[None, :]
        params = {name: hmc_sites[name][copy] for name in names}
        log_lik = model.log_likelihood(arrays, lp, **params)  # (S, patients)
        return {"draw_index": jax.random.categorical(rng_key, log_lik, axis=0)}

    return gibbs_fn


def _summaries(log_hr, coef, contrasts, arrays, data: ERData, level):
    quartile = {
        f"Q{k + 2}": HazardRatio.from_log_draws(f"Q{k + 2} vs Q1", log_hr * contrasts[..., k], level)
        for k in range(contrasts.shape[-1])
    }
    covariates = {}
    if coef is not None:
        for c, name in enumerate(data.covariate_names):
            covariates[name] = HazardRatio.from_log_draws(name, coef[..., c] / arrays.z_scale[c], level)
    return HazardRatio.from_log_draws(f"{data.metric.label}, per doubling", log_hr, level), quartile, covariates


def ph_draws(log_hr: np.ndarray, coef: np.ndarray | None, covariate_names) -> dict[str, np.ndarray]:
    """The gated PH quantities, each (chains, draws): ``log_hr`` and ``coef_<covariate>`` of every copy.

    ``log_hr`` (chains, draws, copies), ``coef`` (chains, draws, copies, covariates); with several copies the
    names carry the copy's 1-based index (``log_hr[3]``).
    """
    copies = log_hr.shape[2]
    out = {}
    for j in range(copies):
        tag = f"[{j + 1}]" if copies > 1 else ""
        out[f"log_hr{tag}"] = log_hr[:, :, j]
        if coef is not None:
            out.update({f"coef_{name}{tag}": coef[:, :, j, c] for c, name in enumerate(covariate_names)})
    return out


SCHEMES: tuple[str, ...] = ("resample", "cut")
_DEFAULT_DRAWS = {"resample": 1000, "cut": 40}


def two_stage(
    data: ERData,
    *,
    key: jax.Array,
    scheme: str = "resample",
    n_draws: int | None = None,
    baseline: str = "piecewise",
    pieces: int = 5,
    settings: SamplerSettings | None = None,
    exposure_prior_sd: float = 1.0,
    level: float = 0.9,
    seed: int | None = None,
    gates: Gates | None = None,
) -> tuple[BayesianPH | None, BayesianPH]:
    """Two-stage Bayesian PH over CK posterior draws, plus the plug-in Bayesian PH, in one NUTS run.

    Main arguments
    --------------
    data : ERData
        The analysis set (its ``log2_draws`` are the CK posterior draws of log2 exposure).
    key : jax.Array
        PRNG key: split into the choice of exposure draws and the NUTS run.
    scheme : {"resample", "cut"}
        See the module docstring: "resample" samples each patient's exposure draw inside the run (PFS
        feedback, no attenuation; default); "cut" pools PH posteriors over M exposure draws.
    n_draws : int, optional
        CK posterior draws used, chosen at random without replacement (capped at those available): S
        candidates per patient for "resample" (default 1000), M copies for "cut" (default 40). 0 runs only
        the plug-in analysis.

    Other arguments
    ---------------
    baseline : {"piecewise", "weibull"}
    pieces : int
        Intervals of the piecewise baseline.
    settings : SamplerSettings
        NUTS settings (default `DEFAULT_SETTINGS`); ``samples`` are per chain (and per copy for "cut").
    exposure_prior_sd : float
        Prior SD of the log HR per doubling.
    level : float
        Credible level.
    seed : int, optional
        Recorded in the result (the integer ``key`` was made from).
    gates : carkin.inference.Gates, optional
        Convergence gates of each result's ``log_hr`` and ``coef`` draws (default: those of a CK fit, R-hat
        <= 1.01, bulk and tail ESS >= 400, no divergences); a result that fails them says so in its
        ``diagnostics`` and with a `carkin.errors.ConvergenceWarning`.

    Returns
    -------
    (two-stage result or None when ``n_draws == 0``, plug-in Bayesian result)

    Raises
    ------
    ValueError
        Unknown scheme or baseline; ``n_draws > 0`` but the exposure has a single draw (a MAP fit): there
        is no uncertainty to carry.
    """
    check_baseline(baseline)
    if scheme not in SCHEMES:
        raise ValueError(
            f"scheme={scheme!r} ({type(scheme).__name__}) is not valid; choose one of {', '.join(SCHEMES)}"
        )
    settings = settings or DEFAULT_SETTINGS
    arrays = survival_arrays(data, pieces=pieces)
    available = data.log2_draws.shape[0]
    n_draws = _DEFAULT_DRAWS[scheme] if n_draws is None else n_draws
    if not (isinstance(n_draws, int) and n_draws >= 0):
        raise ValueError(f"n_draws must be a non-negative integer, got {n_draws!r}")
    if n_draws > 0 and available < 2:
        raise ValueError(
            "the exposure has a single posterior draw (a MAP fit?): the two-stage analysis needs CK posterior "
            "draws; refit with NUTS (or laplace/svi), or use method='plugin'"
        )
    m = min(n_draws, available)
    choice_key, mcmc_key = jax.random.split(key)
    chosen = (
        np.sort(np.asarray(jax.random.choice(choice_key, available, (m,), replace=False))) if m else np.zeros(0, int)
    )
    centre = float(np.mean(data.log2_plug_in))
    plug_in_x = data.log2_plug_in[None, :] - centre
    candidates = data.log2_draws[chosen] - centre
    resample = scheme == "resample" and m > 0
    x = plug_in_x if resample else np.concatenate([plug_in_x, candidates], axis=0)
    copies = x.shape[0] + int(resample)
    draws = jnp.asarray(candidates) if resample else None
    gibbs = (_gibbs_index(arrays, baseline, draws, copies - 1), ["draw_index"]) if resample else None
    run = run_nuts(stacked_ph_model, (jnp.asarray(x), arrays, baseline, exposure_prior_sd, draws), settings=settings,
                   key=mcmc_key, init_strategy=init_to_value(values=ph_init_values(arrays, baseline, (copies,))),
                   gibbs=gibbs)
    samples = run.samples
    log_hr = samples["log_hr"]  # (chains, draws, copies)
    coef = samples.get("coef")  # (chains, draws, copies, p)
    fixed_contrasts = quartile_contrasts(x)  # (rows of x, 3)
    settings_dict = dataclasses.asdict(settings) | {"chain_method": run.chain_method, "scheme": scheme}
    blocks = [("plug-in (Bayesian)", slice(0, 1))]
    if m:
        blocks.append(("two-stage", slice(1, copies)))
    results = []
    for label, block in blocks:
        lh = log_hr[:, :, block]
        if label == "two-stage" and resample:
            index = samples["draw_index"]  # (chains, draws, patients)
            sampled_x = np.take_along_axis(np.asarray(candidates), index.reshape(-1, index.shape[-1]), axis=0)
            contrasts = quartile_contrasts(sampled_x)
        else:
            contrasts = np.broadcast_to(fixed_contrasts[block][None, None], lh.shape + (3,)).reshape(-1, 3)
        cf = None if coef is None else coef[:, :, block].reshape(-1, coef.shape[-1])
        hr, quartile, covariates = _summaries(lh.reshape(-1), cf, contrasts, arrays, data, level)
        gated = ph_draws(lh, None if coef is None else coef[:, :, block], data.covariate_names)
        diagnostics = judge_convergence(parameter_table(gated), run.divergences, gates)
        warn_if_failed(diagnostics, f"the Bayesian PH fit ({label})")
        results.append(
            BayesianPH(
                method=label,
                log_hr=lh.reshape(-1),
                hr_per_doubling=hr,
                quartile_hr=quartile,
                covariate_hr=covariates,
                diagnostics=diagnostics,
                baseline=baseline,
                n_exposure_draws=0 if block.start == 0 else m,
                settings=settings_dict,
                seed=seed,
                runtime_seconds=run.runtime_seconds,
                level=level,
            )
        )
    plug_in = results[0]
    stage = results[1] if len(results) > 1 else None
    return stage, plug_in
