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

How patients are batched (``batching``; see ``_solve``): ``"population"`` (default for explicit solvers)
solves all patients at once with a shared sequence of steps (``_population``: about 3x faster gradients
on CPU than ``vmap`` over per-patient solves); ``"patient"`` is ``jax.vmap`` over one
``diffrax.diffeqsolve`` per patient (``_patient``; needed for implicit solvers and the reverse-mode
adjoints).

Derivatives (``adjoint``):

- ``"forward"`` (default): the forward sensitivity equations dv/dt = f_y v + f_args dargs are integrated
  with the state in the same loop (step control on the state only, so values equal the plain solve), one
  direction per patient parameter, all directions in one solve (``_sensitivities``). The Jacobian
  (patients are independent: one pass per parameter covers all patients) is handed to reverse mode as a
  linear map, so ``jax.grad`` never runs backwards through a solver loop (``_jacobian``). ``jax.hessian``
  (the Laplace approximation) then gets the Gauss-Newton curvature of the predictions: exact first
  derivatives, second derivatives of the ODE solution neglected (as FOCE-type methods do).
- ``"forward_autodiff"``: the same Jacobian by forward-mode autodiff through diffrax's solver
  (``diffrax.ForwardMode``; per-patient batching); its Hessian is exact (slower).
- ``"recursive_checkpoint"`` / ``"direct"``: reverse mode through diffrax's solver
  (``RecursiveCheckpointAdjoint``, ``DirectAdjoint``; per-patient batching). Reverse-only: they serve NUTS,
  SVI and MAP, not ``method="laplace"``.

Failures never raise inside ``jit``/``vmap``: each patient gets a diffrax result code (``_solution``).

Modules (one concept each; the options table is in ``_options``):

- ``_options``: ``ODEOptions`` and ``ODE_CHOICES``, the one dispatch table of the ``[ode]`` choices.
- ``_solution``: ``ODESolution``, result codes and ``result_message``.
- ``_norms``: step-control norms on the state only (not the sensitivities).
- ``_patient``: one patient's solve by ``diffrax.diffeqsolve``.
- ``_population``: the shared-step loop over a whole population and its ``vmap`` rule.
- ``_sensitivities``: the forward sensitivity equations as the custom JVPs of both solves.
- ``_solve``: the entry points ``solve_segment`` (one patient) and ``population_solver`` (a population).
- ``_jacobian``: the patients' Jacobian by forward passes, handed to reverse mode.
- ``_base``: ``ODEModel``, the base class of the ODE models.
- ``_grid``: ``log_concentration_grid``, any kinetic model on a broadcast grid of times.
"""

from ._base import ODEModel as ODEModel
from ._grid import log_concentration_grid as log_concentration_grid
from ._options import ODE_CHOICES as ODE_CHOICES, ODEOptions as ODEOptions
from ._solution import ODESolution as ODESolution, result_message as result_message
from ._solve import population_solver as population_solver, solve_segment as solve_segment

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
