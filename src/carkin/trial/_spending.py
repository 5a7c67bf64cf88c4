"""Error-spending functions (Lan & DeMets 1983; Hwang, Shih & DeCani 1990).

A spending function ``f(t; total)`` gives the cumulative error spent by information fraction ``t`` in
[0, 1], rising from ``f(0) = 0`` to ``f(1) = total``. carkin uses them for the one-sided type I error of
the efficacy boundary (alpha spending) and for the type II error of a non-binding futility boundary (beta
spending). The formulas (with ``Phi`` the standard normal CDF) are those of gsDesign's ``sfLDOF``,
``sfLDPocock`` and ``sfHSD``:

=========  ====================================================  =====================================
name       f(t; total)                                           behaviour
=========  ====================================================  =====================================
obf        2 - 2 Phi(Phi^-1(1 - total / 2) / sqrt(t))            O'Brien-Fleming-type: spends almost
                                                                 nothing early, near-nominal at the end
pocock     total * log(1 + (e - 1) t)                            Pocock-type: spends evenly
hsd        total * (1 - exp(-gamma t)) / (1 - exp(-gamma))       Hwang-Shih-DeCani; gamma = -4 is close
                                                                 to OBF, gamma = 1 to Pocock; gamma = 0
                                                                 spends linearly
=========  ====================================================  =====================================
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import stats

__all__ = ["SPENDING_FUNCTIONS", "SpendingFunction"]


def _obf(t: np.ndarray, total: float, gamma: float) -> np.ndarray:
    del gamma
    with np.errstate(divide="ignore"):
        return np.where(t > 0, 2.0 * stats.norm.sf(stats.norm.isf(total / 2.0) / np.sqrt(np.maximum(t, 1e-300))), 0.0)


def _pocock(t: np.ndarray, total: float, gamma: float) -> np.ndarray:
    del gamma
    return total * np.log1p((math.e - 1.0) * t)


def _hsd(t: np.ndarray, total: float, gamma: float) -> np.ndarray:
    if gamma == 0:
        return total * t
    return total * np.expm1(-gamma * t) / np.expm1(-gamma)


SPENDING_FUNCTIONS = {"obf": _obf, "pocock": _pocock, "hsd": _hsd}
"""The one dispatch table from a spending-function name to its formula."""


@dataclasses.dataclass(frozen=True)
class SpendingFunction:
    """A Lan-DeMets-type error-spending function.

    Parameters
    ----------
    kind : {"obf", "pocock", "hsd"}
        O'Brien-Fleming-type, Pocock-type (both Lan & DeMets 1983) or Hwang-Shih-DeCani.
    total : float
        Error spent by the end of the trial (information fraction 1), in (0, 1); e.g. the one-sided alpha.
    gamma : float, default -4.0
        Shape of the Hwang-Shih-DeCani family (ignored by the others).

    Examples
    --------
    >>> f = SpendingFunction("obf", 0.025)
    >>> round(float(f(0.5)), 6), float(f(1.0))
    (0.001525, 0.025)

    Raises
    ------
    ValueError
        For an unknown ``kind`` (listing the valid ones) or ``total`` outside (0, 1).
    """

    kind: str
    total: float
    gamma: float = -4.0

    def __post_init__(self):
        if self.kind not in SPENDING_FUNCTIONS:
            raise ValueError(
                f"spending function {self.kind!r} (type {type(self.kind).__name__}) is unknown; choose one of "
                f"{', '.join(SPENDING_FUNCTIONS)}"
            )
        if not (isinstance(self.total, (int, float)) and 0 < self.total < 1):
            raise ValueError(f"spending total = {self.total!r} must be a probability in (0, 1), e.g. alpha = 0.025")
        if not math.isfinite(self.gamma):
            raise ValueError(f"spending gamma = {self.gamma!r} must be finite")

    def __call__(self, t) -> np.ndarray:
        """Cumulative error spent at information fraction(s) ``t`` (clipped to [0, 1])."""
        t = np.clip(np.asarray(t, dtype=float), 0.0, 1.0)
        out = SPENDING_FUNCTIONS[self.kind](t, float(self.total), float(self.gamma))
        return np.where(t >= 1.0, float(self.total), out)

    def describe(self) -> str:
        names = {"obf": "Lan-DeMets O'Brien-Fleming-type", "pocock": "Lan-DeMets Pocock-type",
                 "hsd": f"Hwang-Shih-DeCani (gamma = {self.gamma:g})"}
        return f"{names[self.kind]} spending of {self.total:g}"
