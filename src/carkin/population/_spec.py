"""Declarative population-model specification (TOML) -> a validated, immutable ``PopulationSpec``.

A spec names the kinetic model, the individual parameters with their transform, priors and IIV prior,
covariate effects, the IIV parameterisation, the residual error model and the BLQ method. Every option is
resolved here, once, with errors that name the file and the key (house rule 10).
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from pathlib import Path
from typing import Literal

import equinox as eqx
import numpy as np

from ..errors import SpecError
from ..models import MODELS, ODEOptions, get_model, is_ode_model

__all__ = [
    "ParameterSpec", "CovariateEffect", "InputSpec", "PopulationSpec", "load_spec", "spec_from_dict", "TRANSFORMS",
]

Transform = Literal["log", "logit"]
TRANSFORMS: tuple[str, ...] = ("log", "logit")
IIV_PARAMETERIZATIONS: tuple[str, ...] = ("centred", "noncentred")
RESIDUAL_MODELS: tuple[str, ...] = ("additive_log", "combined")
BLQ_METHODS: tuple[str, ...] = ("m3", "drop")
COVARIATE_TRANSFORMS: tuple[str, ...] = ("log", "linear")


class ParameterSpec(eqx.Module):
    """One individual parameter: transform, prior of its typical value, prior of its IIV SD."""

    name: str = eqx.field(static=True)
    transform: str = eqx.field(static=True)
    typical: float = eqx.field(static=True)
    prior_sd: float = eqx.field(static=True)
    omega_scale: float = eqx.field(static=True)
    unit: str = eqx.field(static=True, default="")

    @property
    def prior_loc(self) -> float:
        """Prior mean of the typical value on the transformed scale."""
        return to_transformed(self.transform, self.typical)


class CovariateEffect(eqx.Module):
    """A covariate acting on one or more parameters: ``phi_k += beta * z(x)``."""

    name: str = eqx.field(static=True)
    column: str = eqx.field(static=True)
    transform: str = eqx.field(static=True)
    reference: float = eqx.field(static=True)
    scale: float = eqx.field(static=True)
    parameters: tuple[str, ...] = eqx.field(static=True)
    prior_sd: float = eqx.field(static=True)

    def standardise(self, x: np.ndarray) -> np.ndarray:
        """z(x): log(x / reference) or (x - reference) / scale."""
        x = np.asarray(x, dtype=float)
        if self.transform == "log":
            return np.log(x / self.reference)
        return (x - self.reference) / self.scale


class InputSpec(eqx.Module):
    """A per-patient model input taken from a data column, not estimated (e.g. baseline tumour burden).

    The model receives ``scale * x`` for the column's value ``x`` (``scale`` converts units).
    """

    name: str = eqx.field(static=True)
    column: str = eqx.field(static=True)
    scale: float = eqx.field(static=True, default=1.0)
    unit: str = eqx.field(static=True, default="")


class PopulationSpec(eqx.Module):
    """A validated population-model specification (immutable; every field is static).

    ODE models also carry ``ode`` (solver options, the ``[ode]`` table), ``constants`` (overrides of the
    model's fixed constants, ``[constants]``) and ``inputs`` (per-patient inputs from data columns,
    ``[inputs.<name>]``); for the closed form these are None / empty.
    """

    model: str = eqx.field(static=True)
    parameters: tuple[ParameterSpec, ...] = eqx.field(static=True)
    covariates: tuple[CovariateEffect, ...] = eqx.field(static=True)
    iiv: str = eqx.field(static=True, default="centred")  # "centred", "noncentred" or "mixed"
    noncentred: tuple[str, ...] = eqx.field(static=True, default=())  # parameters sampled non-centred
    residual: str = eqx.field(static=True, default="additive_log")
    sigma_scale: float = eqx.field(static=True, default=1.0)
    sigma_add_scale: float = eqx.field(static=True, default=10.0)
    blq: str = eqx.field(static=True, default="m3")
    source: str = eqx.field(static=True, default="<dict>")
    raw: str = eqx.field(static=True, default="{}")  # the spec as JSON, for manifests
    ode: ODEOptions | None = eqx.field(static=True, default=None)
    constants: tuple[tuple[str, float], ...] = eqx.field(static=True, default=())
    inputs: tuple[InputSpec, ...] = eqx.field(static=True, default=())

    @property
    def simulation(self) -> dict:
        """The spec's optional [simulation] table (population truth for simulate-cohort), as a dict."""
        return json.loads(self.raw).get("simulation", {})

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    @property
    def individual_site(self) -> str:
        """The sampled site of the individual parameters: ``phi`` (centred), ``eta`` (non-centred) or
        ``phi_raw`` (mixed: phi's column for a centred parameter, eta's for a non-centred one)."""
        return {"centred": "phi", "noncentred": "eta", "mixed": "phi_raw"}[self.iiv]

    @property
    def effects(self) -> tuple[tuple[str, str], ...]:
        """(covariate name, parameter name) for every coefficient, in the order of the ``beta`` site."""
        return tuple((c.name, p) for c in self.covariates for p in c.parameters)

    @property
    def effect_names(self) -> tuple[str, ...]:
        return tuple(f"beta_{c}_{p}" for c, p in self.effects)

    @property
    def kinetic_model(self):
        return get_model(self.model, ode=self.ode, constants=dict(self.constants))

    @property
    def data_columns(self) -> tuple[str, ...]:
        """Every data column the spec reads: covariate columns and input columns (sorted, upper case)."""
        return tuple(sorted({c.column for c in self.covariates} | {i.column for i in self.inputs}))

    def replace(self, **changes) -> "PopulationSpec":
        """A copy with some fields changed (e.g. ``spec.replace(iiv="noncentred")``), re-validated."""
        data = json.loads(self.raw)
        for key, value in changes.items():
            if key == "iiv" and isinstance(value, dict):  # the whole [iiv] table
                data["iiv"] = value
            elif key == "iiv":  # one scheme for every parameter
                data["iiv"] = {"parameterization": value}
            elif key == "residual":
                data.setdefault("residual", {})["model"] = value
            elif key == "blq":
                data.setdefault("blq", {})["method"] = value
            elif key == "covariates":
                data["covariates"] = value
            elif key in ("ode", "constants"):  # dicts merged into the [ode] / [constants] tables
                data[key] = {**(data.get(key) or {}), **value}
            else:
                raise TypeError(
                    f"PopulationSpec.replace got unknown field {key!r}; valid: iiv, residual, blq, covariates, "
                    "ode, constants"
                )
        return spec_from_dict(data, source=self.source)

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.raw.encode()).hexdigest()


