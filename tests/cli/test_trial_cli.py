"""End-to-end tests of ``carkin trial design`` and ``carkin trial simulate`` (on the shared ``trial`` group)."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import carkin.cli

runner = CliRunner()
KARMMA3 = Path(__file__).resolve().parents[2] / "designs" / "karmma3.toml"


def invoke(*args):
    return runner.invoke(carkin.cli.app, [str(a) for a in args])


def text(result) -> str:
    """The output with rich's line wrapping undone (errors are printed by a rich console)."""
    return " ".join(result.output.split())


def test_design_and_simulate_share_the_trial_group_with_analyze():
    result = invoke("trial", "--help")
    assert result.exit_code == 0
    for command in ("analyze", "design", "simulate"):
        assert command in result.stdout


class TestDesign:
    def test_json_has_boundaries_and_schoenfeld_power(self):
        result = invoke("trial", "design", "--design", KARMMA3, "--json")
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        looks = report["boundaries"]["looks"]
        assert [look["events"] for look in looks] == [95, 231, 289]
        assert looks[0]["efficacy_z"] is None and looks[0]["futility_z"] == pytest.approx(-0.612, abs=1e-3)
        assert looks[1]["efficacy_z"] == pytest.approx(2.2516, abs=1e-4) and looks[2]["efficacy_z"] == pytest.approx(
            2.0248, abs=1e-4
        )
        assert looks[1]["efficacy_p"] == pytest.approx(0.01217, abs=1e-5)
        assert (
            0.93 < report["schoenfeld_power"] < 0.95 and report["group_sequential_power"] < report["schoenfeld_power"]
        )

    def test_table_output(self):
        result = invoke("trial", "design", "--design", KARMMA3)
        assert result.exit_code == 0, result.output
        assert "KarMMa-3" in result.stdout and "Schoenfeld power" in text(result)


class TestSimulate:
    def test_json_reports_power_looks_and_monte_carlo_errors(self):
        result = invoke(
            "trial", "simulate", "--design", KARMMA3, "--replicates", 300, "--seed", 4, "--json", "--no-progress"
        )
        assert result.exit_code == 0, result.output
        s = json.loads(result.stdout)
        assert s["replicates"] == 300 and s["seed"] == 4 and s["hypothesis"] == "H1"
        assert set(s["power"]) == {"estimate", "mc_se"} and 0.8 < s["power"]["estimate"] <= 1.0
        assert len(s["looks"]) == 3
        for look in s["looks"]:
            assert {"efficacy_z", "efficacy_p", "futility_z", "futility_p", "prob_stop_efficacy", "prob_stop_futility",
                    "mean_time_months"} <= set(look)
        assert s["looks"][1]["efficacy_p"] == pytest.approx(0.01217, abs=1e-5)
        assert 95 <= s["expected_events"]["estimate"] <= 289 and s["expected_duration_months"]["mc_se"] > 0
        again = invoke(
            "trial", "simulate", "--design", KARMMA3, "--replicates", 300, "--seed", 4, "--json", "--no-progress"
        )
        assert json.loads(again.stdout) == s  # same seed, same numbers

    def test_null_hypothesis_and_table_output(self):
        result = invoke("trial", "simulate", "--design", KARMMA3, "--replicates", 300, "--null", "--no-progress")
        assert result.exit_code == 0, result.output
        assert "type I error" in text(result) and "H0" in text(result)


class TestErrors:
    def test_bad_design_file_names_file_and_key_with_exit_code_2(self, tmp_path):
        bad = tmp_path / "bad.toml"
        bad.write_text(KARMMA3.read_text().replace("events = 289", "events = \"many\""))
        for command in ("design", "simulate"):
            result = invoke("trial", command, "--design", bad, "--no-progress" if command == "simulate" else "--json")
            assert result.exit_code == 2, result.output
            assert "bad.toml: [analysis] events = 'many' is a string, not an integer" in text(result)

    def test_unknown_spending_function_and_missing_file(self, tmp_path):
        bad = tmp_path / "spend.toml"
        bad.write_text(KARMMA3.read_text().replace('spending = "obf"          # published', 'spending = "obrien"  #'))
        result = invoke("trial", "design", "--design", bad)
        assert result.exit_code == 2
        assert (
            "spend.toml: [analysis.efficacy] spending = 'obrien' is not valid; choose one of obf, pocock, hsd"
            in text(result)
        )
        result = invoke("trial", "design", "--design", tmp_path / "missing.toml")
        assert result.exit_code == 2 and "missing.toml: design file not found" in text(result)

    def test_replicates_must_be_positive(self):
        result = invoke("trial", "simulate", "--design", KARMMA3, "--replicates", 0)
        assert result.exit_code == 2
