"""Issue acceptance: `carkin trial analyze` on the shipped SIMULATED cohort reproduces the published analysis.

Published figures ([RodriguezOtero2023] in docs/references.md: Rodriguez-Otero NEJM 2023): KM medians inside the published 95% CIs
(ide-cel 11.8-16.1, standard 3.4-5.9 months); Cox HR inside 0.38-0.65; PFS at 6 and 12 months within 5
points of 73/40% and 55/30%; ORR within 3 points of 71% and 42%; 242 +/- 15 events.
"""

import json

import pytest
from typer.testing import CliRunner

from carkin.cli import app
from carkin.cohorts import karmma3_sim_paths


@pytest.fixture(scope="module")
def result():
    out = CliRunner().invoke(app, ["trial", "analyze", str(karmma3_sim_paths()["patients"]), "--json"])
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout)


def test_the_shipped_cohort_is_labelled_simulated(result):
    assert result["simulated"] is True


def test_km_medians_lie_inside_the_published_confidence_intervals(result):
    assert 11.8 <= result["median_pfs"]["ide-cel"]["median"] <= 16.1
    assert 3.4 <= result["median_pfs"]["standard"]["median"] <= 5.9


def test_hazard_ratio_lies_inside_the_published_interval(result):
    assert 0.38 <= result["hazard_ratio"] <= 0.65
    assert result["logrank_p"] < 0.001


@pytest.mark.parametrize("key, arm, published", [
    ("pfs_at_6", "ide-cel", 0.73), ("pfs_at_6", "standard", 0.40),
    ("pfs_at_12", "ide-cel", 0.55), ("pfs_at_12", "standard", 0.30),
])
def test_landmark_pfs_within_five_points(result, key, arm, published):
    assert abs(result[key][arm]["survival"] - published) <= 0.05


@pytest.mark.parametrize("arm, published", [("ide-cel", 0.71), ("standard", 0.42)])
def test_orr_within_three_points(result, arm, published):
    assert abs(result["orr"][arm]["rate"] - published) <= 0.03


def test_event_count_near_the_interim_analysis(result):
    assert abs(result["events"]["total"] - 242) <= 15
    assert result["n_randomized"] == {"ide-cel": 254, "standard": 132, "total": 386}