def to_transformed(transform: str, value):
    """Natural -> transformed scale (log or logit), for floats and numpy arrays."""
    v = np.asarray(value, dtype=float)
    out = np.log(v) if transform == "log" else np.log(v) - np.log1p(-v)
    return float(out) if out.ndim == 0 else out


def _require(table: dict, key: str, where: str, kind, source: str):
    if key not in table:
        raise SpecError(f"{source}: missing key {where}.{key}")
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind):
        raise SpecError(
            f"{source}: {where}.{key} = {value!r} has type {type(value).__name__}, expected {kind.__name__}"
        )
    return value


def _choice(value, valid: tuple[str, ...], key: str, source: str) -> str:
    if value not in valid:
        raise SpecError(f"{source}: {key} = {value!r} is not valid; choose one of {', '.join(valid)}")
    return value


def _positive(value: float, key: str, source: str) -> float:
    if not (math.isfinite(value) and value > 0):
        raise SpecError(f"{source}: {key} = {value!r} must be a positive finite number")
    return value


def spec_from_dict(data: dict, *, source: str = "<dict>") -> PopulationSpec:
    """Validate a parsed TOML spec (a dict) into a ``PopulationSpec``.

    Raises
    ------
    SpecError
        Naming ``source`` and the offending key, for a missing key, a wrong type, an unknown choice, a
        non-positive scale, or parameters that do not match the kinetic model.
    """
    model_name = data.get("model")
    if model_name not in MODELS:
        raise SpecError(f"{source}: model = {model_name!r} is not a known kinetic model; choose one of {', '.join(MODELS)}")
    kinetic = get_model(model_name)
    params_table = data.get("parameters")
    if not isinstance(params_table, dict) or not params_table:
        raise SpecError(f"{source}: missing [parameters.<name>] tables")
    expected = tuple(kinetic.individual_parameters)
    if set(params_table) != set(expected):
        raise SpecError(
            f"{source}: the {model_name} model needs parameters {', '.join(expected)}; the spec has "
            f"{', '.join(params_table)}"
        )
    parameters = []
    for name in expected:  # the model's order: stable site layout
        table = params_table[name]
        where = f"parameters.{name}"
        transform = _choice(_require(table, "transform", where, str, source), TRANSFORMS, f"{where}.transform", source)
        typical = _positive(_require(table, "typical", where, float, source), f"{where}.typical", source)
        if transform == "logit" and not typical < 1:
            raise SpecError(f"{source}: {where}.typical = {typical} must lie in (0, 1) for a logit transform")
        parameters.append(
            ParameterSpec(
                name=name,
                transform=transform,
                typical=typical,
                prior_sd=_positive(_require(table, "prior_sd", where, float, source), f"{where}.prior_sd", source),
                omega_scale=_positive(
                    _require(table, "omega_scale", where, float, source), f"{where}.omega_scale", source
                ),
                unit=str(table.get("unit", "")),
            )
        )
    covariates = []
    for cname, table in (data.get("covariates") or {}).items():
        where = f"covariates.{cname}"
        transform = _choice(
            table.get("transform", "linear"), COVARIATE_TRANSFORMS, f"{where}.transform", source
        )
        targets = table.get("parameters")
        if not isinstance(targets, list) or not targets:
            raise SpecError(f"{source}: {where}.parameters must be a non-empty list of parameter names")
        for target in targets:
            if target not in expected:
                raise SpecError(
                    f"{source}: {where}.parameters names {target!r}, which is not a parameter of the "
                    f"{model_name} model ({', '.join(expected)})"
                )
        covariates.append(
            CovariateEffect(
                name=cname,
                column=_require(table, "column", where, str, source).upper(),
                transform=transform,
                reference=_positive(_require(table, "reference", where, float, source), f"{where}.reference", source)
                if transform == "log"
                else float(table.get("reference", 0.0)),
                scale=_positive(float(table.get("scale", 1.0)), f"{where}.scale", source),
                parameters=tuple(targets),
                prior_sd=_positive(_require(table, "prior_sd", where, float, source), f"{where}.prior_sd", source),
            )
        )
    ode, constants, inputs = _ode_tables(data, model_name, kinetic, source)
    iiv, noncentred = _iiv_table(data.get("iiv") or {}, [p.name for p in parameters], source)
    residual_table = data.get("residual") or {}
    residual = _choice(residual_table.get("model", "additive_log"), RESIDUAL_MODELS, "residual.model", source)
    blq = _choice((data.get("blq") or {}).get("method", "m3"), BLQ_METHODS, "blq.method", source)
    return PopulationSpec(
        model=model_name,
        parameters=tuple(parameters),
        covariates=tuple(covariates),
        iiv=iiv,
        noncentred=noncentred,
        residual=residual,
        sigma_scale=_positive(float(residual_table.get("sigma_scale", 1.0)), "residual.sigma_scale", source),
        sigma_add_scale=_positive(float(residual_table.get("sigma_add_scale", 10.0)), "residual.sigma_add_scale", source),
        blq=blq,
        source=source,
        raw=json.dumps(data, sort_keys=True),
        ode=ode,
        constants=constants,
        inputs=inputs,
    )


