"""A two-arm time-to-event trial design, read from TOML (``designs/*.toml``) and validated once.

Every problem is a `carkin.errors.SpecError` that names the file and the key (house rule 10). The file
layout, with the KarMMa-3 design (``designs/karmma3.toml``) as the worked example::

    name = "KarMMa-3"
    [randomisation]   n_patients, ratio = [experimental, control], method = "fixed" | "simple"
    [arms.experimental], [arms.control]
                      label; PFS as median = <months> (exponential) or breaks = [...] + hazards = [...]
                      (piecewise exponential, hazards per month); optional dropout_per_month
    [accrual]         type = "uniform" with months, or type = "piecewise" with rates (patients/month)
                      and durations (months; one fewer than rates, the last period open-ended)
    [dropout]         per_month: exponential censoring hazard other than the analysis cut-off
    [[strata]]        name, probability (of the factor being present), log_hazard_ratio (prognostic)
    [analysis]        events (final), alpha (one-sided), stratified, hazard_ratio (design alternative;
                      default from the arms' medians when both are exponential)
    [[analysis.looks]] information, efficacy (bool), futility (bool)
    [analysis.efficacy] spending = "obf" | "pocock" | "hsd", gamma (hsd)
    [analysis.futility] rule = "beta_spending" (spending, beta, gamma) | "z" (z)

Times are in months throughout.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from .._hazards import PiecewiseExponential
from ..errors import SpecError
from ._accrual import Accrual
from ._boundaries import FutilityRule, GroupSequentialBounds, compute_bounds
from ._spending import SPENDING_FUNCTIONS, SpendingFunction

__all__ = ["RANDOMISATION_METHODS", "Arm", "Look", "StratificationFactor", "TrialDesign", "design_from_dict", "load_design"]

RANDOMISATION_METHODS: tuple[str, ...] = ("fixed", "simple")
"""``fixed``: exactly round(n r / (1 + r)) experimental patients in random order; ``simple``: each
patient independently experimental with probability r / (1 + r)."""

ACCRUAL_TYPES: tuple[str, ...] = ("uniform", "piecewise")
FUTILITY_RULES: tuple[str, ...] = ("beta_spending", "z")


@dataclasses.dataclass(frozen=True)
class Arm:
    """One arm: a label, its PFS distribution (from randomisation, months), its dropout hazard (per month)."""

    label: str
    pfs: PiecewiseExponential
    dropout_per_month: float = 0.0


@dataclasses.dataclass(frozen=True)
class StratificationFactor:
    """A binary randomisation factor: present with ``probability``; multiplies the hazard by exp(log_hazard_ratio)."""

    name: str
    probability: float
    log_hazard_ratio: float = 0.0


@dataclasses.dataclass(frozen=True)
class Look:
    """An analysis at an information fraction (events / final events), testing efficacy and/or futility."""

    information: float
    efficacy: bool = True
    futility: bool = False


@dataclasses.dataclass(frozen=True)
class TrialDesign:
    """A validated two-arm group-sequential time-to-event design (see the module docstring for the file).

    Attributes
    ----------
    name : str
    n_patients : int
    ratio : tuple of (int, int)
        Allocation experimental : control.
    randomisation : {"fixed", "simple"}
    experimental, control : Arm
    accrual : Accrual
    strata : tuple of StratificationFactor
        Stratum of a patient = the binary number of its factors (up to 2**len(strata) strata).
    stratified : bool
        Whether the analysis uses the stratified log-rank test.
    events : int
        Events at the final analysis.
    looks : tuple of Look
    alpha : float
        One-sided type I error.
    spending : SpendingFunction
    futility : FutilityRule or None
    hazard_ratio : float
        Hazard ratio experimental / control of the design alternative (for boundaries and Schoenfeld power).
    source : str
        File the design came from.
    raw : dict
        The parsed TOML (recorded in outputs).
    """

    name: str
    n_patients: int
    ratio: tuple[int, int]
    randomisation: str
    experimental: Arm
    control: Arm
    accrual: Accrual
    strata: tuple[StratificationFactor, ...]
    stratified: bool
    events: int
    looks: tuple[Look, ...]
    alpha: float
    spending: SpendingFunction
    futility: FutilityRule | None
    hazard_ratio: float
    source: str = "<dict>"
    raw: dict = dataclasses.field(default_factory=dict, compare=False)

    @property
    def allocation(self) -> float:
        """Expected fraction of patients in the experimental arm, r / (1 + r)."""
        return self.ratio[0] / (self.ratio[0] + self.ratio[1])

    @property
    def n_experimental(self) -> int:
        """Experimental-arm size under fixed randomisation."""
        return round(self.n_patients * self.allocation)

    @property
    def look_events(self) -> np.ndarray:
        """Events that trigger each look: round(information * events), at least 1, the last = events."""
        d = np.array([max(1, round(look.information * self.events)) for look in self.looks])
        d[-1] = self.events
        return d

    @property
    def information(self) -> np.ndarray:
        """Actual information fractions of the looks (look events / final events)."""
        return self.look_events / self.events

    @property
    def drift(self) -> float:
        """Schoenfeld's mean of Z at the final analysis: -log(HR) sqrt(D p (1 - p))."""
        p = self.allocation
        return float(-math.log(self.hazard_ratio) * math.sqrt(self.events * p * (1 - p)))

    def bounds(self, *, r: int = 32) -> GroupSequentialBounds:
        """Efficacy and futility boundaries at the looks' actual information fractions."""
        return compute_bounds(
            self.information,
            alpha=self.alpha,
            efficacy_looks=[look.efficacy for look in self.looks],
            futility_looks=[look.futility for look in self.looks],
            spending=self.spending,
            futility=self.futility,
            drift=self.drift,
            r=r,
        )

    def under_null(self) -> TrialDesign:
        """The same trial with the experimental arm's PFS replaced by the control arm's (H0 true)."""
        arm = dataclasses.replace(self.experimental, pfs=self.control.pfs)
        return dataclasses.replace(self, experimental=arm, name=f"{self.name} (under H0)")

    def replace(self, **changes) -> TrialDesign:
        """A copy with fields changed (no re-validation beyond the dataclasses' own)."""
        return dataclasses.replace(self, **changes)

    def describe(self) -> dict[str, Any]:
        """The assumptions in words and numbers (JSON-ready)."""
        return {
            "name": self.name,
            "source": self.source,
            "n_patients": self.n_patients,
            "ratio": list(self.ratio),
            "randomisation": self.randomisation,
            "experimental": {"label": self.experimental.label, "pfs": self.experimental.pfs.describe(),
                             "median_months": self.experimental.pfs.median(),
                             "dropout_per_month": self.experimental.dropout_per_month},
            "control": {"label": self.control.label, "pfs": self.control.pfs.describe(),
                        "median_months": self.control.pfs.median(), "dropout_per_month": self.control.dropout_per_month},
            "accrual": self.accrual.describe(self.n_patients),
            "accrual_months": self.accrual.end(self.n_patients),
            "strata": [dataclasses.asdict(f) for f in self.strata],
            "stratified": self.stratified,
            "events": self.events,
            "look_events": self.look_events.tolist(),
            "alpha": self.alpha,
            "hazard_ratio": self.hazard_ratio,
        }


