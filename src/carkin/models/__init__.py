"""Kinetic models: CAR-T expansion, contraction and persistence (closed form and ODE, diffrax), and the standard
linear PK models (one and two compartments, closed form with superposition over any dosing history)."""

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
from ._pk import OneCompartment as OneCompartment, TwoCompartment as TwoCompartment
from ._registry import (
    MODELS as MODELS,
    STRUCTURE_OPTIONS as STRUCTURE_OPTIONS,
    get_model as get_model,
    is_ode_model as is_ode_model,
)
