"""Shared machinery of the ODE kinetic models: solver options, population solves, sensitivities, result codes.

An ODE kinetic model is a vector field, an initial state, an observation function and a parameter mapping
(individual parameters -> structural ``args``). It exposes the same interface as the closed form
(``individual_parameters``, ``elementwise``, ``log_concentration``, ``derived``), but it is evaluated on a
*schedule* per patient rather than record by record:

    log_concentration(individual, t)   individual: name -> Float[Array, " patients"]
                                       t:          Float[Array, "patients obs"]  (days, non-decreasing per row)
                                       returns     Float[Array, "patients obs"]  (log copies/ug gDNA)

Every patient is solved from t = 0 (infusion) to its last time and saved at its own times. Padded slots
must repeat a real time of the patient (``carkin.population.prepare`` uses the patient's last time), so
that the saving times stay non-decreasing and inside [0, t1] as diffrax requires, and cost nothing.

How patients are batched (``batching``):

- ``"population"`` (default for explicit solvers): one solve of all patients with a shared sequence of
  steps, each step controlled so that every patient meets the tolerance (per-patient RMS, max over
  patients), and each patient saved at its own times from the solver's dense output. It uses diffrax's
  pieces (Butcher tableau, PID controller, initial step, dense interpolation, result codes) in a loop
  written out here, because on CPU ``vmap`` over per-patient ``diffeqsolve`` runs a batched loop that masks
  every operation of every step, and diffrax's per-step stage loop dominates for small systems (measured
  in benchmarks/ode_vs_closed_form.py: about 3x faster gradients). Under ``vmap`` (e.g. over posterior
  draws) the batch joins the population.
- ``"patient"``: ``jax.vmap`` over one ``diffrax.diffeqsolve`` per patient (own steps, own result code;
  needed for implicit solvers and the reverse-mode adjoints).

Derivatives (``adjoint``):

- ``"forward"`` (default): the forward sensitivity equations dv/dt = f_y v + f_args dargs are integrated
  with the state in the same loop (step control on the state only, so values equal the plain solve), one
  direction per patient parameter, all directions in one solve. The Jacobian (patients are independent:
  one pass per parameter covers all patients) is handed to reverse mode as a linear map, so ``jax.grad``
  never runs backwards through a solver loop. ``jax.hessian`` (the Laplace approximation) then gets the
  Gauss-Newton curvature of the predictions: exact first derivatives, second derivatives of the ODE
  solution neglected (as FOCE-type methods do).
- ``"forward_autodiff"``: the same Jacobian by forward-mode autodiff through diffrax's solver
  (``diffrax.ForwardMode``; per-patient batching); its Hessian is exact (slower).
- ``"recursive_checkpoint"`` / ``"direct"``: reverse mode through diffrax's solver
  (``RecursiveCheckpointAdjoint``, ``DirectAdjoint``; per-patient batching). Reverse-only: they serve NUTS,
  SVI and MAP, not ``method="laplace"``.

Failures. Solves never raise inside ``jit``/``vmap``: each patient gets a diffrax result code (under
population batching, the joint solve's code). ``solve`` returns the codes with the values;
``log_concentration`` alone returns NaN rows for failed patients. The population log-likelihood turns any
failure into a log density of -inf for that draw (the sampler rejects it; nothing NaN reaches the
posterior), and ``carkin.population.check_solves`` turns codes into a ``SolverError`` naming the patients
(re-solving per patient to find them).

Options (the ``[ode]`` table of a model spec, resolved in the one dispatch table ``ODE_CHOICES``):

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
"""

from __future__ import annotations

import functools
from typing import Callable, ClassVar

import diffrax
import equinox as eqx
import equinox.internal as eqxi
import jax
import jax.extend.core
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int

__all__ = [
    "ODEOptions",
    "ODEModel",
    "ODESolution",
    "ODE_CHOICES",
    "solve_segment",
    "population_solver",
    "result_message",
    "log_concentration_grid",
]


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
        "forward": lambda o: diffrax.ForwardMode(),  # + the sensitivity equations (solve_segment)
        "forward_autodiff": lambda o: diffrax.ForwardMode(),
        "recursive_checkpoint": lambda o: diffrax.RecursiveCheckpointAdjoint(),
        "direct": lambda o: diffrax.DirectAdjoint(),
    },
}


POPULATION_SOLVERS: tuple[str, ...] = ("tsit5", "dopri5")  # explicit, first-same-as-last (see _erk_step)
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
        How derivatives are computed (see the module docstring).
    batching : {"auto", "population", "patient"}
        One solve of all patients with shared steps, or ``vmap`` over per-patient solves (see the module
        docstring); "auto" picks "population" for tsit5/dopri5 with the adaptive controller and the
        forward adjoint, else "patient".

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
                    f'adjoint = {self.adjoint!r}, controller = {self.controller!r}: use batching = "patient" (or "auto")'
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


