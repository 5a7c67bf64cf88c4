"""Fit artefacts on disk, written atomically: a killed run leaves no partial output directory.

Layout of ``DIR``: ``posterior.nc`` (arviz netCDF), ``parameters.csv``, ``manifest.json``,
``individual_fits.png``, and ``input/`` with copies of the data files the fit used.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import arviz as az

from .._atomic import atomic_directory
from ..data import read_table, write_table
from ..population import spec_from_dict
from ._fit import Fit

__all__ = ["save_fit", "load_fit", "atomic_directory", "FIT_FILES"]

# Everything a fit directory may hold; an existing folder with anything else in it is never replaced.
FIT_FILES = ("posterior.nc", "parameters.csv", "manifest.json", "individual_fits.png", "input")

def _json_default(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)

def save_fit(
    fit: Fit, out_dir: str | Path, *, figures: dict | None = None, inputs: dict[str, str] | None = None
) -> Path:
    """Write a fit's artefacts into ``out_dir`` atomically.

    Parameters
    ----------
    fit : Fit
    out_dir : path
    figures : dict of file name -> matplotlib Figure, optional
    inputs : dict of role -> path, optional
        Data files copied into ``out_dir/input/`` (e.g. ``{"ck": "ck.csv", "covariates": "pts.csv"}``).

    Returns
    -------
    Path of the written directory.
    """
    out_dir = Path(out_dir)
    with atomic_directory(out_dir, owned=FIT_FILES) as tmp:
        fit.idata.to_netcdf(str(tmp / "posterior.nc"), engine="h5netcdf")
        write_table(tmp / "parameters.csv", fit.table, simulated=fit.simulated, float_format="%.10g")
        manifest = dict(fit.manifest)
        manifest["patient_ids"] = list(fit.patient_ids)
        if inputs:
            (tmp / "input").mkdir()
            manifest["inputs"] = {}
            for role, path in inputs.items():
                target = tmp / "input" / f"{role}{Path(path).suffix or '.csv'}"
                shutil.copyfile(path, target)
                manifest["inputs"][role] = str(target.relative_to(tmp))
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=_json_default) + "\n")
        for name, figure in (figures or {}).items():
            figure.savefig(tmp / name, dpi=110)
    return out_dir

def load_fit(fit_dir: str | Path) -> Fit:
    """Read a fit written by ``save_fit``.

    Raises
    ------
    FileNotFoundError
        If ``fit_dir`` lacks ``manifest.json`` or ``posterior.nc`` (the message names the missing file).
    """
    fit_dir = Path(fit_dir)
    for name in ("manifest.json", "posterior.nc", "parameters.csv"):
        if not (fit_dir / name).exists():
            raise FileNotFoundError(f"{fit_dir}: not a carkin fit directory ({name} is missing)")
    manifest = json.loads((fit_dir / "manifest.json").read_text())
    spec = spec_from_dict(manifest["model"]["spec"], source=manifest["model"]["source"])
    idata = az.from_netcdf(str(fit_dir / "posterior.nc"), engine="h5netcdf")
    table = read_table(fit_dir / "parameters.csv").frame
    return Fit(idata=idata, spec=spec, manifest=manifest, table=table, patient_ids=tuple(manifest["patient_ids"]))
