"""The HTML report: content, self-containment, simulated banner, optional E-R and scenario folders."""

import json
import re

import matplotlib.pyplot as plt
import pytest

from carkin.report import build_report


def test_report_is_one_self_contained_file_with_every_section(report_html):
    text = report_html.read_text(encoding="utf-8")
    for anchor in ("data", "model", "convergence", "parameters", "gof", "vpc", "manifest"):
        assert f'id="{anchor}"' in text
    images = re.findall(r'<img[^>]*src="([^"]+)"', text)
    assert len(images) >= 5 and all(src.startswith("data:image/png;base64,") for src in images)
    assert not re.search(r'(src|href)="(https?:|file:|//)', text)
    assert "<script" not in text


def test_report_on_simulated_data_carries_the_banner_and_a_loud_failed_verdict(report_html):
    text = report_html.read_text(encoding="utf-8")
    assert text.count('class="banner"') == 2 and "SIMULATED data" in text
    assert 'class="fail"' in text and "CONVERGENCE FAILED" in text


def test_report_includes_er_and_scenario_results_when_given(fit_dir, tmp_path):
    er = tmp_path / "er"
    er.mkdir()
    (er / "er.json").write_text(json.dumps({"simulated": True, "hr_per_doubling": 0.61, "counts": {"analysed": 150}}))
    fig = plt.figure()
    fig.savefig(er / "km_by_quartile.png")
    plt.close(fig)
    sim = tmp_path / "sim"
    sim.mkdir()
    summary = {"scenario": "doses", "simulated_data": True, "notes": ["a note"], "times_days": [0.0, 28.0],
               "lloq": {"value": 18.0, "unit": "copies/ug", "source": "the fit's data"},
               "doses": [{"dose": 150.0, "exposure": {"cmax": {"predictive": {"q05": 1e3, "q50": 2e4, "q95": 9e4}}},
                          "blq_fraction": {"pooled": [0.9, 0.123], "lower": [0.8, 0.1], "upper": [1.0, 0.15]}}]}
    (sim / "summary.json").write_text(json.dumps(summary))
    text = build_report(fit_dir, er_dir=er, sim_dir=sim, replicates=20)
    assert 'id="er"' in text and "hr_per_doubling" in text and "0.61" in text and "counts.analysed" in text
    assert 'id="scenario"' in text and "2e+04 [1e+03-9e+04]" in text and "a note" in text
    assert "BLQ at day 28" in text and "0.123" in text and "lloq.value" in text
    assert text.count("data:image/png;base64,") >= 6


def test_report_names_a_missing_folder(fit_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="--er .*no such directory"):
        build_report(fit_dir, er_dir=tmp_path / "absent")
