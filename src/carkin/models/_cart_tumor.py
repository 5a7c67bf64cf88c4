"""Mechanistic CAR-T / tumour model: antigen-driven expansion, memory, exhaustion, killing and regrowth.

A simplification of Singh et al. 2021 (bb2121 / ide-cel multiscale PK-PD, CPT:PSP 10:362, doi:10.1002/psp4.12598;
``[Singh2021]`` in docs/references.md, section 1.2) to the common E/M/X + tumour pattern
([Kirouac2023], [Paixao2022]): effector (E), memory (M) and exhausted (X) CAR-T cells,
all measured as transgene copies per ug gDNA in blood, and tumour burden T in the units of the data's
baseline tumour-burden column (e.g. % bone-marrow plasma cells):

    A = E + M + X                                   total CAR-T (all carry the transgene)
    s = T / (T + ec50 A)                            stimulation: Emax in antigen per CAR-T cell, T / A
    dE/dt = (kexp - kx) s E - (alpha) E             alpha = beta + delta  (death + conversion to memory)
    dM/dt = km E - beta M                           km = fb delta  (effector -> memory conversion)
    dX/dt = kx s E - dx X                           exhaustion under sustained antigen
    dT/dt = kg T - kkill E T / (E + kc50 T)         regrowth; killing Emax in effectors per tumour, E / T
    E(0) = e0,  M(0) = X(0) = 0,  T(0) = tumor0 (an input: the patient's baseline burden)
    observed: C = E + M + X  (copies/ug gDNA)

Design choices, each following the source cited:

- Expansion saturates in tumour per CAR-T cell (Singh's Kexp = KexpMax (Cx/CART) / (EC50exp + Cx/CART),
  with the CAR-antigen complexes per CAR-T cell replaced by their driver, tumour per CAR-T cell, T / A).
  Without tumour (tumor0 = 0) s = 0 and nothing expands: the target-driven expansion of Singh 2021.
- Killing saturates in effectors per tumour cell (Singh's Kkill = KkillMax (Cx/Tumor) / (KC50 + Cx/Tumor)).
- After the tumour is cleared (s -> 0) the model reduces to Stein's E/M form: E decays at alpha, a fraction
  fb of the decline feeds M, which persists at beta. The parameterisation (beta, delta = alpha - beta, fb)
  is the multiphasic model's, so alpha > beta holds by construction (no alpha/beta label switching).
- Exhausted cells neither expand nor kill and decay at dx (Kirouac 2023, Paixao 2022 structure).

Which parameters are estimated and which are fixed (``CarTumor`` docstring): transgene data inform the
initial level, the expansion rate and its saturation, and the three decline parameters; they carry no
information on tumour killing or regrowth apart from what the expansion's end reveals, which ec50 already
absorbs. So the tumour-side constants (kg, kkill, kc50) and the exhaustion pair (kx, dx: an exhausted
compartment is indistinguishable from slower effector decay in transgene data) are fixed at published or
stated values; fitting them needs tumour data (M-protein, sBCMA; Singh 2021).

Units: time in days; E, M, X, e0 in copies/ug gDNA; T, tumor0 in the data's burden units; ec50 in
burden units per copies/ug; kc50 in copies/ug per burden unit; rates in 1/day.

Scaling: the solve runs on u = log(E / e0), m = M / e0, r = X / (E + M) and w = log(T / tumor0) (w = 0 at
t = 0, also for tumor0 = 0, where the tumour terms vanish): all states start at 0, the tolerances mean the same
for every patient, and exponential expansion, contraction and killing are straight lines for the solver
(measured: about half the steps of the linear states at the same tolerance, and exact positivity of E and T).
The exhausted cells are carried relative to the other CAR-T cells: X / e0 decays at dx = 0.2 / day after the
expansion, and tracking that decay to rtol relative to X itself (while X is a vanishing part of the observed
total) pinned the step at ~1.6 days from day ~15 to ~100; r = X / (E + M) changes at dx - alpha, then at
dx - beta once memory dominates, and falls below the absolute tolerance instead (measured, typical parameters,
tumour 3-90 % PC, delta 0.08-0.3: 92-109 -> 77-98 steps at rtol 1e-6, atol 1e-9; same accuracy).
Tolerances: every state is a logarithm (u, w), a level relative to e0 (m, tracked to rtol), or a fraction of
the observed total (r), so atol = 1e-6 means an error of 1e-6 relative to the observation; the default is
rtol 1e-6, atol 1e-6 (55-68 steps on the same grid; log C within 5e-6 of a 1e-11 solve, where the residual
SD on log C is ~0.4).

Stiffness: measured on typical parameters (tumour 0, 3, 30, 90 % plasma cells; rtol 1e-6, atol 1e-9,
0-365 days), the Jacobian's largest eigenvalue modulus along the trajectory is at most 1.14 per day, and
the implicit Kvaerno5 takes 330-358 steps (132-135 rejected) where the explicit Tsit5 takes 118-139: the
system is not stiff, so the default solver is Tsit5 (Kvaerno5 stays available in ``[ode]``).

Cost (measured 2026-12-06, 250 simulated patients, defaults, 2 CPU cores): the population's shared step
sequence has 66 steps, as many as one patient's own solve, so sharing the steps costs nothing here. The
gradient (~28 ms, 71x the closed form's: benchmarks/RESULTS.md) is 12-18x the log density alone: the
forward sensitivities carry six directions (e0, kexp, ec50, alpha, beta, km), each about twice the state's
cost per stage. A reverse (adjoint) sweep, whose cost does not grow with the directions, is the lever left.

Limitation: with Singh's ratio-dependent killing, a small enough tumour is killed at the full rate kkill
however few effectors remain, so the model does not relapse; the tumour depth at a landmark, not
regrowth, is its outcome.

Outputs: ``("transgene", "tumour")``. The second is log T(t), the tumour burden in the data's burden units, so
that a spec can declare a tumour-marker analyte (M-protein, sBCMA) observing it with an estimated scaling factor
(``[analytes.<name>] output = "tumour"``, ``scale``): marker = scale x T, a marker in quasi-steady state with
the tumour that makes it (sBCMA is shed by myeloma cells and cleared within days; Singh 2021 models serum
BCMA with its own turnover, and a turnover compartment between T and the marker is the refinement this
leaves out). A patient without tumour (tumor0 = 0) has log T = log of the smallest positive float, -708: a
marker prediction below any limit of quantification rather than -inf.

Re-infusion (``reinfusion``): a later infusion d adds e0 A_d / A_1 effector cells at its time t_d (the first
infusion's level e0 scaled by the dose ratio): u jumps to log(e^u + A_d / A_1), r = X / (E + M) to
r (E + M) / (E + M + e0 A_d / A_1), memory and tumour are unchanged. Because expansion is driven by the
tumour per CAR-T cell, the new cells expand again if tumour remains (a second expansion phase driven by
antigen) and barely at all if it has been cleared. Co-medication (``switch_processes``): from a patient's
start time on, "expansion" multiplies kexp (the maximal proliferation rate; exhaustion kx is unchanged) and
"contraction" multiplies the effector decline alpha (the conversion to memory km = fb delta and the memory
decay beta are unchanged), as in ``Multiphasic``. Both are solved in segments between the events, so a jump or
a switch happens at its own time exactly (``_ode/_segments.py``).
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._ode import ODEModel, ODEOptions, population_solver

__all__ = ["CarTumor"]


class CarTumor(ODEModel):
    """The mechanistic CAR-T / tumour model (see the module docstring for the equations).

    Individual parameters (estimated, with between-patient variability):

    ========  ==================================================  =======================
    name      meaning                                             unit
    ========  ==================================================  =======================
    e0        CAR-T level in blood just after infusion            copies/ug
    kexp      maximal expansion rate of effectors                 1/day
    ec50      tumour per CAR-T cell at half-maximal expansion     burden unit per copies/ug
    beta      memory decay rate                                   1/day
    delta     alpha - beta (effector decline above memory's)      1/day
    fb        km / delta: fraction of the decline into memory     -
    ========  ==================================================  =======================

    Input (per patient, from data; not estimated): ``tumor0``, baseline tumour burden (burden units).

    Constants (fixed; fields of the model, overridable in the spec's ``[constants]`` table):

    ========  =========  ========================================================================
    name      default    meaning, unit, source
    ========  =========  ========================================================================
    kg        0.008      tumour regrowth rate, 1/day (Singh 2021, fixed there)
    kkill     0.343      maximal killing rate, 1/day (Singh 2021 KkillMax, typical value)
    kc50      300.0      effectors per tumour at half-maximal killing, copies/ug per burden unit
                         (assumption, calibrated: killing reaches half its maximum when blood CAR-T
                         reach ~300 copies/ug per % plasma cells, i.e. late in the expansion, so
                         that tumour control follows CAR-T expansion as in Singh 2021's simulations)
    kx        0.1        exhaustion rate under full stimulation, 1/day (assumption; structure of
                         Kirouac 2023 / Paixao 2022, whose values were not retrieved)
    dx        0.2        decay rate of exhausted cells, 1/day (assumption: faster than effector
                         contraction, so exhaustion shortens the response without adding a phase)
    ========  =========  ========================================================================
    """

    individual_parameters: ClassVar[tuple[str, ...]] = ("e0", "kexp", "ec50", "beta", "delta", "fb")
    inputs: ClassVar[tuple[str, ...]] = ("tumor0",)
    constants: ClassVar[tuple[str, ...]] = ("kg", "kkill", "kc50", "kx", "dx")
    outputs: ClassVar[tuple[str, ...]] = ("transgene", "tumour")
    switch_processes: ClassVar[tuple[str, ...]] = ("expansion", "contraction")
    reinfusion: ClassVar[bool] = True
    default_options: ClassVar[ODEOptions] = ODEOptions(solver="tsit5", rtol=1e-6, atol=1e-6)

    kg: float = eqx.field(static=True, default=0.008)
    kkill: float = eqx.field(static=True, default=0.343)
    kc50: float = eqx.field(static=True, default=300.0)
    kx: float = eqx.field(static=True, default=0.1)
    dx: float = eqx.field(static=True, default=0.2)

    def __check_init__(self):
        for name in self.constants:
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value >= 0):
                raise ValueError(f"CarTumor.{name} = {value!r} must be a non-negative number")
        if self.kc50 <= 0:
            raise ValueError(f"CarTumor.kc50 = {self.kc50!r} must be positive")

    def structural(self, individual: dict) -> dict:
        delta, fb = individual["delta"], individual["fb"]
        return {
            "e0": individual["e0"],
            "kexp": individual["kexp"],
            "ec50": individual["ec50"],
            "alpha": individual["beta"] + delta,
            "beta": individual["beta"],
            "km": fb * delta,
            "tumor0": individual["tumor0"],
        }

    def vector_field(self, t, y, args):
        u, m, r, w = y  # log(E / e0), M / e0, X / (E + M), log(T / tumor0)
        e0, tumor0 = args["e0"], args["tumor0"]
        eu = jnp.exp(u)  # E / e0
        em = eu + m  # (E + M) / e0
        effectors = e0 * eu  # copies/ug
        car = e0 * em * (1.0 + r)  # copies/ug, all CAR-T
        tumour = tumor0 * jnp.exp(w)  # burden units
        s = tumour / (tumour + args["ec50"] * car)
        du = (args["kexp"] - self.kx) * s - args["alpha"]
        dm = args["km"] * eu - args["beta"] * m
        # d(X / (E + M))/dt = dX/dt / (E + M) - r d log(E + M)/dt, with dE/dt = E du/dt
        dr = self.kx * s * eu / em - r * (self.dx + (eu * du + dm) / em)
        dw = self.kg - self.kkill * effectors / (effectors + self.kc50 * tumour)
        return (du, dm, dr, dw)

    def initial_state(self, args):
        zero = jnp.zeros_like(args["e0"])
        return (zero, zero, zero, zero)

    def observe(self, y, args) -> Float[Array, ""]:
        u, m, r, _ = y
        # log(E + M + X) = log e0 + log(e^u + m) + log(1 + r), with log(e^u + m) shifted by its larger term so
        # that neither e^-u (which overflowed to +inf once the effectors had died out, u < -709) nor log m
        # (whose derivative is infinite at M = 0, before any memory has formed) is ever evaluated.
        tiny = jnp.finfo(jnp.result_type(m)).tiny
        log_tiny = jnp.log(tiny)
        log_m = jnp.log(jnp.maximum(m, tiny))
        shift = jnp.where(m > 0, jnp.maximum(u, log_m), u)
        m_scale = jnp.exp(-jnp.where(m > 0, shift, jnp.maximum(u, log_tiny)))  # e^-shift, finite where m = 0
        return jnp.log(args["e0"]) + shift + jnp.log(jnp.exp(u - shift) + m * m_scale) + jnp.log1p(r)

    def observe_outputs(self, y, args) -> Float[Array, " 2"]:
        """(log C, log T): the transgene (``observe``) and the tumour burden, log burden units (module docstring
        for tumor0 = 0)."""
        tumor0 = args["tumor0"]
        log_tumour = jnp.log(jnp.maximum(tumor0, jnp.finfo(jnp.result_type(tumor0)).tiny)) + y[3]
        return jnp.stack([self.observe(y, args), log_tumour])

    def switched_args(self, args: dict, log_multipliers: dict) -> dict:
        """kexp x exp(expansion multiplier), alpha x exp(contraction multiplier)."""
        out = dict(args)
        if "expansion" in log_multipliers:
            out["kexp"] = args["kexp"] * jnp.exp(log_multipliers["expansion"])
        if "contraction" in log_multipliers:
            out["alpha"] = args["alpha"] * jnp.exp(log_multipliers["contraction"])
        return out

    def infusion_jump(self, y, weight, args):
        """E += e0 x weight (weight = A_d / A_1): u -> log(e^u + weight), r -> r (E + M) / (E + M + e0 weight)."""
        u, m, r, w = y
        given = weight > 0
        u_new = jnp.where(given, jnp.logaddexp(u, jnp.log(jnp.where(given, weight, 1.0))), u)
        em = jnp.exp(u) + m  # (E + M) / e0
        return (u_new, m, jnp.where(given, r * em / (em + jnp.where(given, weight, 1.0)), r), w)

    def tumour(self, individual: dict[str, Float[Array, " patients"]], t: Float[Array, "patients obs"]):
        """Tumour burden T(t) (burden units) at each patient's times, with the solver result codes.

        ``individual`` holds the individual parameters and ``tumor0``, each (patients,); ``t`` is
        (patients, obs), non-decreasing per row. Returns (Float[Array, "patients obs"], codes (patients,)).
        """
        args = self.structural({k: jnp.asarray(individual[k]) for k in self.argument_names})
        ys, code = population_solver(self.options)(self.vector_field, self.initial_state(args), args, jnp.asarray(t))
        return args["tumor0"][:, None] * jnp.exp(ys[3]), code

    def derived(self, individual: dict[str, Float[Array, "..."]]) -> dict[str, Float[Array, "..."]]:
        """alpha = beta + delta (effector decline, 1/day) and km = fb delta (memory conversion, 1/day)."""
        return {
            "alpha": jnp.asarray(individual["beta"] + individual["delta"]),
            "km": jnp.asarray(individual["fb"] * individual["delta"]),
        }