# ---------------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------------


class _Reader:
    """Typed access to a TOML table with errors naming the file and the dotted key."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, message: str) -> SpecError:
        return SpecError(f"{self.source}: {key}: {message}")

    def table(self, data: dict, key: str, where: str = "", *, required: bool = True) -> dict:
        full = f"{where}.{key}" if where else key
        value = data.get(key)
        if value is None:
            if required:
                raise self.fail(full, f"missing [{full}] table")
            return {}
        if not isinstance(value, dict):
            raise self.fail(full, f"must be a table, got {type(value).__name__} {value!r}")
        return value

    def number(self, data: dict, key: str, where: str, *, default=None, low=None, high=None,
               low_open=False, integer=False) -> float:
        full = f"{where}.{key}" if where else key
        if key not in data:
            if default is None:
                raise self.fail(full, "missing key")
            return default
        value = data[key]
        kind = "an integer" if integer else "a number"
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
            raise self.fail(full, f"= {value!r} ({type(value).__name__}) must be {kind}")
        if not math.isfinite(value):
            raise self.fail(full, f"= {value!r} must be finite")
        if low is not None and (value <= low if low_open else value < low):
            raise self.fail(full, f"= {value!r} must be {'>' if low_open else '>='} {low}")
        if high is not None and value > high:
            raise self.fail(full, f"= {value!r} must be <= {high}")
        return value

    def numbers(self, data: dict, key: str, where: str) -> tuple[float, ...]:
        full = f"{where}.{key}" if where else key
        value = data.get(key)
        if not isinstance(value, list) or not value or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value
        ):
            raise self.fail(full, f"= {value!r} must be a non-empty list of numbers")
        return tuple(float(v) for v in value)

    def choice(self, data: dict, key: str, where: str, valid: tuple[str, ...], default: str | None = None) -> str:
        full = f"{where}.{key}" if where else key
        value = data.get(key, default)
        if value not in valid:
            raise self.fail(full, f"= {value!r} is not valid; choose one of {', '.join(valid)}")
        return value

    def boolean(self, data: dict, key: str, where: str, default: bool) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(f"{where}.{key}", f"= {value!r} must be true or false")
        return value

    def wrap(self, key: str, fn, *args):
        """Call a constructor whose ValueError is re-raised naming the key."""
        try:
            return fn(*args)
        except ValueError as err:
            raise self.fail(key, str(err)) from None


def _pfs(rd: _Reader, table: dict, where: str) -> PiecewiseExponential:
    if "median" in table:
        if "breaks" in table or "hazards" in table:
            raise rd.fail(where, "give either median (exponential) or breaks + hazards (piecewise), not both")
        return PiecewiseExponential.from_median(rd.number(table, "median", where, low=0, low_open=True))
    if "breaks" not in table and "hazards" not in table:
        raise rd.fail(where, "missing PFS: give median = <months> or breaks = [...] with hazards = [...] (per month)")
    breaks, hazards = rd.numbers(table, "breaks", where), rd.numbers(table, "hazards", where)
    return rd.wrap(where, PiecewiseExponential, breaks, hazards)


def design_from_dict(data: dict, *, source: str = "<dict>") -> TrialDesign:
    """Validate a parsed design (see the module docstring) into a `TrialDesign`.

    Raises
    ------
    SpecError
        Naming ``source`` and the dotted key, for every missing key, wrong type, unknown choice or
        out-of-range value.
    """
    rd = _Reader(source)
    name = data.get("name", Path(source).stem)
    if not isinstance(name, str):
        raise rd.fail("name", f"= {name!r} must be a string")

    rand = rd.table(data, "randomisation")
    n = int(rd.number(rand, "n_patients", "randomisation", low=2, integer=True))
    ratio = rand.get("ratio", [1, 1])
    if not (isinstance(ratio, list) and len(ratio) == 2 and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in ratio)):
        raise rd.fail("randomisation.ratio", f"= {ratio!r} must be two positive integers [experimental, control], e.g. [2, 1]")
    method = rd.choice(rand, "method", "randomisation", RANDOMISATION_METHODS, default="fixed")

    dropout = rd.table(data, "dropout", required=False)
    default_dropout = rd.number(dropout, "per_month", "dropout", default=0.0, low=0)
    arms_table = rd.table(data, "arms")
    arms = {}
    for role in ("experimental", "control"):
        where = f"arms.{role}"
        table = rd.table(arms_table, role, "arms")
        label = table.get("label", role)
        if not isinstance(label, str):
            raise rd.fail(f"{where}.label", f"= {label!r} must be a string")
        arms[role] = Arm(
            label=label,
            pfs=_pfs(rd, table, where),
            dropout_per_month=float(rd.number(table, "dropout_per_month", where, default=default_dropout, low=0)),
        )

    accrual_table = rd.table(data, "accrual")
    kind = rd.choice(accrual_table, "type", "accrual", ACCRUAL_TYPES, default="uniform")
    if kind == "uniform":
        accrual = Accrual.uniform(float(rd.number(accrual_table, "months", "accrual", low=0, low_open=True)), n=n)
    else:
        rates = rd.numbers(accrual_table, "rates", "accrual")
        durations = rd.numbers(accrual_table, "durations", "accrual") if len(rates) > 1 else ()
        accrual = rd.wrap("accrual", Accrual, rates, durations)

    strata_list = data.get("strata", [])
    if not isinstance(strata_list, list):
        raise rd.fail("strata", "must be an array of tables [[strata]] with name, probability, log_hazard_ratio")
    strata = []
    for i, table in enumerate(strata_list):
        where = f"strata[{i}]"
        if not isinstance(table, dict) or not isinstance(table.get("name"), str):
            raise rd.fail(f"{where}.name", "every [[strata]] entry needs a name (string)")
        strata.append(
            StratificationFactor(
                name=table["name"],
                probability=float(rd.number(table, "probability", where, low=0, high=1)),
                log_hazard_ratio=float(rd.number(table, "log_hazard_ratio", where, default=0.0)),
            )
        )
    if len(strata) > 8:
        raise rd.fail("strata", f"{len(strata)} factors give {2 ** len(strata)} strata; at most 8 factors are supported")

    analysis = rd.table(data, "analysis")
    events = int(rd.number(analysis, "events", "analysis", low=1, integer=True))
    if events > n:
        raise rd.fail("analysis.events", f"= {events} exceeds randomisation.n_patients = {n}: each patient has at most one event")
    alpha = float(rd.number(analysis, "alpha", "analysis", low=0, low_open=True, high=0.5))
    stratified = rd.boolean(analysis, "stratified", "analysis", default=bool(strata))
    if stratified and not strata:
        raise rd.fail("analysis.stratified", "= true but the design has no [[strata]]; add factors or set false")

    looks_list = analysis.get("looks", [{"information": 1.0}])
    if not isinstance(looks_list, list) or not looks_list:
        raise rd.fail("analysis.looks", "must be an array of tables [[analysis.looks]] with information, efficacy, futility")
    looks = []
    for i, table in enumerate(looks_list):
        where = f"analysis.looks[{i}]"
        if not isinstance(table, dict):
            raise rd.fail(where, f"must be a table, got {table!r}")
        looks.append(
            Look(
                information=float(rd.number(table, "information", where, low=0, low_open=True, high=1)),
                efficacy=rd.boolean(table, "efficacy", where, default=True),
                futility=rd.boolean(table, "futility", where, default=False),
            )
        )
    info = [look.information for look in looks]
    if any(b <= a for a, b in itertools.pairwise(info)) or info[-1] != 1.0:
        raise rd.fail("analysis.looks", f"information fractions {info} must increase strictly and end at 1.0 (the final analysis)")
    if not looks[-1].efficacy:
        raise rd.fail(f"analysis.looks[{len(looks) - 1}].efficacy", "the final analysis must test efficacy")
    d = [max(1, round(x * events)) for x in info]
    if len(set(d)) != len(d):
        raise rd.fail("analysis.looks", f"looks at {info} of {events} events fall on the same event counts {d}; space them out")

    eff_table = rd.table(analysis, "efficacy", "analysis", required=False)
    spending_kind = rd.choice(eff_table, "spending", "analysis.efficacy", tuple(SPENDING_FUNCTIONS), default="obf")
    spending = rd.wrap(
        "analysis.efficacy", SpendingFunction, spending_kind, alpha,
        float(rd.number(eff_table, "gamma", "analysis.efficacy", default=-4.0)),
    )

    futility = None
    fut_table = rd.table(analysis, "futility", "analysis", required=False)
    if any(look.futility for look in looks[:-1]):
        if not fut_table:
            raise rd.fail("analysis.futility", "some looks test futility: add [analysis.futility] with rule = \"beta_spending\" or \"z\"")
        rule = rd.choice(fut_table, "rule", "analysis.futility", FUTILITY_RULES)
        if rule == "z":
            z = fut_table.get("z")
            values = (float(rd.number(fut_table, "z", "analysis.futility")),) if not isinstance(z, list) else rd.numbers(fut_table, "z", "analysis.futility")
            futility = rd.wrap("analysis.futility", FutilityRule, "z", None, values)
        else:
            kind = rd.choice(fut_table, "spending", "analysis.futility", tuple(SPENDING_FUNCTIONS), default="obf")
            beta = float(rd.number(fut_table, "beta", "analysis.futility", low=0, low_open=True, high=0.5))
            gamma = float(rd.number(fut_table, "gamma", "analysis.futility", default=-4.0))
            futility = FutilityRule("beta_spending", rd.wrap("analysis.futility", SpendingFunction, kind, beta, gamma))

    if "hazard_ratio" in analysis:
        hr = float(rd.number(analysis, "hazard_ratio", "analysis", low=0, low_open=True))
    elif len(arms["experimental"].pfs.hazards) == 1 and len(arms["control"].pfs.hazards) == 1:
        hr = arms["experimental"].pfs.hazards[0] / arms["control"].pfs.hazards[0]
    else:
        raise rd.fail("analysis.hazard_ratio", "missing: piecewise PFS has no single hazard ratio; give the design alternative's hazard ratio")
    if hr == 1.0 and futility is not None and futility.kind == "beta_spending":
        raise rd.fail("analysis.hazard_ratio", "= 1: beta spending needs an alternative hazard ratio different from 1")

    design = TrialDesign(
        name=name,
        n_patients=n,
        ratio=(int(ratio[0]), int(ratio[1])),
        randomisation=method,
        experimental=arms["experimental"],
        control=arms["control"],
        accrual=accrual,
        strata=tuple(strata),
        stratified=stratified,
        events=events,
        looks=tuple(looks),
        alpha=alpha,
        spending=spending,
        futility=futility,
        hazard_ratio=hr,
        source=source,
        raw=json.loads(json.dumps(data)),
    )
    if design.n_experimental in (0, n) and method == "fixed":
        raise rd.fail("randomisation.ratio", f"{ratio} of {n} patients leaves an arm empty")
    return design


def load_design(path: str | Path) -> TrialDesign:
    """Read and validate a trial design (TOML).

    Raises
    ------
    SpecError
        If the file is missing, is not valid TOML, or any key is wrong (naming the file and the key).
    """
    from .._resources import resolve_shipped

    path = resolve_shipped(path, "designs")  # "karmma3" or "designs/karmma3.toml" from anywhere: the shipped one
    if not path.is_file():
        raise SpecError(f"{path}: design file not found (expected a TOML file such as designs/karmma3.toml)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{path}: not valid TOML ({err})") from None
    return design_from_dict(data, source=str(path))
