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
                   residual = false (true: population bands of observations, with the residual error)
    [exposure]     auc_windows_days = [28]
    [target]       metric = "cmax" | "tmax" | "auc0_<W>"; threshold (in the metric's unit);
                   direction = "above" | "below"
    [exposure_response]   optional: an assumed log-linear E-R on PFS (e.g. the slope from `carkin.er`, or
                   the virtual cohort's generating values), metric, log_hr_per_doubling, reference,
                   breaks_months, hazard_per_month, landmarks_months, source
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import tomllib
from pathlib import Path

import numpy as np

from ..errors import SpecError

__all__ = [
    "CovariateDistribution",
    "DoseScenario",
    "ExposureResponseHook",
    "Target",
    "load_scenario",
    "scenario_from_dict",
]

TARGET_DIRECTIONS: tuple[str, ...] = ("above", "below")


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
        Add the residual error to the population band (observations rather than true levels).
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


class _Reader:
    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, message: str) -> SpecError:
        return SpecError(f"{self.source}: {key}: {message}")

    def number(self, table: dict, key: str, where: str, *, default=None, positive=False, low=None, high=None):
        full = f"{where}.{key}" if where else key
        if key not in table:
            if default is None:
                raise self.fail(full, "missing key")
            return default
        v = table[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise self.fail(full, f"= {v!r} ({type(v).__name__}) must be a finite number")
        if positive and not v > 0:
            raise self.fail(full, f"= {v!r} must be > 0")
        if low is not None and v < low:
            raise self.fail(full, f"= {v!r} must be >= {low}")
        if high is not None and v > high:
            raise self.fail(full, f"= {v!r} must be <= {high}")
        return float(v)

    def numbers(self, table: dict, key: str, where: str, *, positive=False, nonnegative=False, default=None) -> tuple[float, ...]:
        full = f"{where}.{key}" if where else key
        if key not in table and default is not None:
            return default
        v = table.get(key)
        if not isinstance(v, list) or not v or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v
        ):
            raise self.fail(full, f"= {v!r} must be a non-empty list of numbers")
        if positive and any(x <= 0 for x in v):
            raise self.fail(full, f"= {v!r} must hold positive numbers")
        if nonnegative and any(x < 0 for x in v):
            raise self.fail(full, f"= {v!r} must hold numbers >= 0")
        return tuple(float(x) for x in v)

    def integer(self, table: dict, key: str, where: str, *, default: int, low: int) -> int:
        v = table.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise self.fail(f"{where}.{key}", f"= {v!r} must be an integer >= {low}")
        return v

    def table(self, data: dict, key: str) -> dict:
        v = data.get(key, {})
        if not isinstance(v, dict):
            raise self.fail(key, f"must be a table [{key}], got {type(v).__name__}")
        return v


def _read_covariate_table(path: Path, rd: _Reader) -> dict[str, np.ndarray]:
    from ..data import read_covariates
    from ..data._csv import read_table

    problems: list = []
    table = read_table(path, problems) if path.is_file() else None
    if table is None or "ID" not in table.columns:
        if not path.is_file():
            raise rd.fail("covariates.table", f"file {str(path)!r} not found")
        ids: list[str] = []
    else:
        ids = [str(i) for i in table.cells["ID"]]
    names, values = read_covariates(path, ids, verbose=False)
    values = np.asarray(values, dtype=float)
    if values.shape[0] == 0:
        raise rd.fail("covariates.table", f"{path} has no rows")
    return {name: values[:, j] for j, name in enumerate(names)}


def scenario_from_dict(data: dict, *, source: str = "<dict>", base: Path | None = None) -> DoseScenario:
    """Validate a parsed scenario (see the module docstring) into a `DoseScenario`.

    Raises
    ------
    SpecError
        Naming ``source`` and the dotted key for each missing key, wrong type or out-of-range value.
    carkin.errors.DataError
        For a bad covariate table (file, row, column).
    """
    rd = _Reader(source)
    name = data.get("name", Path(source).stem)
    if not isinstance(name, str):
        raise rd.fail("name", f"= {name!r} must be a string")
    doses_table = rd.table(data, "doses")
    if not doses_table:
        raise rd.fail("doses", "missing [doses] table with levels = [...] (10^6 CAR+ T cells)")
    doses = rd.numbers(doses_table, "levels", "doses", positive=True)
    column = doses_table.get("column", "DOSE")
    if not isinstance(column, str) or not column:
        raise rd.fail("doses.column", f"= {column!r} must be a column name")

    population = rd.table(data, "population")
    n = rd.integer(population, "n_patients", "population", default=500, low=1)
    draws = rd.integer(population, "draws", "population", default=200, low=0)

    covariates: dict[str, CovariateDistribution] = {}
    table_values = None
    cov_table = rd.table(data, "covariates")
    for key, value in cov_table.items():
        if key == "table":
            if not isinstance(value, str):
                raise rd.fail("covariates.table", f"= {value!r} must be a path (string)")
            path = Path(value)
            if not path.is_absolute() and not path.exists() and base is not None:
                path = base / path
            table_values = _read_covariate_table(path, rd)
            continue
        where = f"covariates.{key}"
        if not isinstance(value, dict):
            raise rd.fail(where, f"must be a table with median, log_sd, low, high (or value), got {value!r}")
        if "value" in value:
            v = rd.number(value, "value", where)
            covariates[key.upper()] = CovariateDistribution(median=v)
        else:
            low = rd.number(value, "low", where, default=-math.inf)
            high = rd.number(value, "high", where, default=math.inf)
            if not low < high:
                raise rd.fail(where, f"low = {low} must be below high = {high}")
            covariates[key.upper()] = CovariateDistribution(
                median=rd.number(value, "median", where),
                log_sd=rd.number(value, "log_sd", where, default=0.0, low=0.0),
                low=low,
                high=high,
            )
    if table_values is not None and covariates:
        raise rd.fail("covariates", "give either table = \"...\" or per-column distributions, not both")

    sampling = rd.table(data, "sampling")
    times = rd.numbers(sampling, "times", "sampling", nonnegative=True,
                       default=tuple(float(t) for t in np.unique(np.concatenate([np.arange(0, 29), np.arange(35, 366, 7)]))))
    if any(b <= a for a, b in itertools.pairwise(times)):
        raise rd.fail("sampling.times", "must increase strictly (days after infusion)")
    interval = rd.number(sampling, "interval", "sampling", default=0.9)
    if not 0 < interval < 1:
        raise rd.fail("sampling.interval", f"= {interval} must lie in (0, 1), e.g. 0.9 for 5th-95th percentiles")
    residual = sampling.get("residual", False)
    if not isinstance(residual, bool):
        raise rd.fail("sampling.residual", f"= {residual!r} must be true or false")

    exposure = rd.table(data, "exposure")
    windows = rd.numbers(exposure, "auc_windows_days", "exposure", positive=True, default=(28.0,))
    from ._metrics import metric_names

    metrics = metric_names(windows)

    target = None
    target_table = rd.table(data, "target")
    if target_table:
        metric = target_table.get("metric")
        if metric not in metrics:
            raise rd.fail("target.metric", f"= {metric!r} is not a computed metric; choose one of {', '.join(metrics)}")
        direction = target_table.get("direction", "above")
        if direction not in TARGET_DIRECTIONS:
            raise rd.fail("target.direction", f"= {direction!r}; choose one of {', '.join(TARGET_DIRECTIONS)}")
        target = Target(metric=metric, threshold=rd.number(target_table, "threshold", "target", positive=True), direction=direction)

    hook = None
    er = rd.table(data, "exposure_response")
    if er:
        where = "exposure_response"
        metric = er.get("metric")
        if metric not in metrics or metric == "tmax":
            raise rd.fail(f"{where}.metric", f"= {metric!r}; choose one of {', '.join(m for m in metrics if m != 'tmax')}")
        slope = er.get("log_hr_per_doubling")
        if isinstance(slope, list):
            slope = rd.numbers(er, "log_hr_per_doubling", where)
        else:
            slope = rd.number(er, "log_hr_per_doubling", where)
        breaks = rd.numbers(er, "breaks_months", where, nonnegative=True)
        hazards = rd.numbers(er, "hazard_per_month", where, positive=True)
        if len(breaks) != len(hazards) or breaks[0] != 0 or any(b <= a for a, b in itertools.pairwise(breaks)):
            raise rd.fail(where, "breaks_months must start at 0, increase strictly and match hazard_per_month in length")
        source_note = er.get("source", "assumption")
        hook = ExposureResponseHook(
            metric=metric,
            log_hr_per_doubling=slope,
            reference=rd.number(er, "reference", where, positive=True),
            breaks_months=breaks,
            hazard_per_month=hazards,
            landmarks_months=rd.numbers(er, "landmarks_months", where, positive=True, default=(6.0, 12.0)),
            source=str(source_note),
        )

    return DoseScenario(
        name=name,
        doses=doses,
        dose_column=column.upper(),
        n_patients=n,
        draws=draws,
        covariates=covariates,
        covariate_table=table_values,
        times=times,
        interval=interval,
        residual=residual,
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
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: scenario file not found (expected a TOML file such as scenarios/doses.toml)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{path}: not valid TOML ({err})") from None
    return scenario_from_dict(data, source=str(path), base=path.parent)
