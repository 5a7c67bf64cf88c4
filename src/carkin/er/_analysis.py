"""`analyze_exposure_response`: PFS by exposure, one entry point with a dispatch table of methods.

=============  =======================================================================================
method         exposure-effect estimate reported as ``hr_per_doubling``
=============  =======================================================================================
``plugin``     Cox PH on the plug-in (posterior-median) log2 exposure, adjusted (lifelines)
``two-stage``  Bayesian PH integrated over M CK posterior exposure draws (cut posterior; `two_stage`)
``joint``      Bayesian PH fitted jointly with the population CK model in one NUTS run (`joint_ph`)
=============  =======================================================================================

Every method also runs the plug-in analysis (KM by quartile, log-rank trend, Cox on log2 exposure and on
quartiles); the Bayesian methods add the plug-in Bayesian PH (same model, exposure fixed) so that the width
of their interval is compared with a like-for-like plug-in interval (``width_ratio``) and with the Cox
interval (``width_ratio_vs_cox``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Literal

import jax
import numpy as np
import pandas as pd

from ..data import SIMULATED_NOTE, DataTable
from ..exposure import ExposureQuartiles, Metric, PosteriorExposure, exposure_quartiles, quartile_by_dose
from ..inference import Gates, SamplerSettings
from ..survival._result import json_float
from ._analysis_set import TUMOR_BURDEN, ERData, er_analysis_set
from ._bayes import BayesianPH, reliability, two_stage
from ._joint import joint_ph
from ._plugin import EXPOSURE_COLUMN, PluginAnalysis, plugin_analysis, quartile_counts

__all__ = ["ERAnalysis", "analyze_exposure_response", "METHODS"]

Method = Literal["plugin", "two-stage", "joint"]
METHODS: tuple[str, ...] = ("plugin", "two-stage", "joint")


@dataclasses.dataclass(frozen=True, eq=False)
class ERAnalysis:
    """Result of `analyze_exposure_response`.

    Attributes
    ----------
    data : ERData
        The analysis set with its exclusions and counts.
    quartiles : ExposureQuartiles
        Of the analysed patients, with membership probabilities.
    plugin : PluginAnalysis
    bayes : BayesianPH or None
        The method's result (None for ``plugin``).
    plugin_bayes : BayesianPH or None
        The plug-in Bayesian PH (Bayesian methods only).
    method, level, seed, simulated, reliability
        ``reliability``: Var(E[x | CK]) / Var(x) of the analysed log2 exposures (1 = exposure known).
    """

    data: ERData
    quartiles: ExposureQuartiles
    plugin: PluginAnalysis
    bayes: BayesianPH | None
    plugin_bayes: BayesianPH | None
    method: str
    level: float
    seed: int
    simulated: bool
    reliability: float
    exposure_method: str
    fit_method: str

    @property
    def hr_per_doubling(self):
        """(hr, ci_low, ci_high) of the method: Cox for ``plugin``, posterior median and CrI otherwise."""
        if self.bayes is None:
            c = self.plugin.hr_per_doubling
            return c.hazard_ratio, c.hr_ci_low, c.hr_ci_high
        h = self.bayes.hr_per_doubling
        return h.hr, h.ci_low, h.ci_high

    def width_ratios(self) -> tuple[float | None, float | None]:
        """(method / plug-in Bayesian, method / plug-in Cox) widths of the log-HR interval; None for plugin."""
        if self.bayes is None:
            return None, None
        cox = self.plugin.hr_per_doubling
        cox_width = np.log(cox.hr_ci_high) - np.log(cox.hr_ci_low)
        like = self.bayes.hr_per_doubling.log_width / self.plugin_bayes.hr_per_doubling.log_width
        return float(like), float(self.bayes.hr_per_doubling.log_width / cox_width)

    def to_dict(self) -> dict[str, Any]:
        """Results under stable keys (the ``carkin er --json`` schema); ``None`` = not reached / not estimable."""
        d = self.data
        hr, low, high = self.hr_per_doubling
        cox = self.plugin.hr_per_doubling
        unadjusted = self.plugin.cox_unadjusted[EXPOSURE_COLUMN]
        km = {c.label: c for c in self.plugin.km.curves}
        labels = [f"Q{k}" for k in range(1, self.quartiles.n_groups + 1)]
        if self.bayes is None:
            quartile_hr = _cox_quartile_hr(self.plugin)
        else:
            quartile_hr = {k: v.to_dict() for k, v in self.bayes.quartile_hr.items()}
        like, vs_cox = self.width_ratios()
        out: dict[str, Any] = {
            "analysis": "exposure-response: PFS by exposure",
            "simulated": self.simulated,
            "simulated_note": SIMULATED_NOTE if self.simulated else None,
            "metric": d.metric.name,
            "metric_label": d.metric.label,
            "metric_unit": d.metric.unit,
            "method": self.method,
            "interval": self.level,
            "landmark_days": d.landmark_days,
            "time_origin": f"landmark, day {d.landmark_days:g} after infusion",
            "time_unit": "months",
            "adjusted_for": list(d.covariate_names),
            "hr_per_doubling": json_float(hr),
            "hr_ci_low": json_float(low),
            "hr_ci_high": json_float(high),
            "trend_p": json_float(self.plugin.trend.p_value),
            "trend_z": json_float(self.plugin.trend.z),
            "median_pfs_by_quartile": {q: json_float(km[q].median) if q in km else None for q in labels},
            "median_pfs_ci_by_quartile": {
                q: [json_float(km[q].median_ci_low), json_float(km[q].median_ci_high)] if q in km else None
                for q in labels
            },
            "quartile_counts": quartile_counts(self.plugin.frame),
            "quartile_hr": quartile_hr,
            "quartile_cut_points": {
                "plug_in": [float(v) for v in self.quartiles.plug_in_cuts],
                "q05": [float(v) for v in np.quantile(self.quartiles.cut_draws, 0.05, axis=0)],
                "q95": [float(v) for v in np.quantile(self.quartiles.cut_draws, 0.95, axis=0)],
            },
            "quartile_misclassification": self.quartiles.misclassification(),
            "exposure_reliability": json_float(self.reliability),
            "counts": dict(d.counts),
            "excluded": {k: list(v) for k, v in d.exclusions.items()},
            "plugin": {
                "hr_per_doubling": json_float(cox.hazard_ratio),
                "hr_ci_low": json_float(cox.hr_ci_low),
                "hr_ci_high": json_float(cox.hr_ci_high),
                "p_value": json_float(cox.p_value),
                "unadjusted": {
                    "hr_per_doubling": json_float(unadjusted.hazard_ratio),
                    "hr_ci_low": json_float(unadjusted.hr_ci_low),
                    "hr_ci_high": json_float(unadjusted.hr_ci_high),
                    "p_value": json_float(unadjusted.p_value),
                },
                "quartile_hr": _cox_quartile_hr(self.plugin),
                "covariates": {
                    c.name: {"hr": json_float(c.hazard_ratio), "ci_low": json_float(c.hr_ci_low),
                             "ci_high": json_float(c.hr_ci_high)}
                    for c in self.plugin.cox.coefficients if c.name != EXPOSURE_COLUMN
                },
                "concordance": json_float(self.plugin.cox.concordance),
            },
            "bayes": None if self.bayes is None else self.bayes.to_dict(),
            "plugin_bayes": None if self.plugin_bayes is None else self.plugin_bayes.to_dict(),
            "width_ratio": like,
            "width_ratio_vs_cox": vs_cox,
            "seed": self.seed,
            "exposure": {"method": self.exposure_method, "fit_method": self.fit_method,
                         "plug_in": "posterior median per patient", "draws": int(d.log2_draws.shape[0])},
            "notes": list(d.notes) + list(self.plugin.notes),
            "warnings": list(d.warnings),
        }
        return out

    def tables(self) -> dict[str, pd.DataFrame]:
        """The tables ``carkin er`` writes: analysis set, exclusions, Cox coefficients, quartiles, dose."""
        d = self.data
        analysis = self.plugin.frame.drop(columns=["QUARTILE_LABEL"])
        analysis = analysis.merge(self.quartiles.membership().drop(columns=["metric"]), on="ID")
        excluded = pd.DataFrame(
            [(pid, reason) for reason, ids in d.exclusions.items() for pid in ids], columns=["ID", "reason"]
        )
        out = {
            "analysis_set": analysis,
            "excluded": excluded,
            "hazard_ratios": self.hazard_ratio_table(),
            "quartile_cuts": self.quartiles.cut_points(),
        }
        if d.dose is not None:
            out["quartile_by_dose"] = quartile_by_dose(self.quartiles, d.dose)
        return out

    def hazard_ratio_table(self) -> pd.DataFrame:
        """Every hazard ratio of the analysis: model, term, HR, interval (the forest plot's rows)."""
        rows = []
        for model, result in (("Cox, adjusted (primary plug-in)", self.plugin.cox),
                              ("Cox, unadjusted", self.plugin.cox_unadjusted),
                              ("Cox on quartiles, adjusted (descriptive)", self.plugin.cox_quartiles)):
            if result is None:
                continue
            for c in result.coefficients:
                rows.append({"model": model, "term": _term(c.name), "hr": c.hazard_ratio, "ci_low": c.hr_ci_low,
                             "ci_high": c.hr_ci_high, "p_value": c.p_value})
        for result in (self.plugin_bayes, self.bayes):
            if result is None:
                continue
            h = result.hr_per_doubling
            rows.append({"model": f"Bayesian PH, {result.method}", "term": "log2 exposure (per doubling)", "hr": h.hr,
                         "ci_low": h.ci_low, "ci_high": h.ci_high, "p_value": np.nan})
            for name, h in result.quartile_hr.items():
                rows.append({"model": f"Bayesian PH, {result.method}", "term": f"{name} vs Q1 (model-based)",
                             "hr": h.hr, "ci_low": h.ci_low, "ci_high": h.ci_high, "p_value": np.nan})
        table = pd.DataFrame(rows, columns=["model", "term", "hr", "ci_low", "ci_high", "p_value"])
        table["level"] = self.level
        return table


def _term(name: str) -> str:
    if name == EXPOSURE_COLUMN:
        return "log2 exposure (per doubling)"
    if name in ("Q2", "Q3", "Q4"):
        return f"{name} vs Q1"
    return name


def _cox_quartile_hr(plugin: PluginAnalysis) -> dict[str, dict]:
    if plugin.cox_quartiles is None:
        return {}
    out = {}
    for c in plugin.cox_quartiles.coefficients:
        if c.name.startswith("Q"):
            out[c.name] = {"hr": json_float(c.hazard_ratio), "ci_low": json_float(c.hr_ci_low),
                           "ci_high": json_float(c.hr_ci_high)}
    return out


def analyze_exposure_response(
    exposure: PosteriorExposure,
    patients: pd.DataFrame | DataTable,
    *,
    metric: str | Metric = "cmax",
    method: Method = "plugin",
    landmark_days: float | None = None,
    fit=None,
    dataset=None,
    adjust: Sequence[str] = (),
    burden: str = TUMOR_BURDEN,
    level: float = 0.9,
    seed: int = 0,
    baseline: str = "piecewise",
    pieces: int = 5,
    n_exposure_draws: int | None = None,
    scheme: str = "resample",
    settings: SamplerSettings | None = None,
    exposure_prior_sd: float = 1.0,
    gates: Gates | None = None,
    source: str | None = None,
    rows: Mapping[Hashable, int] | None = None,
    **columns,
) -> ERAnalysis:
    """PFS by exposure: KM by quartile, trend test, Cox, and a Bayesian PH with the CK uncertainty carried through.

    Main arguments
    --------------
    exposure : carkin.exposure.PosteriorExposure
        Exposure draws of the CK-evaluable patients (`carkin.exposure.posterior_exposures`).
    patients : carkin.data.DataTable or pandas.DataFrame
        One row per randomised patient (see `er_analysis_set` for the columns).
    metric : str or Metric
        Exposure metric (default ``"cmax"``); analysed as log2 (HR per doubling).
    method : {"plugin", "two-stage", "joint"}
        See the module docstring. ``"joint"`` needs ``fit`` and ``dataset``.
    landmark_days : float, optional
        Start of follow-up, days after infusion; default the end of the metric's window (28 for Cmax).

    Other arguments
    ---------------
    fit, dataset
        The CK fit and its data (``joint`` only).
    adjust : sequence of str
        Columns of ``patients`` adjusted for (none by default; e.g. ``["TUMOR_BURDEN"]``, the first
        confounder to consider); ``burden`` names the tumour-burden column, entered per 10 units. See
        `er_analysis_set`; ``adjusted_for`` in the results lists what was used.
    level : float
        Level of every interval (default 0.9).
    seed : int
        Seed of the ``jax.random.key`` of the Bayesian methods (recorded in the result).
    baseline : {"piecewise", "weibull"}
    pieces, n_exposure_draws, scheme, settings, exposure_prior_sd, gates
        Bayesian PH options (see `carkin.er.two_stage`; ``scheme`` "resample" or "cut"). The Bayesian fits
        record the convergence gate's verdict in ``bayes.diagnostics`` / ``plugin_bayes.diagnostics``
        (``passed``, ``failures``; JSON keys of the same names) and warn when they fail.
    source, rows
        File name and line mapping of ``patients`` for error messages (default: a DataTable's own).
    **columns
        ``time``, ``event``, ``infusion_day``, ``days_per_time_unit`` of `er_analysis_set`.

    Returns
    -------
    ERAnalysis

    Raises
    ------
    ValueError
        Unknown method or level outside (0, 1); ``joint`` without ``fit``/``dataset``; ``two-stage`` on a
        single-draw (MAP) fit.
    carkin.errors.DataError
        Problems in the patients table.
    """
    if method not in _RUNNERS:
        raise ValueError(
            f"method={method!r} ({type(method).__name__}) is not valid; choose one of {', '.join(METHODS)}"
        )
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    if method == "joint" and (fit is None or dataset is None):
        raise ValueError("method='joint' needs the CK fit and its data: pass fit= and dataset= "
                         "(carkin.exposure.load_fit_dataset(fit_dir))")
    data = er_analysis_set(
        exposure, patients, metric=metric, landmark_days=landmark_days, adjust=adjust, burden=burden,
        source=source, rows=rows, **columns,
    )
    quartiles = exposure_quartiles(2.0 ** data.log2_draws, patient_ids=data.ids, metric=data.metric.name)
    plugin = plugin_analysis(data, quartiles, level=level)
    options = dict(baseline=baseline, pieces=pieces, settings=settings, exposure_prior_sd=exposure_prior_sd,
                   level=level, seed=seed, n_draws=n_exposure_draws, scheme=scheme, fit=fit, dataset=dataset,
                   gates=gates)
    bayes, plugin_bayes = _RUNNERS[method](data, jax.random.key(seed), options)
    return ERAnalysis(
        data=data, quartiles=quartiles, plugin=plugin, bayes=bayes, plugin_bayes=plugin_bayes, method=method,
        level=level, seed=seed, simulated=data.simulated, reliability=reliability(data.log2_draws),
        exposure_method=exposure.method, fit_method=exposure.fit_method,
    )


def _run_plugin(data, key, options):
    return None, None


def _run_two_stage(data, key, options):
    o = {k: options[k] for k in ("baseline", "pieces", "settings", "exposure_prior_sd", "level", "seed", "n_draws",
                                 "scheme", "gates")}
    return two_stage(data, key=key, **o)


def _run_joint(data, key, options):
    joint_key, plug_key = jax.random.split(key)
    o = {k: options[k] for k in ("baseline", "pieces", "settings", "exposure_prior_sd", "level", "seed", "gates")}
    joint = joint_ph(options["fit"], options["dataset"], data, key=joint_key, **o)
    _, plug_in = two_stage(data, key=plug_key, n_draws=0, **o)
    return joint, plug_in


_RUNNERS = {"plugin": _run_plugin, "two-stage": _run_two_stage, "joint": _run_joint}
