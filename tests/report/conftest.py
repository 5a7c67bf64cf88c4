import warnings

import pytest

from tests.diagnostics.helpers import multiphasic_cohort, save_truth_fit_dir


@pytest.fixture(scope="session")
def fit_dir(tmp_path_factory):
    """A saved fit directory (point-mass truth posterior, 120 simulated patients, SIMULATED inputs)."""
    spec, cohort = multiphasic_cohort(seed=0, n=120)
    return save_truth_fit_dir(spec, cohort, tmp_path_factory.mktemp("report") / "fit")


@pytest.fixture(scope="session")
def report_html(fit_dir, tmp_path_factory):
    from carkin.report import write_report

    out = tmp_path_factory.mktemp("html") / "report.html"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # arviz: a point-mass posterior has no density to draw
        return write_report(fit_dir, out, replicates=50, stratify="DOSE")
