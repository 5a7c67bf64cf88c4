"""Group-sequential boundaries by recursive numerical integration of the canonical joint distribution.

The canonical joint distribution (Jennison & Turnbull 2000, Group Sequential Methods, ch. 3 and 19): the
standardised statistics Z_1, ..., Z_K at information fractions t_1 < ... < t_K are multivariate normal with

    E[Z_k] = drift * sqrt(t_k),        Cov(Z_j, Z_k) = sqrt(t_j / t_k)   (j <= k),

where ``drift`` is the mean of Z at information fraction 1 (0 under the null hypothesis; for a log-rank
test with D events at the final analysis, allocation fraction p and hazard ratio HR, Schoenfeld's
``-log(HR) sqrt(D p (1 - p))``). Equivalently the score process S_k = Z_k sqrt(t_k) has independent normal
increments. Large Z means benefit of the experimental arm; the tests are one-sided.

Crossing probabilities are computed by the recursion of Armitage, McPherson & Rowe (1969) in the form of
Jennison & Turnbull (2000, section 19.2): the sub-density of Z_k on the continuation region is carried
from look to look on a grid of ``6 r - 1`` points (equally spaced within 3 SD of the mean, logarithmically
spaced tails out to about 3 + 4 log r SD), trimmed at the boundaries, with Simpson's rule on the grid plus
its midpoints. The probability of crossing at look k is integrated against the exact conditional normal
tail, so only the previous look's density is discretised. ``r = 32`` gives probabilities to about 1e-9;
gsDesign's default is r = 18.

Boundaries (Lan & DeMets 1983):

- **efficacy** (upper) boundary b_k: P_0(Z_j < b_j for efficacy looks j < k, Z_k >= b_k) = f(t_k) -
  f(t_{k-1}) under the null, with the futility boundary ignored (non-binding futility: the type I error is
  controlled whether or not the trial stops for futility). Looks without an efficacy test spend nothing
  and carry b = +inf; spending then uses only the efficacy looks' fractions.
- **futility** (lower) boundary a_k, non-binding, by one of two rules:
  ``beta_spending``: P_drift(continue until k, Z_k < a_k) = g(t_k) - g(t_{k-1}) under the design
  alternative, with g a spending function of total ``beta`` and continuation between both boundaries;
  a_k is capped at b_k. The maximum information is fixed by the design and not re-solved (gsDesign's
  type-4 designs instead grow the sample size until the final boundaries meet), so ``beta`` is the
  budget of futility stopping, not the design's type II error.
  ``z``: a fixed z-value (e.g. 0: stop if the observed hazard ratio favours control).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from scipy import optimize, stats

from ._spending import SpendingFunction

__all__ = ["FutilityRule", "GroupSequentialBounds", "compute_bounds", "crossing_probabilities"]

_LOW, _HIGH = -30.0, 40.0  # root brackets on the z scale (probabilities beyond are < 1e-190)


# ---------------------------------------------------------------------------------------------------------
# The recursion
# ---------------------------------------------------------------------------------------------------------


def _grid(mean: float, lo: float, hi: float, r: int) -> tuple[np.ndarray, np.ndarray]:
    """Jennison-Turnbull grid around ``mean`` trimmed to [lo, hi]: Simpson nodes and weights.

    Returns empty arrays when [lo, hi] is empty (no continuation region).
    """
    i = np.arange(1, 6 * r)
    x = np.where(
        i < r,
        mean - 3.0 - 4.0 * np.log(r / np.maximum(i, 1)),
        np.where(
            i <= 5 * r, mean - 3.0 + 3.0 * (i - r) / (2.0 * r), mean + 3.0 + 4.0 * np.log(r / np.maximum(6 * r - i, 1))
        ),
    )
    lo, hi = max(lo, x[0]), min(hi, x[-1])
    if not lo < hi:
        return np.zeros(0), np.zeros(0)
    x = np.concatenate([[lo], x[(x > lo) & (x < hi)], [hi]])
    width = np.diff(x)
    nodes = np.empty(2 * x.size - 1)
    nodes[0::2] = x
    nodes[1::2] = x[:-1] + width / 2.0
    weights = np.zeros_like(nodes)
    weights[0:-1:2] += width / 6.0
    weights[2::2] += width / 6.0
    weights[1::2] = 4.0 * width / 6.0
    return nodes, weights


@dataclasses.dataclass(frozen=True)
class _State:
    """Sub-density of Z at the previous look on the continuation region: nodes and weight * density."""

    t: float
    z: np.ndarray
    mass: np.ndarray


def _conditional(state: _State, t: float, drift: float) -> tuple[np.ndarray, float]:
    """Mean (per previous node) and SD of Z at fraction ``t`` given Z at the previous look."""
    dt = t - state.t
    mean = (state.z * np.sqrt(state.t) + drift * dt) / np.sqrt(t)
    return mean, float(np.sqrt(dt / t))


def _upper(state: _State | None, t: float, b: float, drift: float) -> float:
    """P(continue until the previous look, Z at fraction t >= b)."""
    if b == np.inf:
        return 0.0
    if state is None:
        return float(stats.norm.sf(b - drift * np.sqrt(t)))
    mean, sd = _conditional(state, t, drift)
    return float(state.mass @ stats.norm.sf((b - mean) / sd))


def _lower(state: _State | None, t: float, a: float, drift: float) -> float:
    """P(continue until the previous look, Z at fraction t < a)."""
    if a == -np.inf:
        return 0.0
    if state is None:
        return float(stats.norm.cdf(a - drift * np.sqrt(t)))
    mean, sd = _conditional(state, t, drift)
    return float(state.mass @ stats.norm.cdf((a - mean) / sd))


def _advance(state: _State | None, t: float, a: float, b: float, drift: float, r: int) -> _State:
    """Sub-density of Z at fraction ``t`` on the continuation region (a, b)."""
    centre = drift * np.sqrt(t)
    nodes, weights = _grid(centre, a, b, r)
    if state is None:
        density = stats.norm.pdf(nodes - centre)
    elif state.z.size == 0 or nodes.size == 0:
        density = np.zeros_like(nodes)
    else:
        mean, sd = _conditional(state, t, drift)
        density = stats.norm.pdf((nodes[:, None] - mean[None, :]) / sd) @ state.mass / sd
    return _State(t=t, z=nodes, mass=weights * density)


def crossing_probabilities(
    information: np.ndarray,
    upper: np.ndarray,
    lower: np.ndarray,
    drift: float,
    *,
    r: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of first crossing each boundary at each look.

    Parameters
    ----------
    information : array, shape (looks,)
        Information fractions, strictly increasing in (0, 1].
    upper, lower : arrays, shape (looks,)
        Efficacy (stop if Z >= upper) and futility (stop if Z < lower) boundaries on the z scale; use
        +inf / -inf where a look has no such test.
    drift : float
        Mean of Z at information fraction 1 (0 under the null).
    r : int, default 32
        Grid resolution (Jennison & Turnbull: ``6 r - 1`` points per look).

    Returns
    -------
    p_upper, p_lower : arrays, shape (looks,)
        P(stop at look k by crossing the upper / lower boundary, having continued at every earlier look).
    """
    t = _check_information(information)
    upper = np.asarray(upper, dtype=float)
    lower = np.asarray(lower, dtype=float)
    p_up, p_lo = np.zeros(t.size), np.zeros(t.size)
    state = None
    for k in range(t.size):
        p_up[k] = _upper(state, t[k], upper[k], drift)
        p_lo[k] = _lower(state, t[k], min(lower[k], upper[k]), drift)
        if k + 1 < t.size:
            state = _advance(state, t[k], lower[k], upper[k], drift, r)
    return p_up, p_lo