def _iiv_table(table: dict, names: list[str], source: str) -> tuple[str, tuple[str, ...]]:
    """[iiv]: ``parameterization`` for every parameter, and ``noncentred`` = [names] to sample some of them
    non-centred in a centred model (e.g. those the data inform weakly: a mixed parameterization)."""
    if not isinstance(table, dict):
        raise SpecError(f"{source}: [iiv] must be a table")
    unknown = set(table) - {"parameterization", "noncentred"}
    if unknown:
        raise SpecError(f"{source}: [iiv] has unknown key(s) {', '.join(sorted(unknown))}; valid: parameterization, "
                        "noncentred")
    scheme = _choice(table.get("parameterization", "centred"), IIV_PARAMETERIZATIONS, "iiv.parameterization", source)
    listed = table.get("noncentred", [])
    if not isinstance(listed, list) or not all(isinstance(n, str) for n in listed):
        raise SpecError(f"{source}: iiv.noncentred = {listed!r} must be a list of parameter names")
    for name in listed:
        if name not in names:
            raise SpecError(f"{source}: iiv.noncentred names {name!r}, which is not a parameter ({', '.join(names)})")
    if scheme == "noncentred":
        if listed:
            raise SpecError(f"{source}: iiv.noncentred lists parameters, but parameterization = \"noncentred\" "
                            "already samples every parameter non-centred")
        return "noncentred", tuple(names)
    noncentred = tuple(n for n in names if n in listed)  # in parameter order
    if not noncentred:
        return "centred", ()
    return ("noncentred" if len(noncentred) == len(names) else "mixed"), noncentred


