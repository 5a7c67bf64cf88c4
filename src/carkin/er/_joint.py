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
import time as _time

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
from numpyro import handlers
from numpyro.infer import NUTS, init_to_value

from ..exposure import exposure_metrics, patient_lloq
from ..inference import SamplerSettings, make_mcmc, resolve_chain_method
from ..population import natural_parameters, population_model, prepare
from ._analysis_set import ERData
from ._bayes import DEFAULT_SETTINGS, BayesianPH, _diagnostics, _summaries, quartile_contrasts
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
    settings : SamplerSettings
        NUTS settings (default `carkin.er.DEFAULT_SETTINGS`).

    Returns
    -------
    BayesianPH
        ``method="joint"``; diagnostics cover ``log_hr`` and the CK population sites (``mu``, ``omega``).
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
    kernel = NUTS(
        joint_model,
        target_accept_prob=settings.target_accept,
        max_tree_depth=settings.max_tree_depth,
        init_strategy=init_to_value(values=init),
    )
    mcmc = make_mcmc(kernel, settings)
    start = _time.perf_counter()
    mcmc.run(key, ck_data, spec, arrays, index, lloq, metric, centre, baseline, exposure_prior_sd,
             extra_fields=("diverging",))
    runtime = _time.perf_counter() - start
    samples = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    divergences = int(np.asarray(mcmc.get_extra_fields(group_by_chain=True)["diverging"]).sum())
    log_hr = samples["log_hr"]  # (chains, draws)
    x = np.asarray(_log2_metric(spec, metric, jnp.asarray(samples["phi"]), index,
                                None if lloq is None else lloq[None, None, :], getattr(ck_data, "inputs", {})))
    contrasts = quartile_contrasts(x).reshape(-1, 3)
    coef = samples.get("coef")
    hr, quartile, covariates = _summaries(
        log_hr.reshape(-1), None if coef is None else coef.reshape(-1, coef.shape[-1]), contrasts, arrays,
        data, level,
    )
    diagnostics = _diagnostics(log_hr[..., None], divergences)
    ck = _diagnostics(np.concatenate([samples["mu"], samples["omega"]], axis=-1), divergences)
    diagnostics["max_r_hat_ck"] = ck["max_r_hat"]
    diagnostics["min_ess_bulk_ck"] = ck["min_ess_bulk"]
    return BayesianPH(
        method="joint",
        log_hr=log_hr.reshape(-1),
        hr_per_doubling=hr,
        quartile_hr=quartile,
        covariate_hr=covariates,
        diagnostics=diagnostics,
        baseline=baseline,
        n_exposure_draws=int(log_hr.size),
        settings=dataclasses.asdict(settings) | {"chain_method": resolve_chain_method(settings)},
        seed=seed,
        runtime_seconds=runtime,
        level=level,
    )
