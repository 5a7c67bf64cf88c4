"""The KarMMa-3 primary analysis on small simulated trials with a known hazard ratio; its figure and report."""

import json

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from carkin._karmma3 import NON_RESPONDERS, NOT_EVALUABLE, PUBLISHED, RESPONDERS, STRATIFICATION_FACTORS
from carkin.errors import DataError
from carkin.survival import (
    analyze_trial,
    cox_ph,
    kaplan_meier,
    logrank_test,
    plot_trial_km,
    trial_summary,
    write_trial_report,
)

TRUE_HR = 0.5
STRATA = list(STRATIFICATION_FACTORS)
CONTROL_MEDIAN = PUBLISHED["median_pfs_standard"].value


def simulate_trial(n=600, hr=TRUE_HR, seed=0, simulated=True):
    """A 2:1 trial: exponential PFS (control median as published, 4.4 months) with hazard ratio ``hr``, strata effects,
    uniform censoring at 6-36 months, response probabilities 0.7 vs 0.4."""
    rng = np.random.default_rng(seed)
    arm = np.where(rng.uniform(size=n) < 2 / 3, "ide-cel", "standard")
    age, prior, cyto = (rng.integers(0, 2, n) for _ in range(3))
    rate = (
        np.log(2) / CONTROL_MEDIAN * np.exp(0.3 * age + 0.2 * prior + 0.5 * cyto) * np.where(arm == "ide-cel", hr, 1.0)
    )
    t = rng.exponential(1 / rate)
    c = rng.uniform(6, 36, n)
    responded = rng.uniform(size=n) < np.where(arm == "ide-cel", 0.7, 0.4)
    response = np.where(responded, rng.choice(RESPONDERS, n), rng.choice([*NON_RESPONDERS, NOT_EVALUABLE], n))
    infused = np.where(arm == "ide-cel", rng.uniform(size=n) < 0.89, True).astype(int)
    table = pd.DataFrame(
        {
            "ID": [f"P{i:04d}" for i in range(n)],
            "ARM": arm,
            **dict(zip(STRATIFICATION_FACTORS, (age, prior, cyto), strict=True)),
            "INFUSED": infused,
            "DOSE": np.where((arm == "ide-cel") & (infused == 1), 450.0, np.nan),
            "TUMOR_BURDEN": rng.uniform(0, 80, n).round(1),
            "PFS_MONTHS": np.minimum(t, c).round(3),
            "PFS_EVENT": (t <= c).astype(int),
            "BEST_RESPONSE": response,
        }
    )
    if simulated:
        table["SIMULATED"] = 1
    return table


@pytest.fixture(scope="module")
def trial():
    return simulate_trial()


@pytest.fixture(scope="module")
def analysis(trial):
    return analyze_trial(trial, source="trial.csv")


class TestNumbers:
    def test_hazard_ratio_is_near_the_truth(self, analysis):
        hr = analysis.hazard_ratio
        assert abs(np.log(hr.hazard_ratio) - np.log(TRUE_HR)) < 4 * hr.se
        assert hr.hr_ci_low < TRUE_HR < hr.hr_ci_high
        assert analysis.logrank.p_value < 1e-6 and analysis.logrank.z < 0

    def test_parts_are_the_stratified_analyses_of_the_same_table(self, trial, analysis):
        lr = logrank_test(
            trial, time="PFS_MONTHS", event="PFS_EVENT", group="ARM", strata=STRATA, groups=["ide-cel", "standard"]
        )
        assert analysis.logrank.statistic == pytest.approx(lr.statistic, rel=1e-12)
        cox = cox_ph(
            trial.assign(TRT=(trial.ARM == "ide-cel").astype(float)),
            time="PFS_MONTHS",
            event="PFS_EVENT",
            covariates="TRT",
            strata=STRATA,
        )
        assert analysis.hazard_ratio.hazard_ratio == pytest.approx(cox["TRT"].hazard_ratio, rel=1e-10)
        km = kaplan_meier(trial, time="PFS_MONTHS", event="PFS_EVENT", group="ARM")
        assert analysis.km["standard"].median == km["standard"].median

    def test_medians_are_near_the_exponential_truth(self, analysis):
        # control median 4.4 months at the reference strata; stratum effects make the pooled medians shorter
        assert analysis.km["standard"].median < analysis.km["ide-cel"].median
        assert 1.5 < analysis.km["ide-cel"].median / analysis.km["standard"].median < 2.7

    def test_counts_and_rates(self, trial, analysis):
        d = analysis.to_dict()
        for arm in ("ide-cel", "standard"):
            part = trial[trial.ARM == arm]
            assert d["n_randomized"][arm] == len(part)
            assert d["events"][arm] == part.PFS_EVENT.sum()
            assert d["orr"][arm]["responders"] == part.BEST_RESPONSE.isin(RESPONDERS).sum()
            assert d["n_infused"][arm] == part.INFUSED.sum()
        assert d["events"]["total"] == trial.PFS_EVENT.sum()
        assert d["n_randomized"]["total"] == len(trial)
        assert 2.0 < d["cmh_odds_ratio"] < 6.0  # true odds ratio (0.7/0.3)/(0.4/0.6) = 3.5
        assert d["cmh_ci_low"] < 3.5 < d["cmh_ci_high"]

    def test_json_has_the_stable_keys(self, analysis):
        d = analysis.to_dict()
        for key in (
            "hazard_ratio",
            "hr_ci_low",
            "hr_ci_high",
            "logrank_p",
            "median_pfs",
            "pfs_at_6",
            "pfs_at_12",
            "orr",
            "cmh_odds_ratio",
            "cmh_ci_low",
            "cmh_ci_high",
            "events",
            "median_followup",
            "n_randomized",
            "simulated",
        ):
            assert key in d
        assert set(d["median_pfs"]["ide-cel"]) == {"median", "ci_low", "ci_high"}
        assert set(d["pfs_at_6"]["standard"]) == {"survival", "ci_low", "ci_high", "at_risk"}
        assert set(d["orr"]["ide-cel"]) == {"responders", "n", "rate", "ci_low", "ci_high"}
        assert set(d["median_followup"]) == {"median", "ci_low", "ci_high", "min", "max", "n"}
        json.dumps(d, allow_nan=False)

    def test_simulated_flag_follows_the_simulated_column(self, analysis):
        assert analysis.simulated is True
        assert analyze_trial(simulate_trial(n=200, seed=1, simulated=False)).simulated is False
        zeros = simulate_trial(n=200, seed=1, simulated=False).assign(SIMULATED=0)
        assert analyze_trial(zeros).simulated is False

    def test_landmarks_can_be_chosen(self, trial):
        d = analyze_trial(trial, landmarks=(3, 24)).to_dict()
        assert "pfs_at_3" in d and "pfs_at_24" in d and "pfs_at_6" not in d


