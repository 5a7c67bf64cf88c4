"""The convergence gate of every MCMC fit: R-hat, bulk and tail ESS, divergences; one verdict, one warning.

CK fits (`carkin.inference.fit`) and the Bayesian exposure-response fits (`carkin.er.two_stage`,
`carkin.er.joint_ph`) judge their draws here and record the verdict under the same keys (``passed``,
``failures``, ``gates``, ``max_r_hat``, ``min_ess_bulk``, ``min_ess_tail``, ``divergences``).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd

from ..errors import ConvergenceWarning

__all__ = ["Gates", "judge_convergence", "table_extremes", "warn_if_failed"]

MAX_SHOWN = 25  # failures listed in a warning (all of them stay in the verdict)


@dataclasses.dataclass(frozen=True)
class Gates:
    """Convergence gates a fit must pass (defaults: R-hat <= 1.01, bulk and tail ESS >= 400, 0 divergences)."""

    max_r_hat: float = 1.01
    min_ess_bulk: float = 400.0
    min_ess_tail: float = 400.0
    max_divergences: int = 0


def table_extremes(table: pd.DataFrame) -> dict:
    """``max_r_hat``, ``min_ess_bulk``, ``min_ess_tail`` of a parameter table (None where every value is NaN)."""

    def extreme(column: str, fn):
        return float(fn(table[column])) if table[column].notna().any() else None

    return {"max_r_hat": extreme("r_hat", np.nanmax), "min_ess_bulk": extreme("ess_bulk", np.nanmin),
            "min_ess_tail": extreme("ess_tail", np.nanmin)}


def judge_convergence(table: pd.DataFrame, divergences: int, gates: Gates | None = None) -> dict:
    """The gate verdict of MCMC draws.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per gated quantity with ``parameter``, ``r_hat``, ``ess_bulk``, ``ess_tail``
        (`carkin.inference.parameter_table`). A NaN fails its gate (e.g. R-hat of a single chain).
    divergences : int
        Divergent transitions of the run.
    gates : Gates, optional
        Default ``Gates()``.

    Returns
    -------
    dict
        ``passed`` (bool), ``failures`` (one line per failed check, naming the quantity), ``gates``,
        ``max_r_hat``, ``min_ess_bulk``, ``min_ess_tail`` (`table_extremes`), ``divergences``.
    """
    gates = gates or Gates()
    failures = []
    for _, row in table.iterrows():
        if not row["r_hat"] <= gates.max_r_hat:
            failures.append(f"{row['parameter']}: R-hat {row['r_hat']:.3f} > {gates.max_r_hat}")
        if not row["ess_bulk"] >= gates.min_ess_bulk:
            failures.append(f"{row['parameter']}: bulk ESS {row['ess_bulk']:.0f} < {gates.min_ess_bulk:g}")
        if not row["ess_tail"] >= gates.min_ess_tail:
            failures.append(f"{row['parameter']}: tail ESS {row['ess_tail']:.0f} < {gates.min_ess_tail:g}")
    if divergences > gates.max_divergences:
        failures.append(f"{divergences} divergent transitions > {gates.max_divergences}")
    return {"passed": not failures, "failures": failures, "gates": dataclasses.asdict(gates), **table_extremes(table),
            "divergences": int(divergences)}


def warn_if_failed(verdict: dict, what: str, *, stacklevel: int = 2) -> None:
    """Issue a `ConvergenceWarning` listing the failures (at most ``MAX_SHOWN``) if ``verdict`` did not pass.

    ``what`` names the fit: "the fit" gives "the fit FAILED its convergence gates: ...".
    """
    if verdict["passed"]:
        return
    failures = list(verdict["failures"])
    shown = failures[:MAX_SHOWN] + ([f"... and {len(failures) - MAX_SHOWN} more"] if len(failures) > MAX_SHOWN else [])
    warnings.warn(f"{what} FAILED its convergence gates:\n  " + "\n  ".join(shown), ConvergenceWarning,
                  stacklevel=stacklevel + 1)
