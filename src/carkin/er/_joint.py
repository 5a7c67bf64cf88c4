"""Joint CK + PFS model: the population CK model and the PH likelihood in one NUTS run.

The model reuses carkin.population as is: `population_model` (priors, IIV, covariates, residual error,
M3 BLQ) is called inside the joint model under a local `numpyro.handlers.trace`, which hands back the
individual parameters ``phi`` it sampled; each analysed patient's log2 exposure is then computed from them
(`carkin.exposure.exposure_metrics`, the closed form for the multiphasic model, differentiable) and enters
the PH likelihood of `carkin.er._ph_model`. PFS and CK inform the exposures together, so the exposure
uncertainty is integrated exactly (no cut, no attenuation from imputation), at the price of one NUTS run
of the whole CK model.

Sites: those of `carkin.population` (``mu``, ``omega``, ``beta``, ``phi``, ``sigma``) plus ``log_hr``,
``coef`` and the baseline's sites. The run starts from the CK fit's posterior medians (CK sites) and from
HR 1 at the crude event rate (PH sites).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
from numpyro import handlers
from numpyro.infer import init_to_value

from ..exposure import exposure_metrics, patient_lloq
from ..inference import (
    Gates,
    SamplerSettings,
    judge_convergence,
    parameter_table,
    population_draws,
    run_nuts,
    warn_if_failed,
)
from ..population import natural_parameters, population_model, prepare
from ._analysis_set import ERData
from ._bayes import DEFAULT_SETTINGS, BayesianPH, _summaries, ph_draws, quartile_contrasts
from ._ph_model import SurvivalArrays, check_baseline, ph_log_likelihood, survival_arrays

__all__ = ["joint_ph", "joint_model"]


def _log2_metric(spec, metric, phi, index, lloq, inputs):
    individual = natural_parameters(spec, phi[..., index, :])
    shape = individual[spec.parameter_names[0]].shape
    individual.update({k: jnp.broadcast_to(v[index], shape) for k, v in inputs.items()})
    value = exposure_metrics(spec.kinetic_model, individual, [metric], lloq=lloq)[metric.name]
    if metric.log_floor > 0:
        value = jnp.maximum(value, metric.log_floor)
    return jnp.log2(value)


def joint_model(ck_data, spec, arrays: SurvivalArrays, index, lloq, metric, centre: float, baseline: str,
                exposure_prior_sd: float):
    """numpyro model: the CK population model + a PH likelihood on log2 exposure of the analysed patients."""
    with handlers.trace() as ck_trace:
        population_model(ck_data, spec)
    phi = ck_trace["phi"]["value"]
    x = _log2_metric(spec, metric, phi, index, lloq, getattr(ck_data, "inputs", {})) - centre
    numpyro.factor(
        "pfs_log_likelihood", ph_log_likelihood(arrays, x, baseline=baseline, exposure_prior_sd=exposure_prior_sd)
    )


def _ck_init(fit) -> dict:
    """Posterior medians of the CK fit's sampled sites, as starting values."""
    sampled = {"mu", "omega", "beta", "sigma", "sigma_add", fit.spec.individual_site}
    out = {}
    for name in sampled:
        if name in fit.idata.posterior:
            values = np.asarray(fit.idata.posterior[name].values)
            out[name] = jnp.asarray(np.median(values.reshape((-1,) + values.shape[2:]), axis=0))
    return out


