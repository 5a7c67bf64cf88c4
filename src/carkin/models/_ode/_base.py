"""``ODEModel``: the base class of the ODE kinetic models, and its population solve compiled once per model.

An ODE kinetic model is a vector field, an initial state, an observation function and a parameter mapping
(individual parameters -> structural ``args``). It exposes the same interface as the closed form
(``individual_parameters``, ``elementwise``, ``log_concentration``, ``derived``), but it is evaluated on a
*schedule* per patient rather than record by record (see the ``carkin.models._ode`` package docstring).

The population likelihood's context reaches the solve as keyword arguments: ``doses`` (several infusions per
patient, models with ``reinfusion``) and ``switches`` (co-medication effects on the ``switch_processes``).
Dose times and co-medication starts are data (constants of the solve); the co-medications' log multipliers
are differentiated like the patients' parameters: they travel as extra columns of the parameter matrix
(one per patient, so that the forward Jacobian of ``_jacobian`` covers them; reverse mode sums the columns).
A model that takes neither gets exactly the solve it had without them.
"""

from __future__ import annotations

import functools
from typing import Callable, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ...data._doses import DoseEvents
from .._comedication import sort_events
from .._reinfusion import infusion_weights
from ._jacobian import forward_jacobian
from ._options import ODEOptions
from ._segments import solve_in_segments
from ._solution import ODESolution
from ._solve import population_solver

__all__ = ["ODEModel"]


