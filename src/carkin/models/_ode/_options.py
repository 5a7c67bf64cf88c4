"""Solver options of the ODE models: ``ODEOptions`` and the one dispatch table of its string choices.

The ``[ode]`` table of a model spec, resolved in the one dispatch table ``ODE_CHOICES`` (house rule 10):

=============  ===================================================  ======================================
key            choices                                              default
=============  ===================================================  ======================================
solver         tsit5, dopri5, dopri8 (explicit); kvaerno3,          the model's (tsit5 for both shipped
               kvaerno5 (implicit, for stiff systems)               models: neither is stiff)
controller     adaptive (PID on rtol/atol) | constant (step dt0)    adaptive
rtol, atol     tolerances (models scale their states to O(1))       1e-6 / 1e-9
dt0            first (or fixed) step, days; omitted = automatic     automatic (required for constant)
max_steps      bound on solver steps per solve                      4096
adjoint        forward | forward_autodiff | recursive_checkpoint |  forward
               direct
batching       auto | population | patient                          auto (population where possible)
=============  ===================================================  ======================================

What the batching and adjoint choices mean is set out in the package docstring (``carkin.models._ode``).
"""

from __future__ import annotations

from typing import Callable

import diffrax
import equinox as eqx

__all__ = ["ODEOptions", "ODE_CHOICES"]


def _implicit(cls):
    """An implicit solver whose root finder uses the step tolerances (also valid with a constant step)."""

    def make(options: "ODEOptions"):
        if options.controller == "constant":
            import optimistix as optx

            return cls(root_finder=diffrax.VeryChord(rtol=options.rtol, atol=options.atol, norm=optx.max_norm))
        return cls()

    return make


# The one dispatch table of string options (house rule 10): option -> choice -> factory(options).
ODE_CHOICES: dict[str, dict[str, Callable]] = {
    "solver": {
        "tsit5": lambda o: diffrax.Tsit5(),
        "dopri5": lambda o: diffrax.Dopri5(),
        "dopri8": lambda o: diffrax.Dopri8(),
        "kvaerno3": _implicit(diffrax.Kvaerno3),
        "kvaerno5": _implicit(diffrax.Kvaerno5),
    },
    "controller": {
        "adaptive": lambda o: diffrax.PIDController(rtol=o.rtol, atol=o.atol),
        "constant": lambda o: diffrax.ConstantStepSize(),
    },
    "batching": {  # resolved by ODEOptions.resolved_batching
        "auto": lambda o: o.resolved_batching,
        "population": lambda o: "population",
        "patient": lambda o: "patient",
    },
    "adjoint": {
        "forward": lambda o: diffrax.ForwardMode(),  # + the sensitivity equations (_sensitivities.py)
        "forward_autodiff": lambda o: diffrax.ForwardMode(),
        "recursive_checkpoint": lambda o: diffrax.RecursiveCheckpointAdjoint(),
        "direct": lambda o: diffrax.DirectAdjoint(),
    },
}


POPULATION_SOLVERS: tuple[str, ...] = ("tsit5", "dopri5")  # explicit, first-same-as-last (see _population.erk_step)
_OPTION_KEYS: tuple[str, ...] = ("solver", "controller", "rtol", "atol", "dt0", "max_steps", "adjoint", "batching")


