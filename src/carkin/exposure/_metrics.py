"""Exposure metrics: what each one measures, its unit, its time window, and the one table that names them.

A metric is a small immutable description (`Metric`); the numbers come from `exposure_metrics` (closed form
or numerical). Names are resolved here, once (house rule 10): the presets of `METRICS` and three
parametrised forms,

=====================  ===================================================  ==================  =========
name                   meaning                                              unit                window
=====================  ===================================================  ==================  =========
``cmax``               peak transgene level                                 copies/ug           peak
``tmax``               time of the peak                                     day                 peak
``auc28``              AUC from day 0 to 28                                 copies/ug x day     [0, 28]
``auc90``              AUC from day 0 to 90                                 copies/ug x day     [0, 90]
``auc:A-B``            AUC from day A to B (e.g. ``auc:0-180``)             copies/ug x day     [A, B]
``c_m3``/``c_m6``/     level 3 / 6 / 12 months after infusion               copies/ug           the day
``c_m12``              (month = 30.4375 days)
``c:D``                level at day D (e.g. ``c:60``)                       copies/ug           the day
``persistence``        time above the LLOQ within the first 12 months       day                 [0, 365.25]
``persistence:H``      time above the LLOQ within the first H days          day                 [0, H]
=====================  ===================================================  ==================  =========

Times are days after the infusion. The "window" is the span of time the metric depends on: an outcome
that happens inside it can truncate the observed exposure (guarantee-time bias, [Anderson1983]),
so the exposure-response analysis starts follow-up at a landmark after it by default (`Metric.landmark_days`).
The peak metrics use a nominal window of 28 days (ide-cel's median Tmax is 11 days, [USPI] 12.3;
the peak of almost every patient lies before day 28).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from typing import Literal

from .._karmma3 import DAYS_PER_MONTH

__all__ = ["Metric", "METRICS", "DEFAULT_METRICS", "DAYS_PER_MONTH", "get_metric", "resolve_metrics"]

# DAYS_PER_MONTH (365.25 / 12, the convention of the trial's time columns) comes from carkin._karmma3.
#: Nominal end of the peak window, days (the default landmark of Cmax and Tmax; see the module docstring).
PEAK_WINDOW_DAYS = 28.0
#: Default horizon of ``persistence``: 12 months (detectable CAR+ cells "up to ~1 year", Abecma label).
PERSISTENCE_HORIZON_DAYS = 12 * DAYS_PER_MONTH
#: Floor (days) applied to ``persistence`` before taking log2 (a patient never above the LLOQ has 0 days).
PERSISTENCE_LOG_FLOOR_DAYS = 1.0

Kind = Literal["cmax", "tmax", "auc", "conc", "time_above_lloq"]
KINDS: tuple[str, ...] = ("cmax", "tmax", "auc", "conc", "time_above_lloq")


@dataclasses.dataclass(frozen=True)
class Metric:
    """One exposure metric.

    Attributes
    ----------
    name : str
        Canonical name (``"auc28"``, ``"auc:0-180"``, ``"c_m6"``, ...); also the column/key in outputs.
    kind : {"cmax", "tmax", "auc", "conc", "time_above_lloq"}
    start, end : float
        Days after infusion. ``auc``: the window [start, end]; ``conc``: the day (``end``);
        ``time_above_lloq``: the horizon [0, end]; peak metrics: 0 and the nominal peak window (28).
    label : str
        What a reader sees in tables and plots.
    unit : str
    log_floor : float
        Values below it are raised to it before log2 in the exposure-response analysis (only
        ``persistence``, which is 0 for a patient never above the LLOQ; 0 elsewhere: no floor).
    """

    name: str
    kind: str
    start: float
    end: float
    label: str
    unit: str
    log_floor: float = 0.0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Metric.kind = {self.kind!r}; choose one of {', '.join(KINDS)}")
        if not (math.isfinite(self.start) and math.isfinite(self.end) and 0 <= self.start <= self.end):
            raise ValueError(
                f"metric {self.name!r}: need 0 <= start <= end (days), got start={self.start!r}, end={self.end!r}"
            )
        if self.kind == "auc" and not self.end > self.start:
            raise ValueError(
                f"metric {self.name!r}: an AUC window needs end > start, got [{self.start}, {self.end}] days"
            )

    @property
    def window_days(self) -> tuple[float, float]:
        """The span of days after infusion the metric depends on."""
        return (0.0 if self.kind != "auc" else self.start, self.end)

    @property
    def landmark_days(self) -> float:
        """Default landmark of the exposure-response analysis: the end of the metric's window (days)."""
        return self.end

    @property
    def needs_lloq(self) -> bool:
        return self.kind == "time_above_lloq"


