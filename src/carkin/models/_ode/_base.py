"""``ODEModel``: the base class of the ODE kinetic models, and its population solve compiled once per model.

An ODE kinetic model is a vector field, an initial state, an observation function and a parameter mapping
(individual parameters -> structural ``args``). It exposes the same interface as the closed form
(``individual_parameters``, ``elementwise``, ``log_concentration``, ``derived``), but it is evaluated on a
*schedule* per patient rather than record by record (see the ``carkin.models._ode`` package docstring).
"""

from __future__ import annotations

import functools
from typing import Callable, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._jacobian import forward_jacobian
from ._options import ODEOptions
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
    which take arrays with a leading patient axis.
    """

    individual_parameters: ClassVar[tuple[str, ...]] = ()
    inputs: ClassVar[tuple[str, ...]] = ()
    constants: ClassVar[tuple[str, ...]] = ()
    elementwise: ClassVar[bool] = False
    # What the model predicts (the analytes of a spec observe these), and the rates co-medication can switch.
    outputs: ClassVar[tuple[str, ...]] = ("transgene",)
    switch_processes: ClassVar[tuple[str, ...]] = ()
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
        log_c, code = _population_solve(self, batching, theta, t)
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
def _population_solve(model: ODEModel, batching: str | None, theta, t):
    """The population solve, compiled once per model, batching and shapes (also when called eagerly, e.g. by
    numpyro's initialisation; inside an outer ``jit`` it is inlined). Differentiable as described in the
    ``carkin.models._ode`` package docstring."""
    options = model.options
    if batching is not None and batching != options.resolved_batching:
        options = options.replace(batching=batching)
    solver = population_solver(options)
    names = model.argument_names

    def fn(theta, ts):
        return model.population_log_concentration({k: theta[:, i] for i, k in enumerate(names)}, ts, solver)

    if options.adjoint in ("forward", "forward_autodiff"):
        fn = forward_jacobian(fn, second_order=options.adjoint == "forward_autodiff")
    return fn(theta, t)
