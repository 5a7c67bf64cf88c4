import pytest

from .helpers import multiphasic_cohort, truth_fit


@pytest.fixture(scope="session")
def truth_setup():
    """(spec, cohort, fit): 120 patients simulated from models/multiphasic.toml and a point-mass truth posterior."""
    spec, cohort = multiphasic_cohort(seed=0, n=120)
    return spec, cohort, truth_fit(spec, cohort)
