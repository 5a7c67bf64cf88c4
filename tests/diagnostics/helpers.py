"""A posterior-like Fit built from a simulation truth (no NUTS): cheap inputs for diagnostics tests."""

from __future__ import annotations

import functools
import json

import arviz as az
import jax
import numpy as np

from carkin.inference import Fit, parameter_table, population_draws
from carkin.population import load_spec
from carkin.simulate import PopulationParameters, simulate_cohort


def truth_fit(
    spec, cohort, *, truth: PopulationParameters | None = None, draws: int = 4, simulated: bool = True
) -> Fit:
    """A one-chain 'posterior' whose every draw is the population truth and the true individual parameters."""
    truth = truth if truth is not None else cohort.truth
    phi = np.stack(
        [
            np.log(cohort.individual[p.name])
            if p.transform == "log"
            else np.log(cohort.individual[p.name] / (1 - cohort.individual[p.name]))
            for p in spec.parameters
        ],
        axis=-1,
    )

    def rep(x):
        x = np.asarray(x, dtype=float)
        return np.broadcast_to(x, (1, draws) + x.shape).copy()

    posterior = {"mu": rep(truth.mu), "omega": rep(truth.omega), "phi": rep(phi)}
    posterior.update({site: rep(value) for site, value in observation_sites(spec, truth).items()})
    coords = {"patient": list(cohort.dataset.patient_ids), "parameter": list(spec.parameter_names)}
    dims = {"mu": ["parameter"], "omega": ["parameter"], "phi": ["patient", "parameter"]}
    if spec.effects:
        posterior["beta"] = rep(truth.beta)
        coords["effect"] = list(spec.effect_names)
        dims["beta"] = ["effect"]
    idata = az.from_dict(posterior=posterior, coords=coords, dims=dims)
    table = parameter_table(population_draws(idata.posterior, spec))
    manifest = {"method": "truth", "seed": 0, "data": {"simulated": simulated, "source": "<simulated>"},
                "diagnostics": {"passed": False, "failures": ["point-mass posterior built from the truth (test)"]},
                "model": {"source": spec.source, "hash": spec.hash, "spec": json.loads(spec.raw)}}
    return Fit(idata=idata, spec=spec, manifest=manifest, table=table, patient_ids=cohort.dataset.patient_ids)


def observation_sites(spec, truth: PopulationParameters) -> dict:
    """Site name -> true value of every residual, scaling-factor and co-medication site of ``spec`` (the inverse of
    `carkin.population.population_extras`): ``sigma`` alone for the single-analyte additive_log model."""
    single = len(spec.analytes) == 1
    out = {}
    for k, analyte in enumerate(spec.analytes):
        sigma_site, add_site = spec.residual_sites(analyte)
        for site, value in ((sigma_site, truth.sigma), (add_site, truth.sigma_add)):
            if site:
                out[site] = np.asarray(value, dtype=float) if single else np.asarray(value, dtype=float)[k]
        if spec.scale_site(analyte):
            out[spec.scale_site(analyte)] = np.asarray(truth.log_scale, dtype=float)[k]
    if spec.comedications:
        out["gamma"] = np.asarray(truth.gamma, dtype=float)
    return out


@functools.lru_cache(maxsize=4)
def multiphasic_cohort(seed: int = 0, n: int = 150, truth: PopulationParameters | None = None):
    """(spec, cohort) simulated from models/multiphasic.toml (cached: the eager simulation takes seconds)."""
    spec = load_spec("multiphasic")
    cohort = simulate_cohort(spec, key=jax.random.PRNGKey(seed), n=n, truth=truth)
    return spec, cohort


def resimulate(fit: Fit, dataset, *, key, replicates: int = 1):
    """New studies with ``dataset``'s design drawn from ``fit``'s posterior (jitted, cheap to repeat).

    Returns a list of ``replicates`` Datasets (BLQ below each record's LLOQ, DV = LLOQ there).
    """
    import numpy as np

    from carkin.data import Dataset
    from carkin.diagnostics._simulation import design, replicate_draws, simulate_records

    des = design(dataset, fit.spec)
    sims = simulate_records(fit.spec, des.data, replicate_draws(fit, replicates), key=key, log_lloq=des.log_lloq)
    mask = np.asarray(dataset.obs_mask)
    out = []
    for log_y, blq in zip(np.asarray(sims.log_value), np.asarray(sims.blq), strict=True):
        dv, flags = np.ones(mask.shape), np.zeros(mask.shape, bool)
        dv[mask] = np.where(blq, np.exp(des.log_lloq), np.exp(log_y))
        flags[mask] = blq
        fields = {f: getattr(dataset, f) for f in ("patient_ids", "times", "lloq", "obs_mask", "source_rows", "dose",
                                                 "dose_time", "covariates", "covariate_names", "source")}
        out.append(Dataset(dv=jax.numpy.asarray(dv), blq=jax.numpy.asarray(flags), **fields))
    return out


def with_patient_ids(dataset, ids):
    from carkin.data import Dataset

    fields = {f: getattr(dataset, f) for f in ("times", "dv", "blq", "lloq", "obs_mask", "source_rows", "dose",
                                             "dose_time", "covariates", "covariate_names", "source")}
    return Dataset(patient_ids=tuple(ids), **fields)


def save_truth_fit_dir(spec, cohort, out_dir, *, simulated: bool = True):
    """A fit directory (save_fit layout, with input/ copies of the data) holding `truth_fit`."""
    from pathlib import Path

    from carkin.data import write_ck, write_covariates
    from carkin.inference import save_fit

    out_dir = Path(out_dir)
    work = out_dir.parent / (out_dir.name + "-data")
    work.mkdir(parents=True, exist_ok=True)
    comment = "SIMULATED data: test cohort" if simulated else None
    write_ck(work / "ck.csv", cohort.dataset, comment=comment)
    write_covariates(work / "patients.csv", cohort.dataset.patient_ids,
                     {k: v for k, v in cohort.covariates.items() if k != "DOSE"}, comment=comment)
    fit = truth_fit(spec, cohort, simulated=simulated)
    return save_fit(fit, out_dir, inputs={"ck": str(work / "ck.csv"), "covariates": str(work / "patients.csv")})