class ODESolution(eqx.Module):
    """Values and result codes of a population solve.

    Attributes
    ----------
    log_concentration : Float[Array, "patients obs"]
        log C at each requested time (log copies/ug gDNA); not meaningful where ``ok`` is False.
    code : Int[Array, " patients"]
        diffrax result code per patient (0 = success); ``result_message`` spells it out.
    """

    log_concentration: Float[Array, "patients obs"]
    code: Int[Array, " patients"]

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


def _code(result) -> Int[Array, ""]:
    """The integer behind a diffrax RESULTS item (0 = successful)."""
    return jnp.asarray(result._value, dtype=jnp.int32)


def _diffeqsolve(options: ODEOptions, adjoint, vector_field, y0, args, t0, t1, ts, norm=None):
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
    return sol.ys, _code(sol.result)


def _rms_of_first(z) -> Float[Array, ""]:
    """RMS norm of the state part of (state, sensitivities): step control on the solution only."""
    leaves = jax.tree_util.tree_leaves(z[0])
    total = sum(jnp.sum(jnp.square(x)) for x in leaves) / sum(x.size for x in leaves)
    return _safe_sqrt(total)


def _safe_sqrt(x):
    positive = x > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)


def _augmented_field(vector_field: Callable) -> Callable:
    """(y, v) -> (f(t, y, args), d_y f v + d_args f dargs): the state and one forward sensitivity."""

    def field(t, z, both):
        y, v = z
        args, dargs = both
        return jax.jvp(lambda yy, aa: vector_field(t, yy, aa), (y, args), (v, dargs))

    return field


def _sensitivity_segment(options: ODEOptions, vector_field: Callable) -> Callable:
    """One patient's solve whose forward-mode derivative solves the forward sensitivity equations.

    For a tangent (dy0, dargs, dts) the JVP rule integrates, in one solve together with the state y,

        dv/dt = d_y f(t, y, args) v + d_args f(t, y, args) dargs,    v(t0) = dy0

    (one Jacobian-vector product of the vector field per stage) and returns v(ts) + f(ts, y(ts)) dts. Step
    control uses the state only, so the values are exactly those of the plain solve and, under ``vmap``
    over tangent directions, the state is solved once for all of them.
    """
    forward = diffrax.ForwardMode()

    @jax.custom_jvp
    def segment(y0, args, t0, ts):
        return _diffeqsolve(options, forward, vector_field, y0, args, t0, ts[-1], ts)

    @segment.defjvp
    def rule(primals, tangents):
        y0, args, t0, ts = primals
        dy0, dargs, dt0, dts = tangents
        f0 = vector_field(t0, y0, args)
        v0 = jax.tree_util.tree_map(lambda d, f: d - f * dt0, dy0, f0)
        (ys, vs), code = _diffeqsolve(
            options, forward, _augmented_field(vector_field), (y0, v0), (args, dargs), t0, ts[-1], ts,
            norm=_rms_of_first,
        )
        fs = jax.vmap(lambda t, y: vector_field(t, y, args))(ts, ys)
        dys = jax.tree_util.tree_map(lambda v, f: v + f * _expand(dts, f), vs, fs)
        return (ys, code), (dys, np.zeros(np.shape(code), dtype=jax.dtypes.float0))

    return segment


def _expand(x, like):
    """``x`` with trailing singleton axes to broadcast against ``like`` (same leading axes)."""
    return x.reshape(x.shape + (1,) * (like.ndim - x.ndim))


def solve_segment(
    options: ODEOptions,
    vector_field: Callable,
    y0,
    args,
    t0: Float[ArrayLike, ""],
    ts: Float[Array, " obs"],
):
    """One patient's solve from ``t0`` with ``y0``, saved at ``ts`` (non-decreasing, >= t0), per-patient steps.

    Parameters
    ----------
    options : ODEOptions
    vector_field : callable ``(t, y, args) -> dy/dt`` for one patient
    y0 : pytree of arrays, the state at ``t0``
    args : pytree of float arrays, structural parameters passed to the vector field
    t0 : start time, days
    ts : Float[Array, " obs"], saving times, days; the solve ends at ``ts[-1]``

    Returns
    -------
    (ys, code)
        ``ys`` the states at ``ts`` (leading axis ``obs``) and the diffrax result code (0 = success).
        Differentiable in ``y0``, ``args``, ``t0`` and ``ts``: in forward mode by the sensitivity equations
        (``adjoint="forward"``) or through the solver (``"forward_autodiff"``), in reverse mode through the
        solver (``"recursive_checkpoint"``, ``"direct"``).
    """
    t0 = jnp.asarray(t0, dtype=ts.dtype)
    if options.adjoint == "forward":
        return _sensitivity_segment(options, vector_field)(y0, args, t0, ts)
    return _diffeqsolve(options, options.make("adjoint"), vector_field, y0, args, t0, ts[-1], ts)


