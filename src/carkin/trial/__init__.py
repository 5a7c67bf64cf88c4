"""Trial design and simulation: group-sequential boundaries, Schoenfeld power, vectorised two-arm trials.

- `load_design` reads a design (``designs/karmma3.toml``) into a `TrialDesign`;
- `compute_bounds` / `TrialDesign.bounds` give Lan-DeMets efficacy and non-binding futility boundaries by
  recursive numerical integration; `analyse_design` adds Schoenfeld power;
- `simulate_trials` simulates replicates with `jax.vmap` and a JAX-native stratified log-rank test
  (`logrank`), with an exposure-response hook (`exposure_log_hazard_offsets`).

Typical use::

    import jax
    from carkin.trial import load_design, analyse_design, simulate_trials
    design = load_design("designs/karmma3.toml")
    analyse_design(design).to_dict()["boundaries"]
    sim = simulate_trials(design, key=jax.random.key(1), replicates=10_000)
    sim.summary()["power"]
"""

from .._hazards import PiecewiseExponential as PiecewiseExponential
from ._accrual import Accrual as Accrual
from ._analytic import (
    DesignReport as DesignReport,
    analyse_design as analyse_design,
    schoenfeld_events as schoenfeld_events,
    schoenfeld_power as schoenfeld_power,
)
from ._boundaries import (
    FutilityRule as FutilityRule,
    GroupSequentialBounds as GroupSequentialBounds,
    compute_bounds as compute_bounds,
    crossing_probabilities as crossing_probabilities,
)
from ._design import (
    Arm as Arm,
    Look as Look,
    StratificationFactor as StratificationFactor,
    TrialDesign as TrialDesign,
    design_from_dict as design_from_dict,
    load_design as load_design,
)
from ._exposure import exposure_log_hazard_offsets as exposure_log_hazard_offsets
from ._logrank import LogRank as LogRank, logrank as logrank
from ._simulate import (
    LogHazardOffset as LogHazardOffset,
    TrialLooks as TrialLooks,
    TrialPatients as TrialPatients,
    TrialSimulation as TrialSimulation,
    analyse_looks as analyse_looks,
    simulate_patients as simulate_patients,
    simulate_trials as simulate_trials,
)
from ._spending import SpendingFunction as SpendingFunction
