"""The data a saved fit was made on, read back from the fit directory's own copies (``input/``)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

__all__ = ["load_fit_dataset"]


def load_fit_dataset(
    fit_dir: str | Path, fit=None, *, ck: str | Path | None = None, covariates: str | Path | None = None
):
    """Read the CK data of a saved fit (the copies in ``FIT_DIR/input/``), patients in the fit's order.

    Parameters
    ----------
    fit_dir : path
        A directory written by ``carkin fit`` / `carkin.inference.save_fit` with ``inputs``.
    fit : carkin.inference.Fit, optional
        The loaded fit (read from ``fit_dir`` if omitted).
    ck, covariates : path, optional
        Use these files instead of the fit's copies (e.g. for a fit saved without ``input/``).

    Returns
    -------
    carkin.data.Dataset
        Read with the fit's spec (`carkin.load_dataset(..., spec=fit.spec)`): its covariate and input columns.

    Raises
    ------
    FileNotFoundError
        If the fit has no copy of its CK file and ``ck`` is not given.
    ValueError
        If the data's patients are not the fit's.

    Warns
    -----
    UserWarning
        If the files' hash differs from the one recorded in the manifest (the data changed since the fit).
    """
    from ..data import data_hash, load_dataset
    from ..inference import load_fit

    fit_dir = Path(fit_dir)
    fit = load_fit(fit_dir) if fit is None else fit
    manifest = fit.manifest or json.loads((fit_dir / "manifest.json").read_text())
    inputs = manifest.get("inputs") or {}
    ck_path = Path(ck) if ck is not None else (fit_dir / inputs["ck"] if "ck" in inputs else None)
    if ck_path is None or not ck_path.exists():
        raise FileNotFoundError(
            f"{fit_dir}: the fit has no copy of its CK data (input/ck.csv); pass the CK file explicitly (--ck)"
        )
    if covariates is not None:
        cov_path = Path(covariates)
    elif ck is None and "covariates" in inputs:
        cov_path = fit_dir / inputs["covariates"]
    else:
        cov_path = None
    # read as the fit read them: the spec's covariates, inputs, co-medication columns and analytes (DV = 0 is
    # accepted for a linear-scale error model)
    dataset = load_dataset(ck_path, cov_path, spec=fit.spec, allow_extra_ids=True, verbose=False)
    recorded = (manifest.get("data") or {}).get("hash")
    files = [p for p in (ck_path, cov_path) if p is not None]
    if recorded and data_hash(files) != recorded:
        warnings.warn(
            f"{fit_dir}: the data files ({', '.join(map(str, files))}) differ from those the fit was made on "
            "(hash mismatch with manifest.json); exposures use the fit's posterior, the data only for LLOQ, dose "
            "and NCA",
            UserWarning,
            stacklevel=2,
        )
    if tuple(dataset.patient_ids) != tuple(fit.patient_ids):
        raise ValueError(
            f"{ck_path}: its patients ({len(dataset.patient_ids)}) are not the fit's ({len(fit.patient_ids)}) in "
            "the same order; pass the CK file the fit was made on"
        )
    return dataset