# --- one solve for the whole population (shared steps) ------------------------------------------------

_tree_map = jax.tree_util.tree_map


def _population_norm(n_state: int) -> Callable:
    """Step-control norm over a population of flat states (patients, m): each patient's RMS over its first
    ``n_state`` entries (the solution; the rest are sensitivities), then the max over patients, so that
    every patient meets the tolerance on every step, as in its own solve."""

    def norm(z):
        part = z[:, :n_state]
        return _safe_sqrt(jnp.max(jnp.mean(jnp.square(part), axis=1)))

    return norm


def _erk_step(tableau, field: Callable, t0, t1, y0, f0, args):
    """One step of an explicit FSAL Runge-Kutta method from its diffrax Butcher tableau, unrolled.

    diffrax's own step runs the stages in a loop (it serves implicit and stochastic methods too); for a
    small explicit system on CPU that loop's overhead dominates, so the stages are written out here.
    Returns the solution, the error estimate, the dense-output information (diffrax's ``dense_info``:
    y0, y1 and the stages ``k`` stacked on a leading axis) and the last stage (= f(t1, y1), FSAL).
    """
    h = t1 - t0
    ks = [f0]
    yi = y0
    for c, row in zip(tableau.c, tableau.a_lower):
        terms = [(float(a), k) for a, k in zip(row, ks) if a != 0]
        yi = _tree_map(lambda y, *kk: y + h * sum(a * k for (a, _), k in zip(terms, kk)), y0, *[k for _, k in terms])
        ks.append(field(t0 + float(c) * h, yi, args))
    y1 = yi  # FSAL/SSAL tableaus: the last stage is evaluated at the solution
    errs = [(float(b), k) for b, k in zip(tableau.b_error, ks) if b != 0]
    y_error = _tree_map(lambda *kk: h * sum(b * k for (b, _), k in zip(errs, kk)), *[k for _, k in errs])
    k = _tree_map(lambda *kk: jnp.stack(kk) * h, *ks)  # diffrax's stage increments: f * dt
    return y1, y_error, {"y0": y0, "y1": y1, "k": k}, ks[-1]


