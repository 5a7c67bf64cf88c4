"""Fixtures shared by the cohort tests."""

import pytest

from carkin.cohorts import KarMMa3Config, load_karmma3_config


@pytest.fixture(scope="module")
def config() -> KarMMa3Config:
    """The shipped KarMMa-3 generator configuration (models/karmma3_cohort.toml)."""
    return load_karmma3_config()