class ODEModel(eqx.Module):
    """Base class of the ODE kinetic models (the interface of ``Multiphasic``, evaluated per schedule).

    Subclasses define ``individual_parameters`` (and ``inputs``: per-patient values taken from data
    columns, e.g. baseline tumour burden; ``constants``: names of fixed constants, fields of the model),
    ``structural``, and either the three pieces ``vector_field``, ``initial_state``, ``observe`` of a
    single solve from t = 0, or their own ``population_log_concentration`` (e.g. a solve in segments).
    All pieces are written for one patient except ``structural`` and ``population_log_concentration``,
    which take arrays with a leading patient axis. A model with several ``outputs`` defines
    ``observe_outputs``; one with ``switch_processes`` defines ``switched_args``, one with ``reinfusion``
    ``infusion_jump`` (the default ``population_log_concentration`` then solves in segments between the
    events: ``_segments``).
    """

    individual_parameters: ClassVar[tuple[str, ...]] = ()
    inputs: ClassVar[tuple[str, ...]] = ()
    constants: ClassVar[tuple[str, ...]] = ()
    elementwise: ClassVar[bool] = False
    # What the model predicts (the analytes of a spec observe these), and the rates co-medication can switch.
    outputs: ClassVar[tuple[str, ...]] = ("transgene",)
    switch_processes: ClassVar[tuple[str, ...]] = ()
    # Several infusions per patient (``doses``): what each model does with them is in its docstring.
    reinfusion: ClassVar[bool] = False
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

    def observe_outputs(self, y, args) -> Float[Array, " outputs"]:
        """The log of every output (``outputs`` order) from one patient's state; by default ``observe`` alone."""
        return self.observe(y, args)[None]

    def switched_args(self, args: dict, log_multipliers: dict) -> dict:
        """``args`` (leading patient axis) with each switched process's rate multiplied by exp(log multiplier),
        ``log_multipliers``: process -> (patients,)."""
        raise NotImplementedError(f"{type(self).__name__} takes no co-medication switches")

    def infusion_jump(self, y, weight: Float[Array, " patients"], args: dict):
        """The state (leaves (patients, ...)) just after an infusion of ``weight`` times the first one's cells
        (``weight`` 0: unchanged)."""
        raise NotImplementedError(f"{type(self).__name__} takes one infusion per patient")

    def population_log_concentration(
        self,
        individual: dict,
        ts: Float[Array, "patients obs"],
        solve: Callable,
        *,
        doses: tuple | None = None,
        switches: dict | None = None,
    ):
        """log of every output at every patient's times, (patients, obs, outputs), and the result codes, given
        ``solve`` (``population_solver``).

        ``doses``: (time, log weight) (patients, doses) from ``infusion_weights``; ``switches``: process ->
        (starts (patients, C), log multipliers (patients, C)). With either, the solve runs in segments between
        the events (``solve_in_segments``): later infusions jump the state (``infusion_jump``), switches change
        the args (``switched_args``) from their start on.
        """
        args = self.structural(individual)
        y0 = self.initial_state(args)
        if doses is None and not switches:
            ys, code = solve(self.vector_field, y0, args, ts)
        else:
            ys, code = self._solve_between_events(args, y0, ts, solve, doses, switches or {})
        log_c = jax.vmap(lambda y_i, a_i: jax.vmap(lambda y: self.observe_outputs(y, a_i))(y_i))(ys, args)
        return log_c, code

    def _solve_between_events(self, args, y0, ts, solve, doses, switches):
        """The solve in segments between every patient's later infusions and co-medication starts."""
        times, weights, factors = [], [], {p: [] for p in switches}
        zeros = lambda x: jnp.zeros_like(x)  # noqa: E731
        if doses is not None:
            dose_time, log_weight = doses
            real = jnp.isfinite(log_weight[:, 1:])
            later = jnp.where(real, dose_time[:, 1:], jnp.inf)  # the first infusion is the initial state
            times.append(later)
            weights.append(jnp.where(real, jnp.exp(jnp.where(real, log_weight[:, 1:], 0.0)), 0.0))
            for p in switches:
                factors[p].append(zeros(later))
        for process, (starts, log_factors) in switches.items():
            times.append(starts)
            weights.append(zeros(starts))
            for p in switches:
                factors[p].append(jnp.broadcast_to(log_factors, starts.shape) if p == process else zeros(starts))
        names = tuple(switches)
        events, weight, *sorted_factors = sort_events(
            jnp.concatenate(times, axis=1), jnp.concatenate(weights, axis=1),
            *[jnp.concatenate(factors[p], axis=1) for p in names],
        )
        cumulative = {p: jnp.cumsum(f, axis=1) for p, f in zip(names, sorted_factors, strict=True)}
        segment_args = [args] + [
            self.switched_args(args, {p: c[:, j] for p, c in cumulative.items()}) if names else args
            for j in range(events.shape[1])
        ]
        jump = None
        if doses is not None:
            def jump(j, y, a):
                return self.infusion_jump(y, weight[:, j - 1], a)
        return solve_in_segments(solve, self.vector_field, y0, segment_args, events, ts, jump)

    # --- the common interface -----------------------------------------------------------------------
    @property
    def argument_names(self) -> tuple[str, ...]:
        return tuple(self.individual_parameters) + tuple(self.inputs)

    def solve(
        self,
        individual: dict[str, Float[Array, " patients"]],
        t: Float[Array, "patients obs"],
        *,
        doses: DoseEvents | None = None,
        switches: dict | None = None,
        batching: str | None = None,
    ) -> ODESolution:
        """Solve every patient at its own times.

        Parameters
        ----------
        individual : dict of name -> Float[Array, " patients"]
            Natural-scale individual parameters (``individual_parameters``) and ``inputs``.
        t : Float[Array, "patients obs"]
            Days after the first infusion, non-decreasing along each row (pad by repeating the last time).
        doses : DoseEvents (patients, doses), optional
            Every infusion (models with ``reinfusion``), the first at index 0 and time 0, days.
        switches : dict, optional
            Co-medication effects (``switch_processes``): process -> (starts (patients, C), days after the first
            infusion, +inf never; log multipliers (C,) or (patients, C)), as ``carkin.population.model_context``
            builds them.
        batching : {"population", "patient"}, optional
            Override ``options.batching`` (``check_solves`` uses "patient" to name failing patients).

        Returns
        -------
        ODESolution
            ``log_concentration`` (patients, obs), ``log_outputs`` (patients, obs, outputs) and ``code``
            (patients,).

        Raises
        ------
        ValueError
            If a parameter is missing, ``t`` is not (patients, obs), ``doses`` are given to a model without
            re-infusion, or ``switches`` name a process the model does not switch.
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
        context, factors = self._context(doses, switches, t)
        if factors:
            theta = jnp.concatenate([theta, *factors], axis=1)
        values, code = _population_solve(self, batching, theta, t, context)
        values = values if values.ndim == 3 else values[..., None]
        return ODESolution(log_concentration=values[..., 0], code=code, log_outputs=values)

    def _context(self, doses, switches, t):
        """The solve's constant context (dose times and weights, co-medication starts; leading patient axis) and
        the co-medications' log multipliers as (patients, C) blocks (processes sorted by name)."""
        name = type(self).__name__
        n_patients = t.shape[0]
        context, factors = {}, []
        if doses is not None:
            if not self.reinfusion:
                raise ValueError(f"{name} takes one infusion per patient: it got doses; use a model with re-infusion")
            time, log_weight = infusion_weights(doses)
            shape = (n_patients, time.shape[-1])
            context["dose_time"] = jnp.broadcast_to(time.astype(t.dtype), shape)
            context["dose_log_weight"] = jnp.broadcast_to(log_weight.astype(t.dtype), shape)
        if switches:
            unknown = [p for p in switches if p not in self.switch_processes]
            if unknown:
                raise ValueError(
                    f"{name}: co-medication switches for {', '.join(map(repr, unknown))}; the model switches "
                    f"{', '.join(self.switch_processes) or '(none)'}"
                )
            context["switch_start"] = {}
            for process in sorted(switches):
                starts, log_factors = switches[process]
                starts = jnp.asarray(starts, dtype=t.dtype)
                starts = jnp.broadcast_to(starts, (n_patients, starts.shape[-1]))
                context["switch_start"][process] = starts
                factors.append(jnp.broadcast_to(jnp.asarray(log_factors, dtype=t.dtype), starts.shape))
        return context, factors

    def log_concentration(
        self,
        individual: dict[str, Float[Array, " patients"]],
        t: Float[Array, "patients obs"],
        *,
        doses: DoseEvents | None = None,
        switches: dict | None = None,
    ) -> Float[Array, "patients obs"]:
        """log C(t) (log copies/ug gDNA); rows of patients whose solve failed are NaN (see ``solve``)."""
        sol = self.solve(individual, t, doses=doses, switches=switches)
        return jnp.where(sol.ok[:, None], sol.log_concentration, jnp.nan)

    def derived(self, individual: dict[str, Float[Array, "..."]]) -> dict[str, Float[Array, "..."]]:
        return {}


