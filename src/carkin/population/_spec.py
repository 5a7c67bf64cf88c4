"""Declarative population-model specification (TOML) -> a validated, immutable ``PopulationSpec``.

A spec names the kinetic model (and, for a PK model, its structure: route, parameterisation, lag), the
individual parameters with their transform, priors and IIV prior, covariate effects, co-medication effects,
the IIV parameterisation and correlation, and the analytes observed, each with its residual error model,
BLQ method, unit and scaling. Every option is resolved here, once, with errors that name the file and the key
(house rule 10).

Analytes: a spec without ``[analytes]`` observes one analyte, with the top-level ``[residual]`` and ``[blq]``
tables (the single-analyte layout of every shipped CAR-T model). With ``[analytes.<name>]`` tables, each
declares its code in the data (``dvid``), the model output it observes, an estimated scaling factor
(``scale``), its residual error model and BLQ method.

Residual error models (``model`` in a ``[residual]`` table): on the log scale, ``additive_log`` (log DV ~
N(log C, sigma)) and ``combined`` (log DV ~ N(log C, sqrt(sigma^2 + (sigma_add / C)^2)), the log-scale form of
proportional plus additive error); on the linear scale, ``additive`` (DV ~ N(C, sigma_add)), ``proportional``
(DV ~ N(C, sigma C)) and ``additive_proportional`` (DV ~ N(C, sqrt(sigma_add^2 + (sigma C)^2))). Linear-scale
models accept DV <= 0 (e.g. a concentration of 0 before absorption); BLQ records enter by M3 on the model's
own scale.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Literal

import equinox as eqx
import numpy as np

from .._toml import REQUIRED, Table, read_toml, spec_error
from ..models import MODELS, STRUCTURE_OPTIONS, ODEOptions, get_model, is_ode_model

__all__ = [
    "ParameterSpec", "CovariateEffect", "InputSpec", "AnalyteSpec", "Comedication", "PopulationSpec", "load_spec",
    "spec_from_dict", "TRANSFORMS", "RESIDUAL_MODELS",
]

Transform = Literal["log", "logit"]
TRANSFORMS: tuple[str, ...] = ("log", "logit")
IIV_PARAMETERIZATIONS: tuple[str, ...] = ("centred", "noncentred")
RESIDUAL_MODELS: tuple[str, ...] = ("additive_log", "combined", "additive", "proportional", "additive_proportional")
LOG_SCALE_RESIDUALS: frozenset[str] = frozenset({"additive_log", "combined"})
"""Error models on log DV (they need DV > 0); the others are on DV itself."""
_USES_SIGMA: frozenset[str] = frozenset({"additive_log", "combined", "proportional", "additive_proportional"})
_USES_SIGMA_ADD: frozenset[str] = frozenset({"combined", "additive", "additive_proportional"})
COMEDICATION_PROCESSES: tuple[str, ...] = ("expansion", "contraction")
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


class AnalyteSpec(eqx.Module):
    """One observed analyte: where it is in the data, what it observes, and its error model.

    Attributes
    ----------
    name : str
        The analyte's name (``[analytes.<name>]``; the model's output name for a single-analyte spec).
    code : float or None
        Its code in the data (DVID, else the observation's CMT); None: the spec's only analyte, any one code.
    unit : str
    output : str
        The kinetic model's output it observes (``model.outputs``).
    scale_typical, scale_prior_sd : float or None
        An estimated scaling factor, observed = factor x output: its prior median (natural scale) and the SD of
        the normal prior on its log; None: no factor (1).
    residual : str
        The error model (`RESIDUAL_MODELS`).
    sigma_scale, sigma_add_scale : float
        Half-normal prior scales of sigma (log-scale SD, or proportional coefficient) and sigma_add (additive SD,
        in the analyte's unit).
    blq : str
        ``m3`` (censored likelihood) or ``drop``.
    """

    name: str = eqx.field(static=True)
    code: float | None = eqx.field(static=True)
    unit: str = eqx.field(static=True, default="")
    output: str = eqx.field(static=True, default="concentration")
    scale_typical: float | None = eqx.field(static=True, default=None)
    scale_prior_sd: float | None = eqx.field(static=True, default=None)
    residual: str = eqx.field(static=True, default="additive_log")
    sigma_scale: float = eqx.field(static=True, default=1.0)
    sigma_add_scale: float = eqx.field(static=True, default=10.0)
    blq: str = eqx.field(static=True, default="m3")

    @property
    def log_scale(self) -> bool:
        """The error model works on log DV (DV must be > 0)."""
        return self.residual in LOG_SCALE_RESIDUALS

    @property
    def uses_sigma(self) -> bool:
        return self.residual in _USES_SIGMA

    @property
    def uses_sigma_add(self) -> bool:
        return self.residual in _USES_SIGMA_ADD

    @property
    def scaled(self) -> bool:
        return self.scale_typical is not None


class Comedication(eqx.Module):
    """A co-medication (e.g. tocilizumab) that multiplies kinetic rates from its start in each patient.

    From the patient's start time t_c on, the rate of each process in ``processes`` is multiplied by
    exp(gamma_<name>_<process>) (gamma estimated, normal prior with SD ``prior_sd``); before it, and in
    patients who never receive it, the rate is unchanged. The start comes from an event-time column
    (``start_column``: days after the first dose, '.' = never) or from the first record where a 0/1 indicator
    column of the CK file is 1 (``indicator_column``, carried forward).
    """

    name: str = eqx.field(static=True)
    processes: tuple[str, ...] = eqx.field(static=True)
    prior_sd: float = eqx.field(static=True)
    start_column: str | None = eqx.field(static=True, default=None)
    indicator_column: str | None = eqx.field(static=True, default=None)

    @property
    def column(self) -> str:
        return self.start_column if self.start_column is not None else self.indicator_column


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
    ``[inputs.<name>]``); for the closed form these are None / empty. PK models carry ``structure`` (the
    ``[structure]`` table: route, parameterisation, lag).
    """

    model: str = eqx.field(static=True)
    parameters: tuple[ParameterSpec, ...] = eqx.field(static=True)
    covariates: tuple[CovariateEffect, ...] = eqx.field(static=True)
    analytes: tuple[AnalyteSpec, ...] = eqx.field(static=True)
    iiv: str = eqx.field(static=True, default="centred")  # "centred", "noncentred" or "mixed"
    noncentred: tuple[str, ...] = eqx.field(static=True, default=())  # parameters sampled non-centred
    source: str = eqx.field(static=True, default="<dict>")
    raw: str = eqx.field(static=True, default="{}")  # the spec as JSON, for manifests
    ode: ODEOptions | None = eqx.field(static=True, default=None)
    constants: tuple[tuple[str, float], ...] = eqx.field(static=True, default=())
    inputs: tuple[InputSpec, ...] = eqx.field(static=True, default=())
    structure: tuple[tuple[str, object], ...] = eqx.field(static=True, default=())
    comedications: tuple[Comedication, ...] = eqx.field(static=True, default=())
    iiv_blocks: tuple[tuple[str, ...], ...] = eqx.field(static=True, default=())  # correlated IIV blocks
    lkj_concentration: float = eqx.field(static=True, default=2.0)
    time_unit: str = eqx.field(static=True, default="")  # the data's time unit, for labels ("" : the model's default)

    # The single-analyte view (the first analyte's settings), kept for specs with one analyte.
    @property
    def residual(self) -> str:
        """The first analyte's residual error model."""
        return self.analytes[0].residual

    @property
    def sigma_scale(self) -> float:
        return self.analytes[0].sigma_scale

    @property
    def sigma_add_scale(self) -> float:
        return self.analytes[0].sigma_add_scale

    @property
    def blq(self) -> str:
        """The first analyte's BLQ method."""
        return self.analytes[0].blq

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
    def comedication_effects(self) -> tuple[tuple[str, str], ...]:
        """(co-medication, process) for every co-medication coefficient, in the order of the ``gamma`` site."""
        return tuple((c.name, p) for c in self.comedications for p in c.processes)

    @property
    def comedication_effect_names(self) -> tuple[str, ...]:
        return tuple(f"gamma_{c}_{p}" for c, p in self.comedication_effects)

    @property
    def kinetic_model(self):
        return get_model(self.model, ode=self.ode, constants=dict(self.constants), structure=dict(self.structure))

    @property
    def data_columns(self) -> tuple[str, ...]:
        """Every per-patient data column the spec reads: covariate columns and input columns (sorted, upper case)."""
        return tuple(sorted({c.column for c in self.covariates} | {i.column for i in self.inputs}))

    def residual_sites(self, analyte: AnalyteSpec) -> tuple[str | None, str | None]:
        """The sample sites of an analyte's residual parameters: (sigma, sigma_add), None where not used.

        ``sigma`` / ``sigma_add`` for a single-analyte spec; ``sigma_<name>`` / ``sigma_add_<name>`` otherwise.
        """
        suffix = "" if len(self.analytes) == 1 else f"_{analyte.name}"
        return (f"sigma{suffix}" if analyte.uses_sigma else None,
                f"sigma_add{suffix}" if analyte.uses_sigma_add else None)

    def scale_site(self, analyte: AnalyteSpec) -> str | None:
        """The sample site of an analyte's log scaling factor (``log_scale_<name>``), None if it has none."""
        return f"log_scale_{analyte.name}" if analyte.scaled else None

    def data_requirements(self):
        """What this model needs of the data (`carkin.data.DataRequirements`), checked when the data are read."""
        from ..data import AnalyteNeed, DataRequirements

        single = len(self.analytes) == 1 and self.analytes[0].code is None
        return DataRequirements(
            covariates=tuple(c for c in self.data_columns if c != "DOSE"),
            event_times=tuple(c.start_column for c in self.comedications if c.start_column is not None),
            time_varying=tuple(c.indicator_column for c in self.comedications if c.indicator_column is not None),
            analytes=tuple(AnalyteNeed(None if single else a.code, a.name, a.log_scale) for a in self.analytes),
            source=self.source,
        )

    def replace(self, **changes) -> "PopulationSpec":
        """A copy with some fields changed (e.g. ``spec.replace(iiv="noncentred")``), re-validated."""
        data = json.loads(self.raw)
        for key, value in changes.items():
            if key == "iiv" and isinstance(value, dict):  # the whole [iiv] table
                data["iiv"] = value
            elif key == "iiv":  # one scheme for every parameter; the correlation of the random effects kept
                kept = {k: v for k, v in (data.get("iiv") or {}).items()
                        if k in ("correlation", "blocks", "lkj_concentration")}
                data["iiv"] = {**kept, "parameterization": value}
            elif key in ("residual", "blq"):  # every analyte's
                field = "model" if key == "residual" else "method"
                if data.get("analytes"):
                    for table in data["analytes"].values():
                        table.setdefault(key, {})[field] = value
                else:
                    data.setdefault(key, {})[field] = value
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
    "model", "structure", "parameters", "covariates", "comedication", "iiv", "residual", "blq", "analytes", "ode",
    "constants", "inputs", "simulation", "time_unit",
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
    structure = _structure_table(root, model_name)
    kinetic = root.wrap(None, get_model, model_name, structure=dict(structure))
    expected = tuple(kinetic.individual_parameters)
    tables = root.tables("parameters")
    if set(tables) != set(expected):
        raise spec_error(
            source, "[parameters]", None,
            f"holds {', '.join(tables) or 'no parameter'}, but the {model_name} model"
            + (f" ({', '.join(f'{k} = {v!r}' for k, v in structure)})" if structure else "")
            + f" needs {', '.join(expected)}",
            "give one [parameters.<name>] table for each",
        )
    parameters = tuple(_parameter(name, tables[name]) for name in expected)  # the model's order: stable site layout
    covariates = tuple(
        _covariate(name, table, model_name, expected) for name, table in root.tables("covariates").items()
    )
    ode, constants, inputs = _ode_tables(root, model_name, kinetic)
    iiv, noncentred, blocks, lkj = _iiv_table(root.table("iiv"), [p.name for p in parameters])
    analytes = _analytes(root, kinetic, model_name)
    comedications = tuple(_comedication(name, t, kinetic, model_name)
                          for name, t in root.tables("comedication").items())
    return PopulationSpec(
        model=model_name,
        parameters=parameters,
        covariates=covariates,
        analytes=analytes,
        iiv=iiv,
        noncentred=noncentred,
        source=source,
        raw=json.dumps(data, sort_keys=True),
        ode=ode,
        constants=constants,
        inputs=inputs,
        structure=structure,
        comedications=comedications,
        iiv_blocks=blocks,
        lkj_concentration=lkj,
        time_unit=root.string("time_unit", "", hint='the unit of TIME in the data, e.g. "h"'),
    )


def _structure_table(root: Table, model_name: str) -> tuple[tuple[str, object], ...]:
    """[structure]: a PK model's route, parameterisation and lag (see `carkin.models.STRUCTURE_OPTIONS`)."""
    valid = STRUCTURE_OPTIONS.get(model_name)
    if valid is None:
        if "structure" in root:
            raise spec_error(root.file, "[structure]", None, f"is only for PK models; the {model_name} model has no "
                             "structural options",
                             f"remove [structure] (models with it: {', '.join(STRUCTURE_OPTIONS)})")
        return ()
    t = root.table("structure")
    t.check_keys(tuple(valid))
    out = []
    for key, default in valid.items():
        if isinstance(default, bool):
            out.append((key, t.boolean(key, default)))
        else:
            out.append((key, t.string(key, default)))
    return tuple(out)


def _residual(t: Table) -> dict:
    """A [residual] table's settings."""
    t.check_keys(("model", "sigma_scale", "sigma_add_scale"))
    return {
        "residual": t.choice("model", RESIDUAL_MODELS, default="additive_log"),
        "sigma_scale": t.number("sigma_scale", 1.0, gt=0),
        "sigma_add_scale": t.number("sigma_add_scale", 10.0, gt=0),
    }


def _blq(t: Table) -> str:
    t.check_keys(("method",))
    return t.choice("method", BLQ_METHODS, default="m3")


def _analytes(root: Table, kinetic, model_name: str) -> tuple[AnalyteSpec, ...]:
    """[analytes.<name>], or the single analyte of the top-level [residual] and [blq] tables."""
    outputs = tuple(getattr(kinetic, "outputs", ("concentration",)))
    tables = root.tables("analytes")
    if not tables:
        return (AnalyteSpec(name=outputs[0], code=None, output=outputs[0], **_residual(root.table("residual")),
                            blq=_blq(root.table("blq"))),)
    for table in ("residual", "blq"):
        if table in root:
            raise spec_error(root.file, f"[{table}]", None, "is given beside [analytes.<name>] tables",
                             f"move it into each analyte's table ([analytes.<name>.{table}])")
    analytes, codes = [], {}
    for name, t in tables.items():
        t.check_keys(("dvid", "unit", "output", "scale", "residual", "blq"))
        code = t.number("dvid", None if len(tables) == 1 else REQUIRED, hint="the analyte's code in the data's DVID "
                        "(or CMT) column")
        if code is not None and code in codes:
            raise t.fail("dvid", f"is also the code of analyte {codes[code]!r}", "give each analyte its own code",
                         value=code)
        codes[code] = name
        output = t.choice("output", outputs, default=outputs[0])
        scale = t.table("scale")
        scale_typical = scale_sd = None
        if len(scale):
            scale.check_keys(("typical", "prior_sd"))
            scale_typical = scale.number("typical", gt=0, hint="prior median of the factor, observed = factor x output")
            scale_sd = scale.number("prior_sd", gt=0, hint="SD of the normal prior on the factor's log")
        analytes.append(AnalyteSpec(name=name, code=code, unit=t.string("unit", ""), output=output,
                                    scale_typical=scale_typical, scale_prior_sd=scale_sd,
                                    **_residual(t.table("residual")), blq=_blq(t.table("blq"))))
    return tuple(analytes)


def _comedication(name: str, t: Table, kinetic, model_name: str) -> Comedication:
    """[comedication.<name>]: a co-medication's start (event-time or indicator column) and its effects."""
    t.check_keys(("start_column", "indicator_column", "effects", "prior_sd"))
    start = t.string("start_column", None, nonempty=True, hint="a per-patient column of days after the first dose")
    indicator = t.string("indicator_column", None, nonempty=True, hint="a 0/1 column of the CK file")
    if (start is None) == (indicator is None):
        raise t.fail(None, "needs exactly one of start_column and indicator_column",
                     'give start_column = "TOCI_DAY" (days after the first dose, \'.\' = never) or indicator_column '
                     '= "TOCI" (0/1 on each record, carried forward)')
    supported = tuple(getattr(kinetic, "switch_processes", ()))
    processes = t.strings("effects", hint=f"processes among {', '.join(COMEDICATION_PROCESSES)}")
    for process in processes:
        if process not in supported:
            raise t.fail("effects", f"names {process!r}, which the {model_name} model cannot switch",
                         f"choose among {', '.join(supported) or '(none: this model takes no co-medication effects)'}",
                         value=list(processes))
    return Comedication(name=name, processes=processes, prior_sd=t.number("prior_sd", gt=0),
                        start_column=None if start is None else start.upper(),
                        indicator_column=None if indicator is None else indicator.upper())


def _parameter(name: str, t: Table) -> ParameterSpec:
    """[parameters.<name>]."""
    t.check_keys(("transform", "typical", "prior_sd", "omega_scale", "unit"))
    transform = t.choice("transform", TRANSFORMS)
    typical = t.number("typical", gt=0)
    if transform == "logit" and not typical < 1:
        raise t.fail(
            "typical", "is outside (0, 1)", "a logit-transformed parameter needs 0 < typical < 1", value=typical
        )
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


def _iiv_table(t: Table, names: list[str]) -> tuple[str, tuple[str, ...], tuple[tuple[str, ...], ...], float]:
    """[iiv]: ``parameterization`` for every parameter, ``noncentred`` = [names] to sample some of them
    non-centred in a centred model (a mixed parameterization), and the correlation of the random effects:
    ``correlation = "full"`` (every pair) or ``blocks = [[...], ...]`` (correlated within each block), with an
    LKJ prior of concentration ``lkj_concentration`` (default 2: mildly towards no correlation) on each block."""
    t.check_keys(("parameterization", "noncentred", "correlation", "blocks", "lkj_concentration"))
    scheme = t.choice("parameterization", IIV_PARAMETERIZATIONS, default="centred")
    listed = t.strings("noncentred", (), nonempty=False, hint="parameter names")
    for name in listed:
        if name not in names:
            raise t.fail("noncentred", f"names {name!r}, which is not a parameter", f"choose among {', '.join(names)}",
                         value=list(listed))
    blocks = _iiv_blocks(t, names)
    lkj = t.number("lkj_concentration", 2.0, gt=0, hint="1: uniform over correlation matrices; > 1: towards 0")
    if blocks and listed:  # a column non-centred inside a correlated block has no simple form
        raise t.fail("noncentred", "is not available with correlated random effects",
                     'sample correlated IIV centred (the default) or with parameterization = "noncentred" for every '
                     "parameter, or remove correlation/blocks", value=list(listed))
    if scheme == "noncentred":
        if listed:
            raise t.fail("noncentred", 'lists parameters, but parameterization = "noncentred" already samples every '
                         "parameter non-centred", "remove noncentred, or set parameterization = \"centred\"",
                         value=list(listed))
        return "noncentred", tuple(names), blocks, lkj
    noncentred = tuple(n for n in names if n in listed)  # in parameter order
    if not noncentred:
        return "centred", (), blocks, lkj
    return ("noncentred" if len(noncentred) == len(names) else "mixed"), noncentred, blocks, lkj


def _iiv_blocks(t: Table, names: list[str]) -> tuple[tuple[str, ...], ...]:
    """The correlated blocks of [iiv]: ``correlation = "full"`` or ``blocks = [[names], ...]``, in parameter order."""
    correlation = t.choice("correlation", ("none", "full"), default="none")
    raw = t.get("blocks")
    if raw is None:
        return (tuple(names),) if correlation == "full" else ()
    if correlation == "full":
        raise t.fail("blocks", 'is given with correlation = "full"', "give one of the two")
    if not isinstance(raw, list) or not all(isinstance(b, list) and all(isinstance(n, str) for n in b) for b in raw):
        raise t.fail("blocks", "is not a list of lists of parameter names", 'write e.g. blocks = [["cmax", "tmax"]]',
                     value=raw)
    seen: set[str] = set()
    out = []
    for block in raw:
        for name in block:
            if name not in names:
                raise t.fail("blocks", f"names {name!r}, which is not a parameter", f"choose among {', '.join(names)}",
                             value=raw)
            if name in seen:
                raise t.fail("blocks", f"names {name!r} in two blocks", "put each parameter in one block", value=raw)
            seen.add(name)
        if len(block) < 2:
            raise t.fail("blocks", f"has a block of {len(block)} parameter(s)", "a correlated block needs two or more",
                         value=raw)
        out.append(tuple(n for n in names if n in block))
    return tuple(out)


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
