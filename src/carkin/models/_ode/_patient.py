"""One patient's solve by ``diffrax.diffeqsolve``: own steps, own result code, never raising.

The options' solver and step-size controller, saved at the patient's times, with ``throw=False`` so that
under ``vmap`` each patient reports its own result code. Used by ``batching="patient"`` (``vmap`` over
patients) for every adjoint, and for the forward sensitivity equations of one patient.
"""

from __future__ import annotations

from typing import Callable

import diffrax

from ._options import ODEOptions
from ._solution import result_code

__all__ = ["patient_solve"]


def patient_solve(options: ODEOptions, adjoint, vector_field: Callable, y0, args, t0, t1, ts, norm=None):
    """``(ys, code)``: the states at ``ts`` and the result code; ``norm`` replaces the PID controller's norm."""
    controller = options.make("controller")
    if norm is not None and isinstance(controller, diffrax.PIDController):
        controller = diffrax.PIDController(rtol=options.rtol, atol=options.atol, norm=norm)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(vector_field),
        options.make("solver"),
        t0,
        t1,
        options.dt0,
        y0,
        args=args,
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=controller,
        adjoint=adjoint,
        max_steps=options.max_steps,
        throw=False,
    )
    return sol.ys, result_code(sol.result)
