"""`carkin report`: a thin layer over carkin.report.write_report."""

from typer.testing import CliRunner

from carkin.cli import app
from tests.report.conftest import fit_dir  # noqa: F401  (the shared saved-fit fixture)


def test_report_command_writes_the_html_file(fit_dir, tmp_path):  # noqa: F811 (the imported fixture)
    out = tmp_path / "r" / "report.html"
    result = CliRunner().invoke(app, ["report", str(fit_dir), "--out", str(out), "--replicates", "20"])
    assert result.exit_code == 0, result.output
    assert out.exists() and "SIMULATED data" in out.read_text()


def test_report_command_exits_2_naming_a_missing_fit_dir(tmp_path):
    result = CliRunner().invoke(app, ["report", str(tmp_path / "nofit"), "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 2
    assert "not a carkin fit directory" in " ".join(result.output.split())