# ---------------------------------------------------------------------------------------------------------
# Boundaries
# ---------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FutilityRule:
    """A non-binding futility rule.

    Parameters
    ----------
    kind : {"beta_spending", "z"}
        Beta spending under the design alternative, or fixed z-values.
    spending : SpendingFunction, optional
        For ``beta_spending``: the spending function, whose ``total`` is the futility budget beta.
    z : tuple of float, optional
        For ``z``: one z-value per futility look, or a single value for all of them.
    """

    kind: str
    spending: SpendingFunction | None = None
    z: tuple[float, ...] = ()

    def __post_init__(self):
        if self.kind not in ("beta_spending", "z"):
            raise ValueError(f"futility rule kind = {self.kind!r} is unknown; choose beta_spending or z")
        if self.kind == "beta_spending" and self.spending is None:
            raise ValueError("futility rule beta_spending needs a spending function (spending=SpendingFunction(...))")
        if self.kind == "z" and (len(self.z) == 0 or not all(np.isfinite(self.z))):
            raise ValueError(f"futility rule z needs finite z-values, got {self.z!r}")

    def describe(self) -> str:
        if self.kind == "z":
            return f"non-binding, fixed z = {', '.join(f'{v:g}' for v in self.z)}"
        return f"non-binding, {self.spending.describe()} (beta) under the design alternative"