class TestErrors:
    def test_an_arm_without_events_is_rejected(self):
        table = simulate_trial(n=120, seed=2)
        table.loc[table.ARM == "standard", "PFS_EVENT"] = 0
        with pytest.raises(DataError, match=r"trial\.csv, column PFS_EVENT: arm 'standard' has no PFS events"):
            analyze_trial(table, source="trial.csv")

    def test_unknown_arm_response_and_repeated_id_are_reported_together(self):
        table = simulate_trial(n=120, seed=3)
        table.loc[2, "ARM"] = "placebo"
        table.loc[4, "BEST_RESPONSE"] = "nCR"
        table.loc[5, "ID"] = table.loc[0, "ID"]
        with pytest.raises(DataError, match=r"^3 problem") as info:
            analyze_trial(table)
        text = str(info.value)
        assert "row 4, column ARM: value 'placebo' is not one of ['ide-cel', 'standard']" in text
        assert "row 6, column BEST_RESPONSE: value 'nCR' is not one of" in text
        assert "row 7, column ID: repeated identifier 'P0000'" in text

    def test_a_non_binary_stratification_factor_is_rejected(self):
        table = simulate_trial(n=120, seed=4)
        table.loc[0, "AGE_GE65"] = 70
        with pytest.raises(DataError, match=r"row 2, column AGE_GE65: non-binary stratification factor value 70"):
            analyze_trial(table)

    def test_a_missing_column_is_named(self):
        with pytest.raises(DataError, match=r"column HIGH_RISK_CYTO: column 'HIGH_RISK_CYTO' not found"):
            analyze_trial(simulate_trial(n=60, seed=5).drop(columns="HIGH_RISK_CYTO"))

    def test_arms_must_be_two_different_labels(self):
        with pytest.raises(ValueError, match=r"must name two different arms"):
            analyze_trial(simulate_trial(n=60, seed=6), arms=("ide-cel", "ide-cel"))


class TestFigureAndReport:
    def test_the_figure_says_simulated_and_has_an_at_risk_table(self, analysis):
        fig = plot_trial_km(analysis)
        assert isinstance(fig, Figure)
        curves, table = fig.axes
        assert "SIMULATED cohort" in curves.get_title()
        assert list(table.get_xticks()) == list(range(0, 37, 3))
        counts = [t.get_text() for t in table.texts]
        assert counts[0] == str(analysis.n_randomized["ide-cel"])
        assert len(counts) == 2 * 13

    def test_the_summary_states_the_results_and_the_simulation(self, analysis):
        text = trial_summary(analysis)
        assert "SIMULATED cohort" in text
        assert f"{analysis.hazard_ratio.hazard_ratio:.2f}" in text
        assert "| median PFS, months (95% CI) |" in text

    def test_report_files_are_written_and_a_previous_report_is_replaced(self, analysis, tmp_path):
        out = tmp_path / "report"
        write_trial_report(analysis, out)
        assert sorted(p.name for p in out.iterdir()) == ["km.png", "results.json", "summary.md"]
        assert json.loads((out / "results.json").read_text())["hazard_ratio"] == pytest.approx(
            analysis.hazard_ratio.hazard_ratio
        )
        write_trial_report(analysis, out)  # overwriting a previous report is allowed
        assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no staging or retired folder left

    def test_a_directory_holding_other_files_is_left_alone(self, analysis, tmp_path):
        out = tmp_path / "mine"
        out.mkdir()
        (out / "notes.txt").write_text("keep")
        with pytest.raises(FileExistsError, match=r"holds files this command did not write \(notes\.txt\)"):
            write_trial_report(analysis, out)
        assert (out / "notes.txt").read_text() == "keep"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]