def _population_loop(options: ODEOptions, vector_field: Callable, y0, args, ts, *, n_state: int | None = None):
    """Integrate every patient with one shared sequence of steps, saving each at its own times.

    ``y0`` and ``args`` have a leading patient axis, ``ts`` is (patients, obs), non-decreasing per row, from
    t0 = 0 to the latest time of all patients. The pieces are diffrax's (the solver's Butcher tableau and
    dense interpolation, the PID step-size controller and its initial step, the result codes); the loop
    is written out so that the step sequence is shared: one loop whose every operation is vectorised over
    patients, where ``vmap`` over per-patient solves runs a batched loop that masks every operation of
    every step. Each patient's state is raveled into one row of a (patients, m) array, so that every
    stage and every save is one operation whatever the number of state variables. Each accepted step
    saves, from the dense output, the patients whose times it covers. Step control uses the first
    ``n_state`` entries of each row (default all).
    """
    n_patients, n_obs = ts.shape
    solver = options.make("solver")
    tableau = type(solver).tableau
    first = _tree_map(lambda y: y[0], y0)
    flat0, unravel = jax.flatten_util.ravel_pytree(first)
    m = flat0.shape[0]
    n_state = m if n_state is None else n_state
    z0 = jax.vmap(lambda y: jax.flatten_util.ravel_pytree(y)[0])(y0)

    def field(t, z, a):
        return jax.vmap(lambda zi, ai: jax.flatten_util.ravel_pytree(vector_field(t, unravel(zi), ai))[0])(z, a)

    term = diffrax.ODETerm(field)
    controller = diffrax.PIDController(rtol=options.rtol, atol=options.atol, norm=_population_norm(n_state))
    error_order = solver.error_order(term)
    t0 = jnp.zeros((), ts.dtype)
    t1 = jax.lax.stop_gradient(jnp.max(ts))
    t1_floor = eqxi.prevbefore(t1)
    tnext, controller_state = controller.init(term, t0, t1, z0, options.dt0, args, solver.func, error_order)
    tnext = jnp.minimum(tnext, t1)
    f0 = field(t0, z0, args)
    saved = jnp.broadcast_to(z0[:, None, :], (n_patients, n_obs, m))
    pointer = jnp.sum(ts <= t0, axis=1)  # times at t0 hold y0 already
    dense_axes = {"y0": 0, "y1": 0, "k": 1}  # stages lead ``k``
    obs_index = jnp.arange(n_obs)

    def cond(state):
        t, _, _, _, _, _, _, steps, code = state
        return (t < t1) & (steps < options.max_steps) & (code == 0)

    def body(state):
        t, tn, z, f, controller_state, saved, pointer, steps, code = state
        z1, z_error, dense, f1 = _erk_step(tableau, field, t, tn, z, f, args)
        z_error = jnp.where(jnp.isnan(z_error), jnp.inf, z_error)
        keep, tprev, tnext, _, new_controller_state, controller_result = controller.adapt_step_size(
            t, tn, z, z1, args, z_error, error_order, controller_state
        )
        tprev = jnp.minimum(tprev, t1)
        tnext = jnp.where(tnext > t1_floor, jnp.where(keep, t1, tprev + 0.5 * (t1 - tprev)), tnext)

        # Save every time of every patient that this step covers: a patient's times are sorted, so a
        # pointer to its next unsaved time suffices; each pass saves at most one time per patient (one
        # dense evaluation each), and passes repeat while some patient has another time in the step.
        def due(pointer):
            index = jnp.minimum(pointer, n_obs - 1)
            tau = jnp.take_along_axis(ts, index[:, None], axis=1)[:, 0]
            return keep & (pointer < n_obs) & (tau <= tn), index, tau

        def save_body(carry):
            pointer, saved = carry
            active, index, tau = due(pointer)
            values = jax.vmap(
                lambda d, tt: solver.interpolation_cls(t0=t, t1=tn, **d).evaluate(tt), in_axes=(dense_axes, 0)
            )(dense, tau)
            slot = active[:, None] & (index[:, None] == obs_index[None, :])
            saved = jnp.where(slot[:, :, None], values[:, None, :], saved)
            return pointer + active.astype(pointer.dtype), saved

        pointer, saved = jax.lax.while_loop(lambda c: jnp.any(due(c[0])[0]), save_body, (pointer, saved))
        z = jnp.where(keep, z1, z)
        f = jnp.where(keep, f1, f)
        code = jnp.where(code == 0, _code(controller_result), code)
        return (tprev, tnext, z, f, new_controller_state, saved, pointer, steps + 1, code)

    init = (t0, tnext, z0, f0, controller_state, saved, pointer, jnp.asarray(0), jnp.zeros((), jnp.int32))
    t_end, _, _, _, _, saved, _, _, code = jax.lax.while_loop(cond, body, init)
    unfinished = _code(diffrax.RESULTS.max_steps_reached)
    code = jnp.where(code != 0, code, jnp.where(t_end < t1, unfinished, 0))
    return jax.vmap(jax.vmap(unravel))(saved), code


def _sensitivity_field(vector_field: Callable) -> Callable:
    """One patient's (y, V) -> (f, d_y f V + d_args f dA), with the directions on the last axis of V, dA."""

    def field(t, z, both):
        y, v = z
        args, dargs = both
        f = vector_field(t, y, args)
        dv = jax.vmap(
            lambda vv, dd: jax.jvp(lambda yy, aa: vector_field(t, yy, aa), (y, args), (vv, dd))[1],
            in_axes=(-1, -1),
            out_axes=-1,
        )(v, dargs)
        return f, dv

    return field


def _fold(tree, in_batched, axis_size):
    """Broadcast unbatched leaves to the batch axis and merge it into the patient axis: (B, P, ...) -> (B P, ...)."""

    def fold(x, batched):
        x = x if batched else jnp.broadcast_to(x, (axis_size,) + x.shape)
        return x.reshape((axis_size * x.shape[1],) + x.shape[2:])

    return _tree_map(fold, tree, in_batched)