def joint_ph(
    fit,
    dataset,
    data: ERData,
    *,
    key: jax.Array,
    baseline: str = "piecewise",
    pieces: int = 5,
    settings: SamplerSettings | None = None,
    exposure_prior_sd: float = 1.0,
    level: float = 0.9,
    seed: int | None = None,
    gates: Gates | None = None,
) -> BayesianPH:
    """Fit the joint CK + PFS model with NUTS and summarise the exposure effect.

    Main arguments
    --------------
    fit : carkin.inference.Fit
        The CK fit (its spec defines the CK model; its posterior medians start the run).
    dataset : carkin.data.Dataset
        The CK data of the fit (`carkin.exposure.load_fit_dataset`).
    data : ERData
        The analysis set (its patients index into the fit's patients).
    key : jax.Array

    Other arguments
    ---------------
    baseline, pieces, exposure_prior_sd, level, seed
        As in `carkin.er.two_stage`.
    gates : carkin.inference.Gates, optional
        Convergence gates of the draws of ``log_hr``, ``coef`` and the CK population quantities (those a CK
        fit is gated on); default as for a CK fit.
    settings : SamplerSettings
        NUTS settings (default `carkin.er.DEFAULT_SETTINGS`).

    Returns
    -------
    BayesianPH
        ``method="joint"``; its ``diagnostics`` are the gate's verdict over ``log_hr``, ``coef`` and the CK
        population quantities (`carkin.inference.population_draws`), plus ``max_r_hat_ck`` and
        ``min_ess_bulk_ck`` of the CK quantities alone. A failed gate also issues a ConvergenceWarning.
    """
    check_baseline(baseline)
    settings = settings or DEFAULT_SETTINGS
    if tuple(dataset.patient_ids) != tuple(fit.patient_ids):
        raise ValueError("the dataset's patients are not the fit's (pass carkin.exposure.load_fit_dataset(fit_dir))")
    spec = fit.spec
    ck_data = prepare(dataset, spec)
    arrays = survival_arrays(data, pieces=pieces)
    index = jnp.asarray(data.exposure_index)
    metric = data.metric
    lloq = None
    if metric.needs_lloq:
        lloq = jnp.asarray(patient_lloq(dataset)[np.asarray(data.exposure_index)])
    centre = float(np.mean(data.log2_plug_in))
    init = _ck_init(fit)
    init["log_hr"] = jnp.zeros(())
    if arrays.z.shape[1]:
        init["coef"] = jnp.zeros(arrays.z.shape[1])
    if baseline == "piecewise":
        init["log_baseline_hazard"] = jnp.full(arrays.at_risk.shape[1], arrays.log_rate)
    else:
        init["log_weibull_shape"] = jnp.zeros(())
        init["log_weibull_scale"] = jnp.asarray(arrays.log_time)
    run = run_nuts(joint_model, (ck_data, spec, arrays, index, lloq, metric, centre, baseline, exposure_prior_sd),
                   settings=settings, key=key, init_strategy=init_to_value(values=init))
    samples = run.samples
    log_hr = samples["log_hr"]  # (chains, draws)
    x = np.asarray(_log2_metric(spec, metric, jnp.asarray(samples["phi"]), index,
                                None if lloq is None else lloq[None, None, :], getattr(ck_data, "inputs", {})))
    contrasts = quartile_contrasts(x).reshape(-1, 3)
    coef = samples.get("coef")
    hr, quartile, covariates = _summaries(
        log_hr.reshape(-1), None if coef is None else coef.reshape(-1, coef.shape[-1]), contrasts, arrays,
        data, level,
    )
    ck = population_draws(samples, spec)  # the quantities a CK fit is gated on
    table = parameter_table(ph_draws(log_hr[..., None], None if coef is None else coef[:, :, None],
                                     data.covariate_names) | ck)
    diagnostics = judge_convergence(table, run.divergences, gates)
    ck_verdict = judge_convergence(table[table["parameter"].isin(list(ck))], run.divergences, gates)
    diagnostics["max_r_hat_ck"] = ck_verdict["max_r_hat"]
    diagnostics["min_ess_bulk_ck"] = ck_verdict["min_ess_bulk"]
    warn_if_failed(diagnostics, "the joint CK + PFS fit")
    return BayesianPH(
        method="joint",
        log_hr=log_hr.reshape(-1),
        hr_per_doubling=hr,
        quartile_hr=quartile,
        covariate_hr=covariates,
        diagnostics=diagnostics,
        baseline=baseline,
        n_exposure_draws=int(log_hr.size),
        settings=dataclasses.asdict(settings) | {"chain_method": run.chain_method},
        seed=seed,
        runtime_seconds=run.runtime_seconds,
        level=level,
    )
