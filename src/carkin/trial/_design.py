"""A two-arm time-to-event trial design, read from TOML (``designs/*.toml``) and validated once.

Every problem is a `carkin.errors.SpecError` that names the file, the table and the key (`carkin._toml`).
The file layout, with the KarMMa-3 design (``designs/karmma3.toml``) as the worked example::

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
from pathlib import Path
from typing import Any

import numpy as np

from .._hazards import PiecewiseExponential
from .._toml import Table, read_toml
from ._accrual import Accrual
from ._boundaries import FutilityRule, GroupSequentialBounds, compute_bounds
from ._spending import SPENDING_FUNCTIONS, SpendingFunction

__all__ = [
    "RANDOMISATION_METHODS", "Arm", "Look", "StratificationFactor", "TrialDesign", "design_from_dict", "load_design",
]

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
            "experimental": {
                "label": self.experimental.label,
                "pfs": self.experimental.pfs.describe(),
                "median_months": self.experimental.pfs.median(),
                "dropout_per_month": self.experimental.dropout_per_month,
            },
            "control": {
                "label": self.control.label,
                "pfs": self.control.pfs.describe(),
                "median_months": self.control.pfs.median(),
                "dropout_per_month": self.control.dropout_per_month,
            },
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


DESIGN_KEYS: tuple[str, ...] = ("name", "randomisation", "arms", "accrual", "dropout", "strata", "analysis")
"""The top-level keys and tables of a design."""


def _pfs(t: Table) -> PiecewiseExponential:
    """An arm's PFS: median (exponential) or breaks + hazards (piecewise exponential)."""
    if "median" in t:
        if "breaks" in t or "hazards" in t:
            raise t.fail(
                "median",
                "is given with breaks/hazards",
                "give either median (exponential) or breaks + hazards (piecewise), not both",
            )
        return PiecewiseExponential.from_median(t.number("median", gt=0, hint="months"))
    if "breaks" not in t and "hazards" not in t:
        raise t.fail(None, "has no PFS", "give median = <months> (exponential) or breaks = [...] with hazards = [...] "
                     "(piecewise, per month)")
    return t.wrap(None, PiecewiseExponential, t.numbers("breaks"), t.numbers("hazards"))


def _randomisation(rand: Table) -> tuple[int, list, str]:
    rand.check_keys(("n_patients", "ratio", "method"))
    n = rand.integer("n_patients", ge=2)
    ratio = rand.get("ratio", [1, 1])
    pair = isinstance(ratio, list) and len(ratio) == 2
    if not (pair and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in ratio)):
        raise rand.fail(
            "ratio", "is not two positive integers", "give [experimental, control], e.g. [2, 1]", value=ratio
        )
    return n, ratio, rand.choice("method", RANDOMISATION_METHODS, "fixed")


def _accrual(t: Table, n: int) -> Accrual:
    t.check_keys(("type", "months", "rates", "durations"))
    if t.choice("type", ACCRUAL_TYPES, "uniform") == "uniform":
        return Accrual.uniform(t.number("months", gt=0), n=n)
    rates = t.numbers("rates", hint="patients per month")
    durations = t.numbers("durations", hint="months") if len(rates) > 1 else ()
    return t.wrap(None, Accrual, rates, durations)


def _looks(analysis: Table, events: int) -> tuple[Look, ...]:
    tables = analysis.array("looks", [{"information": 1.0}])
    if not tables:
        raise analysis.fail(
            "looks", "is empty", "give one or more [[analysis.looks]] with information, efficacy, futility"
        )
    looks = []
    for t in tables:
        t.check_keys(("information", "efficacy", "futility"))
        looks.append(Look(information=t.number("information", gt=0, le=1), efficacy=t.boolean("efficacy", True),
                          futility=t.boolean("futility", False)))
    info = [look.information for look in looks]
    if any(b <= a for a, b in itertools.pairwise(info)) or info[-1] != 1.0:
        raise analysis.fail("looks", f"have information fractions {info}",
                            "make them increase strictly and end at 1.0 (the final analysis)")
    if not looks[-1].efficacy:
        raise tables[-1].fail("efficacy", "at the final analysis", "the final analysis must test efficacy: set "
                              "efficacy = true", value=False)
    d = [max(1, round(x * events)) for x in info]
    if len(set(d)) != len(d):
        raise analysis.fail("looks", f"at information {info} of {events} events fall on the same event counts {d}",
                            "space them out")
    return tuple(looks)


