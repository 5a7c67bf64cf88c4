"""The one dispatch table from a model name (as written in a TOML spec) to a kinetic model."""

from __future__ import annotations

from ._multiphasic import Multiphasic

MODELS = {"multiphasic": Multiphasic}


def get_model(name: str):
    """Return the kinetic model registered under ``name``.

    Raises
    ------
    ValueError
        If ``name`` is not registered; the message lists the valid names.
    """
    try:
        return MODELS[name]()
    except KeyError:
        raise ValueError(
            f"unknown kinetic model {name!r} (type {type(name).__name__}); valid models: "
            f"{', '.join(sorted(MODELS))}"
        ) from None
