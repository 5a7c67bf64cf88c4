"""A population solve in segments: exact switches of the vector field and jumps of the state at per-patient times.

Co-medication switches (a rate multiplied from a patient's start time on) and re-infusions (cells added to the
state at the infusion time) change the system at times that differ between patients. An adaptive step that
straddles such a time integrates a discontinuous field (its error estimate then shrinks the steps around it
and the result is only as accurate as the tolerance allows), and the population loop shares one sequence of
steps across patients, so it cannot stop at every patient's own times. Instead the solve is split at the
events: segment j runs from the j-th event to the next on its own clock (from 0), starting from the state at
the end of segment j - 1 (after the event's jump, if any), with the args in force after j events. Every
patient is solved in every segment; a patient whose events are fewer (+inf: never) or later than its last
time has segments of length 0 (saved at 0: the start state, exactly). So the switch happens at the event time
itself, never at the next step or record, and the cost is one population solve per segment (each as long as
the longest span any patient has in it).

Each segment saves every patient at its times clamped into the segment, ``clip(t - b_j, 0, b_{j+1} - b_j)``,
plus the segment's end (the next segment's start); a time t is then read from the segment that holds it: the
number of events at or before t (events at t act on the record at t). The vector fields must be autonomous
(not read ``t``), since each segment restarts the clock.

Derivatives: the segments' saving times are differentiable (e.g. in tmax, when the events sit on a clock that
starts at tmax) and so is each segment's start state, so the forward sensitivities (``_sensitivities``) carry
through every boundary; the event times themselves are data.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

__all__ = ["solve_in_segments"]

_tree_map = jax.tree_util.tree_map


def solve_in_segments(
    solve: Callable,
    vector_field: Callable,
    y0,
    segment_args: Sequence,
    events: Float[Array, "patients events"],
    ts: Float[Array, "patients obs"],
    jump: Callable | None = None,
):
    """Solve a population in the segments between per-patient events.

    Parameters
    ----------
    solve : ``population_solver(options)``, i.e. ``solve(vector_field, y0, args, ts) -> (ys, codes)``.
    vector_field : one patient's autonomous ``(t, y, args) -> dy/dt``.
    y0 : pytree, leaves (patients, ...), the state at time 0 of the solve's clock.
    segment_args : K + 1 args pytrees (leaves (patients, ...)): those in force after j events, j = 0..K.
    events : (patients, K) event times on the solve's clock, sorted ascending per row; +inf: never; times
        before 0 act at 0.
    ts : (patients, obs) saving times, non-decreasing per row, >= 0.
    jump : ``jump(j, y, args) -> y`` (leaves (patients, ...)), the state change at event j = 1..K (``args``:
        segment j's); None: the state is continuous.

    Returns
    -------
    (ys, codes): the states at ``ts`` (leaves (patients, obs, ...)) and the first nonzero result code of the
    segments per patient.
    """
    n_events = events.shape[1]
    if n_events == 0:
        return solve(vector_field, y0, segment_args[0], ts)
    end = ts[:, -1:]
    bounds = jnp.concatenate([jnp.zeros_like(end), jnp.clip(events, 0.0, end), end], axis=1)  # (patients, K + 2)
    segment = jnp.sum(events[:, None, :] <= ts[:, :, None], axis=-1)  # which segment holds each time
    y, code, pieces = y0, None, []
    for j in range(n_events + 1):
        start, length = bounds[:, j:j + 1], bounds[:, j + 1:j + 2] - bounds[:, j:j + 1]
        local = jnp.concatenate([jnp.clip(ts - start, 0.0, length), length], axis=1)
        ys, c = solve(vector_field, y, segment_args[j], local)
        pieces.append(_tree_map(lambda v: v[:, :-1], ys))
        y = _tree_map(lambda v: v[:, -1], ys)
        if jump is not None and j < n_events:
            y = jump(j + 1, y, segment_args[j + 1])
        code = c if code is None else jnp.where(code != 0, code, c)

    def select(*values):
        out = values[0]
        for j, v in enumerate(values[1:], start=1):
            chosen = (segment >= j).reshape(segment.shape + (1,) * (v.ndim - 2))
            out = jnp.where(chosen, v, out)
        return out

    return _tree_map(select, *pieces), code
