"""Hierarchical population models of CAR-T kinetics, specified declaratively in TOML."""

from ._model import (
    PopulationData as PopulationData,
    covariate_design as covariate_design,
    individual_means as individual_means,
    log_likelihood as log_likelihood,
    natural_parameters as natural_parameters,
    population_model as population_model,
    prepare as prepare,
)
from ._spec import (
    CovariateEffect as CovariateEffect,
    ParameterSpec as ParameterSpec,
    PopulationSpec as PopulationSpec,
    load_spec as load_spec,
    spec_from_dict as spec_from_dict,
    to_transformed as to_transformed,
)
