"""Effector/memory ODE twin of the multiphasic model (Stein et al. 2019 E/M form; [Stein2019], docs/references.md).

States are the effector (E) and memory-like (M) CAR-T levels in blood, copies/ug gDNA:

    t <  tmax:  dE/dt = rho E,                      M = 0,      E(0) = cmax exp(-rho tmax)
    t >= tmax:  dE/dt = -alpha E
                dM/dt = k E - beta M,               k = fb (alpha - beta),   alpha = beta + delta
    observed:   C = E + M

with the individual parameters of ``Multiphasic`` (cmax, tmax, rho, beta, delta, fb), so the two models
share one parameter pytree and tests compare them directly.

The switch at tmax is exact: the solve runs in two segments, [0, tmax] and [tmax, t_last], per patient.
Because tmax differs between patients (and ``vmap`` batches one program), every patient saves both
segments at all its times, clamped into the segment's span (``min(t, tmax)`` and ``max(t, tmax)``), and
the level is composed as log C(t) = log C(min(t, tmax)) + log[C(max(t, tmax)) / C(tmax)], one term of which
is zero at every t. Clamped saving times depend on tmax smoothly, so d/dtmax is the derivative of the
solver's output, not a zero-measure branch.

Segment 1 is linear growth with a known solution, E(t) = cmax exp(rho (t - tmax)); by default
(``expansion="analytic"``) it is evaluated exactly instead of integrated, which removes one solve per
patient (measured: about half the cost; benchmarks/ode_vs_closed_form.py). ``expansion="ode"`` integrates
it with diffrax as well (kept for the benchmark and the tests). Segment 2 is always integrated with diffrax.

Scaling: segment 2 is solved relative to cmax and in time since tmax, with the effector on the log scale
(u = log(E / cmax), m = M / cmax, s = t - tmax):

    du/ds = -alpha,   dm/ds = k exp(u) - beta m,   (u, m)(0) = (0, 0),   log C = log cmax + log(exp(u) + m)

so every patient starts it at the same state and the tolerances mean the same for every patient. The log
scale matters for speed: on the linear scale the decaying effector is a stiff mode (eigenvalue -alpha)
that caps an explicit solver's step at about 3.5 / alpha for as long as the solve runs, even after E is
negligible, and the population solve shares the fastest patient's cap (measured on 250 patients: 100
steps); on the log scale u is integrated exactly and the system's only eigenvalue is -beta (31 steps,
gradient 2.4x cheaper). An integrated segment 1 is solved relative to E(0), on the linear scale.

Co-medication and re-infusion (the semantics of ``Multiphasic``, whose module docstring gives the formulas):

- an expansion switch multiplies rho from the co-medication's start on (for the part of [0, tmax] after it).
  The analytic expansion integrates the piecewise-constant rate exactly (``_comedication.rate_integral``);
  ``expansion="ode"`` integrates it in segments between the switch times;
- a contraction switch multiplies the effector's decay rate alpha from max(start, tmax) on (k and beta
  unchanged): the contraction ODE is solved in segments whose boundaries are the switch times (days after
  tmax on this clock), each segment from the previous one's end state with its own alpha
  (``_ode/_segments.py``). So the switch happens at the start time itself, not at the next step or record,
  although the population's steps are shared;
- re-infusion: one cohort per (patient, infusion), solved as extra members of the same population solve (the
  members of patient i are rows i D .. i D + D - 1), each on its own clock t - t_d with the co-medication
  starts shifted to it, and summed with weights A_d / A_1 (a log-sum-exp over the cohorts that have started;
  padded infusions weigh nothing). A patient's derivatives still depend on its own parameters only.

Without doses or switches the solve is the single-infusion one above, unchanged.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._comedication import rate_integral, sorted_switches
from ._ode import ODEModel, ODEOptions
from ._ode._segments import solve_in_segments

__all__ = ["EffectorMemory"]


def _expansion_field(t, y, args):
    e, m = y
    return (args["rho"] * e, jnp.zeros_like(m))


def _contraction_field(t, y, args):
    u, m = y  # u = log(E / cmax), m = M / cmax
    return (-args["alpha"] * jnp.ones_like(u), args["k"] * jnp.exp(u) - args["beta"] * m)


class EffectorMemory(ODEModel):
    """The E/M ODE model of CAR-T expansion, contraction and memory persistence.

    Individual parameters (natural scale; as ``Multiphasic``):

    ========  =============================================  ===========
    name      meaning                                        unit
    ========  =============================================  ===========
    cmax      peak level (E at tmax)                         copies/ug
    tmax      end of expansion, time of peak                 day
    rho       expansion rate of E                            1/day
    beta      memory decay rate                              1/day
    delta     alpha - beta (effector decay above memory's)   1/day
    fb        k / (alpha - beta): fraction into memory       -
    ========  =============================================  ===========

    Parameters
    ----------
    options : ODEOptions
        Solver options (the spec's ``[ode]`` table).
    expansion : {"analytic", "ode"}
        How the expansion segment [0, tmax] is computed (see the module docstring).
    """

    individual_parameters: ClassVar[tuple[str, ...]] = ("cmax", "tmax", "rho", "beta", "delta", "fb")
    default_options: ClassVar[ODEOptions] = ODEOptions(solver="tsit5", rtol=1e-6, atol=1e-9)
    switch_processes: ClassVar[tuple[str, ...]] = ("expansion", "contraction")
    reinfusion: ClassVar[bool] = True

    expansion: Literal["analytic", "ode"] = eqx.field(static=True, default="analytic")

    def __check_init__(self):
        if self.expansion not in ("analytic", "ode"):
            raise ValueError(f"EffectorMemory.expansion = {self.expansion!r}; choose analytic or ode")

    def structural(self, individual: dict) -> dict:
        alpha = individual["beta"] + individual["delta"]
        return {
            "cmax": individual["cmax"],
            "tmax": individual["tmax"],
            "rho": individual["rho"],
            "alpha": alpha,
            "beta": individual["beta"],
            "k": individual["fb"] * individual["delta"],
        }

    def population_log_concentration(
        self, individual: dict, ts: Float[Array, "patients obs"], solve, *, doses=None, switches=None
    ):
        if doses is not None or switches:
            return self._cohorts_log_concentration(individual, ts, solve, doses, switches or {})
        args = self.structural(individual)
        tmax = args["tmax"][:, None]
        before = jnp.minimum(ts, tmax)  # saving times of segment 1, clamped into [0, tmax]
        since = jnp.maximum(ts - tmax, 0.0)  # saving times of segment 2 (time since tmax), clamped at 0
        ones = jnp.ones_like(args["tmax"])
        if self.expansion == "analytic":
            log_before = args["rho"][:, None] * (before - tmax)  # log(E / cmax) on [0, tmax], exact
            y_start = (jnp.zeros_like(ones), jnp.zeros_like(ones))  # (u, m) = (log 1, 0)
            code1 = jnp.zeros(ts.shape[:1], jnp.int32)
        else:
            # Segment 1 relative to E(0) = cmax exp(-rho tmax): e(0) = 1 grows to ~exp(rho tmax), so the
            # tolerances act on O(1) values even for a fold expansion of 10^6 (an initial value of
            # exp(-rho tmax) relative to cmax would sit below atol).
            y0 = (ones, jnp.zeros_like(ones))
            ys1, code1 = solve(_expansion_field, y0, args, jnp.concatenate([before, tmax], axis=1))
            level = ys1[0] + ys1[1]
            log_before = jnp.log(level[:, :-1]) - (args["rho"] * args["tmax"])[:, None]
            # (u, m) at tmax relative to C(tmax), whose level log_before carries
            y_start = (jnp.log(ys1[0][:, -1] / level[:, -1]), ys1[1][:, -1] / level[:, -1])
        ys2, code2 = solve(_contraction_field, y_start, args, since)
        log_after = jnp.log(jnp.exp(ys2[0]) + ys2[1])  # log(C(max(t, tmax)) / C(tmax)); 0 for t <= tmax
        # log C(t) = log C(min(t, tmax)) + log[C(max(t, tmax)) / C(tmax)]: one of the two terms is 0 at every
        # t, so no branch is taken and d/dtmax at t = tmax averages both sides, as in the closed form.
        log_c = jnp.log(args["cmax"])[:, None] + log_before + log_after
        return log_c, jnp.where(code1 != 0, code1, code2)

    def _cohorts_log_concentration(self, individual: dict, ts, solve, doses, switches):
        """log C with co-medication switches and one cohort per infusion (module docstring)."""
        args = self.structural(individual)
        n_patients, n_obs = ts.shape
        if doses is None:
            dose_time = log_weight = jnp.zeros((n_patients, 1), ts.dtype)
        else:
            dose_time, log_weight = doses
        n_doses = dose_time.shape[1]

        def members(x):  # (patients, ...) -> (patients x doses, ...), patient-major
            return jnp.repeat(x, n_doses, axis=0)

        args = {k: members(v) for k, v in args.items()}
        tau = jnp.maximum(ts[:, None, :] - dose_time[:, :, None], 0.0).reshape(-1, n_obs)  # each cohort's clock
        shift = dose_time.reshape(-1, 1)
        cohort_switches = {}
        for process, (starts, log_factors) in switches.items():
            starts, cumulative = sorted_switches(starts, log_factors)
            cohort_switches[process] = (members(starts) - shift, members(cumulative))
        tmax = args["tmax"][:, None]
        before = jnp.minimum(tau, tmax)
        since = jnp.maximum(tau - tmax, 0.0)
        none = jnp.zeros((tau.shape[0], 0), ts.dtype)
        if self.expansion == "analytic":
            if "expansion" in cohort_switches:
                starts, cumulative = cohort_switches["expansion"]
                integral = rate_integral(before, starts[:, None, :], cumulative[:, None, :])  # at every time
                log_before = args["rho"][:, None] * (integral - tmax)
            else:
                log_before = args["rho"][:, None] * (before - tmax)
            y_start = (jnp.zeros_like(args["tmax"]), jnp.zeros_like(args["tmax"]))
            code1 = jnp.zeros(tau.shape[:1], jnp.int32)
        else:
            starts, cumulative = cohort_switches.get("expansion", (none, none))
            segment_args = [args] + [{**args, "rho": args["rho"] * jnp.exp(cumulative[:, j])}
                                     for j in range(starts.shape[1])]
            y0 = (jnp.ones_like(args["tmax"]), jnp.zeros_like(args["tmax"]))
            ys1, code1 = solve_in_segments(solve, _expansion_field, y0, segment_args, starts,
                                           jnp.concatenate([before, tmax], axis=1))
            level = ys1[0] + ys1[1]
            log_before = jnp.log(level[:, :-1]) - (args["rho"] * args["tmax"])[:, None]
            y_start = (jnp.log(ys1[0][:, -1] / level[:, -1]), ys1[1][:, -1] / level[:, -1])
        starts, cumulative = cohort_switches.get("contraction", (none, none))
        segment_args = [args] + [{**args, "alpha": args["alpha"] * jnp.exp(cumulative[:, j])}
                                 for j in range(starts.shape[1])]
        ys2, code2 = solve_in_segments(solve, _contraction_field, y_start, segment_args, starts - tmax, since)
        log_c = jnp.log(args["cmax"])[:, None] + log_before + jnp.log(jnp.exp(ys2[0]) + ys2[1])
        log_c = log_c.reshape(n_patients, n_doses, n_obs)
        active = (ts[:, None, :] >= dose_time[:, :, None]) & jnp.isfinite(log_weight)[:, :, None]
        log_total = jax.nn.logsumexp(jnp.where(active, log_weight[:, :, None] + log_c, -jnp.inf), axis=1)
        code = jnp.where(code1 != 0, code1, code2).reshape(n_patients, n_doses)
        return log_total, jnp.max(jnp.abs(code), axis=1)

    def derived(self, individual: dict[str, Float[Array, "..."]]) -> dict[str, Float[Array, "..."]]:
        """alpha (1/day) and the fold expansion foldx = exp(rho tmax), as for ``Multiphasic``."""
        return {
            "alpha": jnp.asarray(individual["beta"] + individual["delta"]),
            "foldx": jnp.exp(jnp.asarray(individual["rho"]) * jnp.asarray(individual["tmax"])),
        }
