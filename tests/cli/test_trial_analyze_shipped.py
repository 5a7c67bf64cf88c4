"""Issue acceptance: `carkin trial analyze` on the shipped SIMULATED cohort reproduces the published analysis.

Published figures (`carkin._karmma3.PUBLISHED`: [RodriguezOtero2023] in docs/references.md, Rodriguez-Otero
NEJM 2023): KM medians inside the published 95% CIs (ide-cel 11.8-16.1, standard 3.4-5.9 months); Cox HR inside
0.38-0.65; PFS at 6 and 12 months within 5 points of 73/40% and 55/30%; ORR within 3 points of 71% and 42%;
242 +/- 15 events.
"""

import json

import pytest
from typer.testing import CliRunner

from carkin._karmma3 import ARMS, N_RANDOMIZED, PUBLISHED
from carkin.cli import app
from carkin.cohorts import karmma3_sim_paths

KEY = {"ide-cel": "ide_cel", "standard": "standard"}  # arm label -> its suffix in PUBLISHED


@pytest.fixture(scope="module")
def result():
    out = CliRunner().invoke(app, ["trial", "analyze", str(karmma3_sim_paths()["patients"]), "--json"])
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout)


def test_the_shipped_cohort_is_labelled_simulated(result):
    assert result["simulated"] is True


@pytest.mark.parametrize("arm", ARMS)
def test_km_medians_lie_inside_the_published_confidence_intervals(result, arm):
    low, high = PUBLISHED[f"median_pfs_{KEY[arm]}"].ci
    assert low <= result["median_pfs"][arm]["median"] <= high


def test_hazard_ratio_lies_inside_the_published_interval(result):
    low, high = PUBLISHED["hazard_ratio"].ci
    assert low <= result["hazard_ratio"] <= high
    assert result["logrank_p"] < 0.001


@pytest.mark.parametrize("months", [6, 12])
@pytest.mark.parametrize("arm", ARMS)
def test_landmark_pfs_within_five_points(result, months, arm):
    published = PUBLISHED[f"pfs{months}_{KEY[arm]}"].value
    assert abs(result[f"pfs_at_{months}"][arm]["survival"] - published) <= 0.05


@pytest.mark.parametrize("arm", ARMS)
def test_orr_within_three_points(result, arm):
    assert abs(result["orr"][arm]["rate"] - PUBLISHED[f"orr_{KEY[arm]}"].value) <= 0.03


def test_event_count_near_the_interim_analysis(result):
    assert abs(result["events"]["total"] - PUBLISHED["events"].value) <= 15
    assert result["n_randomized"] == {**N_RANDOMIZED, "total": sum(N_RANDOMIZED.values())}
