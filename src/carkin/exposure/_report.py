"""Writing the exposure metrics of a fit to a folder: tables and a JSON index, atomically.

Layout of ``OUT``:

=========================  ========================================================================
file                       content
=========================  ========================================================================
``exposure.json``          metrics, method, draws, patients, simulated flag, files
``exposure_summary.csv``   per patient and metric: mean, sd, q05, q50, q95 (posterior)
``quartiles.csv``          per patient and metric: plug-in value, plug-in/modal quartile, P(Q1..Q4)
``quartile_cuts.csv``      per metric: quartile cut points, plug-in and posterior 5/50/95%
``quartile_by_dose.csv``   per metric and dose level: plug-in counts and posterior expected counts
``nca.csv``                observed Cmax, Tmax, AUC0-28d (NCA) per patient (when the data are known)
=========================  ========================================================================

CSV files of a simulated fit start with a ``# SIMULATED ...`` comment line.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .._atomic import atomic_directory
from ..data import SIMULATED_NOTE, write_table
from ._posterior import PosteriorExposure
from ._quartiles import exposure_quartiles, quartile_by_dose

__all__ = ["write_exposure_report"]



def write_exposure_report(
    exposure: PosteriorExposure,
    out_dir: str | Path,
    *,
    nca_table: pd.DataFrame | None = None,
    extra: dict | None = None,
) -> dict:
    """Write the exposure tables of ``exposure`` into ``out_dir`` (replaced atomically).

    Parameters
    ----------
    exposure : PosteriorExposure
    out_dir : path
    nca_table : pandas.DataFrame, optional
        From `carkin.exposure.nca`.
    extra : dict, optional
        Added to ``exposure.json``.

    Returns
    -------
    dict
        The content of ``exposure.json`` (its ``files`` list the tables written), so that a caller prints
        it without reading the file back.
    """
    out_dir = Path(out_dir)
    membership, cuts, by_dose = [], [], []
    for metric in exposure.metrics:
        q = exposure_quartiles(exposure.values(metric), patient_ids=exposure.patient_ids, metric=metric.name)
        membership.append(q.membership())
        cuts.append(q.cut_points())
        if exposure.dose is not None:
            by_dose.append(quartile_by_dose(q, exposure.dose).assign(metric=metric.name))
    index = {
        "simulated": exposure.simulated,
        "simulated_note": SIMULATED_NOTE if exposure.simulated else None,
        "metrics": {m.name: {"label": m.label, "unit": m.unit, "window_days": list(m.window_days)}
                    for m in exposure.metrics},
        "method": exposure.method,
        "fit_method": exposure.fit_method,
        "model": exposure.model,
        "patients": len(exposure.patient_ids),
        "draws_per_patient": exposure.n_samples,
        "interval": 0.9,
        "plug_in": "posterior median per patient",
        "files": ["exposure_summary.csv", "quartiles.csv", "quartile_cuts.csv"]
        + (["quartile_by_dose.csv"] if by_dose else []) + (["nca.csv"] if nca_table is not None else []),
    } | (extra or {})
    with atomic_directory(out_dir) as tmp:
        write_table(tmp / "exposure_summary.csv", exposure.summary(), simulated=exposure.simulated)
        write_table(tmp / "quartiles.csv", pd.concat(membership, ignore_index=True), simulated=exposure.simulated)
        write_table(tmp / "quartile_cuts.csv", pd.concat(cuts, ignore_index=True), simulated=exposure.simulated)
        if by_dose:
            table = pd.concat(by_dose, ignore_index=True)
            table = table[["metric", *[c for c in table.columns if c != "metric"]]]
            write_table(tmp / "quartile_by_dose.csv", table, simulated=exposure.simulated)
        if nca_table is not None:
            write_table(tmp / "nca.csv", nca_table, simulated=exposure.simulated)
        (tmp / "exposure.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return index
