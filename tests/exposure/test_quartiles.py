"""Quartiles with uncertainty: cut points, membership probabilities, plug-in labels, the dose table."""

import numpy as np
import pytest

from carkin.exposure import exposure_quartiles, quartile_by_dose
from carkin.exposure._quartiles import quartile_of

IDS = tuple(f"P{k}" for k in range(8))


def test_quartile_of_splits_eight_distinct_values_two_per_group():
    cuts, groups = quartile_of(np.arange(8.0))
    np.testing.assert_allclose(cuts, [1.75, 3.5, 5.25])
    assert list(groups) == [1, 1, 2, 2, 3, 3, 4, 4]


def test_without_uncertainty_membership_is_certain_and_equals_the_plug_in_label():
    draws = np.tile(np.arange(8.0), (5, 1))
    q = exposure_quartiles(draws, patient_ids=IDS)
    assert list(q.plug_in) == [1, 1, 2, 2, 3, 3, 4, 4]
    np.testing.assert_array_equal(q.probabilities[np.arange(8), q.plug_in - 1], 1.0)
    assert q.misclassification() == 0.0


def test_membership_probabilities_sum_to_one_and_count_the_draws():
    rng = np.random.default_rng(0)
    draws = np.arange(8.0)[None, :] + rng.normal(0.0, 1.5, (400, 8))
    q = exposure_quartiles(draws, patient_ids=IDS, metric="cmax")
    np.testing.assert_allclose(q.probabilities.sum(axis=1), 1.0)
    _, groups = quartile_of(draws)
    assert q.probabilities[0, 0] == pytest.approx(np.mean(groups[:, 0] == 1))
    assert 0 < q.misclassification() < 0.75
    assert q.cut_draws.shape == (400, 3)
    table = q.membership()
    assert list(table.columns) == [
        "ID",
        "metric",
        "plug_in_value",
        "quartile_plug_in",
        "quartile_modal",
        "P_Q1",
        "P_Q2",
        "P_Q3",
        "P_Q4",
        "P_plug_in_label",
    ]
    cuts = q.cut_points()
    assert list(cuts["cut"]) == ["Q1|Q2", "Q2|Q3", "Q3|Q4"] and (cuts["q05"] <= cuts["q95"]).all()


def test_quartile_by_dose_counts_plug_in_labels_and_expected_members_per_level():
    draws = np.tile(np.arange(8.0), (3, 1))
    q = exposure_quartiles(draws, patient_ids=IDS)
    dose = np.array([160.0, 440.0, 300.0, 450.0, 175.0, 529.0, 290.0, 400.0])
    table = quartile_by_dose(q, dose).set_index("dose_level")
    assert list(table.index) == ["150", "300", "450", "all"]
    assert table.loc["150", ["n", "Q1", "Q2", "Q3", "Q4"]].tolist() == [2, 1, 0, 1, 0]
    assert table.loc["450", ["n", "Q1", "Q2", "Q3", "Q4"]].tolist() == [4, 1, 1, 1, 1]
    assert table.loc["all", "E_Q4"] == pytest.approx(2.0)


def test_draws_of_the_wrong_shape_are_refused():
    with pytest.raises(ValueError, match=r"shape \(samples, patients\) = \(\*, 8\)"):
        exposure_quartiles(np.zeros((3, 7)), patient_ids=IDS)


def test_too_many_groups_are_refused():
    with pytest.raises(ValueError, match="n_groups=9"):
        exposure_quartiles(np.zeros((3, 8)), patient_ids=IDS, n_groups=9)
