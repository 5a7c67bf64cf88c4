"""The analysis figures of a virtual KarMMa-3 realisation, computed as the trial would (`carkin.survival`,
`carkin.exposure`), and their comparison with the published targets.

The figures come from the two tables a realisation writes (``patients``, ``ck``) plus, optionally, the
noiseless per-patient truth (for model-based exposures). Definitions:

- PFS medians and their 95% CI: Kaplan-Meier per arm (`carkin.survival.kaplan_meier`, log(-log) CI,
  Brookmeyer-Crowley interval of the median); PFS at 6 and 12 months from the same curves.
- Hazard ratio: Cox proportional hazards of ARM (ide-cel vs standard), stratified on age >= 65, prior
  regimens 3-4 and high-risk cytogenetics (`carkin.survival.cox_ph`, Efron ties), Wald 95% CI.
- Events: PFS events in both arms at the cut-off. Median follow-up: reverse Kaplan-Meier
  (`carkin.survival.median_followup`).
- ORR / CR-or-better: intention to treat (never-infused and not-evaluable count as non-responders).
- Exposure (ide-cel, infused): model-based Cmax = individual cmax, AUC0-28 = exact integral of the
  noiseless individual curve (`carkin.exposure`, closed form), Tmax = individual tmax; NCA versions from
  the observed samples by carkin's one NCA convention (`carkin.exposure.nca`: Cmax = highest quantified
  DV, Tmax = its first time; AUC0-28 linear-up/log-down from (0, 0), BLQ records before the first
  quantified one as 0 and later ones left out, the last interval cut at day 28; it stops at the last
  sample when sampling stopped before day 28). Responders: PR or better; non-responders: MR, SD or PD
  (not evaluable excluded). Ratios are of group medians.
- Observed HR per doubling of Cmax: Cox model of PFS from infusion on log2(true Cmax), burden per 10
  points and high-risk cytogenetics (infused patients). It differs from the direct (causal) HR of the
  config because the latent factor raises Cmax and lowers the hazard at once.
- Persistence: fraction of infused patients still in follow-up at 6 (12) months after infusion whose
  noiseless level is above the LLOQ.
- Safety (from the patients table's safety columns; NaN when it has none): CRS of any grade and of grade
  >= 3, tocilizumab and corticosteroids given, neurotoxicity of any grade and of grade >= 3, as fractions of
  the infused; median onset of CRS and of neurotoxicity (days after infusion) among those with one, and
  median duration among those whose episode ended by the cut-off.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .._karmma3 import (
    COMPLETE_OR_BETTER,
    DAYS_PER_MONTH,
    HIGH_BURDEN_PERCENT,
    NOT_EVALUABLE,
    PUBLISHED,
    RESPONDERS,
    STRATIFICATION_FACTORS,
)

__all__ = ["PUBLISHED", "SAFETY_FIGURES", "SHIPPED_TARGETS", "calibration_table", "summarize_karmma3"]

#: What the realisation is compared with: `carkin._karmma3.PUBLISHED` (figure -> value, source, 95% CI).
STRATA = list(STRATIFICATION_FACTORS)


def _within(name: str, points: float) -> tuple[float, float]:
    value = PUBLISHED[name].value
    return round(value - points, 10), round(value + points, 10)


def _relative(name: str, fraction: float) -> tuple[float, float]:
    value = PUBLISHED[name].value
    return value * (1 - fraction), value * (1 + fraction)


#: The acceptance rule of the shipped realisation: figure -> (low, high), inclusive. PFS, HR, ORR and
#: events: the published 95% CIs of the medians and HR, +/-5 points for PFS rates, +/-3 points for ORR,
#: published events +/- 15. Also the CK calibration targets (model-based, so they need the truth): the
#: responder / non-responder ratios within +/-25% of the published ratios, and the median dose +/- 10.
#: The safety figures (`SAFETY_FIGURES`) are not acceptance rules: they come from streams drawn after the
#: shipped seed was chosen, and their calibration is checked over seeds (the seed study, tests/cohorts), not
#: on one realisation (the module docs of `carkin.cohorts.karmma3`, "Safety and the marker", say why).
SHIPPED_TARGETS: dict[str, tuple[float, float]] = {
    "median_pfs_ide_cel": PUBLISHED["median_pfs_ide_cel"].ci,
    "median_pfs_standard": PUBLISHED["median_pfs_standard"].ci,
    "hazard_ratio": PUBLISHED["hazard_ratio"].ci,
    **{name: _within(name, 0.05) for name in ("pfs6_ide_cel", "pfs6_standard", "pfs12_ide_cel", "pfs12_standard")},
    **{name: _within(name, 0.03) for name in ("orr_ide_cel", "orr_standard")},
    "events": _within("events", 15.0),
    **{name: _relative(name, 0.25) for name in ("cmax_ratio_model", "auc28_ratio_model")},
    "dose_median": _within("dose_median", 10.0),
}


def _stratified_cox(patients: pd.DataFrame) -> tuple[float, float, float]:
    from ..survival import cox_ph

    df = patients[["PFS_MONTHS", "PFS_EVENT", *STRATA]].copy()
    df["IDE_CEL"] = (patients["ARM"] == "ide-cel").astype(float)
    row = cox_ph(df, time="PFS_MONTHS", event="PFS_EVENT", covariates="IDE_CEL", strata=STRATA)["IDE_CEL"]
    return row.hazard_ratio, row.hr_ci_low, row.hr_ci_high


def _ck_dataset(ck: pd.DataFrame):
    """The observation records of a CK table as a `carkin.data.Dataset` (padded per patient, time order)."""
    import jax.numpy as jnp

    from ..data import Dataset

    obs = ck[ck["EVID"] == 0].sort_values(["ID", "TIME"], kind="stable")
    ids, row = np.unique(obs["ID"].to_numpy(dtype=str), return_inverse=True)
    slot = obs.groupby("ID").cumcount().to_numpy()
    shape = (ids.size, int(slot.max()) + 1 if slot.size else 1)

    def padded(values, fill, dtype=float):
        out = np.full(shape, fill, dtype=dtype)
        out[row, slot] = values
        return jnp.asarray(out)

    return Dataset(
        patient_ids=tuple(str(i) for i in ids), times=padded(obs["TIME"], 0.0), dv=padded(obs["DV"], 1.0),
        blq=padded(obs["BLQ"] == 1, False, bool), lloq=padded(obs["LLOQ"], 1.0),
        obs_mask=padded(True, False, bool), source_rows=padded(0, 0, int), dose=jnp.zeros(ids.size),
        dose_time=jnp.zeros(ids.size), covariates=jnp.zeros((ids.size, 0)), covariate_names=(), source="<ck table>",
        simulated=True,
    )


def _nca(ck: pd.DataFrame) -> pd.DataFrame:
    """Per-patient NCA Cmax, Tmax, AUC0-28 (`carkin.exposure.nca`, its one convention; see the module docs)."""
    from ..exposure import nca

    table = nca(_ck_dataset(ck), window_days=28.0).set_index("ID")
    return pd.DataFrame({"CMAX": table["CMAX_OBS"], "TMAX": table["TMAX_OBS"], "AUC0_28": table["AUC_0_28_NCA"]})


def _exposure_cox(infused: pd.DataFrame, truth: pd.DataFrame) -> float:
    """HR per doubling of the true Cmax from a Cox model of PFS after infusion (infused patients),
    adjusted for marrow burden (per 10 points) and high-risk cytogenetics: what an E-R analysis that knew
    Cmax exactly would estimate (it includes the latent factor's share, unlike the direct HR)."""
    from ..survival import cox_ph

    cmax = truth.set_index("ID").loc[infused["ID"], "CMAX"].to_numpy()
    df = pd.DataFrame(
        {
            "T": infused["PFS_MONTHS"].to_numpy() - infused["INFUSION_DAY"].to_numpy(dtype=float) / DAYS_PER_MONTH,
            "E": infused["PFS_EVENT"].to_numpy(),
            "LOG2_CMAX": np.log2(cmax),
            "BURDEN_10": infused["TUMOR_BURDEN"].to_numpy() / 10.0,
            "HIGH_RISK_CYTO": infused["HIGH_RISK_CYTO"].to_numpy(),
        }
    )
    fitted = cox_ph(df, time="T", event="E", covariates=["LOG2_CMAX", "BURDEN_10", "HIGH_RISK_CYTO"])
    return fitted["LOG2_CMAX"].hazard_ratio


def _ratio(values: pd.Series, responder: pd.Series) -> float:
    r = values[responder].median()
    nr = values[~responder].median()
    return float(r / nr) if nr > 0 else math.nan


#: Safety figures of `summarize_karmma3`: name -> (column, statistic over the infused).
SAFETY_FIGURES: dict[str, tuple[str, str]] = {
    "crs_any": ("CRS_GRADE", "grade>=1"),
    "crs_grade3": ("CRS_GRADE", "grade>=3"),
    "tocilizumab": ("TOCI_DAY", "given"),
    "corticosteroids": ("STEROID_DAY", "given"),
    "nt_any": ("NT_GRADE", "grade>=1"),
    "nt_grade3": ("NT_GRADE", "grade>=3"),
    "crs_onset_median": ("CRS_ONSET_DAY", "median"),
    "crs_duration_median": ("CRS_DURATION_DAYS", "median"),
    "nt_onset_median": ("NT_ONSET_DAY", "median"),
    "nt_duration_median": ("NT_DURATION_DAYS", "median"),
}


def _safety(infused: pd.DataFrame) -> dict[str, float]:
    """The `SAFETY_FIGURES` of the infused (NaN where the table has no such column)."""
    out = {}
    for name, (column, stat) in SAFETY_FIGURES.items():
        if column not in infused.columns or infused.empty:
            out[name] = math.nan
            continue
        values = pd.to_numeric(infused[column], errors="coerce")
        if stat.startswith("grade>="):
            out[name] = float((values >= int(stat[-1])).mean())
        elif stat == "given":
            out[name] = float(values.notna().mean())
        else:
            out[name] = float(values.median()) if values.notna().any() else math.nan
    return out


def summarize_karmma3(
    patients: pd.DataFrame, ck: pd.DataFrame, truth: pd.DataFrame | None = None, *, lloq: float | None = None
) -> dict[str, float]:
    """The analysis figures of one realisation (see the module docstring for definitions).

    Parameters
    ----------
    patients, ck : DataFrame
        The tables of a realisation (``KarMMa3Cohort.patients`` / ``.ck``, or the CSV files read back with
        ``pd.read_csv(path, comment="#", na_values=".")``).
    truth : DataFrame, optional
        ``KarMMa3Cohort.truth`` (noiseless per-patient parameters); without it the model-based exposure
        and persistence figures are NaN.
    lloq : float, optional
        Assay LLOQ (copies/ug) for the persistence figures; default: the LLOQ column of ``ck``.

    Returns
    -------
    dict of figure name -> value (proportions as fractions, times in months, Tmax in days).
    """
    out: dict[str, float] = {}
    ide = patients["ARM"] == "ide-cel"
    out["n_randomised"] = float(len(patients))
    out["n_ide_cel"] = float(ide.sum())
    out["n_standard"] = float((~ide).sum())
    out["n_infused"] = float(patients["INFUSED"].sum())
    out["n_not_infused"] = float(ide.sum() - patients["INFUSED"].sum())
    from ..survival import kaplan_meier, median_followup

    km = kaplan_meier(patients, time="PFS_MONTHS", event="PFS_EVENT", group="ARM", groups=("ide-cel", "standard"))
    for arm, mask in (("ide_cel", ide), ("standard", ~ide)):
        sub = patients[mask]
        curve = km["ide-cel" if arm == "ide_cel" else "standard"]
        out[f"median_pfs_{arm}"] = curve.median
        out[f"median_pfs_{arm}_low"] = curve.median_ci_low
        out[f"median_pfs_{arm}_high"] = curve.median_ci_high
        surv = curve.survival_at([6.0, 12.0])[0]
        out[f"pfs6_{arm}"] = float(surv[0])
        out[f"pfs12_{arm}"] = float(surv[1])
        out[f"orr_{arm}"] = float(sub["BEST_RESPONSE"].isin(RESPONDERS).mean())
        out[f"cr_{arm}"] = float(sub["BEST_RESPONSE"].isin(COMPLETE_OR_BETTER).mean())
        out[f"events_{arm}"] = float(sub["PFS_EVENT"].sum())
        out[f"high_burden_{arm}"] = float((sub["TUMOR_BURDEN"] >= HIGH_BURDEN_PERCENT).mean())
        out[f"high_risk_{arm}"] = float(sub["HIGH_RISK_CYTO"].mean())
    out["hazard_ratio"], out["hazard_ratio_low"], out["hazard_ratio_high"] = _stratified_cox(patients)
    out["events"] = float(patients["PFS_EVENT"].sum())
    out["median_follow_up"] = median_followup(patients, time="PFS_MONTHS", event="PFS_EVENT").median
    infused = patients[patients["INFUSED"] == 1]
    out["dose_median"] = float(infused["DOSE"].median())
    out["dose_min"] = float(infused["DOSE"].min())
    out["dose_max"] = float(infused["DOSE"].max())
    out |= _safety(infused)

    obs = ck[ck["EVID"] == 0]
    out["n_ck_records"] = float(len(obs))
    out["blq_fraction"] = float(obs["BLQ"].mean())
    nca = _nca(ck)
    out["n_ck_evaluable"] = float(len(nca["CMAX"].dropna()))
    evaluable = infused[infused["BEST_RESPONSE"] != NOT_EVALUABLE].set_index("ID")
    responder = evaluable["BEST_RESPONSE"].isin(RESPONDERS)
    nca = nca.reindex(evaluable.index)
    has = nca["CMAX"].notna()
    out["tmax_median_nca"] = float(nca["TMAX"].median())
    out["cmax_ratio_nca"] = _ratio(nca["CMAX"][has], responder[has])
    out["auc28_ratio_nca"] = _ratio(nca["AUC0_28"][has], responder[has])
    if truth is not None:
        tr = truth.set_index("ID").reindex(evaluable.index)
        out["tmax_median_model"] = float(truth.set_index("ID").loc[infused["ID"], "TMAX"].median())
        out["cmax_ratio_model"] = _ratio(tr["CMAX"], responder)
        out["auc28_ratio_model"] = _ratio(tr["AUC0_28"], responder)
        out["hr_per_doubling_cmax_observed"] = _exposure_cox(infused, truth)
        lloq = float(ck["LLOQ"].dropna().iloc[0]) if lloq is None else lloq
        tr_all = truth.set_index("ID").loc[infused["ID"]]
        follow = infused["PFS_MONTHS"].to_numpy() - infused["INFUSION_DAY"].to_numpy(dtype=float) / DAYS_PER_MONTH
        for months in (6, 12):
            at_risk = follow >= months
            level = tr_all[f"CONC_M{months}"].to_numpy()[at_risk]
            out[f"persistence_{months}m"] = float(np.mean(level > lloq)) if at_risk.any() else math.nan
    else:
        for name in (
            "tmax_median_model",
            "cmax_ratio_model",
            "auc28_ratio_model",
            "persistence_6m",
            "persistence_12m",
            "hr_per_doubling_cmax_observed",
        ):
            out[name] = math.nan
    return out


def calibration_table(summary: dict[str, float]) -> pd.DataFrame:
    """Target vs realisation, one row per published figure.

    Returns
    -------
    DataFrame with columns ``figure``, ``published``, ``source``, ``simulated``, ``shipped_rule``
    (the acceptance interval of the shipped realisation, or empty) and ``ok`` (True/False, or None
    where there is no rule).
    """
    rows = []
    for name, (value, source, _) in PUBLISHED.items():
        rule = SHIPPED_TARGETS.get(name)
        sim = summary.get(name, math.nan)
        rows.append(
            {
                "figure": name,
                "published": value,
                "source": source,
                "simulated": sim,
                "shipped_rule": "" if rule is None else f"[{rule[0]:g}, {rule[1]:g}]",
                "ok": None if rule is None else bool(rule[0] <= sim <= rule[1]),
            }
        )
    return pd.DataFrame(rows)


def meets_shipped_targets(summary: dict[str, float]) -> dict[str, bool]:
    """figure -> whether the realisation meets its shipped acceptance interval (False where NaN, e.g. a
    model-based figure computed without the truth table)."""
    return {k: bool(lo <= summary.get(k, math.nan) <= hi) for k, (lo, hi) in SHIPPED_TARGETS.items()}
