"""Writing a simulated cohort and a dose scenario to a folder: files, SIMULATED labels, returned content, atomicity."""

import json

import jax
import numpy as np
import pandas as pd
import pytest

from carkin.data import load_dataset
from carkin.population import load_spec
from carkin.simulate import (
    COHORT_FILES,
    SCENARIO_FILES,
    load_scenario,
    scenario_from_dict,
    simulate_cohort,
    simulate_scenario,
    write_scenario_report,
    write_simulated_cohort,
)

from .test_scenario import SMALL, point_mass_fit


@pytest.fixture(scope="module")
def spec():
    return load_spec("multiphasic")


@pytest.fixture(scope="module")
def cohort(spec):
    return simulate_cohort(spec, key=jax.random.PRNGKey(3), n=6)


class TestWriteSimulatedCohort:
    def test_writes_the_three_files_marked_simulated_and_returns_the_truth(self, spec, cohort, tmp_path):
        out = tmp_path / "cohort"
        truth = write_simulated_cohort(cohort, spec, out, seed=3, model="models/multiphasic.toml")
        assert sorted(p.name for p in out.iterdir()) == sorted(COHORT_FILES)
        for name in ("ck.csv", "covariates.csv"):
            first = (out / name).read_text().splitlines()[0]
            assert first.startswith("# SIMULATED") and "models/multiphasic.toml (seed 3)" in first
        assert json.loads((out / "truth.json").read_text()) == truth
        assert truth["simulated"] is True and truth["seed"] == 3 and truth["n"] == 6
        assert set(truth["omega"]) == set(spec.parameter_names) and set(truth["effects"]) == set(spec.effect_names)
        np.testing.assert_allclose(truth["mu"], np.asarray(cohort.truth.mu))

    def test_the_files_read_back_as_the_simulated_records(self, spec, cohort, tmp_path):
        write_simulated_cohort(cohort, spec, tmp_path / "c", seed=3)
        data = load_dataset(tmp_path / "c" / "ck.csv", tmp_path / "c" / "covariates.csv", verbose=False)
        assert data.patient_ids == cohort.dataset.patient_ids
        np.testing.assert_allclose(np.asarray(data.dv)[np.asarray(data.obs_mask)],
                                   np.asarray(cohort.dataset.dv)[np.asarray(cohort.dataset.obs_mask)], rtol=1e-12)
        assert "TUMOR_BURDEN" in pd.read_csv(tmp_path / "c" / "covariates.csv", comment="#").columns

    def test_the_model_defaults_to_the_spec_source(self, spec, cohort, tmp_path):
        truth = write_simulated_cohort(cohort, spec, tmp_path / "c")
        assert truth["model"] == spec.source and truth["seed"] is None

    def test_a_folder_holding_other_files_is_refused_and_left_alone(self, spec, cohort, tmp_path):
        (tmp_path / "notes.txt").write_text("mine")
        with pytest.raises(FileExistsError, match="notes.txt"):
            write_simulated_cohort(cohort, spec, tmp_path, seed=3)
        assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


class TestWriteScenarioReport:
    @pytest.fixture(scope="class")
    def result(self, spec):
        scenario = load_scenario("doses")
        return simulate_scenario(point_mass_fit(spec), scenario, key=jax.random.PRNGKey(0), n_patients=40, draws=2)

    def test_writes_every_file_and_returns_the_summary_it_wrote(self, result, tmp_path):
        out = tmp_path / "scenario"
        summary = write_scenario_report(result, out, extra={"fit_dir": "fits/x"})
        assert sorted(p.name for p in out.iterdir()) == sorted(SCENARIO_FILES)
        assert json.loads((out / "summary.json").read_text()) == summary
        assert summary["fit_dir"] == "fits/x" and summary["out"] == str(out)
        assert (out / "scenario.toml").read_bytes() == open(result.scenario.source, "rb").read()

    def test_tables_built_on_simulated_data_say_so(self, result, tmp_path):
        write_scenario_report(result, tmp_path / "s")
        for name in ("profiles.csv", "exposure.csv"):
            assert (tmp_path / "s" / name).read_text().startswith("# SIMULATED")
        profiles = pd.read_csv(tmp_path / "s" / "profiles.csv", comment="#")
        assert set(profiles["dose"]) == set(result.doses) and len(profiles) == len(result.doses) * len(result.times)
        exposure = pd.read_csv(tmp_path / "s" / "exposure.csv", comment="#")
        assert {"q5", "q50", "q95", "typical_median"} <= set(exposure.columns)

    def test_a_scenario_built_from_a_dict_has_no_file_to_copy(self, spec, tmp_path):
        sim = simulate_scenario(point_mass_fit(spec), scenario_from_dict(SMALL), key=jax.random.PRNGKey(1),
                                n_patients=20)
        write_scenario_report(sim, tmp_path / "s")
        assert not (tmp_path / "s" / "scenario.toml").exists() and (tmp_path / "s" / "summary.json").exists()
