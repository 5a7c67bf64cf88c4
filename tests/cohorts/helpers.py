"""A plain pandas reader of the cohort CSV files, independent of carkin's own reader, so that the tests see the
files as a user's tools would."""

from pathlib import Path

import pandas as pd


def read_csv(path: Path) -> pd.DataFrame:
    """A shipped or written cohort CSV: '#' comment lines skipped, '.' missing."""
    return pd.read_csv(path, comment="#", na_values=".", keep_default_na=False)
