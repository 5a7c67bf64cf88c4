"""Simulation: virtual populations and CK records from a population model, and dose scenarios from a fit.

Observations are drawn by carkin's one generative model (`carkin.population.sample_observations`) and
exposures computed by its one exposure engine (`carkin.exposure.exposure_metrics`).
"""

from ._cohort import (
    PopulationParameters as PopulationParameters,
    SimulatedCohort as SimulatedCohort,
    simulate_cohort as simulate_cohort,
    truth_from_spec as truth_from_spec,
)
from ._dose_scenarios import (
    posterior_population_draws as posterior_population_draws,
    scenario_lloq as scenario_lloq,
    simulate_scenario as simulate_scenario,
)
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
    scenario_metrics as scenario_metrics,
)
from ._scenario_result import ScenarioResult as ScenarioResult
from ._write import (
    COHORT_FILES as COHORT_FILES,
    SCENARIO_FILES as SCENARIO_FILES,
    write_scenario_report as write_scenario_report,
    write_simulated_cohort as write_simulated_cohort,
)
