"""The README.md written next to a virtual KarMMa-3 realisation."""

from __future__ import annotations

import json
import math
from importlib import resources

from .. import __version__
from ._summary import calibration_table

#: The seed study's summary, written by ``benchmarks/cohort_seeds.py`` (package data).
SEED_STUDY = "karmma3_seed_study.json"

_PATIENT_COLUMNS = """\
| column | meaning |
|---|---|
| ID | patient identifier, K3-0001 ... in order of randomisation |
| ARM | `ide-cel` or `standard` (standard regimens) |
| AGE_GE65 | 1 if aged >= 65 years (stratification factor) |
| PRIOR_REGIMENS_3_4 | 1 if 3-4 prior regimens, 0 if 2 (stratification factor) |
| HIGH_RISK_CYTO | 1 if high-risk cytogenetics (stratification factor) |
| INFUSED | 1 if ide-cel was infused; 0 for the never-infused and for the standard arm |
| DOSE | infused dose, 10^6 CAR+ T cells (`.` if not infused) |
| TUMOR_BURDEN | bone-marrow plasma cells at baseline, % |
| PFS_MONTHS | progression-free survival from randomisation, months (30.4375 days), to event or censoring |
| PFS_EVENT | 1 progression or death, 0 censored (data cut-off or other censoring) |
| BEST_RESPONSE | sCR, CR, VGPR, PR, MR, SD, PD or NE (not evaluable / never infused) |
| ENTRY_MONTHS | randomisation time, months from the start of accrual |
| INFUSION_DAY | days from randomisation to infusion (`.` if not infused) |
| CRS | 1 if cytokine release syndrome (any grade) began by the data cut-off, 0 if not (`.` if not infused) |
| CRS_GRADE | maximal CRS grade, 0 (none) to 4 (`.` if not infused) |
| CRS_ONSET_DAY | CRS onset, whole days after infusion (`.` if none) |
| CRS_DURATION_DAYS | CRS duration, days (`.` if none, or still going on at the data cut-off) |
| TOCI_DAY | first tocilizumab, whole days after infusion (`.` = never given by the cut-off); an event-time column |
| STEROID_DAY | first corticosteroid (for CRS or neurotoxicity), whole days after infusion (`.` = never given by the cut-off) |
| NT | 1 if investigator-identified neurotoxicity (any grade) began by the cut-off, 0 if not (`.` if not infused) |
| NT_GRADE | maximal neurotoxicity grade, 0 (none) to 4 (`.` if not infused) |
| NT_ONSET_DAY | neurotoxicity onset, whole days after infusion (`.` if none) |
| NT_DURATION_DAYS | neurotoxicity duration, days (`.` if none, or still going on at the cut-off) |
| SIMULATED | 1 on every row: these are simulated patients |
"""  # noqa: E501 (markdown table rows of the written README cannot wrap)

_MARKER_COLUMNS = """\
| column | meaning |
|---|---|
| ID | patient identifier (infused patients only, the IDs of `ck.csv`) |
| TIME | days from infusion (0 = baseline, at infusion) |
| DV | serum M-protein, g/dL (linear scale); on a BLQ row it holds the LLOQ |
| EVID | 0 on every row (observations only; the dose records are in `ck.csv`) |
| MDV | 0 on every row |
| DVID | 2 on every row: the analyte code of serum M-protein (the transgene of `ck.csv` is DVID 1) |
| BLQ | 1 if below the limit of quantification (censored), 0 if quantified |
| LLOQ | the SPEP LLOQ, g/dL, on every row |
"""

_CK_COLUMNS = """\
| column | meaning |
|---|---|
| ID | patient identifier (infused patients only) |
| TIME | days from infusion |
| DV | transgene copies per ug genomic DNA (linear scale); on a BLQ row it holds the LLOQ; `.` on the dose row |
| EVID | 1 dose record, 0 observation |
| AMT | dose, 10^6 CAR+ T cells, on the dose row |
| MDV | 1 on the dose row, 0 on observations (BLQ rows included: they carry information) |
| BLQ | 1 if below the limit of quantification (censored), 0 if quantified; `.` on the dose row |
| LLOQ | the assay LLOQ, copies/ug, on every observation row |
"""


def _fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if abs(value) < 1 and value != 0:
        return f"{value:.3f}"
    return f"{value:.4g}"


