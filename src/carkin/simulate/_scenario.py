"""A dose scenario (``scenarios/*.toml``): dose levels, virtual population, sampling times, targets.

Read once and validated here; every problem is a `carkin.errors.SpecError` naming the file and the key.
The layout (``scenarios/doses.toml`` is the worked example)::

    name = "..."
    [doses]        levels = [150, 300, 450, 540] (10^6 CAR+ T cells); column = "DOSE" (the model's
                   covariate column that carries the dose)
    [population]   n_patients = 500; draws = 200 (posterior draws used, evenly spaced; 0 = all)
    [covariates]   the model's other covariates, either one table per column with a clipped log-normal
                   distribution ([covariates.TUMOR_BURDEN] median, log_sd, low, high) or a fixed value
                   (value = 30), or table = "covariates.csv" to resample whole rows of a covariate table
                   (ID + columns; a relative path is taken from the scenario file's folder)
    [sampling]     times = [...] days after infusion for the profiles; interval = 0.9 (band width);
                   residual = false (true: population bands of observations, with the residual error,
                   censored at the LLOQ like the data); lloq = assay LLOQ, copies/ug (optional; default
                   the LLOQ of the fit's data, see `carkin.simulate.simulate_scenario`)
    [exposure]     auc_windows_days = [28] (metrics cmax, tmax and auc0_<W>: `carkin.exposure`'s Cmax,
                   Tmax and AUC over [0, W] days, see `scenario_metrics`)
    [target]       metric = "cmax" | "tmax" | "auc0_<W>"; threshold (in the metric's unit);
                   direction = "above" | "below"
    [exposure_response]   optional: an assumed log-linear E-R on PFS (e.g. the slope from `carkin.er`, or
                   the virtual cohort's generating values), metric, log_hr_per_doubling, reference,
                   breaks_months, hazard_per_month, landmarks_months, source
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from .._toml import Table, read_toml
from ..exposure import Metric, get_metric

__all__ = [
    "CovariateDistribution",
    "DoseScenario",
    "ExposureResponseHook",
    "Target",
    "load_scenario",
    "scenario_from_dict",
    "scenario_metrics",
]

TARGET_DIRECTIONS: tuple[str, ...] = ("above", "below")


def scenario_metrics(auc_windows: tuple[float, ...]) -> dict[str, Metric]:
    """A scenario's exposure metrics by the names its TOML and outputs use: cmax, tmax, auc0_<W> per window.

    Each is a `carkin.exposure.Metric` (``auc0_28`` is ``auc:0-28``), computed by `carkin.exposure`'s one
    engine (closed form for the multiphasic model, the grid method for ODE models).
    """
    out = {"cmax": get_metric("cmax"), "tmax": get_metric("tmax")}
    for w in auc_windows:
        out[f"auc0_{w:g}"] = get_metric(f"auc:0-{float(w)!r}")
    return out


@dataclasses.dataclass(frozen=True)
class CovariateDistribution:
    """A covariate drawn as ``median * exp(log_sd * N(0, 1))`` clipped to [low, high] (log_sd = 0: fixed)."""

    median: float
    log_sd: float = 0.0
    low: float = -math.inf
    high: float = math.inf


@dataclasses.dataclass(frozen=True)
class Target:
    """A target exposure: P(metric >= threshold) (``above``) or P(metric <= threshold) (``below``)."""

    metric: str
    threshold: float
    direction: str = "above"


@dataclasses.dataclass(frozen=True)
class ExposureResponseHook:
    """An assumed exposure-response relation on PFS, applied to a scenario's simulated exposures.

    A patient with exposure ``x`` (the metric) has hazard ``h0(t) exp(log_hr_per_doubling log2(x / reference))``
    with a piecewise-constant baseline ``h0`` (per month, from infusion).

    Attributes
    ----------
    metric : str
    log_hr_per_doubling : float or tuple of float
        One value, or one per posterior draw used (paired with the CK draws, e.g. from an E-R posterior).
    reference : float
        Exposure at which the hazard is the baseline (metric unit).
    breaks_months, hazard_per_month : tuple of float
    landmarks_months : tuple of float
        Times at which PFS is reported.
    source : str
        Where the numbers come from (shown in outputs).
    """

    metric: str
    log_hr_per_doubling: float | tuple[float, ...]
    reference: float
    breaks_months: tuple[float, ...]
    hazard_per_month: tuple[float, ...]
    landmarks_months: tuple[float, ...] = (6.0, 12.0)
    source: str = "assumption"


@dataclasses.dataclass(frozen=True)
class DoseScenario:
    """A validated dose scenario (see the module docstring for the TOML layout).

    Attributes
    ----------
    name : str
    doses : tuple of float
        Dose levels, 10^6 CAR+ T cells.
    dose_column : str
        Covariate column of the dose in the population spec.
    n_patients : int
        Virtual patients per posterior draw (the same patients at every dose: common random numbers).
    draws : int
        Posterior draws used (0: all).
    covariates : dict of str -> CovariateDistribution
    covariate_table : dict of str -> numpy array, or None
        Columns of a covariate table whose rows are resampled (instead of ``covariates``).
    times : tuple of float
        Profile times, days after infusion.
    interval : float
        Central probability of the bands (0.9: 5th to 95th percentiles).
    residual : bool
        Add the residual error to the population band (observations rather than true levels), censored at
        the LLOQ (a band edge at the LLOQ means "below the LLOQ").
    lloq : float or None
        Assay LLOQ, copies/ug gDNA, at which simulated observations are censored (BLQ fraction); None: the
        default of `simulate_scenario` (the LLOQ of the fit's data).
    auc_windows : tuple of float
        Days W of the AUC0-W metrics.
    target : Target or None
    exposure_response : ExposureResponseHook or None
    source : str
    """

    name: str
    doses: tuple[float, ...]
    dose_column: str = "DOSE"
    n_patients: int = 500
    draws: int = 200
    covariates: dict = dataclasses.field(default_factory=dict)
    covariate_table: dict | None = None
    times: tuple[float, ...] = (0.0, 7.0, 14.0, 28.0, 90.0, 180.0, 365.0)
    interval: float = 0.9
    residual: bool = False
    lloq: float | None = None
    auc_windows: tuple[float, ...] = (28.0,)
    target: Target | None = None
    exposure_response: ExposureResponseHook | None = None
    source: str = "<dict>"

    def replace(self, **changes) -> DoseScenario:
        return dataclasses.replace(self, **changes)

    @property
    def quantiles(self) -> tuple[float, float, float]:
        """Lower, median and upper probabilities of the bands."""
        lo = (1.0 - self.interval) / 2.0
        return (lo, 0.5, 1.0 - lo)

    def typical_covariates(self) -> dict[str, float]:
        """The typical patient's covariates: the distribution medians, or the table's column medians."""
        if self.covariate_table is not None:
            return {c: float(np.median(v)) for c, v in self.covariate_table.items()}
        return {c: float(np.clip(d.median, d.low, d.high)) for c, d in self.covariates.items()}


SCENARIO_KEYS: tuple[str, ...] = (
    "name", "doses", "population", "covariates", "sampling", "exposure", "target", "exposure_response",
)
"""The top-level keys and tables of a scenario."""


def _read_covariate_table(path: Path, covariates: Table, value: str) -> dict[str, np.ndarray]:
    from ..data import read_covariates
    from ..data._csv import read_table

    if not path.is_file():
        raise covariates.fail("table", f"names no file ({path})",
                              "give the path of a covariate CSV (ID + columns), relative to the scenario's folder",
                              value=value)
    problems: list = []
    table = read_table(path, problems)
    ids = [str(i) for i in table.cells["ID"]] if table is not None and "ID" in table.columns else []
    names, values = read_covariates(path, ids, verbose=False)
    values = np.asarray(values, dtype=float)
    if values.shape[0] == 0:
        raise covariates.fail("table", f"names a file with no rows ({path})", "give a table with one row per patient",
                              value=value)
    return {name: values[:, j] for j, name in enumerate(names)}


def covariate_distribution(t: Table) -> CovariateDistribution:
    """[covariates.<COLUMN>] (and a spec's [simulation.covariates.<COLUMN>]): a fixed value, or a clipped
    log-normal distribution."""
    t.check_keys(("value", "median", "log_sd", "low", "high"))
    if "value" in t:
        others = [k for k in t if k != "value"]
        if others:
            raise t.fail(
                ", ".join(others), "given with value", "give either value (fixed) or median, log_sd, low, high"
            )
        return CovariateDistribution(median=t.number("value"))
    low = t.number("low", -math.inf)
    high = t.number("high", math.inf)
    if not low < high:
        raise t.fail("low", f"is not below high = {high!r}", "give low < high", value=low)
    return CovariateDistribution(median=t.number("median"), log_sd=t.number("log_sd", 0.0, ge=0), low=low, high=high)


def _exposure_response(er: Table, metrics: tuple[str, ...]) -> ExposureResponseHook:
    """[exposure_response]: the assumed E-R relation on PFS."""
    er.check_keys(("source", "metric", "log_hr_per_doubling", "reference", "breaks_months", "hazard_per_month",
                   "landmarks_months"))
    metric = er.choice("metric", tuple(m for m in metrics if m != "tmax"))
    if isinstance(er.get("log_hr_per_doubling"), list):  # one per posterior draw
        slope = er.numbers("log_hr_per_doubling")
    else:
        slope = er.number("log_hr_per_doubling")
    breaks = er.numbers("breaks_months", ge=0, starts_at=0.0, increasing=True, hint="months")
    hazards = er.numbers("hazard_per_month", gt=0)
    if len(breaks) != len(hazards):
        raise er.fail("hazard_per_month", f"has {len(hazards)} values but breaks_months has {len(breaks)}",
                      "give one hazard per piece", value=list(hazards))
    return ExposureResponseHook(
        metric=metric,
        log_hr_per_doubling=slope,
        reference=er.number("reference", gt=0),
        breaks_months=breaks,
        hazard_per_month=hazards,
        landmarks_months=er.numbers("landmarks_months", (6.0, 12.0), gt=0),
        source=er.string("source", "assumption"),
    )


def scenario_from_dict(data: dict, *, source: str = "<dict>", base: Path | None = None) -> DoseScenario:
    """Validate a parsed scenario (see the module docstring) into a `DoseScenario`.

    Raises
    ------
    SpecError
        Naming ``source``, the table and the key (`carkin._toml` style) for each missing or unknown key,
        wrong type or out-of-range value.
    carkin.errors.DataError
        For a bad covariate table (file, row, column).
    """
    root = Table(data, file=source)
    root.check_keys(SCENARIO_KEYS)
    name = root.string("name", Path(source).stem)
    doses = root.table("doses", required=True, hint="levels = [...] (10^6 CAR+ T cells)")
    doses.check_keys(("levels", "column"))
    levels = doses.numbers("levels", gt=0, hint="10^6 CAR+ T cells")
    column = doses.string("column", "DOSE", nonempty=True, hint="the model's dose covariate column")

    population = root.table("population")
    population.check_keys(("n_patients", "draws"))
    n = population.integer("n_patients", 500, ge=1)
    draws = population.integer("draws", 200, ge=0, hint="0: all")

    covariates: dict[str, CovariateDistribution] = {}
    table_values = None
    cov_table = root.table("covariates")
    for key in cov_table:
        if key == "table":
            value = cov_table.string("table", hint="path of a covariate CSV")
            path = Path(value)
            if not path.is_absolute() and not path.exists() and base is not None:
                path = base / path
            table_values = _read_covariate_table(path, cov_table, value)
        else:
            covariates[key.upper()] = covariate_distribution(cov_table.table(key))
    if table_values is not None and covariates:
        raise cov_table.fail(None, 'gives both table = "..." and per-column distributions', "give one or the other")

    sampling = root.table("sampling")
    sampling.check_keys(("times", "interval", "residual", "lloq"))
    default_times = tuple(float(t) for t in np.unique(np.concatenate([np.arange(0, 29), np.arange(35, 366, 7)])))
    times = sampling.numbers("times", default_times, ge=0, increasing=True, hint="days after infusion")
    interval = sampling.number("interval", 0.9, gt=0, lt=1, hint="0.9: 5th to 95th percentiles")
    residual = sampling.boolean("residual", False)

    lloq = sampling.number("lloq", None, gt=0, hint="copies/ug gDNA")

    exposure = root.table("exposure")
    exposure.check_keys(("auc_windows_days",))
    windows = exposure.numbers("auc_windows_days", (28.0,), gt=0)
    metrics = tuple(scenario_metrics(windows))

    target = None
    target_table = root.table("target")
    if len(target_table):
        target_table.check_keys(("metric", "threshold", "direction"))
        target = Target(
            metric=target_table.choice("metric", metrics),
            threshold=target_table.number("threshold", gt=0, hint="in the metric's unit"),
            direction=target_table.choice("direction", TARGET_DIRECTIONS, "above"),
        )

    er = root.table("exposure_response")
    hook = _exposure_response(er, metrics) if len(er) else None

    return DoseScenario(
        name=name,
        doses=levels,
        dose_column=column.upper(),
        n_patients=n,
        draws=draws,
        covariates=covariates,
        covariate_table=table_values,
        times=times,
        interval=interval,
        residual=residual,
        lloq=lloq,
        auc_windows=windows,
        target=target,
        exposure_response=hook,
        source=source,
    )


def load_scenario(path: str | Path) -> DoseScenario:
    """Read and validate a dose scenario (TOML).

    Raises
    ------
    SpecError
        If the file is missing, is not valid TOML, or a key is wrong (naming the file and the key).
    """
    from .._resources import resolve_shipped

    path = resolve_shipped(path, "scenarios")  # "doses" or "scenarios/doses.toml" from anywhere: the shipped one
    data = read_toml(path, what="scenario", example="scenarios/doses.toml")
    return scenario_from_dict(data, source=str(path), base=path.parent)
