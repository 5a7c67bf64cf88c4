"""Non-compartmental analysis (NCA) of the observed CK records: observed Cmax, Tmax and AUC over a window.

This is what sponsor CK analyses report (e.g. [Wu2025], [Awasthi2020]; docs/references.md), kept for comparison with the
model-based metrics. It works on the padded arrays of a `carkin.data.Dataset`, all patients at once.

Conventions
-----------
These are carkin's one NCA convention: every NCA figure carkin reports comes from `nca` with its default
method (the ``carkin exposure`` / ``carkin er`` NCA tables, the demo, and the NCA rows of the virtual
KarMMa-3 summaries, `carkin.cohorts.summarize_karmma3`). ``method="linear"`` is there only to compare with
analyses that used linear trapezoids throughout.

- Time 0 is the infusion, and the level there is taken as 0 (CAR+ transgene is absent before the
  infusion); a point (0, 0) starts every profile.
- BLQ records: before the first quantified record they count as 0 (the expansion has not reached the
  assay's range); BLQ records after it (embedded, or trailing after the last quantified record) are left
  out, so the curve joins the quantified neighbours and the AUC stops at the last quantified record
  (no extrapolation below the LLOQ).
- Observed Cmax is the highest quantified DV over all records (copies/ug); Tmax its time (the first one if
  tied). A patient without a quantified record has Cmax and Tmax NaN and AUC 0.
- AUC(0-W): ``"linear-up/log-down"`` (default; the usual choice for curves that fall exponentially)
  integrates a rising (or flat) interval, or one with a zero end, by the linear trapezoid,
  (c1 + c2) / 2 dt, and a falling interval with both ends > 0 by the log trapezoid,
  (c1 - c2) dt / log(c1 / c2). ``"linear"`` uses the linear trapezoid everywhere. When W falls between two
  kept records, the interval is cut at W and its part up to W integrated under the same interpolant
  (linear, or exponential for log-down), so AUC0-28d uses the day-22 and month-2 samples of the
  KarMMa-3 schedule. When sampling stops before W, the AUC runs to the last kept record and
  ``WINDOW_COMPLETE`` is False (the guarantee-time problem, [Anderson1983]).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

__all__ = ["nca", "NCA_METHODS"]

NCAMethod = Literal["linear-up/log-down", "linear"]
NCA_METHODS: tuple[str, ...] = ("linear-up/log-down", "linear")


def _segment_integral(t1, c1, t2, c2, upper, log_down):
    """Integral over [t1, min(t2, upper)] of the interpolant between (t1, c1) and (t2, c2); 0 if t1 >= upper."""
    width = t2 - t1
    end = np.minimum(t2, upper)
    span = np.clip(end - t1, 0.0, None)
    safe_width = np.where(width > 0, width, 1.0)
    linear = c1 * span + (c2 - c1) * span**2 / (2.0 * safe_width)
    use_log = log_down & (c2 < c1) & (c1 > 0) & (c2 > 0) & (width > 0)
    safe_c1 = np.where(use_log, c1, 1.0)
    safe_c2 = np.where(use_log, c2, 0.5)
    k = np.log(safe_c2 / safe_c1) / safe_width  # < 0
    logged = safe_c1 * np.expm1(k * span) / k
    return np.where(width > 0, np.where(use_log, logged, linear), 0.0)


def nca(
    dataset,
    *,
    window_days: float = 28.0,
    method: NCAMethod = "linear-up/log-down",
) -> pd.DataFrame:
    """Observed Cmax, Tmax and AUC(0-window) of every patient (see the module docstring for the rules).

    Parameters
    ----------
    dataset : carkin.data.Dataset
        Times in days after infusion, DV in copies/ug, BLQ flags.
    window_days : float
        End of the AUC window, days (28 gives AUC0-28d).
    method : {"linear-up/log-down", "linear"}

    Returns
    -------
    pandas.DataFrame
        One row per patient: ``ID``, ``CMAX_OBS`` (copies/ug), ``TMAX_OBS`` (day), ``AUC_0_<W>_NCA``
        (copies/ug x day), ``TLAST`` (last kept quantified time within the window, day), ``N_QUANTIFIED``,
        ``N_BLQ``, ``WINDOW_COMPLETE``.

    Raises
    ------
    ValueError
        Unknown method or a window that is not a positive number of days.

    Examples
    --------
    >>> nca(dataset)[["ID", "CMAX_OBS", "AUC_0_28_NCA"]]  # doctest: +SKIP
    """
    if method not in NCA_METHODS:
        raise ValueError(
            f"method={method!r} ({type(method).__name__}) is not valid; choose one of {', '.join(NCA_METHODS)}"
        )
    if not (isinstance(window_days, (int, float)) and np.isfinite(window_days) and window_days > 0):
        raise ValueError(f"window_days must be a positive number of days, got {window_days!r}")
    times = np.asarray(dataset.times, dtype=float)
    dv = np.asarray(dataset.dv, dtype=float)
    mask = np.asarray(dataset.obs_mask, dtype=bool)
    blq = np.asarray(dataset.blq, dtype=bool) & mask
    quantified = mask & ~blq
    n_patients = times.shape[0]

    # observed Cmax / Tmax over all quantified records
    masked_dv = np.where(quantified, dv, -np.inf)
    best = np.argmax(masked_dv, axis=1)
    has_quantified = quantified.any(axis=1)
    rows = np.arange(n_patients)
    cmax = np.where(has_quantified, dv[rows, best], np.nan)
    tmax = np.where(has_quantified, times[rows, best], np.nan)

    # kept points: (0, 0), quantified records, BLQ records before the first quantified one (as 0)
    first_quantified = np.where(has_quantified, np.min(np.where(quantified, times, np.inf), axis=1), np.inf)
    early_blq = blq & (times < first_quantified[:, None])
    keep = quantified | early_blq
    level = np.where(quantified, dv, 0.0)
    t_all = np.concatenate([np.zeros((n_patients, 1)), times], axis=1)
    c_all = np.concatenate([np.zeros((n_patients, 1)), level], axis=1)
    k_all = np.concatenate([np.ones((n_patients, 1), dtype=bool), keep], axis=1)
    # compact the kept points to the front, in time order (ties keep record order)
    order = np.argsort(np.where(k_all, t_all, np.inf), axis=1, kind="stable")
    t_sorted = np.take_along_axis(np.where(k_all, t_all, np.inf), order, axis=1)
    c_sorted = np.take_along_axis(c_all, order, axis=1)
    valid = np.isfinite(t_sorted[:, 1:]) & np.isfinite(t_sorted[:, :-1])
    t1, t2 = t_sorted[:, :-1], np.where(valid, t_sorted[:, 1:], t_sorted[:, :-1])
    c1, c2 = c_sorted[:, :-1], np.where(valid, c_sorted[:, 1:], c_sorted[:, :-1])
    t1 = np.where(valid, t1, 0.0)
    pieces = _segment_integral(t1, c1, np.where(valid, t2, 0.0), c2, window_days, method == "linear-up/log-down")
    auc = np.sum(np.where(valid, pieces, 0.0), axis=1)

    in_window_q = quantified & (times <= window_days)
    tlast = np.where(in_window_q.any(axis=1), np.max(np.where(in_window_q, times, -np.inf), axis=1), np.nan)
    complete = (k_all & (t_all >= window_days)).any(axis=1) & has_quantified
    name = f"AUC_0_{window_days:g}_NCA".replace(".", "p")
    return pd.DataFrame(
        {
            "ID": list(dataset.patient_ids),
            "CMAX_OBS": cmax,
            "TMAX_OBS": tmax,
            name: auc,
            "TLAST": tlast,
            "N_QUANTIFIED": quantified.sum(axis=1),
            "N_BLQ": blq.sum(axis=1),
            "WINDOW_COMPLETE": complete,
        }
    )
