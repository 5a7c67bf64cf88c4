"""End-to-end tests of ``carkin simulate FIT_DIR --scenario ...``: outputs, determinism, errors."""

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import carkin.cli
from carkin.inference import save_fit
from carkin.population import load_spec

from ..simulate.test_scenario import point_mass_fit

runner = CliRunner()
SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "doses.toml"


def invoke(*args):
    return runner.invoke(carkin.cli.app, [str(a) for a in args])


def text(result) -> str:
    """The output with rich's line wrapping undone (errors are printed by a rich console)."""
    return " ".join(result.output.split())


@pytest.fixture(scope="module")
def fit_dir(tmp_path_factory):
    spec = load_spec("multiphasic")
    return save_fit(point_mass_fit(spec, draws=6), tmp_path_factory.mktemp("fits") / "run")


@pytest.fixture(scope="module")
def run(fit_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "scenario"
    result = invoke("simulate", fit_dir, "--scenario", SCENARIO, "--n", 40, "--draws", 4, "--seed", 3, "--out", out,
                    "--json", "--no-progress")
    return result, out


class TestSimulate:
    def test_writes_summary_tables_and_figures(self, run):
        result, out = run
        assert result.exit_code == 0, result.output
        for name in ("summary.json", "profiles.csv", "exposure.csv", "profiles.png", "exposure.png", "scenario.toml"):
            assert (out / name).exists(), name
        assert (out / "profiles.csv").read_text().startswith("# SIMULATED")
        assert not list(out.parent.glob(".scenario.partial-*"))  # atomic: no leftovers

    def test_json_keys(self, run, fit_dir):
        result, out = run
        s = json.loads(result.stdout)
        assert s == json.loads((out / "summary.json").read_text())
        assert (s["seed"], s["n_patients"], s["n_draws"], s["fit_dir"]) == (3, 40, 4, str(fit_dir))
        assert s["simulated_data"] is True and s["exposure_response"]["hook"] is True
        assert [d["dose"] for d in s["doses"]] == [150.0, 300.0, 450.0, 540.0]
        d = s["doses"][2]
        assert set(d["exposure"]) == {"cmax", "tmax", "auc0_28", "auc0_90"}
        assert set(d["exposure"]["cmax"]["predictive"]) == {"q05", "q25", "q50", "q75", "q95"}
        assert len(d["profiles"]["typical"]["median"]) == len(s["times_days"])
        assert 0 <= d["target"]["probability"] <= 1 and d["pfs"]["landmarks"][0]["months"] == 6.0
        # a point-mass posterior: no parameter uncertainty in the typical curve
        np.testing.assert_allclose(d["profiles"]["typical"]["lower"], d["profiles"]["typical"]["upper"], rtol=1e-9)
        # observations censored at the LLOQ (the test fit records no data LLOQ: the model's [simulation] lloq)
        model_lloq = load_spec("multiphasic").simulation["lloq"]
        assert s["lloq"]["value"] == model_lloq and "[simulation] lloq" in s["lloq"]["source"]
        blq = d["blq_fraction"]
        assert len(blq["pooled"]) == len(s["times_days"]) and all(0 <= v <= 1 for v in blq["pooled"])
        assert blq["lower"][0] <= blq["pooled"][0] <= blq["upper"][0]

    def test_profiles_table_reports_the_blq_fraction(self, run):
        import pandas as pd

        _, out = run
        table = pd.read_csv(out / "profiles.csv", comment="#")
        assert {"blq_fraction", "blq_fraction_lower", "blq_fraction_upper"} <= set(table.columns)
        assert table["blq_fraction"].between(0, 1).all() and len(table) == 4 * len(table["time_days"].unique())

    def test_same_seed_same_numbers_and_table_output(self, run, fit_dir, tmp_path):
        result, _ = run
        again = invoke("simulate", fit_dir, "--scenario", SCENARIO, "--n", 40, "--draws", 4, "--seed", 3,
                       "--out", tmp_path / "again", "--no-progress")
        assert again.exit_code == 0, again.output
        assert "P(cmax>=24000)" in again.stdout and "wrote" in again.output
        model_lloq = load_spec("multiphasic").simulation["lloq"]
        assert "BLQ at day 364" in text(again) and f"censored at the LLOQ, {model_lloq:g} copies/ug" in text(again)
        first = json.loads(result.stdout)
        second = json.loads((tmp_path / "again" / "summary.json").read_text())
        assert first["doses"] == second["doses"]


    def test_a_bare_scenario_name_from_another_directory_runs_the_shipped_scenario(self, run, fit_dir, tmp_path,
                                                                                   monkeypatch):
        monkeypatch.chdir(tmp_path)
        again = invoke("simulate", fit_dir, "--scenario", "doses", "--n", 40, "--draws", 4, "--seed", 3,
                       "--out", "bare", "--json", "--no-progress")
        assert again.exit_code == 0, again.output
        assert (tmp_path / "bare" / "scenario.toml").read_text() == SCENARIO.read_text()
        assert json.loads(again.stdout)["doses"] == json.loads(run[0].stdout)["doses"]


class TestErrors:
    def test_bad_scenario_file_names_file_and_key_with_exit_code_2(self, fit_dir, tmp_path):
        bad = tmp_path / "bad.toml"
        bad.write_text(SCENARIO.read_text().replace('metric = "cmax"\nthreshold', 'metric = "cmin"\nthreshold'))
        result = invoke("simulate", fit_dir, "--scenario", bad, "--out", tmp_path / "o", "--no-progress")
        assert result.exit_code == 2, result.output
        assert "bad.toml: [target] metric = 'cmin' is not valid; choose one of cmax" in text(result)
        assert not (tmp_path / "o").exists()

    def test_missing_covariate_and_not_a_fit_directory(self, fit_dir, tmp_path):
        bad = tmp_path / "nocov.toml"
        bad.write_text(SCENARIO.read_text().replace("[covariates.TUMOR_BURDEN]", "[covariates.AGE]"))
        result = invoke("simulate", fit_dir, "--scenario", bad, "--out", tmp_path / "o", "--no-progress")
        assert result.exit_code == 2 and "needs covariate(s) TUMOR_BURDEN" in text(result)
        result = invoke("simulate", tmp_path, "--scenario", SCENARIO, "--out", tmp_path / "o")
        assert result.exit_code == 2 and "not a carkin fit directory (manifest.json is missing)" in text(result)
