"""Metric names: presets, parametrised forms, windows and default landmarks."""

import pytest

from carkin.exposure import DAYS_PER_MONTH, METRICS, Metric, get_metric, resolve_metrics


def test_presets_have_their_windows_and_landmarks():
    assert METRICS["auc28"].window_days == (0.0, 28.0) and METRICS["auc28"].landmark_days == 28.0
    assert METRICS["cmax"].landmark_days == 28.0
    assert METRICS["c_m6"].end == pytest.approx(6 * DAYS_PER_MONTH)
    assert METRICS["persistence"].needs_lloq and METRICS["persistence"].log_floor == 1.0


@pytest.mark.parametrize(
    "name, kind, start, end",
    [("auc:0-180", "auc", 0.0, 180.0), ("AUC:7-28", "auc", 7.0, 28.0), ("c:60", "conc", 0.0, 60.0),
     ("persistence:730", "time_above_lloq", 0.0, 730.0), (" Cmax ", "cmax", 0.0, 28.0)],
)
def test_parametrised_names_resolve(name, kind, start, end):
    metric = get_metric(name)
    assert (metric.kind, metric.start, metric.end) == (kind, start, end)


def test_an_unknown_metric_lists_the_valid_names_and_forms():
    with pytest.raises(ValueError, match=r"unknown exposure metric 'auc28d'.*cmax, tmax, auc28.*auc:A-B"):
        get_metric("auc28d")


def test_a_reversed_auc_window_is_refused():
    with pytest.raises(ValueError, match="need 0 <= start <= end"):
        get_metric("auc:28-7")


def test_a_metric_requested_twice_is_refused():
    with pytest.raises(ValueError, match="requested twice"):
        resolve_metrics(["cmax", "CMAX"])


def test_a_non_string_metric_gets_a_type_error():
    with pytest.raises(TypeError, match="got 3 of type int"):
        get_metric(3)


def test_metric_kind_is_checked():
    with pytest.raises(ValueError, match="Metric.kind"):
        Metric("x", "peak", 0.0, 1.0, "x", "-")
