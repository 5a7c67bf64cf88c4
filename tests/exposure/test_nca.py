"""NCA of observed records against trapezoids computed by hand."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from carkin.data import Dataset
from carkin.exposure import nca

L = 10.0  # LLOQ, copies/ug


def _dataset():
    nan = 0.0
    times = np.array([
        [0.0, 3.0, 7.0, 11.0, 22.0, 61.0, 91.0],
        [2.0, 5.0, 9.0, 14.0, 20.0, nan, nan],
        [4.0, 30.0, nan, nan, nan, nan, nan],
    ])
    dv = np.array([
        [L, 100.0, 1000.0, 5000.0, 2000.0, 50.0, L],
        [L, 40.0, L, 800.0, 300.0, 1.0, 1.0],
        [L, L, 1.0, 1.0, 1.0, 1.0, 1.0],
    ])
    blq = np.array([
        [True, False, False, False, False, False, True],
        [True, False, True, False, False, False, False],
        [True, True, False, False, False, False, False],
    ])
    mask = np.array([[True] * 7, [True] * 5 + [False] * 2, [True] * 2 + [False] * 5])
    return Dataset(
        patient_ids=("A", "B", "C"), times=jnp.asarray(times), dv=jnp.asarray(dv), blq=jnp.asarray(blq),
        lloq=jnp.full((3, 7), L), obs_mask=jnp.asarray(mask), source_rows=jnp.zeros((3, 7), int),
        dose=jnp.asarray([450.0, 300.0, 150.0]), dose_time=jnp.zeros(3), covariates=jnp.zeros((3, 0)),
        covariate_names=(), source="<test>",
    )


def test_linear_up_log_down_auc_matches_the_hand_computed_trapezoids():
    table = nca(_dataset()).set_index("ID")
    # A: 0-3, 3-7, 7-11 rising (linear); 11-22 falling (log); 22-28 is the log interpolant of 22-61 cut at 28
    k = math.log(50.0 / 2000.0) / 39.0
    a = 150.0 + 2200.0 + 12000.0 + 3000.0 * 11.0 / math.log(2.5) + 2000.0 * (math.exp(6.0 * k) - 1.0) / k
    # B: BLQ at day 2 (before the first quantified record) counts as 0; the embedded BLQ at day 9 is left out;
    # sampling stops at day 20: the AUC runs to day 20
    b = 0.0 + 60.0 + 3780.0 + 500.0 * 6.0 / math.log(800.0 / 300.0)
    assert table.loc["A", "AUC_0_28_NCA"] == pytest.approx(a, rel=1e-12)
    assert table.loc["B", "AUC_0_28_NCA"] == pytest.approx(b, rel=1e-12)
    assert table.loc["C", "AUC_0_28_NCA"] == 0.0


def test_linear_trapezoid_matches_the_hand_computed_sum():
    table = nca(_dataset(), method="linear").set_index("ID")
    a = 150.0 + 2200.0 + 12000.0 + 7000.0 / 2 * 11.0 + (2000.0 * 6.0 + (50.0 - 2000.0) * 36.0 / 78.0)
    assert table.loc["A", "AUC_0_28_NCA"] == pytest.approx(a, rel=1e-12)


def test_observed_cmax_tmax_tlast_counts_and_completeness():
    table = nca(_dataset()).set_index("ID")
    assert (table.loc["A", "CMAX_OBS"], table.loc["A", "TMAX_OBS"], table.loc["A", "TLAST"]) == (5000.0, 11.0, 22.0)
    assert (table.loc["B", "CMAX_OBS"], table.loc["B", "TMAX_OBS"], table.loc["B", "TLAST"]) == (800.0, 14.0, 20.0)
    assert np.isnan(table.loc["C", "CMAX_OBS"]) and np.isnan(table.loc["C", "TMAX_OBS"])
    assert list(table["WINDOW_COMPLETE"]) == [True, False, False]
    assert list(table["N_QUANTIFIED"]) == [5, 3, 0] and list(table["N_BLQ"]) == [2, 2, 2]


def test_another_window_names_its_column():
    table = nca(_dataset(), window_days=90.0)
    assert "AUC_0_90_NCA" in table.columns


def test_an_unknown_method_is_refused_with_the_valid_ones():
    with pytest.raises(ValueError, match="choose one of linear-up/log-down, linear"):
        nca(_dataset(), method="log")


def test_a_non_positive_window_is_refused():
    with pytest.raises(ValueError, match="window_days must be a positive number"):
        nca(_dataset(), window_days=0)