def _seed_study_lines(seed: int | None) -> list[str]:
    """The section on how the shipped seed was chosen and how typical a realisation is (seed study)."""
    path = resources.files("carkin") / "_data" / SEED_STUDY
    lines = ["## How the shipped seed was chosen, and how typical one realisation is", ""]
    if not path.is_file():
        return lines + ["No seed study is recorded (`python benchmarks/cohort_seeds.py` writes one).", ""]
    study = json.loads(path.read_text(encoding="utf-8"))
    lo, hi = study["seeds"]
    if seed is None:
        where = "This realisation was drawn from a key, not an integer seed."
    elif not lo <= seed <= hi:
        where = f"This realisation (seed {seed}) is outside the seeds studied."
    elif seed in study["passing_seeds"]:
        where = f"This realisation (seed {seed}) is one of the passing seeds."
    else:
        where = f"This realisation (seed {seed}) does not meet every rule (the calibration table above says which)."
    return lines + [
        (
            "The shipped realisation (`carkin/_data/karmma3_sim`) is one seed: the first from 0 upward whose "
            "realisation meets every acceptance rule (the `rule` column above; "
            "`carkin cohort karmma3 --seed 0 --first-passing`). That it passes is a property of the "
            "seed; the tests on the shipped files are regression checks of it. The evidence that the generator "
            f"reproduces the trial is the seed study below (seeds {lo}-{hi}; per-seed values in "
            f"`{study['results_csv']}`). {where}"
        ),
        "",
        study["markdown"].rstrip("\n"),
        "",
    ]


