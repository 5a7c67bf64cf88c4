"""Dose scenarios from a fitted model: virtual patients per posterior draw, profiles, observations, exposures.

For every posterior draw s used (population values mu_s, omega_s, beta_s, sigma_s; L_s the Cholesky factor of
the random effects' correlation matrix, the identity without correlated IIV) and every virtual
patient i, with the same patients at every dose level l (common random numbers, so doses are compared
on identical populations):

    covariates x_si  ~ the scenario's distributions (or rows of its covariate table), dose = dose_l
    eta_si           ~ N(0, I)
    phi_sli          = mu_s + covariate effects(beta_s, z(x_si, dose_l)) + omega_s * (L_s eta_si)
    C_sli(t)         = model curve of phi_sli (``spec.kinetic_model.log_concentration``)
    y_sli(t)         = an observation of C_sli(t): residual error of the spec's error model, censored at
                       the LLOQ (BLQ below it)

Steps 3 to 5 are carkin's one generative model (`carkin.population.individual_parameters`,
`carkin.population.sample_observations`), as in every other simulator. The typical patient's phi_sl has
eta = 0 and covariates at their typical values. Exposure metrics (Cmax, Tmax, AUC0-W) of the true curves
come from `carkin.exposure.exposure_metrics` (closed form for the multiphasic model, the grid method for ODE
models). Everything is one jitted function of a draw, vmapped over a chunk of draws (and broadcast over
patients and doses); chunks keep memory bounded and drive the progress bar. Draw s uses the key
``jax.random.fold_in(key, s)``, so results do not depend on the chunk size.

The LLOQ comes from the scenario (``[sampling] lloq``), else from the fit's data (the median LLOQ of its
records, recorded in the fit's manifest as ``data.lloq``), else from the model's ``[simulation] lloq`` (fits
saved before the manifest recorded it); the result says which (``lloq_source``).
"""

from __future__ import annotations

import functools
import math
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._chunks import map_chunks
from .._hazards import PiecewiseExponential, cumulative_hazard
from .._toml import spec_error
from ..errors import ConvergenceWarning
from ..exposure import exposure_metrics
from ..population import (
    PopulationSpec,
    correlation_cholesky,
    correlation_sites,
    individual_means,
    individual_parameters,
    natural_parameters,
    population_sites,
    sample_observations,
)
from ._cohort import simulation_lloq
from ._scenario import DoseScenario, scenario_metrics
from ._scenario_result import ScenarioResult

__all__ = ["posterior_population_draws", "scenario_lloq", "simulate_scenario"]

_PFS_SEARCH_MONTHS = 600.0