def _ode_tables(data: dict, model_name: str, kinetic, source: str):
    """Validate the ODE-only tables: [ode] (solver options), [constants] and [inputs.<name>]."""
    if not is_ode_model(model_name):
        for table in ("ode", "constants", "inputs"):
            if table in data:
                raise SpecError(
                    f"{source}: [{table}] is only for ODE models; the {model_name} model is a closed form "
                    f"(ODE models: {', '.join(m for m in MODELS if is_ode_model(m))})"
                )
        return None, (), ()
    ode_table = data.get("ode") or {}
    if not isinstance(ode_table, dict):
        raise SpecError(f"{source}: [ode] must be a table of solver options")
    try:
        ode = ODEOptions.from_dict(ode_table, defaults=type(kinetic).default_options)
    except (ValueError, TypeError) as err:
        raise SpecError(f"{source}: {err}") from None
    constants = []
    for name, value in (data.get("constants") or {}).items():
        if name not in kinetic.constants:
            raise SpecError(
                f"{source}: constants.{name} is not a constant of the {model_name} model; its constants: "
                f"{', '.join(kinetic.constants) or '(none)'}"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value >= 0):
            raise SpecError(f"{source}: constants.{name} = {value!r} must be a non-negative finite number")
        constants.append((name, float(value)))
    try:
        get_model(model_name, ode=ode, constants=dict(constants))
    except ValueError as err:
        raise SpecError(f"{source}: {err}") from None
    inputs_table = data.get("inputs") or {}
    expected = tuple(kinetic.inputs)
    if set(inputs_table) != set(expected):
        raise SpecError(
            f"{source}: the {model_name} model needs input(s) {', '.join(expected) or '(none)'} mapped to data "
            f"columns ([inputs.<name>] column = ...); the spec has {', '.join(inputs_table) or '(none)'}"
        )
    inputs = []
    for name in expected:
        table = inputs_table[name]
        where = f"inputs.{name}"
        if not isinstance(table, dict):
            raise SpecError(f'{source}: [{where}] must be a table, e.g. column = "TUMOR_BURDEN"')
        inputs.append(
            InputSpec(
                name=name,
                column=_require(table, "column", where, str, source).upper(),
                scale=_positive(float(table.get("scale", 1.0)), f"{where}.scale", source),
                unit=str(table.get("unit", "")),
            )
        )
    return ode, tuple(constants), tuple(inputs)


def default_models_dir() -> Path:
    """The shipped ``models/`` folder: the repository's (specs users edit) in a checkout, else the package's."""
    from .._resources import shipped_dir

    return shipped_dir("models")


def load_spec(path: str | Path) -> PopulationSpec:
    """Read and validate a TOML model spec.

    ``path`` may also be a bare model name (``"multiphasic"``) or ``"models/multiphasic.toml"`` from any
    directory: a path that does not exist is looked up among the shipped specs (`default_models_dir`).
    """
    from .._resources import resolve_shipped

    path = resolve_shipped(path, "models")
    if not path.exists():
        raise SpecError(f"{path}: model spec file not found")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{path}: not valid TOML ({err})") from None
    return spec_from_dict(data, source=str(path))