def _auc(start: float, end: float, name: str | None = None) -> Metric:
    name = name or f"auc:{_num(start)}-{_num(end)}"
    return Metric(name, "auc", float(start), float(end), f"AUC{_num(start)}-{_num(end)}d", "copies/ug x day")


def _conc(day: float, name: str | None = None, label: str | None = None) -> Metric:
    return Metric(name or f"c:{_num(day)}", "conc", 0.0, float(day), label or f"C(day {_num(day)})", "copies/ug")


def _persistence(horizon: float, name: str | None = None) -> Metric:
    return Metric(
        name or f"persistence:{_num(horizon)}",
        "time_above_lloq",
        0.0,
        float(horizon),
        f"time above LLOQ, first {_num(horizon)} d",
        "day",
        log_floor=PERSISTENCE_LOG_FLOOR_DAYS,
    )


def _num(x: float) -> str:
    return f"{x:g}"


#: The named metrics (presets), in report order.
METRICS: dict[str, Metric] = {
    "cmax": Metric("cmax", "cmax", 0.0, PEAK_WINDOW_DAYS, "Cmax", "copies/ug"),
    "tmax": Metric("tmax", "tmax", 0.0, PEAK_WINDOW_DAYS, "Tmax", "day"),
    "auc28": _auc(0.0, 28.0, "auc28"),
    "auc90": _auc(0.0, 90.0, "auc90"),
    "c_m3": _conc(3 * DAYS_PER_MONTH, "c_m3", "C(month 3)"),
    "c_m6": _conc(6 * DAYS_PER_MONTH, "c_m6", "C(month 6)"),
    "c_m12": _conc(12 * DAYS_PER_MONTH, "c_m12", "C(month 12)"),
    "persistence": _persistence(PERSISTENCE_HORIZON_DAYS, "persistence"),
}
DEFAULT_METRICS: tuple[str, ...] = tuple(METRICS)

_PATTERNS = (
    (re.compile(r"^auc:(\d+(?:\.\d*)?)-(\d+(?:\.\d*)?)$"), lambda m: _auc(float(m[1]), float(m[2]))),
    (re.compile(r"^c:(\d+(?:\.\d*)?)$"), lambda m: _conc(float(m[1]))),
    (re.compile(r"^persistence:(\d+(?:\.\d*)?)$"), lambda m: _persistence(float(m[1]))),
)


def get_metric(name: str | Metric) -> Metric:
    """Resolve a metric name (see the module docstring) to a `Metric`.

    Raises
    ------
    TypeError
        If ``name`` is neither a string nor a `Metric`.
    ValueError
        If the name is unknown or malformed; the message lists the valid names and forms.
    """
    if isinstance(name, Metric):
        return name
    if not isinstance(name, str):
        raise TypeError(f"metric must be a name (str) or a Metric, got {name!r} of type {type(name).__name__}")
    key = name.strip().lower()
    if key in METRICS:
        return METRICS[key]
    for pattern, build in _PATTERNS:
        found = pattern.match(key)
        if found:
            return build(found)
    raise ValueError(
        f"unknown exposure metric {name!r}; valid: {', '.join(METRICS)}, or the forms auc:A-B (AUC from day A "
        "to day B, e.g. auc:0-180), c:D (level at day D, e.g. c:60), persistence:H (days above the LLOQ within "
        "the first H days)"
    )


def resolve_metrics(metrics: str | Metric | Sequence[str | Metric] | None) -> tuple[Metric, ...]:
    """Metric names -> distinct `Metric` objects in the given order (None: every preset)."""
    if metrics is None:
        metrics = DEFAULT_METRICS
    if isinstance(metrics, (str, Metric)):
        metrics = [metrics]
    out: list[Metric] = []
    for item in metrics:
        metric = get_metric(item)
        if metric.name in [m.name for m in out]:
            raise ValueError(f"metric {metric.name!r} is requested twice; give each metric once")
        out.append(metric)
    if not out:
        raise ValueError("metrics is empty; name at least one metric (e.g. 'cmax')")
    return tuple(out)