def _unfold(tree, axis_size):
    return _tree_map(lambda x: x.reshape((axis_size, x.shape[0] // axis_size) + x.shape[1:]), tree)


def _flags(tree, value: bool):
    return _tree_map(lambda _: value, tree)


def _batch_joins_population(solve: Callable) -> Callable:
    """``solve(*inputs) -> (*outputs, code)`` (patient-leading arrays, one code) with a ``vmap`` rule that folds
    the batch into the population: one shared solve of axis_size x patients, outputs unfolded, the code repeated."""
    solve = jax.custom_batching.custom_vmap(solve)

    @solve.def_vmap
    def rule(axis_size, in_batched, *inputs):
        *outputs, code = solve(*_fold(inputs, tuple(in_batched), axis_size))
        out = (*(_unfold(o, axis_size) for o in outputs), jnp.broadcast_to(code, (axis_size,)))
        return out, _flags(out, True)

    return solve


def _population_plain(options: ODEOptions, vector_field: Callable) -> Callable:
    """``(y0, args, ts) -> (ys, code)``; under ``vmap`` the batch joins the population (one shared solve)."""

    def solve(y0, args, ts):
        return _population_loop(options, vector_field, y0, args, ts)

    return _batch_joins_population(solve)


def _population_sensitivities(options: ODEOptions, vector_field: Callable) -> Callable:
    """``(y0, args, ts, dY0, dA) -> (ys, Vs, code)``: the state and D forward sensitivities in one loop.

    The D directions sit on the last axis of every tangent leaf (``_population_segment`` passes a fixed basis
    over the segment's inputs, so they are never batched by ``vmap``); under ``vmap`` over states the batch
    joins the population.
    """
    field = _sensitivity_field(vector_field)

    def solve(y0, args, ts, dy0, dargs):
        n_state = jax.flatten_util.ravel_pytree(_tree_map(lambda y: y[0], y0))[0].shape[0]
        (ys, vs), code = _population_loop(options, field, (y0, dy0), (args, dargs), ts, n_state=n_state)
        return ys, vs, code

    return _batch_joins_population(solve)


def _field_inputs(vector_field: Callable, y0, args, ts) -> list[bool]:
    """For each leaf of ``args`` (leading patient axis), whether one patient's vector field reads it.

    A backward pass over the field's jaxpr (dead-code elimination): an equation is live if one of its outputs
    is, and then all its inputs are. Conservative: an equation with effects counts as live.
    """
    leaves, treedef = jax.tree_util.tree_flatten(args)
    one_patient = lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype)  # noqa: E731  (shapes only: no tracer leaks in)

    def field(t, y, *one):
        return vector_field(t, y, treedef.unflatten(one))

    jaxpr = jax.make_jaxpr(field)(jax.ShapeDtypeStruct((), ts.dtype), _tree_map(one_patient, y0),
                                  *map(one_patient, leaves)).jaxpr
    n_skip = 1 + len(jax.tree_util.tree_leaves(y0))  # t and the state come first among the invars
    live = {v for v in jaxpr.outvars if isinstance(v, jax.extend.core.Var)}
    for eqn in reversed(jaxpr.eqns):
        if eqn.effects or any(v in live for v in eqn.outvars):
            live.update(v for v in eqn.invars if isinstance(v, jax.extend.core.Var))
    return [v in live for v in jaxpr.invars[n_skip:]]


def _is_zero(tangent) -> bool:
    return isinstance(tangent, jax.custom_derivatives.SymbolicZero)


def _population_segment(options: ODEOptions, vector_field: Callable) -> Callable:
    """``(y0, args, ts) -> (ys, code)`` for a whole population in one loop, with sensitivity-equation JVPs.

    The JVP rule integrates the forward sensitivity equations with the state (see ``_sensitivity_segment``)
    with respect to the segment's own inputs: the K scalars per patient of the initial state (unless its
    tangent is zero) and of the ``args`` leaves that the vector field reads. The tangent is then
    ``S (dy0, dargs) + f dts``. Under ``vmap`` over tangent directions (the Jacobian's D forward passes) S is
    computed once, so the loop carries K directions instead of D: for the E/M twin's contraction, K = 3
    (alpha, beta, k) where D = 6 model parameters (measured: the gradient about twice as fast). Step control
    uses the state only, so the step sequence does not depend on the tangents and every patient's
    derivatives depend on its own parameters only.
    """
    plain = _population_plain(options, vector_field)
    multi = _population_sensitivities(options, vector_field)

    @jax.custom_jvp
    def segment(y0, args, ts):
        return plain(y0, args, ts)

    def rule(primals, tangents):
        y0, args, ts = primals
        dy0, dargs, dts = tangents
        n_patients = ts.shape[0]
        y_leaves, y_def = jax.tree_util.tree_flatten(y0)
        a_leaves, a_def = jax.tree_util.tree_flatten(args)
        dy_leaves = y_def.flatten_up_to(dy0) if not _is_zero(dy0) else [dy0] * len(y_leaves)
        da_leaves = a_def.flatten_up_to(dargs) if not _is_zero(dargs) else [dargs] * len(a_leaves)
        read = _field_inputs(vector_field, y0, args, ts)
        # The inputs to differentiate: state leaves with a nonzero tangent, args leaves the field reads.
        y_chosen = [i for i, dx in enumerate(dy_leaves) if not _is_zero(dx)]
        a_chosen = [i for i, (dx, r) in enumerate(zip(da_leaves, read)) if r and not _is_zero(dx)]
        chosen = [y_leaves[i] for i in y_chosen] + [a_leaves[i] for i in a_chosen]
        chosen_tangents = [dy_leaves[i] for i in y_chosen] + [da_leaves[i] for i in a_chosen]
        sizes = [int(np.prod(x.shape[1:], dtype=int)) for x in chosen]
        k = sum(sizes)
        if k == 0:
            ys, code = plain(y0, args, ts)
            vs = _tree_map(jnp.zeros_like, ys)
        else:
            # The identity basis over the chosen scalars (K directions on the last axis), zeros elsewhere.
            eye = jnp.eye(k, dtype=ts.dtype)
            offsets = np.cumsum([0] + sizes)
            blocks = [jnp.broadcast_to(eye[o:o + n].reshape(x.shape[1:] + (k,)), x.shape + (k,))
                      for x, o, n in zip(chosen, offsets, sizes)]

            def basis(leaves, picked, first):
                out = [jnp.zeros(x.shape + (k,), x.dtype) for x in leaves]
                for j, i in enumerate(picked):
                    out[i] = blocks[first + j]
                return out

            dy_basis = y_def.unflatten(basis(y_leaves, y_chosen, 0))
            da_basis = a_def.unflatten(basis(a_leaves, a_chosen, len(y_chosen)))
            ys, s, code = multi(y0, args, ts, dy_basis, da_basis)
            coefficients = jnp.concatenate([dx.reshape(n_patients, -1) for dx in chosen_tangents], axis=1)  # (P, K)
            vs = _tree_map(lambda leaf: jnp.einsum("po...k,pk->po...", leaf, coefficients), s)
        if not _is_zero(dts):
            fs = jax.vmap(jax.vmap(vector_field, in_axes=(0, 0, None)))(ts, ys, args)
            vs = _tree_map(lambda v, f: v + f * _expand(dts, f), vs, fs)
        return (ys, code), (vs, np.zeros(np.shape(code), dtype=jax.dtypes.float0))

    segment.defjvp(rule, symbolic_zeros=True)
    return segment


def population_solver(options: ODEOptions) -> Callable:
    """``solve(vector_field, y0, args, ts) -> (ys, codes)`` for a population, by ``options.batching``.

    ``vector_field(t, y, args)`` is one patient's; ``y0`` and ``args`` carry a leading patient axis and
    ``ts`` is (patients, obs), non-decreasing per row, every segment starting at t = 0. Returns the states
    at ``ts`` (leaves (patients, obs, ...)) and the result code per patient (under ``"population"``
    batching one code for the joint solve, repeated for every patient).
    """
    if options.resolved_batching == "population":
        if options.adjoint != "forward":  # guarded in ODEOptions; kept for a clear message
            raise ValueError('batching = "population" needs adjoint = "forward"')

        def solve(vector_field, y0, args, ts):
            ys, code = _population_segment(options, vector_field)(y0, args, ts)
            return ys, jnp.broadcast_to(code, ts.shape[:1])

        return solve

    def solve(vector_field, y0, args, ts):
        return jax.vmap(lambda y, a, t: solve_segment(options, vector_field, y, a, 0.0, t))(y0, args, ts)

    return solve


def _forward_jacobian(fn: Callable, *, second_order: bool) -> Callable:
    """Wrap ``fn(theta, ts) -> (values, codes)`` (theta (patients, params)) so derivatives use forward mode.

    Patients are independent (patient i's values depend on theta[i] only), so one forward pass per
    parameter, perturbing that parameter of every patient at once, gives every patient's Jacobian: the
    rule computes J (params, patients, obs) that way and returns the linear map ``dtheta -> J dtheta``,
    which reverse mode transposes. So ``jax.grad`` never runs backwards through a solver loop. Patients
    whose solve failed get a zero Jacobian, so that no NaN can leak into a gradient (the log-likelihood
    rejects the draw through the result code). Derivatives with respect to ``ts`` are exact too (one more
    forward pass, only when ``ts`` has a tangent).

    Second derivatives (``jax.hessian``, i.e. the Laplace approximation): with ``second_order`` the rule
    itself is differentiated (exact, through the solver). Without it, J is held constant, which gives the
    Gauss-Newton curvature of the predictions (second derivatives of the ODE solution with respect to the
    parameters are neglected; first derivatives are exact): cheap, and what FOCE-type methods use.
    """

    @jax.custom_jvp
    def wrapped(theta, ts):
        return fn(theta, ts)

    def jacobian(theta, ts):
        zero_ts = jnp.zeros_like(ts)

        def push(k):
            v = jnp.zeros_like(theta).at[:, k].set(1.0)
            return jax.jvp(fn, (theta, ts), (v, zero_ts), has_aux=True)

        values, jac, code = jax.vmap(push)(jnp.arange(theta.shape[-1]))
        values, code = values[0], code[0]  # identical across directions
        return values, jnp.where((code == 0)[None, :, None], jac, 0.0), code

    def rule(primals, tangents):
        theta, ts = primals
        dtheta, dts = tangents
        if second_order:
            values, jac, code = jacobian(theta, ts)
        else:
            fixed = jax.lax.stop_gradient(theta)
            values, jac, code = jax.lax.stop_gradient(jacobian(fixed, jax.lax.stop_gradient(ts)))
            # Same values; first derivatives J for any outer transformation; no second derivatives.
            values = values + jnp.einsum("pk,kpo->po", theta - fixed, jac)
        ok = (code == 0)[:, None]
        out = jnp.zeros_like(values)
        if not isinstance(dtheta, jax.custom_derivatives.SymbolicZero):
            out = out + jnp.einsum("pk,kpo->po", dtheta, jac)
        if not isinstance(dts, jax.custom_derivatives.SymbolicZero):
            _, dvalues, _ = jax.jvp(fn, (theta, ts), (jnp.zeros_like(theta), dts), has_aux=True)
            out = out + jnp.where(ok, dvalues, 0.0)
        return (values, code), (out, np.zeros(np.shape(code), dtype=jax.dtypes.float0))

    wrapped.defjvp(rule, symbolic_zeros=True)
    return wrapped


class ODEModel(eqx.Module):
    """Base class of the ODE kinetic models (the interface of ``Multiphasic``, evaluated per schedule).

    Subclasses define ``individual_parameters`` (and ``inputs``: per-patient values taken from data
    columns, e.g. baseline tumour burden; ``constants``: names of fixed constants, fields of the model),
    ``structural``, and either the three pieces ``vector_field``, ``initial_state``, ``observe`` of a
    single solve from t = 0, or their own ``population_log_concentration`` (e.g. a solve in segments).
    All pieces are written for one patient except ``structural`` and ``population_log_concentration``,
    which take arrays with a leading patient axis.
    """

    individual_parameters: ClassVar[tuple[str, ...]] = ()
    inputs: ClassVar[tuple[str, ...]] = ()
    constants: ClassVar[tuple[str, ...]] = ()
    elementwise: ClassVar[bool] = False
    default_options: ClassVar[ODEOptions] = ODEOptions()

    options: ODEOptions = eqx.field(static=True, default=None)

    def __post_init__(self):
        if self.options is None:
            object.__setattr__(self, "options", type(self).default_options)

    # --- pieces a model defines ---------------------------------------------------------------------
    def structural(self, individual: dict) -> dict:
        """Structural ``args`` (elementwise: any batch shape) from individual parameters and inputs."""
        raise NotImplementedError

    def vector_field(self, t, y, args):
        """dy/dt for one patient (scalar args)."""
        raise NotImplementedError

    def initial_state(self, args):
        """y(0), elementwise in the args (a leading patient axis carries through)."""
        raise NotImplementedError

    def observe(self, y, args) -> Float[Array, ""]:
        """log C (log copies/ug gDNA) from one patient's state."""
        raise NotImplementedError

    def population_log_concentration(self, individual: dict, ts: Float[Array, "patients obs"], solve: Callable):
        """log C at every patient's times and the result codes, given ``solve`` (``population_solver``)."""
        args = self.structural(individual)
        ys, code = solve(self.vector_field, self.initial_state(args), args, ts)
        log_c = jax.vmap(lambda y_i, a_i: jax.vmap(lambda y: self.observe(y, a_i))(y_i))(ys, args)
        return log_c, code

    # --- the common interface -----------------------------------------------------------------------
    @property
    def argument_names(self) -> tuple[str, ...]:
        return tuple(self.individual_parameters) + tuple(self.inputs)

    def solve(
        self,
        individual: dict[str, Float[Array, " patients"]],
        t: Float[Array, "patients obs"],
        *,
        batching: str | None = None,
    ) -> ODESolution:
        """Solve every patient at its own times.

        Parameters
        ----------
        individual : dict of name -> Float[Array, " patients"]
            Natural-scale individual parameters (``individual_parameters``) and ``inputs``.
        t : Float[Array, "patients obs"]
            Days after infusion, non-decreasing along each row (pad by repeating the last time).
        batching : {"population", "patient"}, optional
            Override ``options.batching`` (``check_solves`` uses "patient" to name failing patients).

        Returns
        -------
        ODESolution
            ``log_concentration`` (patients, obs) and ``code`` (patients,).
        """
        missing = [k for k in self.argument_names if k not in individual]
        if missing:
            raise ValueError(
                f"{type(self).__name__}.solve needs {', '.join(self.argument_names)}; missing {', '.join(missing)}"
            )
        t = jnp.asarray(t)
        if t.ndim != 2:
            raise ValueError(
                f"{type(self).__name__}: t must have shape (patients, obs), got {t.shape}; evaluate a "
                "broadcast grid with carkin.models.log_concentration_grid"
            )
        theta = jnp.stack([jnp.broadcast_to(jnp.asarray(individual[k], dtype=t.dtype), t.shape[:1])
                           for k in self.argument_names], axis=-1)
        log_c, code = _solve(self, batching, theta, t)
        return ODESolution(log_concentration=log_c, code=code)

    def log_concentration(
        self, individual: dict[str, Float[Array, " patients"]], t: Float[Array, "patients obs"]
    ) -> Float[Array, "patients obs"]:
        """log C(t) (log copies/ug gDNA); rows of patients whose solve failed are NaN (see ``solve``)."""
        sol = self.solve(individual, t)
        return jnp.where(sol.ok[:, None], sol.log_concentration, jnp.nan)

    def derived(self, individual: dict[str, Float[Array, "..."]]) -> dict[str, Float[Array, "..."]]:
        return {}


@functools.partial(jax.jit, static_argnums=(0, 1))
def _solve(model: ODEModel, batching: str | None, theta, t):
    """The population solve, compiled once per model, batching and shapes (also when called eagerly, e.g. by
    numpyro's initialisation; inside an outer ``jit`` it is inlined). Differentiable as described in the
    module docstring."""
    options = model.options
    if batching is not None and batching != options.resolved_batching:
        options = options.replace(batching=batching)
    solver = population_solver(options)
    names = model.argument_names

    def fn(theta, ts):
        return model.population_log_concentration({k: theta[:, i] for i, k in enumerate(names)}, ts, solver)

    if options.adjoint in ("forward", "forward_autodiff"):
        fn = _forward_jacobian(fn, second_order=options.adjoint == "forward_autodiff")
    return fn(theta, t)


def log_concentration_grid(model, individual: dict[str, Float[ArrayLike, "..."]], t: Float[ArrayLike, "..."]):
    """Evaluate any kinetic model with the closed form's broadcasting convention.

    The last axis of ``t`` is the time axis; the parameters carry a size-1 last axis and batch axes that
    broadcast against ``t``'s (e.g. parameters (patients, 1) with times (1, obs), or (draws, patients, 1)
    with (1, 1, grid)). A closed-form model is called directly; an ODE model is solved once per
    broadcast batch element, with the times sorted for the solve and the result put back in the given order.

    Returns
    -------
    Float[Array, "... obs"]: log C (log copies/ug gDNA), NaN for batch elements whose ODE solve failed.
    """
    if getattr(model, "elementwise", True):
        return model.log_concentration(individual, t)
    t = jnp.asarray(t)
    values = {k: jnp.asarray(v) for k, v in individual.items()}
    for k, v in values.items():
        if v.ndim and v.shape[-1] != 1:
            raise ValueError(
                f"log_concentration_grid: parameter {k!r} has shape {v.shape}; give it a size-1 last (time) axis"
            )
    batch = jnp.broadcast_shapes(t.shape[:-1], *[v.shape[:-1] for v in values.values() if v.ndim])
    n_obs = t.shape[-1]
    times = jnp.broadcast_to(t, batch + (n_obs,)).reshape(-1, n_obs)
    flat = {k: jnp.broadcast_to(v[..., 0] if v.ndim else v, batch).reshape(-1) for k, v in values.items()}
    order = jnp.argsort(times, axis=-1)
    sorted_times = jnp.take_along_axis(times, order, axis=-1)
    out_sorted = model.log_concentration(flat, sorted_times)
    out = jnp.zeros_like(out_sorted)
    out = jax.vmap(lambda o, idx, v: o.at[idx].set(v))(out, order, out_sorted)
    return out.reshape(batch + (n_obs,))
