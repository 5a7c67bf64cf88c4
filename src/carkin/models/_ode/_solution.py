"""What a solve returns: ``ODESolution`` (values with a result code per patient) and the result codes.

Solves never raise inside ``jit``/``vmap``: each patient gets a diffrax result code (under population
batching, the joint solve's code; 0 = success). ``ODEModel.solve`` returns the codes with the values;
``ODEModel.log_concentration`` alone returns NaN rows for failed patients. The population log-likelihood
turns any failure into a log density of -inf for that draw (the sampler rejects it; nothing NaN reaches the
posterior), and ``carkin.population.check_solves`` turns codes into a ``SolverError`` naming the patients
(re-solving per patient to find them); ``result_message`` spells a code out.

The codes are the integers behind ``diffrax.RESULTS`` items. ``equinox.Enumeration`` (of which
``diffrax.RESULTS`` is one) has no public accessor for an item's integer, nor a public way to look up the
message of an integer (``RESULTS[item]`` needs an item), so ``result_code`` reads the item's ``_value``
and ``result_message`` reads ``RESULTS._index_to_message``: these two private attributes are read here and
nowhere else.
"""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

__all__ = ["ODESolution", "result_code", "result_message"]


class ODESolution(eqx.Module):
    """Values and result codes of a population solve.

    Attributes
    ----------
    log_concentration : Float[Array, "patients obs"]
        log C at each requested time (log copies/ug gDNA); not meaningful where ``ok`` is False. The model's
        first output (``outputs[0]``, the transgene).
    code : Int[Array, " patients"]
        diffrax result code per patient (0 = success); ``result_message`` spells it out.
    log_outputs : Float[Array, "patients obs outputs"] or None
        The log of every output of the model (``model.outputs`` order; e.g. transgene and tumour burden), the
        first equal to ``log_concentration``.
    """

    log_concentration: Float[Array, "patients obs"]
    code: Int[Array, " patients"]
    log_outputs: Float[Array, "patients obs outputs"] | None = None

    @property
    def ok(self) -> Bool[Array, " patients"]:
        return self.code == 0


def result_message(code: int) -> str:
    """diffrax's message for a result code (e.g. "The maximum number of solver steps was reached...")."""
    messages = getattr(diffrax.RESULTS, "_index_to_message", None)
    try:
        return str(messages[int(code)])
    except (TypeError, IndexError, KeyError):
        return f"diffrax result code {int(code)}"


def result_code(result) -> Int[Array, ""]:
    """The integer behind a diffrax RESULTS item (0 = successful)."""
    return jnp.asarray(result._value, dtype=jnp.int32)
