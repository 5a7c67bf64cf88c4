"""Hierarchical population models of CAR-T kinetics, specified declaratively in TOML.

The generative model of observations (individual parameters, residual error, censoring at the LLOQ) is
`carkin.population._generative`; every simulator of carkin calls it (`sample_observations`).
"""

from ._correlation import (
    correlation_cholesky as correlation_cholesky,
    correlation_pairs as correlation_pairs,
    correlation_sites as correlation_sites,
    iiv_log_density as iiv_log_density,
)
from ._generative import (
    Observations as Observations,
    censor as censor,
    individual_means as individual_means,
    individual_parameters as individual_parameters,
    residual_sd as residual_sd,
    sample_analyte_observations as sample_analyte_observations,
    sample_observations as sample_observations,
)
from ._model import (
    PopulationData as PopulationData,
    check_solves as check_solves,
    comedication_starts as comedication_starts,
    covariate_design as covariate_design,
    log_likelihood as log_likelihood,
    model_context as model_context,
    model_inputs as model_inputs,
    natural_parameters as natural_parameters,
    padded_schedule as padded_schedule,
    patient_log_likelihood as patient_log_likelihood,
    population_extras as population_extras,
    population_model as population_model,
    population_sites as population_sites,
    prepare as prepare,
    record_analytes as record_analytes,
    record_log_predictions as record_log_predictions,
    whitening_reference as whitening_reference,
)
from ._sharding import shard_records as shard_records
from ._spec import (
    LOG_SCALE_RESIDUALS as LOG_SCALE_RESIDUALS,
    RESIDUAL_MODELS as RESIDUAL_MODELS,
    AnalyteSpec as AnalyteSpec,
    Comedication as Comedication,
    CovariateEffect as CovariateEffect,
    InputSpec as InputSpec,
    ParameterSpec as ParameterSpec,
    PopulationSpec as PopulationSpec,
    load_spec as load_spec,
    spec_from_dict as spec_from_dict,
    to_transformed as to_transformed,
)
from ._whitening import Whitening as Whitening, likelihood_whitening as likelihood_whitening
