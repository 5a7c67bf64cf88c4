"""Exposure metrics as posterior draws: one value per (chain, draw, patient) from a fit's individual parameters.

`exposure_metrics` is the array-level entry point (any kinetic model, any batch shape); `posterior_exposures`
applies it to a `carkin.inference.Fit` and returns an immutable `PosteriorExposure` with the summary table
(posterior mean, SD, 5/50/95% quantiles per patient and metric) and the plug-in values the classic
exposure-response analysis uses.

Which path computes the metrics is resolved in one table, `CLOSED_FORMS`: a kinetic model listed there
(the multiphasic model) gets exact formulas (`carkin.exposure._closed_form`); any other model (the ODE
models) gets the grid method of `carkin.exposure._numerical`. ``method="numerical"`` forces the grid
method (used by the tests to check one against the other).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jaxtyping import Array, Float

from ..models import Multiphasic
from ._closed_form import multiphasic_metric
from ._metrics import Metric, resolve_metrics
from ._numerical import TimeGrid, numerical_metrics

__all__ = ["PosteriorExposure", "exposure_metrics", "posterior_exposures", "patient_lloq", "CLOSED_FORMS"]

Method = Literal["auto", "closed-form", "numerical"]
METHODS: tuple[str, ...] = ("auto", "closed-form", "numerical")


def _multiphasic(model: Multiphasic, individual, metrics: Sequence[Metric], lloq):
    params = model.structural(individual)
    return {m.name: multiphasic_metric(m.kind, params, start=m.start, end=m.end, lloq=lloq) for m in metrics}


#: Kinetic model class -> closed-form metric function ``f(model, individual, metrics, lloq) -> dict``.
CLOSED_FORMS: dict[type, Callable] = {Multiphasic: _multiphasic}


@eqx.filter_jit
def _closed_form_jit(function, model, individual, metrics, lloq):
    return function(model, individual, metrics, lloq)


def exposure_metrics(
    model,
    individual: Mapping[str, Float[Array, "..."]],
    metrics: str | Metric | Sequence[str | Metric] | None = None,
    *,
    lloq: Float[Array, "..."] | float | None = None,
    method: Method = "auto",
    grid: TimeGrid | None = None,
    batch_size: int = 256,
) -> dict[str, Float[Array, "..."]]:
    """Exposure metrics of individual curves of a kinetic model.

    Main arguments
    --------------
    model : kinetic model
        E.g. ``carkin.models.Multiphasic()`` or ``spec.kinetic_model``.
    individual : dict of arrays
        Individual parameters on the natural scale (the model's ``individual_parameters``), all of one
        shape, e.g. (chains, draws, patients) from ``Fit.individual_parameters()``.
    metrics : names or Metric objects, optional
        See `carkin.exposure.METRICS`; default every preset.
    lloq : float or array broadcastable to the parameters' shape, optional
        Lower limit of quantification, copies/ug; required for ``persistence`` metrics.

    Other arguments
    ---------------
    method : {"auto", "closed-form", "numerical"}
        "auto": exact formulas when the model has them (`CLOSED_FORMS`), else the grid method.
    grid : TimeGrid, optional
        Grid of the numerical method.
    batch_size : int
        Curves per chunk of the numerical method.

    Returns
    -------
    dict metric name -> array of the parameters' shape (units: `Metric.unit`).

    Raises
    ------
    ValueError
        Unknown method, no closed form for ``method="closed-form"``, a persistence metric without
        ``lloq``, or parameters of different shapes.
    """
    if method not in METHODS:
        raise ValueError(
            f"method={method!r} ({type(method).__name__}) is not valid; choose one of {', '.join(METHODS)}"
        )
    metrics = resolve_metrics(metrics)
    values = {k: jnp.asarray(v) for k, v in individual.items()}
    missing = [name for name in getattr(model, "individual_parameters", ()) if name not in values]
    if missing:
        raise ValueError(f"individual parameters {missing} are missing (got {sorted(values)})")
    shapes = {v.shape for v in values.values()}
    if len(shapes) != 1:
        raise ValueError(f"individual parameters must share one shape; got {sorted(shapes)}")
    (shape,) = shapes
    if any(m.needs_lloq for m in metrics):
        if lloq is None:
            names = [m.name for m in metrics if m.needs_lloq]
            raise ValueError(f"metrics {names} need the LLOQ: pass lloq= (copies/ug) or a dataset with an LLOQ column")
        lloq_array = jnp.broadcast_to(jnp.asarray(lloq, dtype=float), shape)
    else:
        lloq_array = jnp.ones(shape)
    closed = CLOSED_FORMS.get(type(model))
    if method == "closed-form" and closed is None:
        raise ValueError(
            f"model {type(model).__name__} has no closed form; known: {[c.__name__ for c in CLOSED_FORMS]}; "
            "use method='numerical' or 'auto'"
        )
    if closed is not None and method != "numerical":
        return dict(_closed_form_jit(closed, model, values, tuple(metrics), lloq_array))
    flat = {k: v.reshape(-1) for k, v in values.items()}
    out = numerical_metrics(model, flat, metrics, lloq=lloq_array.reshape(-1), grid=grid, batch_size=batch_size)
    return {k: v.reshape(shape) for k, v in out.items()}


def resolved_method(model, method: Method) -> str:
    """The path ``exposure_metrics`` takes: "closed-form" or "numerical"."""
    if method == "numerical" or type(model) not in CLOSED_FORMS:
        return "numerical"
    return "closed-form"


def patient_lloq(dataset) -> np.ndarray:
    """Per-patient LLOQ (copies/ug): the median of the LLOQ values given on the patient's records (NaN if none)."""
    lloq = np.where(np.asarray(dataset.obs_mask), np.asarray(dataset.lloq, dtype=float), np.nan)
    out = np.full(lloq.shape[0], np.nan)
    has = np.isfinite(lloq).any(axis=1)
    out[has] = np.nanmedian(lloq[has], axis=1)
    return out


def model_inputs_of(spec, dataset) -> dict[str, np.ndarray]:
    """Per-patient inputs of the kinetic model (e.g. baseline tumour burden of a mechanistic model) from the data.

    Empty for models without inputs. Raises ValueError if the model has inputs and no dataset is given.
    """
    if not getattr(spec, "inputs", ()):
        return {}
    if dataset is None:
        names = [inp.name for inp in spec.inputs]
        raise ValueError(f"the {spec.model} model takes per-patient inputs {names} from the data: pass dataset=")
    from ..population import model_inputs

    return {k: np.asarray(v, dtype=float) for k, v in model_inputs(dataset, spec).items()}


def _read_only(x) -> np.ndarray:
    array = np.array(x, dtype=float)
    array.flags.writeable = False
    return array


@dataclasses.dataclass(frozen=True, eq=False)
class PosteriorExposure:
    """Per-patient exposure metrics as posterior draws.

    Attributes
    ----------
    patient_ids : tuple of str
        Patients in the fit's order.
    metrics : tuple of Metric
    draws : dict metric name -> read-only array (chains, draws, patients), in the metric's unit
    dose : array (patients,) or None
        Infused dose, 10^6 CAR+ T cells (from the dataset).
    lloq : array (patients,) or None
        LLOQ used for persistence metrics, copies/ug.
    method : {"closed-form", "numerical"}
        How the metrics were computed.
    fit_method : str
        Inference method of the fit ("nuts", "map", ...); a single-draw fit (map) has no uncertainty.
    model : str
        Kinetic model name.
    simulated : bool
        True when the fit was made on simulated data (``manifest["data"]["simulated"]``, or the dataset's
        provenance).
    """

    patient_ids: tuple[str, ...]
    metrics: tuple[Metric, ...]
    draws: Mapping[str, np.ndarray]
    dose: np.ndarray | None
    lloq: np.ndarray | None
    method: str
    fit_method: str
    model: str
    simulated: bool

    @classmethod
    def from_values(
        cls,
        patient_ids: Sequence[str],
        values: Mapping[str, np.ndarray],
        *,
        dose: np.ndarray | None = None,
        simulated: bool = False,
        source: str = "user",
    ) -> "PosteriorExposure":
        """Exposures given directly (e.g. true values of a simulation, or another tool's draws).

        Parameters
        ----------
        patient_ids : sequence of str
        values : dict metric name -> array (patients,) (one value each) or (samples, patients) (draws)
        dose : array (patients,), optional
        simulated : bool
        source : str
            Recorded as ``fit_method``.
        """
        ids = tuple(str(p) for p in patient_ids)
        metrics = resolve_metrics(list(values))
        given = dict(zip([m.name for m in metrics], values.values(), strict=True))
        draws = {}
        for metric in metrics:
            x = np.asarray(given[metric.name], dtype=float)
            x = x[None, :] if x.ndim == 1 else x
            if x.ndim != 2 or x.shape[1] != len(ids):
                raise ValueError(f"values[{metric.name!r}] must have shape (patients,) or (samples, patients) with "
                                 f"{len(ids)} patients, got {np.shape(given[metric.name])}")
            draws[metric.name] = _read_only(x[None])
        return cls(patient_ids=ids, metrics=metrics, draws=draws,
                   dose=None if dose is None else _read_only(dose), lloq=None, method="given", fit_method=source,
                   model="unknown", simulated=simulated)

    def metric(self, name: str | Metric) -> Metric:
        """The `Metric` of a computed metric by name."""
        key = name.name if isinstance(name, Metric) else str(name).strip().lower()
        for metric in self.metrics:
            if metric.name == key:
                return metric
        raise KeyError(f"metric {name!r} was not computed; computed: {[m.name for m in self.metrics]}")

    @property
    def n_samples(self) -> int:
        """Posterior draws per patient (chains x draws)."""
        first = next(iter(self.draws.values()))
        return first.shape[0] * first.shape[1]

    def values(self, name: str | Metric) -> np.ndarray:
        """Draws of one metric pooled over chains: array (samples, patients)."""
        x = self.draws[self.metric(name).name]
        return x.reshape(-1, x.shape[-1])

    def plug_in(self, name: str | Metric) -> np.ndarray:
        """Plug-in value per patient: the posterior median (invariant to log transforms), array (patients,)."""
        return np.median(self.values(name), axis=0)

    def summary(self) -> pd.DataFrame:
        """Long table: one row per patient and metric with mean, sd, q05, q50 (median), q95.

        Columns ``ID, metric, label, unit, mean, sd, q05, q50, q95``; the 90% interval is [q05, q95].
        """
        frames = []
        for metric in self.metrics:
            x = self.values(metric)
            frames.append(
                pd.DataFrame(
                    {
                        "ID": self.patient_ids,
                        "metric": metric.name,
                        "label": metric.label,
                        "unit": metric.unit,
                        "mean": x.mean(axis=0),
                        "sd": x.std(axis=0, ddof=1) if x.shape[0] > 1 else np.zeros(x.shape[1]),
                        "q05": np.quantile(x, 0.05, axis=0),
                        "q50": np.median(x, axis=0),
                        "q95": np.quantile(x, 0.95, axis=0),
                    }
                )
            )
        return pd.concat(frames, ignore_index=True)

    def subset(self, patient_ids: Sequence[str]) -> "PosteriorExposure":
        """The same draws for the given patients only (in that order)."""
        position = {pid: k for k, pid in enumerate(self.patient_ids)}
        unknown = [p for p in patient_ids if p not in position]
        if unknown:
            raise KeyError(f"patients {unknown[:5]} are not in the exposure draws ({len(unknown)} in all)")
        index = np.asarray([position[p] for p in patient_ids], dtype=int)
        return dataclasses.replace(
            self,
            patient_ids=tuple(patient_ids),
            draws={k: _read_only(v[..., index]) for k, v in self.draws.items()},
            dose=None if self.dose is None else _read_only(self.dose[index]),
            lloq=None if self.lloq is None else _read_only(self.lloq[index]),
        )


def posterior_exposures(
    fit,
    dataset=None,
    *,
    metrics: str | Metric | Sequence[str | Metric] | None = None,
    lloq: float | np.ndarray | None = None,
    method: Method = "auto",
    max_draws: int | None = None,
    grid: TimeGrid | None = None,
) -> PosteriorExposure:
    """Exposure metrics of every patient of a fit, as posterior draws.

    Main arguments
    --------------
    fit : carkin.inference.Fit
    dataset : carkin.data.Dataset, optional
        The data of the fit (``carkin.exposure.load_fit_dataset(fit_dir)`` reads the fit's own copy). It
        gives each patient's LLOQ (persistence metrics) and dose (the quartile-by-dose table).
    metrics : names or Metric objects, optional
        Default every preset of `carkin.exposure.METRICS`.

    Other arguments
    ---------------
    lloq : float or array (patients,), optional
        Overrides the dataset's LLOQ (copies/ug).
    method : {"auto", "closed-form", "numerical"}
    max_draws : int, optional
        Keep at most this many draws per chain, evenly spaced (thinning; deterministic). Useful for the
        numerical path of an ODE model.
    grid : TimeGrid, optional

    Returns
    -------
    PosteriorExposure

    Raises
    ------
    ValueError
        The dataset's patients differ from the fit's, or a persistence metric has no LLOQ for a patient.
    """
    metrics = resolve_metrics(metrics)
    individual = fit.individual_parameters()
    if max_draws is not None:
        if not (isinstance(max_draws, int) and max_draws >= 1):
            raise ValueError(f"max_draws must be a positive integer, got {max_draws!r}")
        n = next(iter(individual.values())).shape[1]
        keep = np.unique(np.linspace(0, n - 1, min(max_draws, n)).round().astype(int))
        individual = {k: v[:, keep] for k, v in individual.items()}
    ids = tuple(str(p) for p in fit.patient_ids)
    dose = None
    data_lloq = None
    if dataset is not None:
        if tuple(dataset.patient_ids) != ids:
            raise ValueError(
                f"the dataset's patients ({len(dataset.patient_ids)}, first {list(dataset.patient_ids[:3])}) are not "
                f"the fit's ({len(ids)}, first {list(ids[:3])}); pass the data the fit was made on "
                "(carkin.exposure.load_fit_dataset(fit_dir))"
            )
        dose = np.asarray(dataset.dose, dtype=float)
        data_lloq = patient_lloq(dataset)
    lloq_values = None
    if lloq is not None:
        lloq_values = np.broadcast_to(np.asarray(lloq, dtype=float), (len(ids),)).copy()
    elif data_lloq is not None:
        lloq_values = data_lloq
    needs = [m.name for m in metrics if m.needs_lloq]
    if needs:
        if lloq_values is None:
            raise ValueError(f"metrics {needs} need the LLOQ: pass dataset= (with an LLOQ column) or lloq=")
        bad = [ids[k] for k in np.flatnonzero(~(np.isfinite(lloq_values) & (lloq_values > 0)))]
        if bad:
            raise ValueError(
                f"metrics {needs} need a positive LLOQ for every patient; {len(bad)} patient(s) have none "
                f"(first {bad[:5]}); pass lloq= (copies/ug)"
            )
    model = fit.spec.kinetic_model
    inputs = model_inputs_of(fit.spec, dataset)
    if inputs:
        shape = next(iter(individual.values())).shape
        individual = dict(individual) | {k: np.broadcast_to(v, shape) for k, v in inputs.items()}
    values = exposure_metrics(
        model,
        individual,
        metrics,
        lloq=None if lloq_values is None else jnp.asarray(lloq_values)[None, None, :],
        method=method,
        grid=grid,
    )
    draws = {}
    for metric in metrics:
        x = np.asarray(values[metric.name], dtype=float)
        bad = ~np.isfinite(x)
        if bad.any():
            patients = sorted({ids[k] for k in np.nonzero(bad)[2]})
            raise ValueError(
                f"metric {metric.name!r} is not finite for {int(bad.sum())} draw(s) of patients {patients[:5]}"
                + (" (an ODE solve failed?)" if resolved_method(model, method) == "numerical" else "")
            )
        draws[metric.name] = _read_only(x)
    manifest = getattr(fit, "manifest", {}) or {}
    return PosteriorExposure(
        patient_ids=ids,
        metrics=metrics,
        draws=draws,
        dose=None if dose is None else _read_only(dose),
        lloq=None if lloq_values is None else _read_only(lloq_values),
        method=resolved_method(model, method),
        fit_method=str(manifest.get("method", "unknown")),
        model=fit.spec.model,
        simulated=bool((manifest.get("data") or {}).get("simulated", False))
        or bool(getattr(dataset, "simulated", False)),
    )
