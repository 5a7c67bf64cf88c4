"""End-to-end tests of ``carkin survival km | logrank | cox`` and ``carkin trial analyze``."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import carkin.cli
from carkin.data import read_table
from carkin.survival import analyze_trial, cox_ph, kaplan_meier, logrank_test

from ..survival import reference as ref
from ..survival.test_trial_analysis import simulate_trial

runner = CliRunner()


def invoke(*args):
    return runner.invoke(carkin.cli.app, [str(a) for a in args])


@pytest.fixture
def tied_csv(tmp_path):
    path = tmp_path / "tied.csv"
    path.write_text("# reference data (see tests/survival/reference.py)\n" + ref.tied_data().to_csv(index=False))
    return path


@pytest.fixture(scope="module")
def patients_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("trial") / "patients.csv"
    table = simulate_trial(n=300, seed=11)
    path.write_text("# SIMULATED data: test cohort\n" + table.to_csv(index=False, na_rep="."))
    return path


class TestSurvivalCommands:
    def test_km_json_is_the_api_result(self, tied_csv):
        result = invoke("survival", "km", tied_csv, "--time", "time", "--event", "event", "--group", "x1", "--json")
        assert result.exit_code == 0, result.output
        payload = json.loads(result.stdout)
        expected = kaplan_meier(ref.tied_data(), time="time", event="event", group="x1").to_dict()
        assert payload == {"source": str(tied_csv), **expected}
        assert payload["curves"]["0"]["median"] == 6.0

    def test_km_table_is_readable(self, tied_csv):
        result = invoke("survival", "km", tied_csv, "--time", "time", "--event", "event")
        assert result.exit_code == 0, result.output
        assert "median" in result.stdout and "4.00" in result.stdout and "3.00-6.00" in result.stdout

    def test_logrank_with_repeated_and_comma_separated_strata(self, tied_csv):
        result = invoke(
            "survival",
            "logrank",
            tied_csv,
            "--time",
            "time",
            "--event",
            "event",
            "--group",
            "x1",
            "--strata",
            "s",
            "--json",
        )
        assert result.exit_code == 0, result.output
        payload = json.loads(result.stdout)
        assert payload["statistic"] == pytest.approx(ref.STRATIFIED_LOGRANK_CHISQ, abs=1e-9)
        assert set(payload) == {
            "source",
            "analysis",
            "group",
            "strata",
            "n_strata",
            "statistic",
            "df",
            "p_value",
            "z",
            "groups",
        }
        data = ref.tied_data().assign(s2=np.arange(30) % 2)
        path = tied_csv.with_name("two.csv")
        data.to_csv(path, index=False)
        both = invoke(
            "survival",
            "logrank",
            path,
            "--time",
            "time",
            "--event",
            "event",
            "--group",
            "x1",
            "--strata",
            "s,s2",
            "--json",
        )
        repeated = invoke(
            "survival",
            "logrank",
            path,
            "--time",
            "time",
            "--event",
            "event",
            "--group",
            "x1",
            "--strata",
            "s",
            "--strata",
            "s2",
            "--json",
        )
        expected = logrank_test(data, time="time", event="event", group="x1", strata=["s", "s2"]).statistic
        assert (
            json.loads(both.stdout)["statistic"]
            == json.loads(repeated.stdout)["statistic"]
            == pytest.approx(expected, rel=1e-12)
        )

    def test_logrank_trend_and_table(self, tied_csv):
        result = invoke(
            "survival", "logrank", tied_csv, "--time", "time", "--event", "event", "--group", "x1", "--trend"
        )
        assert result.exit_code == 0, result.output
        assert "trend" in result.stdout and "p = " in result.stdout

    @pytest.mark.parametrize("ties", ["efron", "breslow"])
    def test_cox_json_with_ties_and_robust_se(self, tied_csv, ties):
        result = invoke(
            "survival",
            "cox",
            tied_csv,
            "--time",
            "time",
            "--event",
            "event",
            "--covariates",
            "x1,x2",
            "--ties",
            ties,
            "--robust",
            "--json",
        )
        assert result.exit_code == 0, result.output
        payload = json.loads(result.stdout)
        assert payload["ties"] == ties and payload["robust"] is True
        se = [payload["coefficients"][name]["se"] for name in ("x1", "x2")]
        assert se == pytest.approx(ref.COX[(ties, None)]["robust_se"], abs=1e-5)

    def test_cox_table_with_strata(self, tied_csv):
        result = invoke(
            "survival", "cox", tied_csv, "--time", "time", "--event", "event", "--covariates", "x1,x2", "--strata", "s"
        )
        assert result.exit_code == 0, result.output
        expected = cox_ph(ref.tied_data(), time="time", event="event", covariates=["x1", "x2"], strata="s")
        assert f"{expected['x1'].hazard_ratio:.3f}" in result.stdout and "strata: s" in result.stdout

    def test_an_unknown_ties_option_is_a_usage_error(self, tied_csv):
        result = invoke(
            "survival", "cox", tied_csv, "--time", "time", "--event", "event", "--covariates", "x1", "--ties", "exact"
        )
        assert result.exit_code == 2


class TestErrorsExitWithCodeTwo:
    def _bad_csv(self, tmp_path, changes):
        """The tied data with cells changed ({(record index, column): value}), after two comment lines."""
        data = ref.tied_data()
        for (row, column), value in changes.items():
            data[column] = data[column].astype(object)
            data.loc[row, column] = value
        path = tmp_path / "bad.csv"
        path.write_text("# first comment\n# second comment\n" + data.to_csv(index=False))
        return path

    def test_missing_column(self, tied_csv):
        result = invoke("survival", "km", tied_csv, "--time", "months", "--event", "event")
        assert result.exit_code == 2
        columns = "time, event, x1, x2, s"
        assert (
            result.stderr.strip()
            == f"error: {tied_csv}, column months: column 'months' not found (columns in the data: {columns})"
        )
        assert "Traceback" not in result.output

    def test_negative_time_names_the_physical_line(self, tmp_path):
        path = self._bad_csv(tmp_path, {(4, "time"): -2})  # record 5: line 5 + 2 comments + header = 8
        result = invoke("survival", "logrank", path, "--time", "time", "--event", "event", "--group", "x1")
        assert result.exit_code == 2
        message = "negative time -2: times are durations from the origin and must be >= 0"
        assert result.stderr.strip() == f"error: {path}, row 8, column time: {message}"

    def test_non_binary_event(self, tmp_path):
        path = self._bad_csv(tmp_path, {(0, "event"): 2})
        result = invoke("survival", "cox", path, "--time", "time", "--event", "event", "--covariates", "x1")
        assert result.exit_code == 2
        assert f"error: {path}, row 4, column event: non-binary event value 2" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1

    def test_a_group_with_no_events_in_cox(self, tmp_path):
        data = ref.tied_data()
        data.loc[data.x1 == 1, "event"] = 0
        path = tmp_path / "noevents.csv"
        data.to_csv(path, index=False)
        result = invoke("survival", "cox", path, "--time", "time", "--event", "event", "--covariates", "x1")
        assert result.exit_code == 2
        assert f"error: {path}, column x1: no events among rows with x1 = 1" in result.stderr

    def test_a_missing_file(self, tmp_path):
        result = invoke("survival", "km", tmp_path / "absent.csv", "--time", "t", "--event", "e")
        assert result.exit_code == 2
        assert "absent.csv: no such file or directory" in result.stderr


class TestTrialAnalyze:
    def test_json_keys_and_values(self, patients_csv):
        result = invoke("trial", "analyze", patients_csv, "--json")
        assert result.exit_code == 0, result.output
        payload = json.loads(result.stdout)
        expected = analyze_trial(read_table(patients_csv)).to_dict()
        assert payload == expected
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
            assert key in payload
        assert payload["simulated"] is True
        assert set(payload["median_pfs"]) == {"ide-cel", "standard"}
        assert set(payload["events"]) == {"ide-cel", "standard", "total"}
        assert payload["hr_ci_high"] < 1 and payload["logrank_p"] < 0.001  # true HR 0.5

    def test_readable_output_says_simulated(self, patients_csv):
        result = invoke("trial", "analyze", patients_csv)
        assert result.exit_code == 0, result.output
        assert "SIMULATED cohort" in result.stdout and "median PFS" in result.stdout

    def test_out_writes_the_three_files(self, patients_csv, tmp_path):
        out = tmp_path / "analysis"
        result = invoke("trial", "analyze", patients_csv, "--out", out, "--json")
        assert result.exit_code == 0, result.output
        assert sorted(p.name for p in out.iterdir()) == ["km.png", "results.json", "summary.md"]
        assert json.loads((out / "results.json").read_text()) == json.loads(result.stdout)
        assert "SIMULATED" in (out / "summary.md").read_text()

    def test_out_refuses_a_directory_with_other_files(self, patients_csv, tmp_path):
        (tmp_path / "keep.txt").write_text("x")
        result = invoke("trial", "analyze", patients_csv, "--out", tmp_path)
        assert result.exit_code == 2
        assert "holds files this command did not write (keep.txt)" in result.stderr

    def test_an_arm_without_events(self, tmp_path):
        table = simulate_trial(n=90, seed=12)
        table.loc[table.ARM == "ide-cel", "PFS_EVENT"] = 0
        path = tmp_path / "p.csv"
        table.to_csv(path, index=False)
        result = invoke("trial", "analyze", path, "--json")
        assert result.exit_code == 2
        message = "arm 'ide-cel' has no PFS events: the hazard ratio would be 0 or infinite and the medians not reached"
        assert result.stderr.strip() == f"error: {path}, column PFS_EVENT: {message}"
        assert result.stdout == ""

    def test_negative_pfs_time_names_the_line(self, tmp_path):
        table = simulate_trial(n=90, seed=13)
        table.loc[9, "PFS_MONTHS"] = -1.5
        path = tmp_path / "p.csv"
        path.write_text("# comment\n" + table.to_csv(index=False))
        result = invoke("trial", "analyze", path)
        assert result.exit_code == 2
        assert f"error: {path}, row 12, column PFS_MONTHS: negative time -1.5" in result.stderr