class ODEOptions(eqx.Module):
    """How an ODE model is solved (every field is static: changing one recompiles).

    Parameters
    ----------
    solver : {"tsit5", "dopri5", "dopri8", "kvaerno3", "kvaerno5"}
    controller : {"adaptive", "constant"}
    rtol, atol : float
        Tolerances of the adaptive controller (and of an implicit solver's root finder).
    dt0 : float or None
        First step (adaptive; None lets diffrax choose) or the fixed step (constant; required), days.
    max_steps : int
        Bound on the steps of one solve (a patient's, or the joint solve of all patients); a solve that
        needs more fails with a result code.
    adjoint : {"forward", "forward_autodiff", "recursive_checkpoint", "direct"}
        How derivatives are computed (see the ``carkin.models._ode`` package docstring).
    batching : {"auto", "population", "patient"}
        One solve of all patients with shared steps, or ``vmap`` over per-patient solves (see the
        ``carkin.models._ode`` package docstring); "auto" picks "population" for tsit5/dopri5 with the
        adaptive controller and the forward adjoint, else "patient".

    Raises
    ------
    ValueError
        For an unknown choice (listing the valid ones), non-positive tolerances or steps, or a constant
        controller without ``dt0``.
    """

    solver: str = eqx.field(static=True, default="tsit5")
    controller: str = eqx.field(static=True, default="adaptive")
    rtol: float = eqx.field(static=True, default=1e-6)
    atol: float = eqx.field(static=True, default=1e-9)
    dt0: float | None = eqx.field(static=True, default=None)
    max_steps: int = eqx.field(static=True, default=4096)
    adjoint: str = eqx.field(static=True, default="forward")
    batching: str = eqx.field(static=True, default="auto")

    def __check_init__(self):
        for key in ("solver", "controller", "adjoint", "batching"):
            value = getattr(self, key)
            if value not in ODE_CHOICES[key]:
                raise ValueError(
                    f"ode.{key} = {value!r} (type {type(value).__name__}) is not valid; choose one of "
                    f"{', '.join(ODE_CHOICES[key])}"
                )
        for key in ("rtol", "atol"):
            value = getattr(self, key)
            if not (isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1):
                raise ValueError(f"ode.{key} = {value!r} must be a number in (0, 1)")
        if self.dt0 is not None and not (isinstance(self.dt0, (int, float)) and self.dt0 > 0):
            raise ValueError(f"ode.dt0 = {self.dt0!r} must be a positive number of days (or omitted)")
        if not (isinstance(self.max_steps, int) and not isinstance(self.max_steps, bool) and self.max_steps >= 1):
            raise ValueError(f"ode.max_steps = {self.max_steps!r} must be a positive integer")
        if self.controller == "constant" and self.dt0 is None:
            raise ValueError('ode.controller = "constant" needs ode.dt0 (the fixed step, days)')
        if self.batching == "population":
            if self.solver not in POPULATION_SOLVERS:
                raise ValueError(
                    f'ode.batching = "population" needs solver = {" or ".join(map(repr, POPULATION_SOLVERS))}; '
                    f'ode.solver = {self.solver!r}: use batching = "patient" (or "auto")'
                )
            if self.adjoint != "forward" or self.controller != "adaptive":
                raise ValueError(
                    f'ode.batching = "population" needs adjoint = "forward" and controller = "adaptive"; got '
                    f'adjoint = {self.adjoint!r}, controller = {self.controller!r}: '
                    'use batching = "patient" (or "auto")'
                )

    @property
    def resolved_batching(self) -> str:
        """"population" or "patient" ("auto": population for explicit adaptive solves with forward adjoint)."""
        if self.batching != "auto":
            return self.batching
        fast = self.solver in POPULATION_SOLVERS and self.adjoint == "forward" and self.controller == "adaptive"
        return "population" if fast else "patient"

    def replace(self, **changes) -> "ODEOptions":
        """A copy with some options changed (validated)."""
        return ODEOptions(**{**{k: getattr(self, k) for k in _OPTION_KEYS}, **changes})

    @classmethod
    def from_dict(cls, table: dict, *, defaults: "ODEOptions | None" = None) -> "ODEOptions":
        """Options from a parsed ``[ode]`` table; keys not given keep ``defaults`` (or the class defaults).

        Raises
        ------
        ValueError
            For an unknown key (listing the valid keys) or an invalid value.
        """
        base = defaults or cls()
        valid = _OPTION_KEYS
        unknown = [k for k in table if k not in valid]
        if unknown:
            raise ValueError(f"unknown [ode] key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(valid)}")
        values = {k: getattr(base, k) for k in valid}
        for key, value in table.items():
            if key in ("rtol", "atol", "dt0") and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            values[key] = value
        return cls(**values)

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in _OPTION_KEYS if k != "dt0"}
        if self.dt0 is not None:
            out["dt0"] = self.dt0
        return out

    def make(self, option: str):
        """The diffrax object for ``option`` ("solver", "controller" or "adjoint")."""
        return ODE_CHOICES[option][getattr(self, option)](self)
