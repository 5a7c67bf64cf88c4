"""Simulation: virtual populations and CK records from a population model."""

from ._cohort import (
    PopulationParameters as PopulationParameters,
    SimulatedCohort as SimulatedCohort,
    simulate_cohort as simulate_cohort,
    truth_from_spec as truth_from_spec,
)
