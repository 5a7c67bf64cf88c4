"""Declarative population-model specification (TOML) -> a validated, immutable ``PopulationSpec``.

A spec names the kinetic model, the individual parameters with their transform, priors and IIV prior,
covariate effects, the IIV parameterisation, the residual error model and the BLQ method. Every option is
resolved here, once, with errors that name the file and the key (house rule 10).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Literal

import equinox as eqx
import numpy as np

from .._toml import Table, read_toml, spec_error
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


SPEC_KEYS: tuple[str, ...] = (
    "model", "parameters", "covariates", "iiv", "residual", "blq", "ode", "constants", "inputs", "simulation",
)
"""The top-level keys and tables of a spec (``[simulation]`` is read by `carkin.simulate.truth_from_spec`)."""


def spec_from_dict(data: dict, *, source: str = "<dict>") -> PopulationSpec:
    """Validate a parsed TOML spec (a dict) into a ``PopulationSpec``.

    Raises
    ------
    SpecError
        Naming ``source``, the table and the key (`carkin._toml` style), for a missing or unknown key, a wrong
        type, an unknown choice, a non-positive scale, or parameters that do not match the kinetic model.
    """
    root = Table(data, file=source)
    root.check_keys(SPEC_KEYS)
    model_name = root.choice("model", MODELS)
    kinetic = get_model(model_name)
    expected = tuple(kinetic.individual_parameters)
    tables = root.tables("parameters")
    if set(tables) != set(expected):
        raise spec_error(
            source, "[parameters]", None,
            f"holds {', '.join(tables) or 'no parameter'}, but the {model_name} model needs {', '.join(expected)}",
            "give one [parameters.<name>] table for each",
        )
    parameters = tuple(_parameter(name, tables[name]) for name in expected)  # the model's order: stable site layout
    covariates = tuple(_covariate(name, table, model_name, expected) for name, table in root.tables("covariates").items())
    ode, constants, inputs = _ode_tables(root, model_name, kinetic)
    iiv, noncentred = _iiv_table(root.table("iiv"), [p.name for p in parameters])
    residual = root.table("residual")
    residual.check_keys(("model", "sigma_scale", "sigma_add_scale"))
    blq = root.table("blq")
    blq.check_keys(("method",))
    return PopulationSpec(
        model=model_name,
        parameters=parameters,
        covariates=covariates,
        iiv=iiv,
        noncentred=noncentred,
        residual=residual.choice("model", RESIDUAL_MODELS, default="additive_log"),
        sigma_scale=residual.number("sigma_scale", 1.0, gt=0),
        sigma_add_scale=residual.number("sigma_add_scale", 10.0, gt=0),
        blq=blq.choice("method", BLQ_METHODS, default="m3"),
        source=source,
        raw=json.dumps(data, sort_keys=True),
        ode=ode,
        constants=constants,
        inputs=inputs,
    )


def _parameter(name: str, t: Table) -> ParameterSpec:
    """[parameters.<name>]."""
    t.check_keys(("transform", "typical", "prior_sd", "omega_scale", "unit"))
    transform = t.choice("transform", TRANSFORMS)
    typical = t.number("typical", gt=0)
    if transform == "logit" and not typical < 1:
        raise t.fail("typical", "is outside (0, 1)", "a logit-transformed parameter needs 0 < typical < 1", value=typical)
    return ParameterSpec(
        name=name,
        transform=transform,
        typical=typical,
        prior_sd=t.number("prior_sd", gt=0),
        omega_scale=t.number("omega_scale", gt=0),
        unit=t.string("unit", ""),
    )


def _covariate(name: str, t: Table, model_name: str, expected: tuple[str, ...]) -> CovariateEffect:
    """[covariates.<name>]: a covariate effect on the parameters it names."""
    t.check_keys(("column", "transform", "reference", "scale", "parameters", "prior_sd"))
    transform = t.choice("transform", COVARIATE_TRANSFORMS, default="linear")
    targets = t.strings("parameters", hint="parameter names")
    for target in targets:
        if target not in expected:
            raise t.fail("parameters", f"names {target!r}, which is not a parameter of the {model_name} model",
                         f"choose among {', '.join(expected)}", value=list(targets))
    return CovariateEffect(
        name=name,
        column=t.string("column", nonempty=True, hint="a data column").upper(),
        transform=transform,
        reference=t.number("reference", gt=0) if transform == "log" else t.number("reference", 0.0),
        scale=t.number("scale", 1.0, gt=0),
        parameters=targets,
        prior_sd=t.number("prior_sd", gt=0),
    )


def _iiv_table(t: Table, names: list[str]) -> tuple[str, tuple[str, ...]]:
    """[iiv]: ``parameterization`` for every parameter, and ``noncentred`` = [names] to sample some of them
    non-centred in a centred model (e.g. those the data inform weakly: a mixed parameterization)."""
    t.check_keys(("parameterization", "noncentred"))
    scheme = t.choice("parameterization", IIV_PARAMETERIZATIONS, default="centred")
    listed = t.strings("noncentred", (), nonempty=False, hint="parameter names")
    for name in listed:
        if name not in names:
            raise t.fail("noncentred", f"names {name!r}, which is not a parameter", f"choose among {', '.join(names)}",
                         value=list(listed))
    if scheme == "noncentred":
        if listed:
            raise t.fail("noncentred", 'lists parameters, but parameterization = "noncentred" already samples every '
                         "parameter non-centred", "remove noncentred, or set parameterization = \"centred\"",
                         value=list(listed))
        return "noncentred", tuple(names)
    noncentred = tuple(n for n in names if n in listed)  # in parameter order
    if not noncentred:
        return "centred", ()
    return ("noncentred" if len(noncentred) == len(names) else "mixed"), noncentred


def _ode_tables(root: Table, model_name: str, kinetic):
    """Validate the ODE-only tables: [ode] (solver options), [constants] and [inputs.<name>]."""
    if not is_ode_model(model_name):
        for table in ("ode", "constants", "inputs"):
            if table in root:
                raise spec_error(
                    root.file, f"[{table}]", None,
                    f"is only for ODE models; the {model_name} model is a closed form",
                    f"remove [{table}], or choose an ODE model ({', '.join(m for m in MODELS if is_ode_model(m))})",
                )
        return None, (), ()
    ode_table = root.table("ode")
    ode_table.check_keys(f.name for f in dataclasses.fields(ODEOptions))
    # ODEOptions' own messages name the option as ode.<key>
    ode = root.wrap(None, ODEOptions.from_dict, dict(ode_table.raw), defaults=type(kinetic).default_options)
    constants_table = root.table("constants")
    constants_table.check_keys(kinetic.constants)
    constants = tuple((name, constants_table.number(name, ge=0)) for name in constants_table)
    root.wrap(None, get_model, model_name, ode=ode, constants=dict(constants))
    tables = root.tables("inputs")
    expected = tuple(kinetic.inputs)
    if set(tables) != set(expected):
        raise spec_error(
            root.file, "[inputs]", None,
            f"holds {', '.join(tables) or 'no input'}, but the {model_name} model needs input(s) "
            f"{', '.join(expected) or '(none)'} mapped to data columns",
            'give one [inputs.<name>] table with column = "<DATA COLUMN>" for each',
        )
    inputs = []
    for name in expected:
        t = tables[name]
        t.check_keys(("column", "scale", "unit"))
        inputs.append(
            InputSpec(
                name=name,
                column=t.string("column", nonempty=True, hint='a data column, e.g. "TUMOR_BURDEN"').upper(),
                scale=t.number("scale", 1.0, gt=0),
                unit=t.string("unit", ""),
            )
        )
    return ode, constants, tuple(inputs)


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
    data = read_toml(path, what="model spec", example="models/multiphasic.toml")
    return spec_from_dict(data, source=str(path))
