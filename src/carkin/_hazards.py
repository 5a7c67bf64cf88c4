"""Piecewise-exponential time-to-event distributions (hazard constant between break points).

The one home of this hazard in carkin (a private top-level module, so that every layer can import it):
trial designs (`carkin.trial.PiecewiseExponential`, re-exported there), the PFS of dose scenarios'
exposure-response hook (`carkin.simulate`) and the virtual KarMMa-3 generator (`carkin.cohorts`).

The hazard is ``h_j`` on ``[b_j, b_{j+1})`` (the last piece runs to infinity), so the cumulative hazard
``H(t)`` is piecewise linear and event times are drawn by inversion: ``T = H^-1(E)`` with ``E ~ Exp(1)``.
A proportional log-hazard offset ``x`` (a prognostic factor, an exposure effect) scales the hazard by
``exp(x)``, hence ``T = H^-1(E exp(-x))``.
"""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

__all__ = ["PiecewiseExponential", "cumulative_hazard", "inverse_cumulative_hazard"]


def cumulative_hazard(breaks, cum, hazards, t):
    """H(t) from break points, the cumulative hazard at each break, and the hazards (arrays, jit-safe)."""
    t = jnp.asarray(t, dtype=float)
    k = jnp.clip(jnp.searchsorted(breaks, t, side="right") - 1, 0, breaks.shape[0] - 1)
    return cum[k] + hazards[k] * (t - breaks[k])


def inverse_cumulative_hazard(breaks, cum, hazards, x):
    """H^-1(x) from break points, the cumulative hazard at each break, and the hazards (arrays, jit-safe)."""
    x = jnp.asarray(x, dtype=float)
    k = jnp.clip(jnp.searchsorted(cum, x, side="right") - 1, 0, breaks.shape[0] - 1)
    return breaks[k] + (x - cum[k]) / hazards[k]


@dataclasses.dataclass(frozen=True)
class PiecewiseExponential:
    """A piecewise-constant hazard.

    Parameters
    ----------
    breaks : tuple of float
        Start of each piece (time unit of the design, months for carkin's designs); the first is 0.
    hazards : tuple of float
        Hazard on each piece, events per time unit, all > 0.

    Examples
    --------
    >>> pfs = PiecewiseExponential.from_median(9.0)
    >>> round(pfs.median(), 6)
    9.0
    """

    breaks: tuple[float, ...]
    hazards: tuple[float, ...]

    def __post_init__(self):
        b, h = np.asarray(self.breaks, float), np.asarray(self.hazards, float)
        if b.ndim != 1 or b.size == 0 or b.shape != h.shape:
            raise ValueError(
                f"breaks {list(self.breaks)!r} and hazards {list(self.hazards)!r} must be lists of equal, "
                "non-zero length"
            )
        if b[0] != 0 or np.any(np.diff(b) <= 0) or not np.all(np.isfinite(b)):
            raise ValueError(f"breaks {list(self.breaks)!r} must start at 0 and increase strictly")
        if not np.all(np.isfinite(h)) or np.any(h <= 0):
            raise ValueError(f"hazards {list(self.hazards)!r} must be positive finite rates (events per time unit)")

    @classmethod
    def from_median(cls, median: float) -> PiecewiseExponential:
        """The exponential distribution with this median (hazard log 2 / median)."""
        if not (isinstance(median, (int, float)) and math.isfinite(median) and median > 0):
            raise ValueError(f"median = {median!r} must be a positive time")
        return cls(breaks=(0.0,), hazards=(math.log(2.0) / float(median),))

    @property
    def knots(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Break points, cumulative hazard at each break point, and hazards (numpy arrays)."""
        b, h = np.asarray(self.breaks, float), np.asarray(self.hazards, float)
        cum = np.concatenate([[0.0], np.cumsum(h[:-1] * np.diff(b))])
        return b, cum, h

    def cumulative_hazard(self, t: Float[ArrayLike, ...]) -> Float[Array, ...]:
        """H(t) at times ``t`` (>= 0)."""
        return cumulative_hazard(*(jnp.asarray(x) for x in self.knots), t)

    def inverse_cumulative_hazard(self, x: Float[ArrayLike, ...]) -> Float[Array, ...]:
        """H^-1(x): the time at which the cumulative hazard reaches ``x`` (>= 0)."""
        return inverse_cumulative_hazard(*(jnp.asarray(v) for v in self.knots), x)

    def survival(self, t: Float[ArrayLike, ...]) -> Float[Array, ...]:
        """S(t) = exp(-H(t))."""
        return jnp.exp(-self.cumulative_hazard(t))

    def median(self) -> float:
        """The median event time, H^-1(log 2)."""
        return float(self.inverse_cumulative_hazard(math.log(2.0)))

    def on_breaks(self, breaks) -> PiecewiseExponential:
        """The same distribution written on a finer set of break points (which must include these)."""
        b = np.asarray(breaks, float)
        own = np.asarray(self.breaks, float)
        k = np.searchsorted(own, b, side="right") - 1
        return PiecewiseExponential(tuple(float(x) for x in b), tuple(float(self.hazards[i]) for i in k))

    def describe(self) -> str:
        if len(self.hazards) == 1:
            return f"exponential, hazard {self.hazards[0]:.4g} (median {self.median():.3g})"
        pieces = ", ".join(f"{h:.4g} from {b:g}" for b, h in zip(self.breaks, self.hazards, strict=True))
        return f"piecewise exponential, hazards {pieces} (median {self.median():.3g})"
