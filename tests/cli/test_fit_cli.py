"""End to end on the command line: simulate-cohort -> fit -> artefacts; determinism; kills; bad input."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
from typer.testing import CliRunner

from carkin.cli import app
from carkin.data import read_table

runner = CliRunner()
QUICK = ["--chains", "2", "--warmup", "100", "--samples", "100", "--no-progress"]


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "cohort"
    result = runner.invoke(app, ["simulate-cohort", "--n", "30", "--seed", "5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_simulated_cohort_files_say_simulated(cohort_dir):
    for name in ("ck.csv", "covariates.csv"):
        first = (cohort_dir / name).read_text().splitlines()[0]
        assert first.startswith("# SIMULATED")
    assert json.loads((cohort_dir / "truth.json").read_text())["simulated"] is True


def fit_args(cohort_dir, out, seed="1"):
    return ["fit", str(cohort_dir / "ck.csv"), "--covariates", str(cohort_dir / "covariates.csv"),
            "--out", str(out), "--seed", seed, *QUICK]


def test_fit_writes_the_artefacts_and_fails_loudly_on_its_gates(cohort_dir, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, fit_args(cohort_dir, out))
    assert result.exit_code == 1, result.output  # 2 x 100 draws cannot pass the ESS gate
    assert "FAILED ITS CONVERGENCE GATES" in result.output
    for name in ("posterior.nc", "parameters.csv", "manifest.json", "individual_fits.png", "input"):
        assert (out / name).exists(), name
    table = read_table(out / "parameters.csv").frame
    assert list(table.columns) == ["parameter", "mean", "sd", "q05", "q50", "q95", "r_hat", "ess_bulk", "ess_tail"]
    assert {"typical_tmax", "typical_alpha", "omega_cmax", "beta_tumor_burden_cmax", "sigma"} <= set(table.parameter)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 1 and manifest["diagnostics"]["passed"] is False
    assert manifest["data"]["simulated"] is True and len(manifest["data"]["hash"]) == 64
    assert manifest["settings"]["chains"] == 2
    assert manifest["settings"]["whitening"] and manifest["diagnostics"]["warmup_stages"] == [50, 50]


def test_no_whitening_runs_one_warm_up_stage(cohort_dir, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, fit_args(cohort_dir, out) + ["--no-whitening", "--allow-unconverged"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"]["whitening"] is False and manifest["diagnostics"]["whitening"] is False
    assert "warmup_stages" not in manifest["diagnostics"]


def test_allow_unconverged_exits_zero_and_same_seed_gives_identical_numbers(cohort_dir, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        result = runner.invoke(app, fit_args(cohort_dir, out) + ["--allow-unconverged"])
        assert result.exit_code == 0, result.output
    assert (a / "parameters.csv").read_bytes() == (b / "parameters.csv").read_bytes()


def test_bad_data_exits_2_with_file_row_and_column(tmp_path):
    # A long path: the message must not be wrapped at the terminal width (that once split "row 3" in CI).
    (tmp_path / ("deep" * 20)).mkdir()
    ck = tmp_path / ("deep" * 20) / "ck.csv"
    ck.write_text("ID,TIME,DV,EVID,AMT,MDV\n1,0,.,1,450,1\n1,-3,100,0,.,0\n")
    result = runner.invoke(app, ["fit", str(ck), "--out", str(tmp_path / "run"), *QUICK])
    assert result.exit_code == 2
    assert f"{ck}, row 3, column TIME" in result.output
    assert not (tmp_path / "run").exists()


def test_a_fit_killed_midway_leaves_no_output_directory(cohort_dir, tmp_path):
    """Killed once the data are loaded and the sampler is being built or run (the load summary is on its output:
    no fixed sleep from the start, so machine load does not matter)."""
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "carkin", "fit", str(cohort_dir / "ck.csv"), "--covariates",
           str(cohort_dir / "covariates.csv"), "--out", str(out), "--warmup", "5000", "--samples", "5000",
           "--no-progress"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    stderr = bytearray()

    def read_stderr():
        for chunk in iter(lambda: proc.stdout.read1(4096), b""):
            stderr.extend(chunk)

    threading.Thread(target=read_stderr, daemon=True).start()
    try:
        deadline = time.monotonic() + 900  # generous: only a hung or crashed fit gets near it
        while not re.search(rb"observation records", bytes(stderr)):
            assert proc.poll() is None, "the fit ended before sampling: " + stderr.decode(errors="replace")[-2000:]
            assert time.monotonic() < deadline, "no load summary after 900 s"
            time.sleep(0.2)
        time.sleep(2)  # into building and compiling the model; 4 x 10,000 NUTS iterations take minutes more
        assert proc.poll() is None, "the fit ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".killed")] == []


def test_fit_refuses_an_output_folder_holding_other_files_before_sampling(cohort_dir, tmp_path):
    out = tmp_path / "notes"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = runner.invoke(app, fit_args(cohort_dir, out))
    assert result.exit_code == 2
    assert "notes.txt" in result.output and "did not write" in result.output
    assert (out / "notes.txt").read_text() == "mine"