@functools.partial(jax.jit, static_argnums=(0, 1))
def _population_solve(model: ODEModel, batching: str | None, theta, t, context):
    """The population solve, compiled once per model, batching, shapes and context structure (also when called
    eagerly, e.g. by numpyro's initialisation; inside an outer ``jit`` it is inlined). Differentiable as
    described in the ``carkin.models._ode`` package docstring; ``theta``'s columns are the model's arguments,
    then the co-medication log multipliers (``ODEModel._context``)."""
    options = model.options
    if batching is not None and batching != options.resolved_batching:
        options = options.replace(batching=batching)
    solver = population_solver(options)
    names = model.argument_names

    def fn(theta, ts, context):
        kwargs = {}
        if "dose_time" in context:
            kwargs["doses"] = (context["dose_time"], context["dose_log_weight"])
        if "switch_start" in context:
            column, kwargs["switches"] = len(names), {}
            for process, starts in sorted(context["switch_start"].items()):
                kwargs["switches"][process] = (starts, theta[:, column:column + starts.shape[1]])
                column += starts.shape[1]
        individual = {k: theta[:, i] for i, k in enumerate(names)}
        return model.population_log_concentration(individual, ts, solver, **kwargs)

    if options.adjoint in ("forward", "forward_autodiff"):
        return forward_jacobian(fn, second_order=options.adjoint == "forward_autodiff")(theta, t, context)
    return fn(theta, t, jax.lax.stop_gradient(context))
