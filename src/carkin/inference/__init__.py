"""Inference: NUTS (default), Laplace, SVI and MAP fits of population models; the Fit result."""

from ._fit import Fit as Fit, Gates as Gates, parameter_table as parameter_table, population_draws as population_draws
from ._run import (
    METHODS as METHODS,
    SamplerSettings as SamplerSettings,
    fit as fit,
    make_mcmc as make_mcmc,
    resolve_chain_method as resolve_chain_method,
)
from ._io import FIT_FILES as FIT_FILES, atomic_directory as atomic_directory, load_fit as load_fit, save_fit as save_fit