@dataclasses.dataclass(frozen=True, eq=False)
class GroupSequentialBounds:
    """Efficacy and futility boundaries of a one-sided group-sequential test, with their probabilities.

    Attributes
    ----------
    information : array, shape (looks,)
        Information fractions.
    efficacy : array, shape (looks,)
        Efficacy boundary z-values (stop for benefit if Z >= efficacy); +inf where the look tests no efficacy.
    futility : array, shape (looks,)
        Futility boundary z-values (stop if Z < futility; non-binding); -inf where the look has no futility test.
    alpha_spent : array, shape (looks,)
        Cumulative one-sided type I error spent by each look.
    alpha, drift : float
        Overall one-sided alpha; drift of the design alternative (mean of Z at information 1).
    null, alternative : dict of str -> array, shape (looks,)
        Probabilities of stopping at each look under drift 0 and under ``drift``: ``efficacy`` (futility
        obeyed), ``futility``, ``efficacy_nonbinding`` (futility ignored).
    spending : SpendingFunction
    futility_rule : FutilityRule or None
    """

    information: np.ndarray
    efficacy: np.ndarray
    futility: np.ndarray
    alpha_spent: np.ndarray
    alpha: float
    drift: float
    null: dict[str, np.ndarray]
    alternative: dict[str, np.ndarray]
    spending: SpendingFunction
    futility_rule: FutilityRule | None

    @property
    def efficacy_p(self) -> np.ndarray:
        """Nominal one-sided p-value of each efficacy boundary, 1 - Phi(b_k) (0 where none... i.e. NaN)."""
        return np.where(np.isfinite(self.efficacy), stats.norm.sf(self.efficacy), np.nan)

    @property
    def futility_p(self) -> np.ndarray:
        """Nominal one-sided p-value at each futility boundary, 1 - Phi(a_k) (NaN where none)."""
        return np.where(np.isfinite(self.futility), stats.norm.sf(self.futility), np.nan)

    def power(self, *, binding: bool = True) -> float:
        """P(reject H0) under the design alternative, stopping for futility (``binding``) or not."""
        return float(self.alternative["efficacy" if binding else "efficacy_nonbinding"].sum())

    def to_dict(self) -> dict[str, Any]:
        def num(x):
            return None if not np.isfinite(x) else float(x)

        return {
            "alpha": self.alpha,
            "drift": self.drift,
            "spending": self.spending.describe(),
            "futility_rule": None if self.futility_rule is None else self.futility_rule.describe(),
            "looks": [
                {
                    "look": k + 1,
                    "information": float(self.information[k]),
                    "efficacy_z": num(self.efficacy[k]),
                    "efficacy_p": num(self.efficacy_p[k]),
                    "futility_z": num(self.futility[k]),
                    "futility_p": num(self.futility_p[k]),
                    "alpha_spent": float(self.alpha_spent[k]),
                    "null": {name: float(v[k]) for name, v in self.null.items()},
                    "alternative": {name: float(v[k]) for name, v in self.alternative.items()},
                }
                for k in range(self.information.size)
            ],
            "power": self.power(binding=True),
            "power_nonbinding": self.power(binding=False),
            "type_i_error": float(self.null["efficacy_nonbinding"].sum()),
        }


def _check_information(information) -> np.ndarray:
    t = np.asarray(information, dtype=float)
    if (
        t.ndim != 1 or t.size == 0 or not np.all(np.isfinite(t))
        or np.any(t <= 0) or np.any(t > 1) or np.any(np.diff(t) <= 0)
    ):
        raise ValueError(
            f"information fractions {t.tolist()!r} must be strictly increasing numbers in (0, 1], e.g. [0.33, 0.8, 1.0]"
        )
    return t


def _solve(fn, target: float) -> float:
    """Root of the monotone fn(x) = target on the bracket; inf-like values when the target is out of reach."""
    lo, hi = fn(_LOW) - target, fn(_HIGH) - target
    if lo * hi > 0:
        return _LOW if abs(lo) < abs(hi) else _HIGH
    return float(optimize.brentq(lambda x: fn(x) - target, _LOW, _HIGH, xtol=1e-12, rtol=1e-14, maxiter=500))


