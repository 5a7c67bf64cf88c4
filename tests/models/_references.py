"""Independent diffrax solutions of the CAR-T systems with co-medication switches and re-infusions.

Written from the equations in the model docstrings, on the linear scale and with time-dependent vector fields
(rates read the clock), so they share no code with the models' closed forms, log-scale states or segment
solves. A switch is made exact by ``PIDController(jump_ts=...)`` (diffrax steps to each switch time and
restarts just after it); a re-infusion's state jump by solving in two pieces.
"""

import diffrax
import jax.numpy as jnp
import numpy as np

_SOLVER = diffrax.Dopri8()


def _step(t, starts, log_factors):
    """exp(sum of the log factors whose start is at or before t): the multiplier in force at t."""
    return jnp.exp(jnp.sum(jnp.where(t >= starts, log_factors, 0.0)))


def _jumps(*groups, pad):
    """Sorted finite jump times of every group, padded (a time after the solve's end) to one length."""
    times = np.concatenate([np.ravel(g) for g in groups])
    times = np.sort(np.where(np.isfinite(times), times, pad))
    return jnp.asarray(times)


def _em_field(t, y, a):
    """One (E, M) pair per cohort (axis 0), frozen before its infusion time."""
    e, m = y
    tau = t - a["td"]
    growing = (tau >= 0) & (tau < a["tmax"])
    declining = tau >= a["tmax"]
    de = (jnp.where(growing, a["rho"] * _step(t, a["es"], a["eg"]) * e, 0.0)
          - jnp.where(declining, a["alpha"] * _step(t, a["cs"], a["cg"]) * e, 0.0))
    dm = jnp.where(declining, a["k"] * e - a["beta"] * m, 0.0)
    return de, dm


def _tumour_field(t, y, a):
    """(E, M, X, T) of the CAR-T / tumour system, kexp and alpha switched."""
    e, m, x, tum = y
    s = tum / (tum + a["ec50"] * (e + m + x))
    de = (a["kexp"] * _step(t, a["es"], a["eg"]) - a["kx"]) * s * e - a["alpha"] * _step(t, a["cs"], a["cg"]) * e
    dm = a["km"] * e - a["beta"] * m
    dx = a["kx"] * s * e - a["dx"] * x
    dtum = a["kg"] * tum - a["kkill"] * e * tum / (e + a["kc50"] * tum)
    return de, dm, dx, dtum


def multiphasic_cohorts(p, ts, *, dose_time=(0.0,), dose_weight=(1.0,), expansion=None, contraction=None):
    """log C(ts) of the Stein E/M system with one (E, M) pair per infusion, rates switched by co-medication.

    Cohort d starts at ``dose_time[d]`` with E = ``dose_weight[d]`` cmax exp(-rho tmax) (frozen and not counted
    before it), expands at rho x (expansion multiplier in force) for tmax days, then E decays at alpha x
    (contraction multiplier) and feeds M at k = fb (alpha - beta), M decays at beta. ``expansion`` / ``contraction``:
    (starts (C,), log factors (C,)) on the absolute clock (days after the first infusion), or None.

    Parameters
    ----------
    p : dict with cmax, tmax, rho, beta, delta, fb (floats).
    ts : (obs,) days, non-decreasing.

    Returns
    -------
    np.ndarray (obs,), log C.
    """
    none = (np.zeros(1) + np.inf, np.zeros(1))
    es, eg = (np.asarray(x, float) for x in (expansion or none))
    cs, cg = (np.asarray(x, float) for x in (contraction or none))
    td, w = np.asarray(dose_time, float), np.asarray(dose_weight, float)
    alpha, beta, tmax, rho = p["beta"] + p["delta"], p["beta"], p["tmax"], p["rho"]
    args = dict(td=td, es=es, eg=eg, cs=cs, cg=cg, rho=rho, tmax=tmax, alpha=alpha, beta=beta,
                k=p["fb"] * (alpha - beta))
    args = {k: jnp.asarray(v, dtype=float) for k, v in args.items()}
    ts = np.asarray(ts, float)
    jump_ts = _jumps(es, cs, td, td + tmax, pad=ts[-1] + 1e3)
    y0 = (jnp.asarray(w * np.exp(-rho * tmax)), jnp.zeros_like(jnp.asarray(w)))  # relative to cmax
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(_em_field), _SOLVER, jnp.asarray(0.0), jnp.asarray(ts[-1]), jnp.asarray(0.01), y0, args=args,
        saveat=diffrax.SaveAt(ts=jnp.asarray(ts)),
        stepsize_controller=diffrax.PIDController(rtol=1e-12, atol=1e-18, jump_ts=jump_ts), max_steps=100_000,
    )
    e, m = (np.asarray(v) for v in sol.ys)
    started = ts[:, None] >= td[None, :]  # a frozen cohort is not in the blood before its infusion
    return np.log(p["cmax"]) + np.log(np.sum(np.where(started, e + m, 0.0), axis=1))


def cart_tumour(p, constants, ts, *, dose_time=None, dose_weight=None, expansion=None, contraction=None):
    """(log C, log T) at ``ts`` of the CAR-T / tumour system of ``CarTumor``'s docstring on the linear scale.

    A second infusion (``dose_time``, ``dose_weight`` relative to the first: E += e0 x weight) is a state jump
    between two solves; switches multiply kexp (expansion) and alpha (contraction) from their starts on.

    Parameters
    ----------
    p : dict with e0, kexp, ec50, beta, delta, fb, tumor0 (floats, tumor0 > 0).
    constants : dict with kg, kkill, kc50, kx, dx.
    ts : (obs,) days, non-decreasing.

    Returns
    -------
    (log C, log T), np.ndarray (obs,) each.
    """
    none = (np.zeros(1) + np.inf, np.zeros(1))
    es, eg = (np.asarray(x, float) for x in (expansion or none))
    cs, cg = (np.asarray(x, float) for x in (contraction or none))
    args = dict(es=es, eg=eg, cs=cs, cg=cg, alpha=p["beta"] + p["delta"], beta=p["beta"], km=p["fb"] * p["delta"],
                kexp=p["kexp"], ec50=p["ec50"], **constants)
    args = {k: jnp.asarray(v, dtype=float) for k, v in args.items()}
    ts = np.asarray(ts, float)

    def solve(t0, t1, y0, save):
        return diffrax.diffeqsolve(
            diffrax.ODETerm(_tumour_field), _SOLVER, jnp.asarray(float(t0)), jnp.asarray(float(t1)), jnp.asarray(0.01),
            y0, args=args, saveat=diffrax.SaveAt(ts=jnp.asarray(save)),
            stepsize_controller=diffrax.PIDController(rtol=1e-12, atol=1e-20, jump_ts=_jumps(es, cs, pad=t1 + 1e3)),
            max_steps=100_000,
        ).ys

    y0 = tuple(jnp.asarray(v, dtype=float) for v in (p["e0"], 0.0, 0.0, p["tumor0"]))
    if dose_time is None:
        ys = solve(0.0, ts[-1], y0, ts)
    else:
        first = solve(0.0, dose_time, y0, np.append(np.minimum(ts, dose_time), dose_time))
        start = tuple(v[-1] for v in first)
        start = (start[0] + p["e0"] * dose_weight,) + start[1:]
        second = solve(dose_time, max(ts[-1], dose_time), start, np.maximum(ts, dose_time))
        after = ts >= dose_time
        ys = tuple(np.where(after, b, a[:-1]) for a, b in zip(first, second, strict=True))
    e, m, x, tum = (np.asarray(v) for v in ys)
    return np.log(e + m + x), np.log(tum)

