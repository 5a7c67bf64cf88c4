"""Simulated cohorts: virtual trials drawn from published summary figures (always labelled SIMULATED).

The default is the virtual KarMMa-3 trial of ide-cel vs standard regimens; see
:mod:`carkin.cohorts.karmma3` for its assumptions and calibration.
"""

from ._cohort import KarMMa3Cohort as KarMMa3Cohort, simulate_karmma3 as simulate_karmma3
from ._config import (
    KarMMa3Config as KarMMa3Config,
    default_config_path as default_config_path,
    load_karmma3_config as load_karmma3_config,
)
from ._shipped import (
    first_passing_seed as first_passing_seed,
    karmma3_sim_paths as karmma3_sim_paths,
)
from ._summary import (
    calibration_table as calibration_table,
    meets_shipped_targets as meets_shipped_targets,
    summarize_karmma3 as summarize_karmma3,
)
