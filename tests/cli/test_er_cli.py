"""`carkin exposure` and `carkin er` end to end on the virtual KarMMa-3 cohort (SIMULATED data).

The cohort is the shipped realisation (`carkin.cohorts.karmma3_sim_paths()`) when it is installed, else a
realisation drawn here with `simulate_karmma3` (seed 0). The CK fit is a deliberately short NUTS run
(2 chains x 100 draws, tree depth 5, ``--allow-unconverged``) written to ``<tmp>/fit``: enough for
point exposures, not for reporting.
"""

import json

import jax
import pandas as pd
import pytest
from typer.testing import CliRunner

from carkin._karmma3 import STRATIFICATION_FACTORS, TUMOR_BURDEN
from carkin.cli import app
from carkin.cohorts import karmma3_sim_paths, simulate_karmma3

runner = CliRunner()
KEYS = {"hr_per_doubling", "hr_ci_low", "hr_ci_high", "trend_p", "median_pfs_by_quartile", "counts", "simulated",
        "quartile_counts", "quartile_hr", "width_ratio", "landmark_days", "method", "metric", "excluded", "plugin"}


def _evaluable_ck(source, target):
    """The CK file without patients that have a dose record but no observation (they cannot be fitted; the
    E-R analysis lists them as not CK-evaluable). The leading '# SIMULATED' lines are kept."""
    lines = source.read_text().splitlines()
    header = [line for line in lines if line.startswith("#")]
    table = pd.read_csv(source, comment="#", na_values=".", dtype={"ID": str})
    observed = set(table.loc[table["EVID"] == 0, "ID"])
    kept = table[table["ID"].isin(observed)]
    with open(target, "w", encoding="utf-8") as handle:
        handle.write("\n".join(header) + "\n")
        kept.to_csv(handle, index=False, na_rep=".", lineterminator="\n")
    return target


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("karmma3")
    paths = karmma3_sim_paths()
    if paths["ck"].exists() and paths["patients"].exists():
        ck, patients = paths["ck"], paths["patients"]
    else:
        simulate_karmma3(jax.random.key(0), seed=0).write(root / "cohort")
        ck, patients = root / "cohort" / "ck.csv", root / "cohort" / "patients.csv"
    ck = _evaluable_ck(ck, root / "ck_evaluable.csv")
    fit_dir = root / "fit"
    result = runner.invoke(app, [
        "fit", str(ck), "--covariates", str(patients), "--out", str(fit_dir), "--chains", "2", "--warmup", "100",
        "--samples", "100", "--max-tree-depth", "5", "--seed", "1", "--allow-extra-ids", "--allow-unconverged",
        "--no-progress",
    ])
    assert result.exit_code == 0, result.output
    return {"fit": fit_dir, "patients": patients, "root": root}