def posterior_population_draws(fit, *, draws: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Population-level posterior draws of a fit, flattened over chains and evenly thinned.

    Parameters
    ----------
    fit : carkin.inference.Fit
    draws : int, default 0
        Number of draws wanted (evenly spaced over the flattened chain x draw axis); 0 or more than
        available: all.

    Returns
    -------
    indices : numpy array, shape (draws,)
    values : dict with ``mu``, ``omega`` (draws, params), ``beta`` (draws, effects), ``sigma``,
        ``sigma_add`` (draws,); ``beta`` is empty and ``sigma_add`` zero when the model lacks them. Also every
        other population site of the spec (`carkin.population.population_sites`: per analyte ``sigma_<analyte>``,
        ``sigma_add_<analyte>``, ``log_scale_<analyte>``, and ``gamma`` (draws, effects)), so that
        `carkin.population.population_extras` takes them; with correlated IIV also ``chol`` (draws, params,
        params), the Cholesky factor of the random effects' correlation matrix
        (`carkin.population.correlation_cholesky`).
    """
    post = fit.idata.posterior
    spec = fit.spec
    mu = np.asarray(post["mu"].values, dtype=float)
    n_total = mu.shape[0] * mu.shape[1]
    p = mu.shape[-1]

    def flat(name, shape_tail):
        if name in post:
            return np.asarray(post[name].values, dtype=float).reshape((n_total, *shape_tail))
        return np.zeros((n_total, *shape_tail))

    values = {
        "mu": mu.reshape(n_total, p),
        "omega": flat("omega", (p,)),
        "beta": flat("beta", (len(spec.effects),)) if spec.effects else np.zeros((n_total, 0)),
        "sigma": flat("sigma", ()),
        "sigma_add": flat("sigma_add", ()),
    }
    for site, _ in population_sites(spec):
        if site not in values and site in post:
            values[site] = flat(site, np.shape(post[site].values)[2:])
    if spec.iiv_blocks:
        factors = {site: np.asarray(post[site].values, dtype=float) for site in correlation_sites(spec)}
        values["chol"] = np.asarray(correlation_cholesky(spec, factors)).reshape(n_total, p, p)
    if draws and draws < n_total:
        idx = np.unique(np.round(np.linspace(0, n_total - 1, draws)).astype(int))
    else:
        idx = np.arange(n_total)
    return idx, {k: v[idx] for k, v in values.items()}


def scenario_lloq(fit, scenario: DoseScenario) -> tuple[float, str]:
    """The LLOQ (copies/ug) at which a scenario's simulated observations are censored, and where it comes from.

    In order: the scenario's ``[sampling] lloq``; the LLOQ of the fit's data (``data.lloq`` of its manifest,
    the median LLOQ of the records); the model's ``[simulation] lloq`` (for fits whose manifest predates it).
    """
    if scenario.lloq is not None:
        return float(scenario.lloq), f"scenario ({scenario.source}: sampling.lloq)"
    recorded = (fit.manifest.get("data") or {}).get("lloq")
    if recorded is not None:
        return float(recorded), "the fit's data (median LLOQ of its records, manifest data.lloq)"
    return simulation_lloq(fit.spec), f"the model's [simulation] lloq ({fit.spec.source}; the fit records no data LLOQ)"


def _standardise(effect, x):
    """z(x) of a covariate effect, in jnp (the formula of ``CovariateEffect.standardise``)."""
    if effect.transform == "log":
        return jnp.log(x / effect.reference)
    return (x - effect.reference) / effect.scale


def _check_covariates(spec: PopulationSpec, scenario: DoseScenario) -> tuple[str, ...]:
    """The covariate columns the scenario must supply; raises SpecError if one is missing."""
    needed = tuple(sorted({c.column for c in spec.covariates} - {scenario.dose_column}))
    available = (
        set(scenario.covariate_table or {}) if scenario.covariate_table is not None else set(scenario.covariates)
    )
    missing = [c for c in needed if c not in available]
    if missing:
        table = scenario.covariate_table is not None
        raise spec_error(
            scenario.source, "[covariates]", "table" if table else None,
            f"has no {', '.join(missing)}, but the model ({spec.source}) needs covariate(s) {', '.join(missing)}",
            f"give a table with the columns {', '.join(needed)} (it has {', '.join(sorted(available))})" if table
            else f"add [covariates.{missing[0]}] with median, log_sd, low, high (or value)",
        )
    return needed


class _ScenarioArrays(eqx.Module):
    """The numbers of a scenario as arrays (so that scenarios of the same shapes share one compilation)."""

    doses: Float[Array, " doses"]
    times: Float[Array, " times"]
    quantiles: Float[Array, " 3"]
    typical: Float[Array, " columns"]
    median: Float[Array, " columns"]
    log_sd: Float[Array, " columns"]
    low: Float[Array, " columns"]
    high: Float[Array, " columns"]
    table: Float[Array, "rows columns"]
    log_lloq: Float[Array, ""]

    @classmethod
    def build(cls, scenario: DoseScenario, columns: tuple[str, ...], lloq: float) -> _ScenarioArrays:
        typical = scenario.typical_covariates()
        dist = [scenario.covariates.get(c) for c in columns]
        if scenario.covariate_table is not None:
            table = np.stack([scenario.covariate_table[c] for c in columns], axis=1) if columns else np.zeros((1, 0))
        else:
            table = np.zeros((1, len(columns)))

        def col(attr):
            return jnp.asarray([getattr(d, attr) if d is not None else 0.0 for d in dist], dtype=float).reshape(-1)

        return cls(
            doses=jnp.asarray(scenario.doses, dtype=float),
            times=jnp.asarray(scenario.times, dtype=float),
            quantiles=jnp.asarray(scenario.quantiles, dtype=float),
            typical=jnp.asarray([typical[c] for c in columns], dtype=float).reshape(-1),
            median=col("median"),
            log_sd=col("log_sd"),
            low=col("low"),
            high=col("high"),
            table=jnp.asarray(table, dtype=float),
            log_lloq=jnp.log(jnp.asarray(lloq, dtype=float)),
        )


def _log_curve(model, individual: dict, t: Float[Array, " times"]) -> Float[Array, "... times"]:
    """log C at times ``t`` for parameters of any batch shape (an ODE model: one solve per curve)."""
    from ..models import log_concentration_grid

    return log_concentration_grid(model, {k: v[..., None] for k, v in individual.items()}, t)


@functools.lru_cache(maxsize=16)
def _draw_function(
    spec: PopulationSpec, dose_column: str, columns: tuple[str, ...], n: int, from_table: bool, residual: bool,
    auc_windows: tuple[float, ...],
):
    """The jitted per-draw simulator, vmapped over draws (cached on its static configuration)."""
    model = spec.kinetic_model
    metrics = scenario_metrics(auc_windows)

    def covariates(a: _ScenarioArrays, key):
        if from_table:
            rows = jax.random.randint(key, (n,), 0, a.table.shape[0])
            return {c: a.table[rows, j] for j, c in enumerate(columns)}
        keys = jax.random.split(key, max(len(columns), 1))
        return {
            c: jnp.clip(a.median[j] * jnp.exp(a.log_sd[j] * jax.random.normal(keys[j], (n,))), a.low[j], a.high[j])
            for j, c in enumerate(columns)
        }

    def design(a: _ScenarioArrays, values: dict, shape: tuple[int, ...]):
        """Standardised covariates, one column per coefficient (spec.effects order): (*shape, effects)."""
        cols = []
        for effect in spec.covariates:
            if effect.column == dose_column:
                z = _standardise(effect, a.doses).reshape((shape[0],) + (1,) * (len(shape) - 1))
            else:
                z = _standardise(effect, values[effect.column])
            cols += [jnp.broadcast_to(z, shape)] * len(effect.parameters)
        return jnp.stack(cols, axis=-1) if cols else jnp.zeros(shape + (0,))

    def one(a: _ScenarioArrays, key, mu, omega, beta, sigma, sigma_add, chol):
        n_doses = a.doses.shape[0]
        k_cov, k_eta, k_eps = jax.random.split(key, 3)
        z = design(a, covariates(a, k_cov), (n_doses, n))
        z_typ = design(a, {c: a.typical[j] for j, c in enumerate(columns)}, (n_doses,))
        eta = jax.random.normal(k_eta, (n, mu.shape[0]))  # the same patients at every dose
        eta = jnp.broadcast_to(eta[None, :, :], (n_doses, n, mu.shape[0])).reshape(n_doses * n, -1)
        phi = individual_parameters(spec, mu, omega, beta, z.reshape(n_doses * n, -1), eta, chol).reshape(
            n_doses, n, -1
        )
        phi_typ = individual_means(spec, mu, beta, z_typ)
        # the typical patient rides along as patient n + 1: one curve and one metrics evaluation for all
        ind = natural_parameters(spec, jnp.concatenate([phi, phi_typ[:, None, :]], axis=1))
        log_c = _log_curve(model, ind, a.times)
        log_typ = log_c[:, n, :]
        log_c = log_c[:, :n, :]
        obs = sample_observations(log_c, jax.random.normal(k_eps, log_c.shape), residual=spec.residual, sigma=sigma,
                                  sigma_add=sigma_add, log_lloq=a.log_lloq)
        values = exposure_metrics(model, ind, tuple(metrics.values()))
        return {
            "typical": jnp.exp(log_typ),
            "population": jnp.exp(jnp.quantile(obs.log_dv if residual else log_c, a.quantiles, axis=1)),
            "blq": jnp.mean(obs.blq, axis=1),
            "metrics": {name: values[m.name][:, :n] for name, m in metrics.items()},
            "typical_metrics": {name: values[m.name][:, n] for name, m in metrics.items()},
        }

    per_draws = jax.vmap(one, in_axes=(None, 0, 0, 0, 0, 0, 0, 0))

    @jax.jit
    def chunk(a: _ScenarioArrays, key, start, values: dict):
        """Draws at positions start, start + 1, ... (``values`` holds their population values)."""
        pos = start + jnp.arange(values["mu"].shape[0])
        keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(pos)
        return per_draws(a, keys, *(values.get(k) for k in ("mu", "omega", "beta", "sigma", "sigma_add", "chol")))

    return chunk


@jax.jit
def _population_pfs(breaks, cumulative, hazards, log_rel, landmarks):
    """Population survival at landmarks (..., landmarks) and its median (...), given log relative hazards
    (..., patients)."""
    rel = jnp.exp(log_rel)

    def survival(t):  # t: the batch shape of log_rel without its patient axis
        h = cumulative_hazard(breaks, cumulative, hazards, t)
        return jnp.mean(jnp.exp(-h[..., None] * rel), axis=-1)

    batch = log_rel.shape[:-1]
    at = jax.vmap(lambda m: survival(jnp.full(batch, m)), out_axes=-1)(landmarks)

    def bisect(_, bracket):
        a, b = bracket
        mid = (a + b) / 2.0
        above = survival(mid) > 0.5
        return jnp.where(above, mid, a), jnp.where(above, b, mid)

    a, b = jax.lax.fori_loop(0, 60, bisect, (jnp.zeros(batch), jnp.full(batch, _PFS_SEARCH_MONTHS)))
    reached = survival(jnp.full(batch, _PFS_SEARCH_MONTHS)) < 0.5
    return at, jnp.where(reached, (a + b) / 2.0, jnp.nan)


def _predicted_pfs(result_metrics: np.ndarray, hook, n_draws: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Population PFS at the landmarks (draws, doses, landmarks) and its median (draws, doses), months."""
    baseline = PiecewiseExponential(hook.breaks_months, hook.hazard_per_month)
    slope = np.asarray(hook.log_hr_per_doubling, dtype=float)
    if slope.ndim == 1 and slope.shape[0] != n_draws:
        raise spec_error(
            source,
            "[exposure_response]",
            "log_hr_per_doubling",
            f"has {slope.shape[0]} values but {n_draws} posterior draws are used",
            "give one value, or one per draw (set [population] draws to match)",
        )
    slope = np.broadcast_to(slope, (n_draws,))
    log_rel = slope[:, None, None] * np.log2(result_metrics / hook.reference)  # (draws, doses, patients)
    landmarks, median = _population_pfs(*(jnp.asarray(k) for k in baseline.knots), jnp.asarray(log_rel),
                                        jnp.asarray(hook.landmarks_months, dtype=float))
    return np.asarray(landmarks), np.asarray(median)


def simulate_scenario(
    fit,
    scenario: DoseScenario,
    *,
    key: PRNGKeyArray,
    n_patients: int | None = None,
    draws: int | None = None,
    chunk_size: int | None = None,
    progress: bool = False,
    seed: int | None = None,
) -> ScenarioResult:
    """Simulate a dose scenario from a fit's posterior: profiles, exposures, targets, predicted PFS.

    Main arguments
    --------------
    fit : carkin.inference.Fit
        The fitted population model (posterior draws of mu, omega, beta, sigma).
    scenario : DoseScenario
        From `load_scenario` (``scenarios/doses.toml``).
    key : PRNGKeyArray
        Draw s uses ``jax.random.fold_in(key, s)`` (s = position among the draws used).

    Other arguments
    ---------------
    n_patients, draws : int, optional
        Override the scenario's virtual patients per draw and posterior draws used.
    chunk_size : int, optional
        Draws per compiled call (default: sized for about 20 million intermediate values).
    progress : bool, default False
        Rich progress bar over chunks (stderr).
    seed : int, optional
        Recorded in the result.

    Returns
    -------
    ScenarioResult
        Profiles, exposures, targets, predicted PFS, and the fraction of simulated observations below the
        LLOQ per dose and time (``blq_fraction``; the LLOQ and its source in ``lloq``, ``lloq_source``, see
        `scenario_lloq`).

    Raises
    ------
    SpecError
        If the model needs a covariate the scenario does not supply, or the E-R hook's slopes do not
        match the draws.

    Warns
    -----
    ConvergenceWarning
        If the fit failed its convergence gates (also recorded in ``notes``).
    ValueError
        For a non-positive ``n_patients``, ``draws`` or ``chunk_size``.
    """
    for name, value in (("n_patients", n_patients), ("draws", draws), ("chunk_size", chunk_size)):
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            raise ValueError(f"{name} must be a positive integer, got {value!r} ({type(value).__name__})")
    scenario = scenario.replace(
        **({"n_patients": n_patients} if n_patients is not None else {}),
        **({"draws": draws} if draws is not None else {}),
    )
    spec = fit.spec
    columns = _check_covariates(spec, scenario)
    notes = []
    if scenario.dose_column not in {c.column for c in spec.covariates}:
        notes.append(
            f"the model ({spec.source}) has no covariate on {scenario.dose_column}: every dose level gives the same "
            "exposure distribution"
        )
    if scenario.covariate_table is None:
        unused = sorted(set(scenario.covariates) - set(columns))
        if unused:
            notes.append(f"scenario covariates not used by the model: {', '.join(unused)}")
    if not fit.manifest.get("diagnostics", {}).get("passed", False):
        notes.append("the fit FAILED its convergence gates: treat these predictions as provisional")
        warnings.warn("simulating from a fit that failed its convergence gates", ConvergenceWarning, stacklevel=2)

    indices, values = posterior_population_draws(fit, draws=scenario.draws)
    s_total = indices.size
    n = scenario.n_patients
    n_doses = len(scenario.doses)
    per_draw = n_doses * n * (len(scenario.times) + 900)
    # chunk sizes are powers of two (padded), so that runs with different numbers of draws share compilations
    size = chunk_size or min(max(1, int(2e7 // per_draw)), 1 << max(0, s_total - 1).bit_length())
    fn = _draw_function(spec, scenario.dose_column, columns, n, scenario.covariate_table is not None, scenario.residual,
                        tuple(scenario.auc_windows))
    lloq, lloq_source = scenario_lloq(fit, scenario)
    scenario_arrays = _ScenarioArrays.build(scenario, columns, lloq)

    def run(start: int):
        take = np.minimum(np.arange(start, start + size), s_total - 1)  # the last chunk repeats its last draw
        out = fn(scenario_arrays, key, start, {k: v[take] for k, v in values.items()})
        keep = min(size, s_total - start)
        return jax.tree_util.tree_map(lambda x: np.asarray(x)[:keep], out)

    out = map_chunks(run, s_total, size, label="simulating posterior draws", progress=progress)

    landmarks = median = None
    if scenario.exposure_response is not None:
        hook = scenario.exposure_response
        landmarks, median = _predicted_pfs(out["metrics"][hook.metric], hook, s_total, scenario.source)

    names = tuple(scenario_metrics(scenario.auc_windows))
    fit_info = {
        "method": fit.manifest.get("method"),
        "converged": bool(fit.manifest.get("diagnostics", {}).get("passed", False)),
        "model": spec.source,
        "simulated": bool(fit.manifest.get("data", {}).get("simulated", False)),
        "data_hash": fit.manifest.get("data", {}).get("hash"),
        "posterior_draws_available": int(math.prod(fit.idata.posterior["mu"].values.shape[:2])),
    }
    return ScenarioResult(
        scenario=scenario,
        doses=np.asarray(scenario.doses, dtype=float),
        times=np.asarray(scenario.times, dtype=float),
        draw_indices=indices,
        typical=out["typical"],
        population=out["population"],
        metrics={k: out["metrics"][k] for k in names},  # tree_map sorted the keys; restore the metric order
        typical_metrics={k: out["typical_metrics"][k] for k in names},
        blq_fraction=out["blq"],
        lloq=lloq,
        lloq_source=lloq_source,
        pfs_landmarks=landmarks,
        pfs_median=median,
        seed=seed,
        fit_info=fit_info,
        notes=tuple(notes),
    )
