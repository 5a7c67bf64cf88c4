"""The analysis set: ITT -> infused -> CK-evaluable -> landmark, with counts, lists, warnings and errors."""

import numpy as np
import pandas as pd
import pytest

from carkin._karmma3 import ER_ADJUSTMENT, STRATIFICATION_FACTORS
from carkin.er import ExposureWindowWarning, er_analysis_set
from carkin.errors import DataError
from carkin.exposure import DAYS_PER_MONTH, PosteriorExposure

LANDMARK_MONTHS = 28.0 / DAYS_PER_MONTH
ADJUST = ER_ADJUSTMENT  # TUMOR_BURDEN and the three KarMMa-3 stratification factors
FIT_IDS = ["C2", "C3", "C4", "C5", "C6", "C7", "C8", "C9", "C10"]


def patients_table():
    """Months from infusion: C3 has an event before day 28, C4 is censored before it; C1 never infused;
    C0 is infused but not in the CK fit; S1 is on the other arm."""
    rows = [
        # ID, ARM, INFUSED, INFUSION_DAY, months from infusion, event, burden
        ("S1", "standard", 0, None, 3.0, 1, 20.0),
        ("C1", "car-t", 0, None, 1.0, 1, 40.0),
        ("C0", "car-t", 1, 40, 9.0, 0, 35.0),
        ("C2", "car-t", 1, 45, 14.0, 1, 12.0),
        ("C3", "car-t", 1, 30, 0.5, 1, 80.0),
        ("C4", "car-t", 1, 50, 0.6, 0, 25.0),
        ("C5", "car-t", 1, 35, 3.0, 1, 55.0),
        ("C6", "car-t", 1, 61, 20.0, 0, 5.0),
        ("C7", "car-t", 1, 44, 7.0, 1, 33.0),
        ("C8", "car-t", 1, 39, 2.0, 1, 70.0),
        ("C9", "car-t", 1, 52, 11.0, 0, 18.0),
        ("C10", "car-t", 1, 48, 1.5, 1, 45.0),
    ]
    table = pd.DataFrame(rows, columns=["ID", "ARM", "INFUSED", "INFUSION_DAY", "T_INF", "PFS_EVENT", "TUMOR_BURDEN"])
    table["PFS_MONTHS"] = table["T_INF"] + table["INFUSION_DAY"].fillna(0) / DAYS_PER_MONTH
    age, prior, cyto = (
        [0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1],
        [1, 1, 0, 0, 1, 1, 0, 1, 1, 0, 1, 0],
        [0, 0, 1, 0, 1, 0, 1, 1, 0, 0, 1, 0],
    )
    for name, values in zip(STRATIFICATION_FACTORS, (age, prior, cyto), strict=True):
        table[name] = values
    table["SIMULATED"] = 1
    return table.drop(columns="T_INF")


def exposure(metrics=("cmax",)):
    rng = np.random.default_rng(1)
    values = {m: np.exp(rng.normal(9.0, 1.0, (20, len(FIT_IDS)))) for m in metrics}
    return PosteriorExposure.from_values(FIT_IDS, values)


def test_counts_and_lists_follow_itt_to_infused_to_evaluable_to_landmark():
    data = er_analysis_set(exposure(), patients_table())
    assert data.counts == {
        "randomised": 12, "other_arm": 1, "car_t_arm": 11, "not_infused": 1, "infused": 10, "not_ck_evaluable": 1,
        "ck_evaluable": 9, "event_before_landmark": 1, "censored_before_landmark": 1, "analysed": 7, "events": 5,
    }
    assert data.exclusions["other_arm"] == ("S1",) and data.exclusions["not_infused"] == ("C1",)
    assert data.exclusions["not_ck_evaluable"] == ("C0",)
    assert data.exclusions["event_before_landmark"] == ("C3",)
    assert data.exclusions["censored_before_landmark"] == ("C4",)
    assert data.ids == ("C2", "C5", "C6", "C7", "C8", "C9", "C10") and data.simulated


