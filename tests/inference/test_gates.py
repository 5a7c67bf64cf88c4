"""The one convergence gate of every MCMC fit: verdict, failures naming the quantity, warning."""

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from carkin.errors import ConvergenceWarning
from carkin.inference import Gates, judge_convergence, parameter_table, warn_if_failed


def table(**rows):
    """A parameter table from name=(r_hat, ess_bulk, ess_tail)."""
    return pd.DataFrame([{"parameter": k, "r_hat": v[0], "ess_bulk": v[1], "ess_tail": v[2]} for k, v in rows.items()])


def test_a_healthy_table_passes_and_reports_its_extremes():
    verdict = judge_convergence(table(a=(1.001, 900.0, 800.0), b=(1.004, 500.0, 450.0)), 0)
    assert verdict["passed"] and verdict["failures"] == []
    assert verdict["max_r_hat"] == 1.004 and verdict["min_ess_bulk"] == 500.0 and verdict["min_ess_tail"] == 450.0
    assert verdict["divergences"] == 0 and verdict["gates"] == {"max_r_hat": 1.01, "min_ess_bulk": 400.0,
                                                               "min_ess_tail": 400.0, "max_divergences": 0}


def test_each_failed_check_is_one_line_naming_the_quantity():
    verdict = judge_convergence(table(log_hr=(1.05, 120.0, 90.0), coef_AGE=(1.0, 900.0, 900.0)), 2)
    assert not verdict["passed"]
    assert verdict["failures"] == ["log_hr: R-hat 1.050 > 1.01", "log_hr: bulk ESS 120 < 400",
                                   "log_hr: tail ESS 90 < 400", "2 divergent transitions > 0"]


def test_a_single_chain_has_no_r_hat_and_fails():
    verdict = judge_convergence(table(log_hr=(math.nan, 900.0, 900.0)), 0)
    assert verdict["failures"] == ["log_hr: R-hat nan > 1.01"] and verdict["max_r_hat"] is None


def test_gates_are_configurable():
    relaxed = Gates(max_r_hat=1.1, min_ess_bulk=100, min_ess_tail=50, max_divergences=3)
    assert judge_convergence(table(x=(1.05, 120.0, 90.0)), 3, relaxed)["passed"]


def test_the_warning_lists_the_failures_and_caps_long_lists():
    verdict = judge_convergence(table(**{f"q{i}": (1.2, 10.0, 10.0) for i in range(20)}), 0)
    with pytest.warns(
        ConvergenceWarning, match=r"the E-R fit FAILED its convergence gates:\n  q0: R-hat 1.200"
    ) as record:
        warn_if_failed(verdict, "the E-R fit")
    message = str(record[0].message)
    assert message.count("\n") == 26 and message.endswith("... and 35 more")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_failed(judge_convergence(table(x=(1.0, 900.0, 900.0)), 0), "quiet")  # a pass warns nothing


def test_the_gate_reads_a_parameter_table_of_draws():
    rng = np.random.default_rng(0)
    good = parameter_table({"x": rng.normal(size=(4, 1000))})
    stuck = parameter_table({"x": np.stack([rng.normal(size=1000), rng.normal(size=1000) + 5.0])})
    assert judge_convergence(good, 0)["passed"]
    failures = judge_convergence(stuck, 0)["failures"]
    assert any(f.startswith("x: R-hat") for f in failures)
