"""Simulation: virtual populations and CK records from a population model, and dose scenarios from a fit."""

from ._cohort import (
    PopulationParameters as PopulationParameters,
    SimulatedCohort as SimulatedCohort,
    simulate_cohort as simulate_cohort,
    truth_from_spec as truth_from_spec,
)
from ._dose_scenarios import (
    posterior_population_draws as posterior_population_draws,
    simulate_scenario as simulate_scenario,
)
from ._metrics import exposure_metrics as exposure_metrics
from ._plots import (
    plot_scenario_exposure as plot_scenario_exposure,
    plot_scenario_profiles as plot_scenario_profiles,
)
from ._scenario import (
    CovariateDistribution as CovariateDistribution,
    DoseScenario as DoseScenario,
    ExposureResponseHook as ExposureResponseHook,
    Target as Target,
    load_scenario as load_scenario,
    scenario_from_dict as scenario_from_dict,
)
from ._scenario_result import ScenarioResult as ScenarioResult
