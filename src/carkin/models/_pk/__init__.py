"""Standard linear PK models (one and two compartments; IV bolus, infusion, first-order absorption), closed
form with superposition over any dosing history."""

from ._doses import (
    DoseEvents as DoseEvents,
    expand_additional_doses as expand_additional_doses,
    pad_doses as pad_doses,
)
from ._models import (
    ONE_COMPARTMENT_PARAMETERIZATIONS as ONE_COMPARTMENT_PARAMETERIZATIONS,
    ROUTES as ROUTES,
    OneCompartment as OneCompartment,
    TwoCompartment as TwoCompartment,
)
from ._one_compartment import (
    one_compartment_concentration_from_terms as one_compartment_concentration_from_terms,
    one_compartment_terms as one_compartment_terms,
)
from ._two_compartment import (
    hybrid_rates as hybrid_rates,
    two_compartment_concentration_from_terms as two_compartment_concentration_from_terms,
    two_compartment_terms as two_compartment_terms,
)
