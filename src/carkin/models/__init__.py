"""Kinetic models of CAR-T expansion, contraction and persistence: closed form and ODE (diffrax)."""

from ._cart_tumor import CarTumor as CarTumor
from ._effector_memory import EffectorMemory as EffectorMemory
from ._multiphasic import (
    Multiphasic as Multiphasic,
    MultiphasicParams as MultiphasicParams,
    multiphasic_log_concentration as multiphasic_log_concentration,
)
from ._ode import (
    ODE_CHOICES as ODE_CHOICES,
    ODEModel as ODEModel,
    ODEOptions as ODEOptions,
    ODESolution as ODESolution,
    log_concentration_grid as log_concentration_grid,
    result_message as result_message,
)
from ._registry import MODELS as MODELS, get_model as get_model, is_ode_model as is_ode_model
