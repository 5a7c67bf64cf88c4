"""`build_report` / `write_report`: one self-contained HTML file for a fit and, when given, its exposure,
exposure-response and dose-scenario outputs.

Sections: data summary, model spec, convergence verdict (loud when the gates failed), parameter table,
convergence table and eta-shrinkage, goodness of fit, NPDE, pcVPC with BLQ panel, individual fits, then
the exposure table (``EXPOSURE_DIR``, default ``FIT_DIR/exposure`` when present), the E-R results
(``ER_DIR``: ``*.json`` key results, ``*.png`` figures, ``report.md``, small ``*.csv`` tables), the scenario
results (``SIM_DIR`` from ``carkin simulate``: ``summary.json``, ``*.png``), and the fit manifest.

Inputs are read through their writers' files, not re-computed: the report joins outputs that other commands
(``carkin exposure``, ``carkin er``, ``carkin simulate``) wrote. Diagnostics are computed from the fit
(`carkin.diagnostics.diagnose`) unless a folder written by `carkin.diagnostics.write_diagnostics` is given.

"SIMULATED data" banner: shown at the top and bottom when the fit's data are simulated (``Fit.simulated``, or
the provenance of the data files it copied, ``Dataset.simulated``), or when an E-R / scenario result says so.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import pandas as pd

from .._atomic import atomic_write_text
from ..data import read_table
from . import _html as h

__all__ = ["build_report", "write_report"]

_FIGURE_TITLES = {
    "trace.png": "Trace plots (population sites)",
    "rank.png": "Rank plots",
    "gof.png": "Goodness of fit",
    "npde.png": "NPDE",
    "vpc.png": "Prediction-corrected VPC (BLQ fraction below)",
    "individual_fits.png": "Individual fits",
}


def _json_files(folder: Path) -> dict:
    out = {}
    for path in sorted(folder.glob("*.json")):
        try:
            out[path.name] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            out[path.name] = {"error": f"could not read {path}: {err}"}
    return out


def _flat_scalars(data, prefix: str = "", depth: int = 0) -> dict:
    """Scalars (and short lists of scalars) of a JSON object, keys joined with '.', two levels deep."""
    out = {}
    if not isinstance(data, dict):
        return out
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and depth < 2:
            out.update(_flat_scalars(value, name + ".", depth + 1))
        elif isinstance(value, (str, int, float, bool)) or value is None:
            out[name] = value
        elif isinstance(value, list) and len(value) <= 8 and all(not isinstance(v, (dict, list)) for v in value):
            out[name] = value
    return out


def _folder_section(folder: Path, *, skip_json: tuple[str, ...] = ()) -> str:
    """Generic rendering of an output folder: key results of each JSON, every PNG, report.md, small CSVs."""
    parts = [f'<p class="muted">from <code>{h.esc(folder)}</code></p>']
    for name, data in _json_files(folder).items():
        if name in skip_json:
            continue
        parts.append(f"<h3>{h.esc(name)}</h3>" + h.kv_table(_flat_scalars(data)))
    for path in sorted(folder.glob("*.png")):
        parts.append(f"<h3>{h.esc(path.stem.replace('_', ' '))}</h3>" + h.png_file(path))
    if (folder / "report.md").exists():
        parts.append("<h3>report.md</h3>" + h.pre((folder / "report.md").read_text(encoding="utf-8")))
    for path in sorted(folder.glob("*.csv")):
        try:
            frame = read_table(path).frame
        except (OSError, ValueError):
            continue
        parts.append(f"<h3>{h.esc(path.name)}</h3>" + h.table(frame, max_rows=30))
    return "".join(parts)


def _scenario_section(folder: Path) -> str:
    summary_path = folder / "summary.json"
    parts = [f'<p class="muted">from <code>{h.esc(folder)}</code></p>']
    if summary_path.exists():
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        rows = []
        for d in summary.get("doses", []):
            row = {"dose": d.get("dose")}
            for metric, values in (d.get("exposure") or {}).items():
                p = values.get("predictive", {}) if isinstance(values, dict) else {}
                if "q50" in p:
                    row[metric] = f"{p['q50']:.3g} [{p.get('q05', float('nan')):.3g}-{p.get('q95', float('nan')):.3g}]"
            if isinstance(d.get("target"), dict) and "probability" in d["target"]:
                row["P(target)"] = d["target"]["probability"]
            if isinstance(d.get("blq_fraction"), dict) and summary.get("times_days"):
                row[f"BLQ at day {summary['times_days'][-1]:g}"] = d["blq_fraction"]["pooled"][-1]
            rows.append(row)
        parts.append(
            f"<h3>{h.esc(summary.get('scenario', 'scenario'))}: median [90% predictive interval] per dose</h3>"
        )
        if rows:
            parts.append(h.table(pd.DataFrame(rows).astype(object)))
        parts.append(h.kv_table({k: v for k, v in _flat_scalars(summary).items() if not k.startswith("doses")}))
        for note in summary.get("notes", []):
            parts.append(f'<p class="muted">note: {h.esc(note)}</p>')
    for path in sorted(folder.glob("*.png")):
        parts.append(f"<h3>{h.esc(path.stem)}</h3>" + h.png_file(path))
    return "".join(parts)


def _verdict_html(verdict: dict, method: str) -> str:
    if verdict.get("passed"):
        return (f'<div class="pass">Convergence gates PASSED ({h.esc(method)}): max R-hat {verdict.get("max_r_hat")}, '
                f'min bulk ESS {verdict.get("min_ess_bulk")}, divergences {verdict.get("divergences", 0)}.</div>')
    items = "".join(f"<li>{h.esc(f)}</li>" for f in verdict.get("failures", [])[:30])
    more = len(verdict.get("failures", [])) - 30
    extra = f"<li>... and {more} more</li>" if more > 0 else ""
    return (f'<div class="fail"><b>CONVERGENCE FAILED</b> ({h.esc(method)}): do not report these estimates; rerun with '
            f"longer chains or revisit the model.<ul>{items}{extra}</ul></div>")


def build_report(
    fit_dir: str | Path,
    *,
    er_dir: str | Path | None = None,
    sim_dir: str | Path | None = None,
    exposure_dir: str | Path | None = None,
    diagnostics_dir: str | Path | None = None,
    seed: int = 0,
    replicates: int = 200,
    stratify: str | None = None,
) -> str:
    """The report of a fit directory as one HTML string (see the module docstring for the sections).

    Parameters
    ----------
    fit_dir : path
        Written by ``carkin fit`` / `carkin.inference.save_fit` with its ``input/`` copies of the data.
    er_dir, sim_dir, exposure_dir : path, optional
        Outputs of ``carkin er``, ``carkin simulate``, ``carkin exposure`` (default ``FIT_DIR/exposure``
        when it exists).
    diagnostics_dir : path, optional
        Written by `carkin.diagnostics.write_diagnostics`; when absent, diagnostics are computed here.
    seed, replicates, stratify : settings of the computed diagnostics (VPC replicates, VPC strata covariate).

    Raises
    ------
    FileNotFoundError
        If a given folder does not exist (naming it), or ``fit_dir`` is not a fit directory.
    """
    import jax

    from ..diagnostics import diagnose, diagnostic_figures
    from ..exposure import load_fit_dataset
    from ..inference import load_fit

    fit_dir = Path(fit_dir)
    given = (("--er", er_dir), ("--sim", sim_dir), ("--exposure", exposure_dir), ("--diagnostics", diagnostics_dir))
    for label, folder in given:
        if folder is not None and not Path(folder).is_dir():
            raise FileNotFoundError(f"{label} {folder}: no such directory")
    fit = load_fit(fit_dir)
    manifest = fit.manifest
    dataset = load_fit_dataset(fit_dir, fit)
    simulated = fit.simulated or dataset.simulated
    er_json = _json_files(Path(er_dir)) if er_dir else {}
    sim_json = _json_files(Path(sim_dir)) if sim_dir else {}
    simulated = simulated or any(v.get("simulated") for v in er_json.values() if isinstance(v, dict)) or any(
        v.get("simulated_data") for v in sim_json.values() if isinstance(v, dict))

    sections = []
    data = manifest.get("data", {})
    data_rows = {"summary": dataset.summary(), "source": data.get("source"), "data hash": data.get("hash"),
                 "files": data.get("files"), "simulated": simulated}
    sections.append(("data", "Data", h.kv_table(data_rows)))
    spec_text = json.dumps(manifest.get("model", {}).get("spec", {}), indent=2)
    sections.append(
        (
            "model",
            "Model",
            h.kv_table(
                {
                    "model": fit.spec.model,
                    "spec file": manifest.get("model", {}).get("source"),
                    "spec hash": manifest.get("model", {}).get("hash"),
                    "IIV": fit.spec.iiv
                    + (f" (non-centred: {', '.join(fit.spec.noncentred)})" if fit.spec.iiv == "mixed" else ""),
                    "residual": fit.spec.residual,
                    "BLQ": fit.spec.blq,
                    "method": fit.method,
                    "seed": manifest.get("seed"),
                    "settings": manifest.get("settings"),
                }
            )
            + "<details><summary>full model specification</summary>"
            + h.pre(spec_text)
            + "</details>",
        )
    )

    if diagnostics_dir is not None:
        diag_dir = Path(diagnostics_dir)
        diag_json = json.loads((diag_dir / "diagnostics.json").read_text(encoding="utf-8"))
        verdict = {**manifest.get("diagnostics", {}), **diag_json.get("verdict", {})}
        conv = read_table(diag_dir / "convergence.csv").frame
        shrink = read_table(diag_dir / "shrinkage.csv").frame
        gof_summary, vpc_info = diag_json.get("gof", {}), diag_json.get("vpc", {})
        figures = {name: h.png_file(diag_dir / name, alt=title) for name, title in _FIGURE_TITLES.items()
                   if (diag_dir / name).exists()}
    else:
        diag = diagnose(fit, dataset, key=jax.random.PRNGKey(seed), replicates=replicates, stratify=stratify,
                        simulated=simulated)
        verdict, conv, shrink = diag.verdict, diag.convergence, diag.shrinkage
        gof_summary, vpc_info = diag.gof.summary(), diag.vpc.to_dict()
        figures = {name: h.image(fig, alt=_FIGURE_TITLES.get(name, name))
                   for name, fig in diagnostic_figures(diag, fit, dataset).items()}

    sections.append(("convergence", "Convergence", _verdict_html(verdict, fit.method)
                     + "<h3>Population sites (arviz)</h3>" + h.table(conv)
                     + figures.get("trace.png", "") + figures.get("rank.png", "")))
    sections.append(("parameters", "Parameters", '<p class="muted">natural scale for typical values; omega = IIV SD on '
                     "the transformed scale; 5/50/95% posterior quantiles</p>" + h.table(fit.table)
                     + "<h3>Eta-shrinkage</h3><p class=\"muted\">1 - SD(posterior-mean eta) / omega (Savic &amp; "
                     "Karlsson 2009); above ~0.3 individual estimates regress to the typical value.</p>"
                     + h.table(shrink)))
    gof_note = h.kv_table({k: v for k, v in gof_summary.items()})
    sections.append(("gof", "Goodness of fit", gof_note + figures.get("gof.png", "") + figures.get("npde.png", "")
                     + figures.get("individual_fits.png", "")))
    vpc_note = h.kv_table(
        {
            "prediction corrected": vpc_info.get("prediction_corrected"),
            "stratified by": vpc_info.get("stratify"),
            "replicates": vpc_info.get("replicates"),
            "band level": vpc_info.get("level"),
            "coverage of observed percentiles (nominal = level)": vpc_info.get("coverage"),
            "coverage of observed BLQ fractions": vpc_info.get("blq_coverage"),
            f"bin edges, {vpc_info.get('time_unit') or 'time unit of the data'}": vpc_info.get("edges"),
        }
    )
    sections.append(
        (
            "vpc",
            "VPC",
            vpc_note + '<p class="muted">Censored values enter the percentiles at the LLOQ; a '
            "percentile below the bin's observed BLQ fraction is not shown.</p>" + figures.get("vpc.png", ""),
        )
    )

    if exposure_dir:
        exposure_dir = Path(exposure_dir)
    else:
        exposure_dir = fit_dir / "exposure" if (fit_dir / "exposure").is_dir() else None
    if exposure_dir is not None:
        sections.append(("exposure", "Exposure", _folder_section(exposure_dir)))
    if er_dir is not None:
        sections.append(("er", "Exposure-response", _folder_section(Path(er_dir))))
    if sim_dir is not None:
        sections.append(("scenario", "Dose scenario", _scenario_section(Path(sim_dir))))
    sections.append(("manifest", "Manifest", "<details><summary>manifest.json</summary>"
                     + h.pre(json.dumps(manifest, indent=2, default=str)) + "</details>"))

    banner = (
        "SIMULATED data: a virtual cohort, not trial data. No result here is a clinical finding." if simulated else None
    )
    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    title = f"carkin report: {fit.spec.model} fit ({fit_dir.name})" + (" - SIMULATED data" if simulated else "")
    return h.page(title, sections, banner=banner, subtitle=f"generated {created} from {fit_dir}")


def write_report(fit_dir: str | Path, out: str | Path, **options) -> Path:
    """Build the report (`build_report`, same options) and write it to ``out`` atomically.

    Returns
    -------
    Path of the written file.
    """
    out = Path(out)
    text = build_report(fit_dir, **options)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, text)
    return out
