"""Simulated exposure-response studies with a KNOWN exposure effect, to check the methods (SIMULATED data).

CK records come from `carkin.simulate.simulate_cohort` (the population model of a spec, with its
[simulation] truth, dose and tumour-burden covariates); PFS is then drawn from a Weibull proportional-
hazards model whose linear predictor holds the true exposure effect,

    log h_i(t) = log h0(t) + log_hr_per_doubling * log2(x_i / x_ref) + log_hr_burden * (B_i - 30) / 10
                 + sum_j log_hr_strata[j] * S_ij,

with x_i the patient's true (noiseless) exposure metric, x_ref its geometric mean, B_i the tumour burden
and S_ij three binary stratification factors. Time is in months from the infusion (``INFUSION_DAY = 0``).
Administrative censoring is uniform over ``follow_up_months``. Tumour burden can drive exposure too
(``burden_log_cmax``, the spec's coefficient of log(burden / 30) on log Cmax), which makes it a
confounder of the exposure-PFS association.

Sparse CK: ``samples_per_patient`` keeps that many of the scheduled samples per patient, chosen at random.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from .._atomic import atomic_directory
from .._karmma3 import STRATIFICATION_FACTORS, TUMOR_BURDEN
from ..exposure import exposure_metrics, get_metric

__all__ = ["ERStudy", "simulate_er_study"]


@dataclasses.dataclass(frozen=True, eq=False)
class ERStudy:
    """One SIMULATED exposure-response study.

    Attributes
    ----------
    dataset : carkin.data.Dataset
        CK records (patients "1".."n"; covariates DOSE via ``dose`` and TUMOR_BURDEN).
    patients : pandas.DataFrame
        One row per patient: ID, ARM, INFUSED, INFUSION_DAY (0), DOSE, TUMOR_BURDEN, the stratification
        factors, PFS_MONTHS (from the infusion), PFS_EVENT, SIMULATED (1).
    truth : pandas.DataFrame
        ID, the true individual CK parameters, EXPOSURE (true metric value) and LOG_HAZARD.
    metric : str
    log_hr_per_doubling : float
        The true effect (natural log of the HR per doubling of the metric).
    seed : int or None
    """

    dataset: object
    patients: pd.DataFrame
    truth: pd.DataFrame
    metric: str
    log_hr_per_doubling: float
    seed: int | None

    @property
    def prognostic_factors(self) -> tuple[str, ...]:
        """The columns of ``patients`` that carry covariate effects on PFS in the simulation (tumour burden and
        the three stratification factors): what an analysis of the study adjusts for,
        ``analyze_exposure_response(exposure, study.patients, adjust=study.prognostic_factors)``."""
        return (TUMOR_BURDEN, *STRATIFICATION_FACTORS)

    @property
    def header(self) -> str:
        return (f"SIMULATED data: exposure-response study from carkin.er.simulate_er_study (seed {self.seed}, "
                f"true log HR per doubling of {self.metric} = {self.log_hr_per_doubling:g}); not trial data.")

    def write(self, out_dir: str | Path) -> Path:
        """Write ``ck.csv`` and ``patients.csv`` (each opening with a ``# SIMULATED`` line), atomically."""
        from ..data import write_ck, write_table

        out = Path(out_dir)
        with atomic_directory(out) as tmp:
            write_ck(tmp / "ck.csv", self.dataset, comment=self.header)
            write_table(tmp / "patients.csv", self.patients, comment=self.header, float_format=None)
        return out


def simulate_er_study(
    key: jax.Array,
    *,
    n: int = 150,
    spec=None,
    metric: str = "cmax",
    log_hr_per_doubling: float = -0.29,
    log_hr_burden: float = 0.1,
    log_hr_strata: Sequence[float] = (0.05, 0.15, 0.35),
    p_strata: Sequence[float] = (0.42, 0.67, 0.42),
    burden_log_cmax: float | None = None,
    weibull_shape: float = 1.2,
    median_months: float = 14.0,
    follow_up_months: tuple[float, float] = (6.0, 36.0),
    times: Sequence[float] | None = None,
    samples_per_patient: int | None = None,
    lloq: float | None = None,
    seed: int | None = None,
) -> ERStudy:
    """Simulate a CK + PFS study with a known effect of exposure on the PFS hazard (see the module docstring).

    Main arguments
    --------------
    key : jax.Array
        The only source of randomness.
    n : int
        Patients (all infused).
    spec : PopulationSpec, optional
        CK population model and its [simulation] truth; default ``load_spec("multiphasic")``.
    metric : str
        Exposure metric carrying the effect (`carkin.exposure.METRICS`).
    log_hr_per_doubling : float
        True log hazard ratio per doubling of the metric (0: no effect).

    Other arguments
    ---------------
    log_hr_burden : float
        Log HR per 10 units of tumour burden.
    log_hr_strata, p_strata : three floats each
        Log HRs and prevalences of AGE_GE65, PRIOR_REGIMENS_3_4, HIGH_RISK_CYTO (assumptions).
    burden_log_cmax : float, optional
        Overrides the spec's coefficient of log(burden / 30) on log Cmax (confounding strength).
    weibull_shape, median_months : float
        Baseline PFS (typical patient): Weibull shape and median, months.
    follow_up_months : (low, high)
        Administrative censoring, uniform, months from infusion.
    times : sequence of float, optional
        CK sampling days; default the spec's [simulation].times.
    samples_per_patient : int, optional
        Keep this many scheduled samples per patient, at random (sparse CK); default all.
    lloq : float, optional
        Assay LLOQ, copies/ug; default the spec's.
    seed : int, optional
        Label written into the files.

    Returns
    -------
    ERStudy
    """
    from ..population import load_spec
    from ..simulate import simulate_cohort, truth_from_spec

    spec = load_spec("multiphasic") if spec is None else spec
    metric_obj = get_metric(metric)
    k_ck, k_strata, k_event, k_censor, k_sparse = jax.random.split(key, 5)
    truth = truth_from_spec(spec)
    if burden_log_cmax is not None:
        names = list(spec.effect_names)
        target = "beta_tumor_burden_cmax"
        if target not in names:
            raise ValueError(f"the spec has no {target} effect to override (effects: {names})")
        truth = eqx.tree_at(lambda t: t.beta, truth, truth.beta.at[names.index(target)].set(burden_log_cmax))
    cohort = simulate_cohort(spec, key=k_ck, n=n, truth=truth, times=None if times is None else jnp.asarray(times),
                             lloq=lloq)
    dataset = cohort.dataset
    if samples_per_patient is not None:
        m = dataset.times.shape[1]
        if not (isinstance(samples_per_patient, int) and 1 <= samples_per_patient <= m):
            raise ValueError(f"samples_per_patient must be an integer from 1 to {m}, got {samples_per_patient!r}")
        scores = jax.random.uniform(k_sparse, (n, m))
        ranks = jnp.argsort(jnp.argsort(scores, axis=1), axis=1)
        keep = np.asarray(ranks < samples_per_patient)
        dataset = _keep_records(dataset, keep)
    lloq_value = float(np.asarray(dataset.lloq)[0, 0])
    individual = {k: jnp.asarray(v) for k, v in cohort.individual.items()}
    metrics = exposure_metrics(spec.kinetic_model, individual, [metric_obj], lloq=lloq_value)
    exposure = np.asarray(metrics[metric_obj.name])
    log2_x = np.log2(np.maximum(exposure, metric_obj.log_floor) if metric_obj.log_floor > 0 else exposure)
    burden = np.asarray(cohort.covariates["TUMOR_BURDEN"], dtype=float)
    strata = np.asarray(jax.random.uniform(k_strata, (n, 3)) < jnp.asarray(p_strata)[None, :]).astype(int)
    log_hazard = (
        log_hr_per_doubling * (log2_x - log2_x.mean())
        + log_hr_burden * (burden - 30.0) / 10.0
        + strata @ np.asarray(log_hr_strata, dtype=float)
    )
    scale = median_months / np.log(2.0) ** (1.0 / weibull_shape)
    e = np.asarray(jax.random.exponential(k_event, (n,)))
    event_time = scale * (e * np.exp(-log_hazard)) ** (1.0 / weibull_shape)
    low, high = follow_up_months
    censor = np.asarray(jax.random.uniform(k_censor, (n,), minval=low, maxval=high))
    pfs = np.minimum(event_time, censor)
    ids = list(dataset.patient_ids)
    patients = pd.DataFrame({
        "ID": ids,
        "ARM": "CAR-T",
        STRATIFICATION_FACTORS[0]: strata[:, 0],
        STRATIFICATION_FACTORS[1]: strata[:, 1],
        STRATIFICATION_FACTORS[2]: strata[:, 2],
        "INFUSED": 1,
        "INFUSION_DAY": 0,
        "DOSE": np.asarray(dataset.dose),
        "TUMOR_BURDEN": np.round(burden, 6),
        "PFS_MONTHS": np.round(np.maximum(pfs, 1e-4), 6),
        "PFS_EVENT": (event_time <= censor).astype(int),
        "SIMULATED": 1,
    })
    truth_table = pd.DataFrame({"ID": ids, **{k.upper(): np.asarray(v) for k, v in cohort.individual.items()},
                                "EXPOSURE": exposure, "LOG_HAZARD": log_hazard})
    return ERStudy(dataset=dataset, patients=patients, truth=truth_table, metric=metric_obj.name,
                   log_hr_per_doubling=float(log_hr_per_doubling), seed=seed)


def _keep_records(dataset, keep: np.ndarray):
    """The dataset with only the records where ``keep`` (patients, obs) is True, compacted to the front."""
    order = np.argsort(~keep, axis=1, kind="stable")
    width = int(keep.sum(axis=1).max())
    take = order[:, :width]

    def pick(x):
        return jnp.asarray(np.take_along_axis(np.asarray(x), take, axis=1))

    mask = np.take_along_axis(keep, take, axis=1)
    return eqx.tree_at(
        lambda d: (d.times, d.dv, d.blq, d.lloq, d.obs_mask, d.source_rows),
        dataset,
        (pick(dataset.times), pick(dataset.dv), pick(dataset.blq), pick(dataset.lloq), jnp.asarray(mask),
         pick(dataset.source_rows)),
    )
