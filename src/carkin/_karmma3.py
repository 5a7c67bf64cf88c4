"""KarMMa-3 in one place: the trial's design constants and published figures.

KarMMa-3 (NCT03651128) randomised relapsed and refractory multiple myeloma 2:1 to idecabtagene vicleucel
(ide-cel) or a standard regimen. Source of every figure: Rodriguez-Otero P, et al. Ide-cel or standard
regimens in relapsed and refractory multiple myeloma. N Engl J Med 2023;388:1002-14 ([RodriguezOtero2023] in
``docs/references.md``), except the cellular-kinetic targets, which come from the ide-cel label and the KarMMa
analyses ([USPI], [Munshi2021]; each figure's source is in `PUBLISHED`).

Who uses what:

- `carkin.survival.analyze_trial` (the primary analysis): the arms, the stratification factors, the
  response categories and which of them count as response;
- `carkin.exposure` (month-based metrics, ``c_m6``) and `carkin.er` (time from infusion): the days per
  month of the trial's time columns;
- `carkin.cohorts` (the virtual KarMMa-3 cohort): its columns, and the published figures it is calibrated
  to and compared with (`PUBLISHED`);
- `carkin.demo`: the factors its exposure-response analysis adjusts for;
- the tests, which import these values instead of restating them.

This module imports nothing from carkin, so that every layer may use it.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "ANALYTE_DVID",
    "ARMS",
    "ASSESSED_RESPONSES",
    "COMPLETE_OR_BETTER",
    "DAYS_PER_MONTH",
    "ER_ADJUSTMENT",
    "EVENT_TIME_COLUMNS",
    "HIGH_BURDEN_PERCENT",
    "N_CK_EVALUABLE",
    "N_INFUSED",
    "N_RANDOMIZED",
    "N_RESPONDERS",
    "NON_RESPONDERS",
    "NOT_EVALUABLE",
    "PUBLISHED",
    "PublishedFigure",
    "RESPONDERS",
    "RESPONSE_CATEGORIES",
    "STRATIFICATION_FACTORS",
    "TUMOR_BURDEN",
]

#: Arm labels of the patients table, (experimental, control): hazard and odds ratios compare the first with
#: the second.
ARMS: tuple[str, str] = ("ide-cel", "standard")

#: Randomisation strata, as 0/1 columns of the patients table: age >= 65 years; 3-4 prior regimens (vs 2);
#: high-risk cytogenetics (t(4;14), t(14;16) or del(17p)) present.
STRATIFICATION_FACTORS: tuple[str, ...] = ("AGE_GE65", "PRIOR_REGIMENS_3_4", "HIGH_RISK_CYTO")

#: Baseline tumour burden column: bone-marrow plasma cells, percent.
TUMOR_BURDEN = "TUMOR_BURDEN"
#: "High tumour burden" as the trial reports it: >= 50% marrow plasma cells.
HIGH_BURDEN_PERCENT = 50.0

#: Adjustment of the demo's exposure-response analysis: tumour burden (the confounder of exposure and PFS,
#: docs/references.md, exposure-response pitfalls) and the randomisation strata. A table of one's own is adjusted
#: for nothing unless told (`carkin.er.analyze_exposure_response`'s ``adjust``, ``carkin er --adjust``).
ER_ADJUSTMENT: tuple[str, ...] = (TUMOR_BURDEN, *STRATIFICATION_FACTORS)

#: IMWG best overall response, best first; NE (not evaluable) counts as no response.
RESPONSE_CATEGORIES: tuple[str, ...] = ("sCR", "CR", "VGPR", "PR", "MR", "SD", "PD", "NE")
NOT_EVALUABLE = RESPONSE_CATEGORIES[-1]
#: The categories a response assessment gives (all but NE), best first.
ASSESSED_RESPONSES: tuple[str, ...] = RESPONSE_CATEGORIES[:-1]
#: Overall response: partial response (PR) or better.
RESPONDERS: tuple[str, ...] = RESPONSE_CATEGORIES[: RESPONSE_CATEGORIES.index("PR") + 1]
#: Assessed but not responding: MR, SD, PD.
NON_RESPONDERS: tuple[str, ...] = ASSESSED_RESPONSES[len(RESPONDERS):]
#: Complete response or better: sCR, CR.
COMPLETE_OR_BETTER: tuple[str, ...] = RESPONSE_CATEGORIES[: RESPONSE_CATEGORIES.index("CR") + 1]

#: Days per month of the trial's time columns (PFS_MONTHS against INFUSION_DAY and CK TIME in days):
#: 365.25 / 12.
DAYS_PER_MONTH = 30.4375

#: Patients randomised per arm ([RodriguezOtero2023], Patients).
N_RANDOMIZED: dict[str, int] = {"ide-cel": 254, "standard": 132}
#: ide-cel patients infused (29 of 254 never were).
N_INFUSED = 225
#: Responders (PR or better) per arm, intention to treat ([RodriguezOtero2023], Efficacy).
N_RESPONDERS: dict[str, int] = {"ide-cel": 181, "standard": 55}
#: Infused patients evaluable for cellular kinetics ([RodriguezOtero2023], Cellular kinetics).
N_CK_EVALUABLE = 224


class PublishedFigure(NamedTuple):
    """One published figure: its value, where it comes from, and its 95% interval when one was published."""

    value: float
    source: str
    ci: tuple[float, float] | None = None


#: Published figures a virtual KarMMa-3 realisation is calibrated to and compared with (proportions as
#: fractions, times in months, Tmax, onsets and durations in days, dose in 10^6 CAR+ T cells). Sources by
#: key, full citations in docs/references.md ([RodriguezOtero2023] KarMMa-3 NEJM 2023,
#: doi:10.1056/NEJMoa2213614, IA2; [TCT2024] doi:10.1016/j.jtct.2023.10.022; [USPI] Abecma label 12.3
#: (KarMMa); [Munshi2021] KarMMa NEJM 2021, doi:10.1056/NEJMoa2024850; [AbecmaHCP] the Abecma prescriber
#: site's safety pages, KarMMa figures). The KarMMa-3 safety rates are the figures issue #20 quotes from
#: the paper; the paper's safety section was not re-read in this revision (docs/references.md, 3.3).
PUBLISHED: dict[str, PublishedFigure] = {
    "median_pfs_ide_cel": PublishedFigure(13.3, "[RodriguezOtero2023]: 13.3 (11.8-16.1) months", (11.8, 16.1)),
    "median_pfs_standard": PublishedFigure(4.4, "[RodriguezOtero2023]: 4.4 (3.4-5.9) months", (3.4, 5.9)),
    "hazard_ratio": PublishedFigure(0.49, "[RodriguezOtero2023]: 0.49 (0.38-0.65), stratified Cox", (0.38, 0.65)),
    "pfs6_ide_cel": PublishedFigure(0.73, "[RodriguezOtero2023]: 73%"),
    "pfs6_standard": PublishedFigure(0.40, "[RodriguezOtero2023]: 40%"),
    "pfs12_ide_cel": PublishedFigure(0.55, "[RodriguezOtero2023]: 55%"),
    "pfs12_standard": PublishedFigure(0.30, "[RodriguezOtero2023]: 30%"),
    "events": PublishedFigure(242.0, "[RodriguezOtero2023]: 242 events at IA2"),
    "median_follow_up": PublishedFigure(18.6, "[RodriguezOtero2023]: 18.6 months"),
    "orr_ide_cel": PublishedFigure(0.71, "[RodriguezOtero2023]: 181/254", (0.66, 0.77)),
    "orr_standard": PublishedFigure(0.42, "[RodriguezOtero2023]: 55/132", (0.33, 0.50)),
    "cr_ide_cel": PublishedFigure(0.39, "[RodriguezOtero2023]: 39%"),
    "cr_standard": PublishedFigure(0.05, "[RodriguezOtero2023]: 5%"),
    "dose_median": PublishedFigure(445.0, "[RodriguezOtero2023]: median 445 x10^6"),
    "high_burden_ide_cel": PublishedFigure(0.28, "[TCT2024]: 71/254 (28%) with >= 50% marrow plasma cells"),
    "high_burden_standard": PublishedFigure(0.26, "[TCT2024]: 34/132 (26%)"),
    "high_risk_ide_cel": PublishedFigure(0.42, "[RodriguezOtero2023]: 107/254"),
    "high_risk_standard": PublishedFigure(0.46, "[RodriguezOtero2023]: 61/132"),
    "tmax_median_model": PublishedFigure(11.0, "[USPI] 12.3: median Tmax 11 days (KarMMa)"),
    "cmax_ratio_model": PublishedFigure(4.5, "[USPI] 12.3: ~4.5 (KarMMa, 93 vs 34)"),
    "auc28_ratio_model": PublishedFigure(5.5, "[USPI] 12.3: ~5.5 (KarMMa, 93 vs 32)"),
    "persistence_6m": PublishedFigure(0.59, "[Munshi2021]: ~59% (recalled, not verified; soft)"),
    "persistence_12m": PublishedFigure(0.36, "[Munshi2021]: ~36% (recalled, not verified; soft)"),
    # Safety of the infused (fractions of the 225 infused; onset and duration in days after infusion).
    "crs_any": PublishedFigure(0.88, "[RodriguezOtero2023]: CRS in 88% of the infused (issue #20; not re-read)"),
    "crs_grade3": PublishedFigure(0.05, "[RodriguezOtero2023]: grade >= 3 CRS in 5% (issue #20; not re-read)"),
    "tocilizumab": PublishedFigure(
        0.72, "[RodriguezOtero2023]: tocilizumab in 72% of the infused (issue #20; not re-read)"
    ),
    "corticosteroids": PublishedFigure(
        0.28, "[RodriguezOtero2023]: corticosteroids in 28% of the infused (issue #20; not re-read)"
    ),
    "nt_any": PublishedFigure(
        0.15, "[RodriguezOtero2023]: investigator-identified neurotoxicity 15% (issue #20; not re-read)"
    ),
    "nt_grade3": PublishedFigure(0.03, "[RodriguezOtero2023]: grade >= 3 neurotoxicity 3% (issue #20; not re-read)"),
    # Onsets and durations: KarMMa (N = 127, the 150-450 x10^6 dose range), the figures found for this revision.
    "crs_onset_median": PublishedFigure(
        1.0, "[AbecmaHCP]: median 1 day (range 1-23), KarMMa; KarMMa-3 day 1 (issue #20)"
    ),
    "crs_duration_median": PublishedFigure(7.0, "[AbecmaHCP]: median 7 days (range 1-63), KarMMa"),
    "nt_onset_median": PublishedFigure(2.0, "[AbecmaHCP]: median 2 days (range 1-42), KarMMa"),
    "nt_duration_median": PublishedFigure(5.0, "[AbecmaHCP]: median 5 days (range 1-61) in 33 of 36 resolved, KarMMa"),
}

#: Analyte codes (DVID) of the virtual cohort's records: the transgene in ``ck.csv`` (which has no DVID column:
#: one analyte) and serum M-protein in ``markers.csv``; a two-analyte data set joins both with these codes.
ANALYTE_DVID: dict[str, int] = {"transgene": 1, "m_protein": 2}

#: Safety columns of the patients table that hold event times (days after infusion; ``.`` = never), for
#: `carkin.data.DataRequirements.event_times`.
EVENT_TIME_COLUMNS: tuple[str, ...] = ("TOCI_DAY", "STEROID_DAY")
