"""The one dispatch table from a model name (as written in a TOML spec) to a kinetic model."""

from __future__ import annotations

from ._cart_tumor import CarTumor
from ._effector_memory import EffectorMemory
from ._multiphasic import Multiphasic
from ._ode import ODEOptions
from ._pk import OneCompartment, TwoCompartment

MODELS = {
    "multiphasic": Multiphasic,
    "effector_memory": EffectorMemory,
    "cart_tumor": CarTumor,
    "pk_one_compartment": OneCompartment,
    "pk_two_compartment": TwoCompartment,
}

STRUCTURE_OPTIONS: dict[str, dict[str, object]] = {
    "pk_one_compartment": {"route": "iv", "parameterization": "cl_v", "lag": False},
    "pk_two_compartment": {"route": "iv", "lag": False},
}
"""Models with structural options (the spec's ``[structure]`` table) and each option's default."""


def is_ode_model(name: str) -> bool:
    """True if the model registered under ``name`` is solved numerically (takes ``[ode]`` options)."""
    return not getattr(MODELS[name], "elementwise", True)


def get_model(
    name: str,
    *,
    ode: ODEOptions | None = None,
    constants: dict[str, float] | None = None,
    structure: dict[str, object] | None = None,
):
    """Return the kinetic model registered under ``name``.

    Parameters
    ----------
    name : str
        A key of ``MODELS``.
    ode : ODEOptions, optional
        Solver options of an ODE model (default: the model's own defaults).
    constants : dict of str -> float, optional
        Overrides of an ODE model's fixed constants (``MODELS[name].constants``).
    structure : dict, optional
        Structural options of a PK model (``STRUCTURE_OPTIONS[name]``: route, parameterization, lag).

    Raises
    ------
    ValueError
        If ``name`` is not registered (the message lists the valid names), or options, constants or structure
        are given for a model that does not take them (the message names them and the valid ones).
    """
    try:
        cls = MODELS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown kinetic model {name!r} (type {type(name).__name__}); valid models: "
            f"{', '.join(sorted(MODELS))}"
        ) from None
    constants = dict(constants or {})
    structure = dict(structure or {})
    valid = STRUCTURE_OPTIONS.get(name, {})
    unknown = [k for k in structure if k not in valid]
    if unknown:
        raise ValueError(
            f"the {name} model has no structural option(s) {', '.join(map(repr, unknown))}; its options: "
            f"{', '.join(valid) or '(none)'}"
        )
    if not is_ode_model(name):
        if ode is not None or constants:
            raise ValueError(f"the {name} model is a closed form: it takes no ODE options or constants")
        return cls(**{**valid, **structure})
    unknown = [k for k in constants if k not in cls.constants]
    if unknown:
        raise ValueError(
            f"the {name} model has no constant(s) {', '.join(map(repr, unknown))}; its constants: "
            f"{', '.join(cls.constants) or '(none)'}"
        )
    return cls(options=ode if ode is not None else cls.default_options, **constants)