def test_time_runs_from_the_landmark_after_infusion_and_exposure_is_log2():
    ex = exposure()
    data = er_analysis_set(ex, patients_table(), adjust=ADJUST)
    np.testing.assert_allclose(data.time, np.array([14.0, 3.0, 20.0, 7.0, 2.0, 11.0, 1.5]) - LANDMARK_MONTHS, atol=1e-9)
    np.testing.assert_allclose(data.log2_draws, np.log2(ex.values("cmax")[:, data.exposure_index]))
    np.testing.assert_allclose(data.log2_plug_in, np.log2(np.median(ex.values("cmax")[:, data.exposure_index], axis=0)))
    assert data.covariate_names == ("TUMOR_BURDEN_PER10", *STRATIFICATION_FACTORS)
    np.testing.assert_allclose(data.covariates["TUMOR_BURDEN_PER10"], [1.2, 5.5, 0.5, 3.3, 7.0, 1.8, 4.5])


def test_landmark_zero_keeps_everyone_and_warns_when_a_window_passes_the_event():
    with pytest.warns(ExposureWindowWarning, match=r"auc90 \(days 0-90\) extends past .* 4 analysed patient"):
        data = er_analysis_set(exposure(("auc90",)), patients_table(), metric="auc90", landmark_days=0)
    assert data.counts["analysed"] == 9 and data.counts["event_before_landmark"] == 0
    assert data.warnings and "guarantee-time" in data.warnings[0]


def test_the_default_landmark_is_the_end_of_the_metric_window():
    data = er_analysis_set(exposure(("auc90",)), patients_table(), metric="auc90")
    assert data.landmark_days == 90.0 and data.counts["analysed"] == 5


def test_nothing_is_adjusted_for_unless_named_so_a_table_needs_no_trial_columns():
    table = patients_table().drop(columns=list(ADJUST))
    data = er_analysis_set(exposure(), table)
    assert data.covariate_names == () and data.covariates.shape == (7, 0)


def test_only_the_named_columns_are_adjusted_for_in_their_order():
    data = er_analysis_set(exposure(), patients_table(), adjust=["HIGH_RISK_CYTO", "TUMOR_BURDEN"])
    assert data.covariate_names == ("HIGH_RISK_CYTO", "TUMOR_BURDEN_PER10")
    assert er_analysis_set(exposure(), patients_table(), adjust="TUMOR_BURDEN").covariate_names == (
        "TUMOR_BURDEN_PER10",
    )


def test_a_named_column_missing_from_the_table_says_how_to_fix_it():
    table = patients_table().drop(columns="TUMOR_BURDEN")
    with pytest.raises(DataError, match="column TUMOR_BURDEN: adjusted for because adjust=.* add the column"):
        er_analysis_set(exposure(), table, adjust=["TUMOR_BURDEN"], source="patients.csv")


def test_a_column_named_twice_in_adjust_is_refused():
    with pytest.raises(ValueError, match="names HIGH_RISK_CYTO more than once"):
        er_analysis_set(exposure(), patients_table(), adjust=["HIGH_RISK_CYTO", "TUMOR_BURDEN", "HIGH_RISK_CYTO"])


def test_a_fit_patient_missing_from_the_table_is_an_error():
    table = patients_table()
    table = table[table.ID != "C7"]
    with pytest.raises(DataError, match=r"1 patient\(s\) of the CK fit are not in the patients table"):
        er_analysis_set(exposure(), table)


def test_a_fit_patient_marked_not_infused_is_an_error_naming_the_row():
    table = patients_table()
    table.loc[table.ID == "C5", "INFUSED"] = 0
    with pytest.raises(DataError, match=r"row 8, column INFUSED: patient has CK data in the fit"):
        er_analysis_set(exposure(), table, source="patients.csv")


def test_follow_up_ending_before_the_infusion_is_an_error():
    table = patients_table()
    table.loc[table.ID == "C6", "PFS_MONTHS"] = 1.0
    with pytest.raises(DataError, match="ends before the infusion"):
        er_analysis_set(exposure(), table)


def test_a_negative_landmark_is_refused():
    with pytest.raises(ValueError, match="landmark_days must be >= 0"):
        er_analysis_set(exposure(), patients_table(), landmark_days=-1)
