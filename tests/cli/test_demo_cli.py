"""`carkin demo --quick`: the whole workflow end to end (slow: a short NUTS run on 225 patients)."""

import json

import pytest
from typer.testing import CliRunner

from carkin.cli import app


@pytest.mark.slow
def test_quick_demo_writes_every_output_and_the_report(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    for name in ("trial", "ck_fit", "diagnostics", "exposure", "er", "scenario"):
        assert (out / name).is_dir(), name
    text = (out / "report.html").read_text()
    assert "SIMULATED data" in text and "CONVERGENCE FAILED" in text  # quick chains fail their gates, loudly
    for anchor in ("exposure", "er", "scenario", "vpc"):
        assert f'id="{anchor}"' in text
    demo = json.loads((out / "demo.json").read_text())
    assert demo["simulated"] and demo["quick"] and set(demo["timings_seconds"]) >= {"fit", "diagnostics", "report"}
