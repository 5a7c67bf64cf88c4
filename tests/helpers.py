"""Small fixtures shared by the tests (independent numpy definitions, tiny datasets)."""

import jax.numpy as jnp
import numpy as np

from carkin.data import Dataset


def multiphasic_spec_as_at_9913582():
    """models/multiphasic.toml with the two values it had at commit 9913582 (rho 0.89 /d, [simulation] lloq 10).

    The "same numbers as before" tests pin numbers computed with the code of that commit: they guard that later
    refactorings kept the engine's arithmetic, so they must not move when the shipped priors are re-sourced.
    """
    import json

    from carkin.population import load_spec, spec_from_dict

    spec = load_spec("multiphasic")
    data = json.loads(spec.raw)
    data["parameters"]["rho"]["typical"] = 0.89
    data["simulation"]["lloq"] = 10.0
    return spec_from_dict(data, source=spec.source)


def piecewise_concentration(p, t):
    """The multiphasic curve by its two-branch definition (numpy), independent of carkin's expression."""
    t = np.asarray(t, float)
    dt = t - p["tmax"]
    before = p["cmax"] * np.exp(p["rho"] * dt)
    after = p["cmax"] * ((1 - p["fb"]) * np.exp(-p["alpha"] * dt) + p["fb"] * np.exp(-p["beta"] * dt))
    return np.where(t < p["tmax"], before, after)


def small_dataset(*, with_tumor_burden=True, tumor_burden=(40.0, 20.0)) -> Dataset:
    """Two patients, ragged schedules, BLQ records early and late."""
    times = np.array([[1.0, 4.0, 9.0, 11.0, 30.0, 200.0], [2.0, 12.0, 60.0, 365.0, 0.0, 0.0]])
    dv = np.array([[10.0, 150.0, 9000.0, 21000.0, 900.0, 10.0], [10.0, 4000.0, 60.0, 10.0, 1.0, 1.0]])
    blq = np.array([[True, False, False, False, False, True], [True, False, False, True, False, False]])
    mask = np.array([[True] * 6, [True] * 4 + [False] * 2])
    names = ("TUMOR_BURDEN",) if with_tumor_burden else ()
    cov = np.array(tumor_burden)[:, None] if with_tumor_burden else np.zeros((2, 0))
    return Dataset(
        patient_ids=("A", "B"),
        times=jnp.asarray(times), dv=jnp.asarray(dv), blq=jnp.asarray(blq), lloq=jnp.full((2, 6), 10.0),
        obs_mask=jnp.asarray(mask), source_rows=jnp.zeros((2, 6), int),
        dose=jnp.asarray([450.0, 300.0]), dose_time=jnp.zeros(2),
        covariates=jnp.asarray(cov), covariate_names=names, source="<test>",
    )


def one_patient_dataset(ds: Dataset, i: int) -> Dataset:
    """Patient i of ``ds`` alone, its padding dropped."""
    keep = ds.obs_mask[i]
    n = int(keep.sum())
    row = {name: getattr(ds, name)[i:i + 1, :n] for name in ("times", "dv", "blq", "lloq", "obs_mask", "source_rows")}
    return Dataset(
        patient_ids=(ds.patient_ids[i],), **row, dose=ds.dose[i:i + 1], dose_time=ds.dose_time[i:i + 1],
        covariates=ds.covariates[i:i + 1], covariate_names=ds.covariate_names, source=ds.source,
    )
