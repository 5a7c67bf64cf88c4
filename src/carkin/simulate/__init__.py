"""Simulation: virtual populations and CK records from a population model, and dose scenarios from a fit.

Observations are drawn by carkin's one generative model (`carkin.population.sample_observations`) and
exposures computed by its one exposure engine (`carkin.exposure.exposure_metrics`).
"""

from ._cohort import (
    PopulationParameters as PopulationParameters,
)
from ._cohort import (
    SimulatedCohort as SimulatedCohort,
)
from ._cohort import (
    simulate_cohort as simulate_cohort,
)
from ._cohort import (
    truth_from_spec as truth_from_spec,
)
from ._dose_scenarios import (
    posterior_population_draws as posterior_population_draws,
)
from ._dose_scenarios import (
    scenario_lloq as scenario_lloq,
)
from ._dose_scenarios import (
    simulate_scenario as simulate_scenario,
)
from ._plots import (
    plot_scenario_exposure as plot_scenario_exposure,
)
from ._plots import (
    plot_scenario_profiles as plot_scenario_profiles,
)
from ._scenario import (
    CovariateDistribution as CovariateDistribution,
)
from ._scenario import (
    DoseScenario as DoseScenario,
)
from ._scenario import (
    ExposureResponseHook as ExposureResponseHook,
)
from ._scenario import (
    Target as Target,
)
from ._scenario import (
    load_scenario as load_scenario,
)
from ._scenario import (
    scenario_from_dict as scenario_from_dict,
)
from ._scenario import (
    scenario_metrics as scenario_metrics,
)
from ._scenario_result import ScenarioResult as ScenarioResult
from ._write import (
    COHORT_FILES as COHORT_FILES,
)
from ._write import (
    SCENARIO_FILES as SCENARIO_FILES,
)
from ._write import (
    write_scenario_report as write_scenario_report,
)
from ._write import (
    write_simulated_cohort as write_simulated_cohort,
)
