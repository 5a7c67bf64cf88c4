"""Inference: NUTS (default), Laplace, SVI and MAP fits of population models; the Fit result; the NUTS runner and
the convergence gate that every Bayesian fit of carkin shares."""

from ._fit import Fit as Fit, parameter_table as parameter_table, population_draws as population_draws
from ._gates import Gates as Gates, judge_convergence as judge_convergence, warn_if_failed as warn_if_failed
from ._io import (
    FIT_FILES as FIT_FILES,
    atomic_directory as atomic_directory,
    load_fit as load_fit,
    save_fit as save_fit,
)
from ._nuts import (
    NutsRun as NutsRun,
    make_mcmc as make_mcmc,
    resolve_chain_method as resolve_chain_method,
    run_nuts as run_nuts,
)
from ._run import METHODS as METHODS, SamplerSettings as SamplerSettings, fit as fit
