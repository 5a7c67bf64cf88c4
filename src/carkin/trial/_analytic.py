"""Analytic operating characteristics of a design: Schoenfeld power and the group-sequential boundaries.

Schoenfeld (1981): with D events, a fraction p of patients in the experimental arm and hazard ratio HR,
the log-rank Z is approximately normal with mean ``-log(HR) sqrt(D p (1 - p))`` and variance 1, so a
one-sided level-alpha fixed-sample test has power ``Phi(-log(HR) sqrt(D p (1 - p)) - z_{1 - alpha})``.
The approximation uses the null variance and a proportional-hazards alternative; it is close for hazard
ratios near 1 and balanced allocation, and slightly optimistic for unequal allocation.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from scipy import stats

from ._boundaries import GroupSequentialBounds
from ._design import TrialDesign

__all__ = ["DesignReport", "analyse_design", "schoenfeld_events", "schoenfeld_power"]


def _check(hazard_ratio: float, allocation: float, alpha: float) -> None:
    if not (hazard_ratio > 0 and math.isfinite(hazard_ratio)):
        raise ValueError(f"hazard_ratio = {hazard_ratio!r} must be a positive number")
    if not 0 < allocation < 1:
        raise ValueError(f"allocation = {allocation!r} must be the experimental fraction in (0, 1), e.g. 2/3 for 2:1")
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha = {alpha!r} must be a one-sided level in (0, 0.5)")


def schoenfeld_power(hazard_ratio: float, events: float, *, allocation: float = 0.5, alpha: float = 0.025) -> float:
    """One-sided power of the fixed-sample log-rank test (Schoenfeld's approximation).

    Parameters
    ----------
    hazard_ratio : float
        Experimental / control hazard ratio under the alternative (< 1 for benefit).
    events : float
        Events at the analysis.
    allocation : float, default 0.5
        Fraction of patients in the experimental arm.
    alpha : float, default 0.025
        One-sided level.

    Examples
    --------
    >>> round(schoenfeld_power(0.75, 508), 3)
    0.9
    """
    _check(hazard_ratio, allocation, alpha)
    drift = -math.log(hazard_ratio) * math.sqrt(events * allocation * (1 - allocation))
    return float(stats.norm.cdf(drift - stats.norm.isf(alpha)))


def schoenfeld_events(hazard_ratio: float, power: float, *, allocation: float = 0.5, alpha: float = 0.025) -> float:
    """Events needed for a fixed-sample log-rank test of this power (Schoenfeld), not rounded."""
    _check(hazard_ratio, allocation, alpha)
    if not 0 < power < 1:
        raise ValueError(f"power = {power!r} must lie in (0, 1)")
    z = stats.norm.isf(alpha) + stats.norm.ppf(power)
    return float(z**2 / (allocation * (1 - allocation) * math.log(hazard_ratio) ** 2))


@dataclasses.dataclass(frozen=True, eq=False)
class DesignReport:
    """Boundaries and analytic power of a design (no simulation).

    Attributes
    ----------
    design : TrialDesign
    bounds : GroupSequentialBounds
    schoenfeld_power : float
        Fixed-sample power at the final number of events.
    events_for_90, events_for_80 : float
        Fixed-sample events for 90% / 80% power at the design hazard ratio.
    """

    design: TrialDesign
    bounds: GroupSequentialBounds
    schoenfeld_power: float
    events_for_90: float
    events_for_80: float

    def expected_events(self, *, alternative: bool = True) -> float:
        """Expected events at stopping (futility obeyed), from the analytic stopping probabilities."""
        probs = self.bounds.alternative if alternative else self.bounds.null
        stop = probs["efficacy"] + probs["futility"]
        stop = np.append(stop[:-1], 1.0 - stop[:-1].sum())
        return float(stop @ self.design.look_events)

    def to_dict(self) -> dict[str, Any]:
        d = self.design
        p = d.allocation
        bounds = self.bounds.to_dict()
        scale = math.sqrt(p * (1 - p))
        for look, events in zip(bounds["looks"], d.look_events, strict=True):
            look["events"] = int(events)
            for key in ("efficacy", "futility"):
                z = look[f"{key}_z"]
                # hazard ratio at the boundary: Z = -log(HR) sqrt(D p (1 - p))
                look[f"{key}_hazard_ratio"] = None if z is None else math.exp(-z / (scale * math.sqrt(events)))
        return {
            "design": d.describe(),
            "drift": d.drift,
            "boundaries": bounds,
            "schoenfeld_power": self.schoenfeld_power,
            "group_sequential_power": bounds["power"],
            "group_sequential_power_nonbinding": bounds["power_nonbinding"],
            "events_for_90_power": self.events_for_90 if math.isfinite(self.events_for_90) else None,
            "events_for_80_power": self.events_for_80 if math.isfinite(self.events_for_80) else None,
            "expected_events_h1": self.expected_events(alternative=True),
            "expected_events_h0": self.expected_events(alternative=False),
        }


def analyse_design(design: TrialDesign, *, r: int = 32) -> DesignReport:
    """Boundaries (recursive integration) and Schoenfeld power of a design, without simulation."""
    p = design.allocation
    return DesignReport(
        design=design,
        bounds=design.bounds(r=r),
        schoenfeld_power=schoenfeld_power(design.hazard_ratio, design.events, allocation=p, alpha=design.alpha),
        events_for_90=schoenfeld_events(design.hazard_ratio, 0.9, allocation=p, alpha=design.alpha)
        if design.hazard_ratio != 1
        else math.inf,
        events_for_80=schoenfeld_events(design.hazard_ratio, 0.8, allocation=p, alpha=design.alpha)
        if design.hazard_ratio != 1
        else math.inf,
    )
