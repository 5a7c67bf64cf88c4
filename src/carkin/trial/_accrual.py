"""Patient accrual: uniform over a period, or piecewise-constant rates.

With rates ``r_1, ..., r_m`` (patients per time unit) over periods of given durations (the last period
open-ended), the expected cumulative enrolment ``N(t)`` is piecewise linear and accrual ends when
``N(t)`` reaches the trial's ``n`` patients. Entry times are drawn as ``N^-1(n U)`` with ``U`` uniform:
given that ``n`` patients enrol by the end of accrual, the arrivals of a Poisson process with these rates
are independent draws from the density proportional to the rate (the standard construction of gsDesign /
nphsim simulations).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

__all__ = ["Accrual"]


@dataclasses.dataclass(frozen=True)
class Accrual:
    """Accrual rates over consecutive periods.

    Parameters
    ----------
    rates : tuple of float
        Patients per time unit in each period (> 0).
    durations : tuple of float
        Length of every period but the last (which lasts until enrolment is complete).

    Examples
    --------
    >>> Accrual.uniform(35.0, n=350).end(350)
    35.0
    """

    rates: tuple[float, ...]
    durations: tuple[float, ...] = ()

    def __post_init__(self):
        r, d = np.asarray(self.rates, float), np.asarray(self.durations, float)
        if r.ndim != 1 or r.size == 0 or not np.all(np.isfinite(r)) or np.any(r <= 0):
            raise ValueError(f"accrual rates {list(self.rates)!r} must be positive numbers of patients per time unit")
        if d.shape != (r.size - 1,) or not np.all(np.isfinite(d)) or np.any(d <= 0):
            raise ValueError(
                f"accrual durations {list(self.durations)!r} must give one positive length per period except the "
                f"last ({r.size - 1} for {r.size} rates)"
            )

    @classmethod
    def uniform(cls, months: float, *, n: int) -> Accrual:
        """``n`` patients enrolled at a constant rate over ``months``."""
        if not (isinstance(months, (int, float)) and months > 0):
            raise ValueError(f"accrual months = {months!r} must be a positive duration")
        return cls(rates=(n / float(months),))

    def knots(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Times and expected enrolled fraction (0 to 1) at the ends of the periods, up to the end of accrual."""
        r = np.asarray(self.rates, float)
        d = np.asarray(self.durations, float)
        times, counts = [0.0], [0.0]
        for rate, length in zip(r[:-1], d, strict=True):
            if counts[-1] + rate * length >= n:
                break
            times.append(times[-1] + length)
            counts.append(counts[-1] + rate * length)
        rate = r[len(times) - 1]
        times.append(times[-1] + (n - counts[-1]) / rate)
        counts.append(float(n))
        return np.asarray(times), np.asarray(counts) / n

    def end(self, n: int) -> float:
        """Time at which the expected enrolment reaches ``n``."""
        return float(self.knots(n)[0][-1])

    def entry_times(self, u: Float[ArrayLike, ...], n: int) -> Float[Array, ...]:
        """Entry times from uniform draws ``u`` in [0, 1) (inverse of the expected enrolment curve)."""
        times, fraction = self.knots(n)
        return jnp.interp(jnp.asarray(u, dtype=float), jnp.asarray(fraction), jnp.asarray(times))

    def describe(self, n: int) -> str:
        if len(self.rates) == 1:
            return f"uniform, {self.rates[0]:.3g} patients per month, complete at month {self.end(n):.3g}"
        return f"piecewise rates {list(self.rates)} per month, complete at month {self.end(n):.3g}"