def compute_bounds(
    information,
    *,
    alpha: float,
    efficacy_looks=None,
    futility_looks=None,
    spending: SpendingFunction | None = None,
    futility: FutilityRule | None = None,
    drift: float = 0.0,
    r: int = 32,
) -> GroupSequentialBounds:
    """Lan-DeMets efficacy boundaries and non-binding futility boundaries at given information fractions.

    Main arguments
    --------------
    information : array, shape (looks,)
        Information fractions (events at the look / events at the final analysis), increasing, last 1.
    alpha : float
        Overall one-sided type I error, e.g. 0.025.
    efficacy_looks, futility_looks : array of bool, shape (looks,), optional
        Which looks test efficacy (default all) and futility (default none). The last look must test
        efficacy; a futility test at the last look is ignored (the final analysis accepts H0 below b_K).
    spending : SpendingFunction, optional
        Alpha-spending function; default O'Brien-Fleming-type with total ``alpha``.
    futility : FutilityRule, optional
        Needed when any look tests futility (see the module docstring).
    drift : float
        Mean of Z at information 1 under the design alternative (used for beta spending and for the
        reported probabilities under the alternative).

    Other arguments
    ---------------
    r : int, default 32
        Integration grid resolution.

    Returns
    -------
    GroupSequentialBounds

    Raises
    ------
    ValueError
        Bad fractions, an alpha outside (0, 0.5), a spending total that differs from alpha, a last look
        without an efficacy test, or futility looks without a futility rule.

    Examples
    --------
    >>> b = compute_bounds([0.5, 1.0], alpha=0.025)
    >>> [round(float(z), 3) for z in b.efficacy]
    [2.963, 1.969]
    """
    t = _check_information(information)
    if not t[-1] == 1.0:
        raise ValueError(f"the last information fraction must be 1 (the final analysis), got {t[-1]!r}")
    if not (isinstance(alpha, (int, float)) and 0 < alpha < 0.5):
        raise ValueError(f"alpha = {alpha!r} must be a one-sided type I error in (0, 0.5), e.g. 0.025")
    k = t.size
    eff = np.ones(k, bool) if efficacy_looks is None else np.asarray(efficacy_looks, dtype=bool)
    fut = np.zeros(k, bool) if futility_looks is None else np.asarray(futility_looks, dtype=bool)
    if eff.shape != (k,) or fut.shape != (k,):
        raise ValueError(f"efficacy_looks and futility_looks must have one entry per look ({k})")
    if not eff[-1]:
        raise ValueError("the last look (the final analysis) must test efficacy (efficacy_looks[-1] = True)")
    fut = fut.copy()
    fut[-1] = False
    spending = spending or SpendingFunction("obf", alpha)
    if not np.isclose(spending.total, alpha, rtol=1e-12):
        raise ValueError(
            f"the alpha-spending function spends {spending.total!r} but alpha = {alpha!r}; make them equal"
        )
    if fut.any() and futility is None:
        raise ValueError("some looks test futility but no futility rule was given (futility=FutilityRule(...))")
    if futility is not None and futility.kind == "z" and len(futility.z) not in (1, int(fut.sum())):
        raise ValueError(
            f"the futility rule gives {len(futility.z)} z-values for {int(fut.sum())} futility looks; give one per "
            "look or one for all"
        )

    # Efficacy boundaries under H0, futility ignored (non-binding).
    cumulative = np.where(eff, spending(t), 0.0)
    spent_before = 0.0
    upper = np.full(k, np.inf)
    alpha_spent = np.zeros(k)
    state = None
    for j in range(k):
        if eff[j]:
            target = float(cumulative[j]) - spent_before
            upper[j] = np.inf if target <= 0 else _solve(lambda b, s=state, tj=t[j]: _upper(s, tj, b, 0.0), target)
            spent_before = float(cumulative[j])
        alpha_spent[j] = spent_before
        if j + 1 < k:
            state = _advance(state, t[j], -np.inf, upper[j], 0.0, r)

    # Futility boundaries under the alternative, continuation between both boundaries.
    lower = np.full(k, -np.inf)
    if fut.any():
        if futility.kind == "z":
            values = np.broadcast_to(np.asarray(futility.z, dtype=float), (int(fut.sum()),))
            lower[fut] = values
        else:
            g = futility.spending(t)
            spent = 0.0
            state = None
            for j in range(k):
                if fut[j]:
                    target = float(g[j]) - spent
                    lower[j] = (
                        -np.inf if target <= 0 else _solve(lambda a, s=state, tj=t[j]: _lower(s, tj, a, drift), target)
                    )
                    spent = float(g[j])
                if j + 1 < k:
                    state = _advance(state, t[j], min(lower[j], upper[j]), upper[j], drift, r)
        lower = np.minimum(lower, upper)

    def probabilities(d: float) -> dict[str, np.ndarray]:
        up, lo = crossing_probabilities(t, upper, lower, d, r=r)
        up_nb, _ = crossing_probabilities(t, upper, np.full(k, -np.inf), d, r=r)
        return {"efficacy": up, "futility": lo, "efficacy_nonbinding": up_nb}

    return GroupSequentialBounds(
        information=t,
        efficacy=upper,
        futility=lower,
        alpha_spent=alpha_spent,
        alpha=float(alpha),
        drift=float(drift),
        null=probabilities(0.0),
        alternative=probabilities(float(drift)),
        spending=spending,
        futility_rule=futility,
    )