def render_readme(cohort) -> str:
    """The README text of a realisation (``KarMMa3Cohort``)."""
    cfg = cohort.config
    s = cohort.summary()
    table = calibration_table(s)
    seed = cohort.seed
    regen = (
        f"carkin cohort karmma3 --seed {seed} --out DIR"
        if seed is not None
        else "carkin.cohorts.simulate_karmma3(key) with the key above"
    )
    direct = math.exp(cfg.exposure.log_hr_per_doubling_cmax)
    lines = [
        "# SIMULATED virtual KarMMa-3 cohort (not trial data)",
        "",
        "**These patients do not exist.** This folder holds one realisation of carkin's virtual",
        "KarMMa-3-like trial: 386 simulated patients randomised 2:1 to ide-cel or standard regimens, drawn",
        "from published summary figures of KarMMa-3 (Rodriguez-Otero et al., N Engl J Med 2023;388:1002-14,",
        "doi:10.1056/NEJMoa2213614) and published CAR-T kinetic models (Stein et al., CPT Pharmacometrics Syst",
        "Pharmacol 2019;8:285-95, doi:10.1002/psp4.12388), plus assumptions. Use it to exercise and test",
        "analyses, never as evidence about ide-cel. Every CSV starts with a `# SIMULATED data` comment line and",
        "has `SIMULATED = 1` (patients) on every row. The source of every number (published, derived,",
        "calibrated or assumed), with full citations, is in `docs/references.md` of the carkin repository;",
        "the `source` column below cites its keys.",
        "",
        "## Provenance",
        f"- generator: `carkin.cohorts.simulate_karmma3` (carkin {__version__})",
        f"- seed: {seed if seed is not None else 'n/a'} (key data {list(cohort.key_data)}; float64)",
        f"- assumptions: `models/karmma3_cohort.toml` (sha256 `{cfg.sha256 or 'n/a (modified in memory)'}`)",
        f"- regenerate: `{regen}`",
        "",
        "## Files",
        f"- `patients.csv`: one row per randomised patient ({len(cohort.patients)} rows), all arms.",
        (
            f"- `ck.csv`: CK records of the {int(cohort.patients['INFUSED'].sum())} infused patients only, in the "
            "carkin CK format (one dose row, then observations)."
        ),
        (
            f"- `markers.csv`: serum M-protein (the tumour marker) of the infused patients, {len(cohort.markers)} "
            "observations in NONMEM format with DVID = 2. `ck.csv` has no DVID column (one analyte, what the "
            "shipped multiphasic model expects); for a two-analyte fit join the two files, the transgene "
            "observations taking DVID = 1 (`KarMMa3Cohort.two_analyte_records()` does it), and load them with a "
            "model that declares both analytes (`[analytes.<name>]`, `dvid = 1` and `dvid = 2`)."
        ),
        "",
        "### patients.csv",
        _PATIENT_COLUMNS,
        "### ck.csv",
        _CK_COLUMNS,
        "### markers.csv",
        _MARKER_COLUMNS,
        "## How it was generated (summary; the module docs of `carkin.cohorts.karmma3` give every assumption)",
        (
            "- Accrual over the first "
            f"{cfg.trial.accrual_months:g} months, data cut-off at month {cfg.trial.cutoff_months:g}; administrative "
            f"censoring at the cut-off plus other censoring at {cfg.trial.dropout_per_month:g}/month from the start "
            "of treatment."
        ),
        (
            f"- Exactly {cfg.trial.n_not_infused} ide-cel patients are never infused (first those randomised too "
            "late to be infused before the cut-off, then a draw favouring a worse prognosis); they stay in the ITT "
            "analysis with a high early hazard. The infused are event-free until infusion "
            f"(bridging median {cfg.infusion.bridging_median_days:g} days)."
        ),
        (
            "- CK: multiphasic model (Stein 2019 form: exponential expansion to Tmax, then bi-exponential "
            "decline; `carkin.models.Multiphasic`), log-normal individual parameters (logit-normal fb), log Cmax "
            "raised by a latent patient factor, marrow burden and (weakly) dose; log-scale residual error SD "
            f"{cfg.ck.residual_sd:g}; single assay LLOQ {cfg.ck.lloq:g} copies/ug. Typical Tmax "
            f"{cfg.ck.tmax_typical:g} days (ide-cel, published); typical Cmax {cfg.ck.cmax_typical:,.0f} copies/ug is "
            "the tisagenlecleucel paediatric B-ALL value of Stein 2019, an order-of-magnitude anchor (no ide-cel "
            "value was found), so absolute levels are not ide-cel's."
        ),
        (
            "- CK samples on the KarMMa-3 schedule relative to infusion (days 3, 5, 8, 10, 12, 15, 18, 22; months "
            "2, 3, 4; every 3 months from month 7 to 25; every 6 months after), months converted to whole days "
            f"({cfg.trial.days_per_month:g} d/month). **The predose sample is omitted** (the data layer rejects "
            "observations before the dose). Sampling stops at progression or death, at other censoring, and at "
            f"the data cut-off; {cfg.ck.missing_sample_prob:.0%} of samples are missed at random."
        ),
        (
            "- PFS: piecewise-constant baseline hazards (standard arm and never-infused from randomisation; "
            "infused from infusion) times exp(linear predictor): marrow burden, high-risk cytogenetics, prior "
            "regimens, age, a log-normal frailty, and for the infused log2(Cmax) and the latent factor."
        ),
        (
            "- Best response: a score (minus the log-hazard predictor plus noise) cut at calibrated thresholds; "
            "an event within the first month of treatment gives PD, shorter follow-up without event NE."
        ),
        (
            "- Safety (infused): maximal CRS grade from a proportional-odds model on log2 of the true Cmax and "
            "marrow burden, calibrated to CRS in 88% and grade >= 3 in 5%; neurotoxicity likewise on log2 Cmax "
            "and the CRS grade (15%, grade >= 3 3%); onsets and durations log-normal in whole days; tocilizumab "
            "for CRS by grade (72% of the infused), corticosteroids for CRS after tocilizumab or for "
            "neurotoxicity (28%). Events after the data cut-off are not recorded. **Tocilizumab and "
            "corticosteroids have no effect on the simulated kinetics**: a fitted co-medication effect "
            "should come out near zero."
        ),
        (
            "- Tumour marker (infused): serum M-protein, baseline rising with marrow burden, falling with the "
            f"half-life of IgG ({cfg.marker.decline_half_life_days:g} days) to a nadir in the IMWG band of the "
            "best response (CR: undetectable, VGPR >= 90% down, PR >= 50%, MR >= 25%), and at a PFS event "
            "regrowing so that it meets the IMWG progression criterion (>= 25% and >= 0.5 g/dL above the "
            f"nadir); monthly assessments, LLOQ {cfg.marker.lloq_g_dl:g} g/dL."
        ),
        "",
        "## True exposure effect (for checking exposure-response methods)",
        (
            f"- Direct (causal) effect of Cmax on the post-infusion PFS hazard: log HR per doubling "
            f"{cfg.exposure.log_hr_per_doubling_cmax:g}, **HR per doubling of Cmax = {direct:.3f}**, conditional on "
            "the latent factor, burden, cytogenetics and frailty."
        ),
        (
            f"- The latent factor also lowers the hazard (log HR {cfg.exposure.log_hr_latent:g} per SD) and raises "
            f"log Cmax ({cfg.ck.latent_log_cmax:g} per SD), so an analysis of the observed association "
            "(Cox of PFS from infusion on log2 of the true Cmax, burden and cytogenetics) estimates a stronger "
            f"effect: in this realisation HR per doubling = {_fmt(s['hr_per_doubling_cmax_observed'])}."
        ),
        "",
        "## True exposure-safety effect (for checking exposure-safety methods)",
        (
            f"- CRS: proportional-odds log OR per doubling of the true Cmax {cfg.crs.log_or_per_doubling_cmax:g} "
            f"(**OR {math.exp(cfg.crs.log_or_per_doubling_cmax):.2f} per doubling**), adjusted for marrow burden "
            f"(log OR {cfg.crs.log_or_burden:g} per {cfg.tumor_burden.per_percent:g} points). Neurotoxicity: log OR "
            f"{cfg.neurotoxicity.log_or_per_doubling_cmax:g} per doubling of Cmax given the CRS grade (log OR "
            f"{cfg.neurotoxicity.log_or_per_crs_grade:g} per grade). Both are assumptions, not published estimates."
        ),
        "",
        "## Calibration: published figure vs this realisation",
        (
            "Analysis as in the trial (lifelines): KM medians with 95% CI, stratified Cox HR (strata: age >= 65, "
            "prior regimens, high-risk cytogenetics), ITT response rates, reverse-KM follow-up. Exposure ratios "
            "are responder (PR or better) vs non-responder (MR/SD/PD) medians among the infused, from the "
            "noiseless model curve (NCA values in the second table). `rule` is the acceptance interval the shipped "
            "realisation had to meet (the safety figures have none: their calibration is checked over seeds). "
            "Proportions are fractions (safety: of the infused), times months (Tmax, onsets and durations days)."
        ),
        "",
        "| figure | published | simulated | rule | ok | source |",
        "|---|---|---|---|---|---|",
    ]
    for row in table.itertuples():
        ok = "" if row.ok is None else ("yes" if row.ok else "NO")
        lines.append(
            f"| {row.figure} | {row.published:g} | {_fmt(row.simulated)} | {row.shipped_rule} | {ok} | {row.source} |"
        )
    lines += [
        "",
        "| other figure | this realisation |",
        "|---|---|",
        (
            f"| median PFS ide-cel, 95% CI | {_fmt(s['median_pfs_ide_cel'])} ({_fmt(s['median_pfs_ide_cel_low'])}-"
            f"{_fmt(s['median_pfs_ide_cel_high'])}) |"
        ),
        (
            f"| median PFS standard, 95% CI | {_fmt(s['median_pfs_standard'])} ({_fmt(s['median_pfs_standard_low'])}-"
            f"{_fmt(s['median_pfs_standard_high'])}) |"
        ),
        (
            f"| hazard ratio, 95% CI | {_fmt(s['hazard_ratio'])} ({_fmt(s['hazard_ratio_low'])}-"
            f"{_fmt(s['hazard_ratio_high'])}) |"
        ),
        f"| events ide-cel / standard | {s['events_ide_cel']:.0f} / {s['events_standard']:.0f} |",
        f"| dose median (range), 10^6 cells | {s['dose_median']:g} ({s['dose_min']:g}-{s['dose_max']:g}) |",
        f"| CK records / BLQ fraction | {s['n_ck_records']:.0f} / {_fmt(s['blq_fraction'])} |",
        f"| CK-evaluable (>= 1 quantified sample) / infused | {s['n_ck_evaluable']:.0f} / {s['n_infused']:.0f} |",
        f"| M-protein records / BLQ fraction | {len(cohort.markers)} / {_fmt(float(cohort.markers['BLQ'].mean()))} |",
        f"| median Tmax, NCA (days) | {_fmt(s['tmax_median_nca'])} |",
        f"| Cmax ratio / AUC0-28 ratio, NCA | {_fmt(s['cmax_ratio_nca'])} / {_fmt(s['auc28_ratio_nca'])} |",
        "",
        *_seed_study_lines(seed),
    ]
    return "\n".join(lines)