def test_exposure_writes_posterior_tables_quartiles_and_nca_marked_simulated(cohort):
    out = cohort["root"] / "exposure"
    result = runner.invoke(app, ["exposure", str(cohort["fit"]), "--metrics", "cmax,auc28", "--metrics", "c_m6",
                                 "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    index = json.loads((out / "exposure.json").read_text())
    assert json.loads(result.stdout) == index  # printed from what was written, not read back
    assert index["simulated"] is True and "SIMULATED" in index["simulated_note"]
    assert list(index["metrics"]) == ["cmax", "auc28", "c_m6"] and index["draws_per_patient"] == 200
    for name in ("exposure_summary.csv", "quartiles.csv", "quartile_cuts.csv", "quartile_by_dose.csv", "nca.csv"):
        assert (out / name).read_text().startswith("# SIMULATED"), name
    summary = pd.read_csv(out / "exposure_summary.csv", comment="#")
    assert list(summary.columns) == ["ID", "metric", "label", "unit", "mean", "sd", "q05", "q50", "q95"]
    assert (summary["q05"] <= summary["q95"]).all()
    by_dose = pd.read_csv(out / "quartile_by_dose.csv", comment="#")
    patients = len(json.loads((cohort["fit"] / "manifest.json").read_text())["patient_ids"])
    assert len(summary) == 3 * patients
    assert (by_dose[by_dose.dose_level != "all"].groupby("metric")["n"].sum() == patients).all()


def test_er_shows_pfs_increasing_with_expansion_quartile_and_says_simulated(cohort):
    out = cohort["root"] / "er"
    result = runner.invoke(app, ["er", str(cohort["fit"]), str(cohort["patients"]), "--metric", "cmax", "--json",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert KEYS <= set(payload) and payload["simulated"] is True and payload["method"] == "plugin"
    medians = [payload["median_pfs_by_quartile"][q] for q in ("Q1", "Q2", "Q3", "Q4")]
    medians = [float("inf") if m is None else m for m in medians]  # None: median not reached
    assert medians == sorted(medians) and medians[0] < medians[3]
    assert payload["trend_z"] < 0 and payload["trend_p"] < 0.001
    assert payload["hr_ci_high"] < 1.0 and payload["landmark_days"] == 28.0
    counts = payload["counts"]
    assert counts["other_arm"] == 132 and counts["not_infused"] == 29
    assert counts["infused"] == 225 and counts["ck_evaluable"] + counts["not_ck_evaluable"] == 225
    assert (
        counts["analysed"]
        == counts["ck_evaluable"] - counts["event_before_landmark"] - counts["censored_before_landmark"]
    )
    assert payload["excluded"]["not_infused"] and len(payload["excluded"]["not_infused"]) == 29
    assert (out / "report.md").read_text().startswith("**SIMULATED")
    for name in (
        "er.json",
        "km_by_quartile.png",
        "forest.png",
        "analysis_set.csv",
        "excluded.csv",
        "hazard_ratios.csv",
    ):
        assert (out / name).exists(), name


def _user_table(cohort, tmp_path, drop):
    """The patients table as a user's own: without the KarMMa-3 columns in ``drop``, no comment lines."""
    table = pd.read_csv(cohort["patients"], comment="#", na_values=".", dtype={"ID": str})
    path = tmp_path / "my_patients.csv"
    table.drop(columns=list(drop)).to_csv(path, index=False, na_rep=".")
    return path


def test_er_on_a_table_without_the_karmma3_columns_adjusts_for_nothing_and_says_so(cohort, tmp_path):
    path = _user_table(cohort, tmp_path, drop=[*STRATIFICATION_FACTORS, TUMOR_BURDEN])
    result = runner.invoke(app, ["er", str(cohort["fit"]), str(path), "--out", str(tmp_path / "er"), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["adjusted_for"] == [] and payload["plugin"]["hr_per_doubling"] > 0
    assert payload == json.loads((tmp_path / "er" / "er.json").read_text())
    assert "Adjusted for: nothing" in (tmp_path / "er" / "report.md").read_text()
    table = runner.invoke(app, ["er", str(cohort["fit"]), str(path), "--out", str(tmp_path / "er")])
    assert table.exit_code == 0, table.output
    assert "adjusted for" in table.output and "nothing (name columns with --adjust)" in table.output


def test_er_adjusts_for_the_columns_named_with_adjust(cohort, tmp_path):
    path = _user_table(cohort, tmp_path, drop=STRATIFICATION_FACTORS)
    result = runner.invoke(app, ["er", str(cohort["fit"]), str(path), "--adjust", TUMOR_BURDEN, "--json",
                                 "--out", str(tmp_path / "er")])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["adjusted_for"] == ["TUMOR_BURDEN_PER10"]
    assert payload["plugin"]["hr_ci_low"] != payload["plugin"]["unadjusted"]["hr_ci_low"]


def test_er_names_an_adjustment_column_the_table_lacks(cohort, tmp_path):
    path = _user_table(cohort, tmp_path, drop=STRATIFICATION_FACTORS)
    result = runner.invoke(app, ["er", str(cohort["fit"]), str(path), "--adjust", "TUMOR_BURDEN,AGE_GE65",
                                 "--out", str(tmp_path / "er")])
    assert result.exit_code == 2
    assert f"error: {path}, column AGE_GE65: adjusted for because adjust=" in result.stderr
    assert "add the column to the table or leave it out of the adjustment" in result.stderr
    assert not (tmp_path / "er").exists()


def test_er_reports_bad_arguments_as_user_errors(cohort):
    result = runner.invoke(app, ["er", str(cohort["fit"]), str(cohort["patients"]), "--metric", "auc28d"])
    assert result.exit_code == 2 and "unknown exposure metric" in result.output
    result = runner.invoke(app, ["er", str(cohort["fit"]), str(cohort["root"] / "missing.csv")])
    assert result.exit_code == 2


@pytest.mark.slow
def test_er_two_stage_reports_how_much_wider_than_the_plug_in(cohort):
    out = cohort["root"] / "er2"
    result = runner.invoke(app, ["er", str(cohort["fit"]), str(cohort["patients"]), "--method", "two-stage",
                                 "--chains", "1", "--warmup", "200", "--samples", "200", "--draws", "100", "--json",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["method"] == "two-stage" and payload["width_ratio"] > 0
    assert payload["bayes"]["n_exposure_draws"] == 100
    assert payload["hr_ci_high"] < 1.0 and payload["seed"] == 0
    # one chain has no R-hat: the convergence gate fails and says why, under stable keys
    gate = payload["bayes"]["diagnostics"]
    assert gate["passed"] is False and any("R-hat nan" in f for f in gate["failures"])
    assert set(gate) >= {"passed", "failures", "gates", "max_r_hat", "min_ess_bulk", "min_ess_tail", "divergences"}
    assert "FAILED its convergence gates" in (out / "report.md").read_text()
