"""Kinetic models of CAR-T expansion, contraction and persistence."""

from ._multiphasic import (
    Multiphasic as Multiphasic,
    MultiphasicParams as MultiphasicParams,
    multiphasic_log_concentration as multiphasic_log_concentration,
)
from ._registry import get_model as get_model, MODELS as MODELS