def _futility(t: Table, looks: tuple[Look, ...]) -> FutilityRule | None:
    t.check_keys(("rule", "spending", "beta", "gamma", "z"))
    if not any(look.futility for look in looks[:-1]):
        return None
    if not len(t):
        raise t.fail(None, "is missing, but some looks test futility", 'add [analysis.futility] with rule = '
                     '"beta_spending" or "z"')
    if t.choice("rule", FUTILITY_RULES) == "z":
        values = t.numbers("z") if isinstance(t.get("z"), list) else (t.number("z"),)
        return t.wrap(None, FutilityRule, "z", None, values)
    kind = t.choice("spending", tuple(SPENDING_FUNCTIONS), "obf")
    beta = t.number("beta", gt=0, le=0.5)
    return FutilityRule("beta_spending", t.wrap(None, SpendingFunction, kind, beta, t.number("gamma", -4.0)))


def design_from_dict(data: dict, *, source: str = "<dict>") -> TrialDesign:
    """Validate a parsed design (see the module docstring) into a `TrialDesign`.

    Raises
    ------
    SpecError
        Naming ``source``, the table and the key (`carkin._toml` style), for every missing or unknown key,
        wrong type, unknown choice or out-of-range value.
    """
    root = Table(data, file=source)
    root.check_keys(DESIGN_KEYS)
    name = root.string("name", Path(source).stem)
    rand = root.table("randomisation", required=True)
    n, ratio, method = _randomisation(rand)

    dropout = root.table("dropout")
    dropout.check_keys(("per_month",))
    default_dropout = dropout.number("per_month", 0.0, ge=0)
    arms_table = root.table("arms", required=True)
    arms_table.check_keys(("experimental", "control"))
    arms = {}
    for role in ("experimental", "control"):
        t = arms_table.table(role, required=True)
        t.check_keys(("label", "median", "breaks", "hazards", "dropout_per_month"))
        arms[role] = Arm(label=t.string("label", role), pfs=_pfs(t),
                         dropout_per_month=t.number("dropout_per_month", default_dropout, ge=0))

    accrual = _accrual(root.table("accrual", required=True), n)

    strata = []
    for t in root.array("strata", []):
        t.check_keys(("name", "probability", "log_hazard_ratio"))
        strata.append(StratificationFactor(name=t.string("name"), probability=t.number("probability", ge=0, le=1),
                                           log_hazard_ratio=t.number("log_hazard_ratio", 0.0)))
    if len(strata) > 8:
        raise root.fail("strata", f"has {len(strata)} factors, {2 ** len(strata)} strata", "give at most 8 factors")

    analysis = root.table("analysis", required=True)
    analysis.check_keys(("events", "alpha", "stratified", "hazard_ratio", "looks", "efficacy", "futility"))
    events = analysis.integer("events", ge=1)
    if events > n:
        raise analysis.fail("events", f"exceeds [randomisation] n_patients = {n}",
                            "each patient has at most one event: give fewer events or more patients", value=events)
    alpha = analysis.number("alpha", gt=0, le=0.5, hint="one-sided")
    stratified = analysis.boolean("stratified", bool(strata))
    if stratified and not strata:
        raise analysis.fail("stratified", "but the design has no [[strata]]", "add factors or set stratified = false",
                            value=True)
    looks = _looks(analysis, events)

    efficacy = analysis.table("efficacy")
    efficacy.check_keys(("spending", "gamma"))
    spending_kind = efficacy.choice("spending", tuple(SPENDING_FUNCTIONS), "obf")
    spending = efficacy.wrap(None, SpendingFunction, spending_kind, alpha, efficacy.number("gamma", -4.0))
    futility = _futility(analysis.table("futility"), looks)

    if "hazard_ratio" in analysis:
        hr = analysis.number("hazard_ratio", gt=0)
    elif len(arms["experimental"].pfs.hazards) == 1 and len(arms["control"].pfs.hazards) == 1:
        hr = arms["experimental"].pfs.hazards[0] / arms["control"].pfs.hazards[0]
    else:
        raise analysis.fail("hazard_ratio", "is missing, and piecewise PFS has no single hazard ratio",
                            "give the design alternative's hazard ratio")
    if hr == 1.0 and futility is not None and futility.kind == "beta_spending":
        raise analysis.fail("hazard_ratio", "leaves beta spending without an alternative",
                            "give a hazard ratio different from 1", value=hr)

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
        looks=looks,
        alpha=alpha,
        spending=spending,
        futility=futility,
        hazard_ratio=hr,
        source=source,
        raw=json.loads(json.dumps(data)),
    )
    if design.n_experimental in (0, n) and method == "fixed":
        raise rand.fail(
            "ratio",
            f"leaves an arm empty with n_patients = {n}",
            "give more patients or a more even ratio",
            value=ratio,
        )
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
    return design_from_dict(read_toml(path, what="design", example="designs/karmma3.toml"), source=str(path))
