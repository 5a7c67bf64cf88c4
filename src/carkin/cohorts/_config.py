"""The assumptions of the virtual KarMMa-3 generator: an immutable config read from TOML.

Every number the generator uses lives in ``models/karmma3_cohort.toml``; this module only gives it a typed,
checked, hashable form (a frozen dataclass of frozen dataclasses, so that it can be a static argument of
``jax.jit``). The loader rejects a missing key, an unknown key (a typo) and an invalid value, naming the
file and the key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math
import tomllib
import typing
from pathlib import Path

from .._karmma3 import ASSESSED_RESPONSES
from ..errors import SpecError

__all__ = ["RESPONSE_CATEGORIES", "KarMMa3Config", "default_config_path", "load_karmma3_config"]

#: Best-response categories the score model cuts into (IMWG, best first; `carkin._karmma3`); ``NE`` (not
#: evaluable) is assigned outside it.
RESPONSE_CATEGORIES: tuple[str, ...] = ASSESSED_RESPONSES

# Value checks, by name; the loader applies the one in each field's metadata.
_CHECKS: dict[str, tuple[typing.Callable[[typing.Any], bool], str]] = {
    "positive": (lambda v: v > 0, "a number > 0"),
    "nonnegative": (lambda v: v >= 0, "a number >= 0"),
    "probability": (lambda v: 0.0 < v < 1.0, "a probability strictly between 0 and 1"),
    "fraction": (lambda v: 0.0 <= v < 1.0, "a number in [0, 1)"),
    "real": (lambda v: True, "a finite number"),
    "all_positive": (lambda v: len(v) > 0 and all(x > 0 for x in v), "a non-empty list of numbers > 0"),
    "breaks": (
        lambda v: len(v) > 0 and v[0] == 0 and all(b > a for a, b in itertools.pairwise(v)),
        "a list of increasing numbers starting at 0",
    ),
    "schedule": (
        lambda v: len(v) > 0 and v[0] > 0 and all(b > a for a, b in itertools.pairwise(v)),
        "a list of increasing numbers > 0",
    ),
    "decreasing": (lambda v: all(b < a for a, b in itertools.pairwise(v)), "a list of decreasing numbers"),
}


def _f(check: str):
    return dataclasses.field(metadata={"check": check})


@dataclasses.dataclass(frozen=True)
class TrialConfig:
    """[trial]: sizes, accrual and data cut-off (months from study start)."""

    n_ide_cel: int = _f("positive")
    n_standard: int = _f("positive")
    n_not_infused: int = _f("nonnegative")
    accrual_months: float = _f("positive")
    accrual_shape: float = _f("positive")
    cutoff_months: float = _f("positive")
    days_per_month: float = _f("positive")
    dropout_per_month: float = _f("nonnegative")


@dataclasses.dataclass(frozen=True)
class StrataConfig:
    """[strata]: frequencies of the three stratification factors."""

    p_age_ge65: float = _f("probability")
    p_prior_regimens_3_4: float = _f("probability")
    p_high_risk_ide_cel: float = _f("probability")
    p_high_risk_standard: float = _f("probability")


@dataclasses.dataclass(frozen=True)
class BurdenConfig:
    """[tumor_burden]: bone-marrow plasma cells (%), ``100 * Beta(beta_a, beta_b)``."""

    beta_a: float = _f("positive")
    beta_b: float = _f("positive")
    reference_percent: float = _f("nonnegative")
    per_percent: float = _f("positive")
    high_threshold_percent: float = _f("positive")


@dataclasses.dataclass(frozen=True)
class InfusionConfig:
    """[infusion]: bridging time, dose, and who is never infused."""

    bridging_median_days: float = _f("positive")
    bridging_sd_log: float = _f("positive")
    bridging_min_days: float = _f("positive")
    bridging_max_days: float = _f("positive")
    dose_min: float = _f("positive")
    dose_max: float = _f("positive")
    dose_beta_a: float = _f("positive")
    dose_beta_b: float = _f("positive")
    dose_low_tail_prob: float = _f("fraction")
    dose_reference: float = _f("positive")
    not_infused_prognosis_weight: float = _f("real")


@dataclasses.dataclass(frozen=True)
class CKConfig:
    """[ck]: multiphasic transgene kinetics of infused patients, sampling and the assay."""

    cmax_typical: float = _f("positive")
    tmax_typical: float = _f("positive")
    rho_typical: float = _f("positive")
    beta_typical: float = _f("positive")
    delta_typical: float = _f("positive")
    fb_typical: float = _f("probability")
    omega2_cmax: float = _f("nonnegative")
    omega2_tmax: float = _f("nonnegative")
    omega2_rho: float = _f("nonnegative")
    omega2_beta: float = _f("nonnegative")
    omega2_delta: float = _f("nonnegative")
    omega2_fb: float = _f("nonnegative")
    latent_log_cmax: float = _f("real")
    latent_log_delta: float = _f("real")
    burden_log_cmax: float = _f("real")
    dose_log_cmax: float = _f("real")
    residual_sd: float = _f("positive")
    lloq: float = _f("positive")
    missing_sample_prob: float = _f("fraction")
    schedule_days: tuple[float, ...] = _f("schedule")
    schedule_months: tuple[float, ...] = _f("schedule")


@dataclasses.dataclass(frozen=True)
class HazardConfig:
    """A piecewise-constant hazard: ``hazard_per_month[k]`` on ``[breaks_months[k], breaks_months[k+1])``,
    the last piece extending to infinity."""

    breaks_months: tuple[float, ...] = _f("breaks")
    hazard_per_month: tuple[float, ...] = _f("all_positive")


@dataclasses.dataclass(frozen=True)
class PrognosisConfig:
    """[prognosis]: log hazard ratios of baseline factors (both arms) and the frailty."""

    log_hr_burden: float = _f("real")
    log_hr_high_risk: float = _f("real")
    log_hr_prior_3_4: float = _f("real")
    log_hr_age_ge65: float = _f("real")
    frailty_sd: float = _f("nonnegative")


@dataclasses.dataclass(frozen=True)
class ExposureConfig:
    """[exposure]: how exposure and the latent factor lower the post-infusion hazard (ide-cel infused)."""

    log_hr_per_doubling_cmax: float = _f("real")
    log_hr_latent: float = _f("real")


@dataclasses.dataclass(frozen=True)
class ResponseConfig:
    """[response]: best response from a score ``-log-hazard predictor + noise`` cut at thresholds."""

    noise_sd: float = _f("nonnegative")
    thresholds_ide_cel: tuple[float, ...] = _f("decreasing")
    thresholds_standard: tuple[float, ...] = _f("decreasing")
    min_months_to_response: float = _f("nonnegative")


@dataclasses.dataclass(frozen=True)
class KarMMa3Config:
    """All assumptions of :func:`carkin.cohorts.simulate_karmma3` (one TOML section per attribute).

    Build it with :func:`load_karmma3_config`; it is frozen and hashable. ``source`` is the path it was
    read from and ``sha256`` the hash of that file's bytes (both go into the README of a realisation).
    """

    trial: TrialConfig
    strata: StrataConfig
    tumor_burden: BurdenConfig
    infusion: InfusionConfig
    ck: CKConfig
    prognosis: PrognosisConfig
    exposure: ExposureConfig
    pfs_standard: HazardConfig
    pfs_not_infused: HazardConfig
    pfs_ide_cel_infused: HazardConfig
    response: ResponseConfig
    source: str = dataclasses.field(default="<memory>", compare=False)
    sha256: str = dataclasses.field(default="", compare=False)

    def replace(self, section: str, **values) -> KarMMa3Config:
        """A copy with some values of one section replaced (for calibration and tests).

        Examples
        --------
        >>> cfg = load_karmma3_config()
        >>> bigger = cfg.replace("trial", n_ide_cel=2540, n_standard=1320, n_not_infused=290)
        """
        if section not in _SECTIONS:
            raise ValueError(f"unknown config section {section!r}; valid sections: {', '.join(_SECTIONS)}")
        new = dataclasses.replace(getattr(self, section), **values)
        cfg = dataclasses.replace(self, **{section: new}, source=self.source + " (modified)", sha256="")
        _check_consistency(cfg, cfg.source)
        return cfg


# Section name -> dataclass, in file order.
_SECTIONS: dict[str, type] = {
    name: tp
    for name, tp in typing.get_type_hints(KarMMa3Config, globalns=globals()).items()
    if name not in ("source", "sha256")
}


def default_config_path() -> Path:
    """The shipped ``models/karmma3_cohort.toml`` (the repository's in a checkout, else the package's)."""
    from .._resources import shipped_file

    return shipped_file("models", "karmma3_cohort")


def _coerce(value, tp, where: str, file: str):
    """Convert one TOML value to the annotated type or raise a SpecError naming file and key."""

    def bad(expected: str):
        return SpecError(
            f"{file}: key {where} must be {expected}; got {value!r} (type {type(value).__name__}). "
            "Fix the value in the TOML file."
        )

    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad("a finite number")
        return float(value)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is tuple and args[0] is float:
        if not isinstance(value, list) or any(
            isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in value
        ):
            raise bad("a list of finite numbers")
        return tuple(float(v) for v in value)
    if origin is tuple and args[0] is str:
        if not isinstance(value, list) or any(not isinstance(v, str) for v in value):
            raise bad("a list of strings")
        return tuple(value)
    raise TypeError(f"unsupported config field type {tp!r} for {where}")  # a bug in this module


def _build_section(cls: type, table, name: str, file: str):
    if not isinstance(table, dict):
        raise SpecError(f"{file}: [{name}] must be a TOML table; got {type(table).__name__}")
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        where = f"[{name}].{f.name}"
        if f.name not in table:
            raise SpecError(f"{file}: missing key {where}. Add it to the TOML file (see the module docs).")
        value = _coerce(table[f.name], hints[f.name], where, file)
        check, expected = _CHECKS[f.metadata["check"]]
        if not check(value):
            raise SpecError(f"{file}: key {where} must be {expected}; got {table[f.name]!r}.")
        values[f.name] = value
    unknown = sorted(set(table) - set(values))
    if unknown:
        raise SpecError(
            f"{file}: unknown key(s) in [{name}]: {', '.join(unknown)}; valid keys: "
            f"{', '.join(values)}. Check the spelling."
        )
    return cls(**values)


def _check_consistency(cfg: KarMMa3Config, file: str) -> None:
    """Checks that involve more than one key; each message names the keys."""
    t = cfg.trial
    if t.n_not_infused >= t.n_ide_cel:
        raise SpecError(
            f"{file}: [trial].n_not_infused ({t.n_not_infused}) must be < [trial].n_ide_cel ({t.n_ide_cel})."
        )
    if t.cutoff_months < t.accrual_months:
        raise SpecError(
            f"{file}: [trial].cutoff_months ({t.cutoff_months}) must be >= [trial].accrual_months ({t.accrual_months})."
        )
    i = cfg.infusion
    if not i.dose_min < i.dose_max:
        raise SpecError(f"{file}: [infusion].dose_min ({i.dose_min}) must be < [infusion].dose_max ({i.dose_max}).")
    if not i.bridging_min_days < i.bridging_max_days:
        raise SpecError(f"{file}: [infusion].bridging_min_days must be < [infusion].bridging_max_days.")
    for name in ("pfs_standard", "pfs_not_infused", "pfs_ide_cel_infused"):
        h = getattr(cfg, name)
        if len(h.breaks_months) != len(h.hazard_per_month):
            raise SpecError(
                f"{file}: [{name}].breaks_months has {len(h.breaks_months)} entries but "
                f"[{name}].hazard_per_month has {len(h.hazard_per_month)}; give one hazard per piece."
            )
    n_thr = len(RESPONSE_CATEGORIES) - 1
    for name in ("thresholds_ide_cel", "thresholds_standard"):
        if len(getattr(cfg.response, name)) != n_thr:
            raise SpecError(
                f"{file}: [response].{name} must have {n_thr} entries (cut points between "
                f"{', '.join(RESPONSE_CATEGORIES)}); got {len(getattr(cfg.response, name))}."
            )


def load_karmma3_config(path: str | Path | None = None) -> KarMMa3Config:
    """Read the virtual KarMMa-3 assumptions from TOML.

    Parameters
    ----------
    path : str or Path, optional
        The TOML file; default :func:`default_config_path` (``models/karmma3_cohort.toml`` of the
        repository).

    Returns
    -------
    KarMMa3Config

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    SpecError
        If the file is not valid TOML, or a section or key is missing, unknown or invalid; the message
        names the file and the key (e.g. ``[ck].lloq``).
    """
    path = Path(path) if path is not None else default_config_path()
    file = str(path)
    if not path.is_file():
        raise FileNotFoundError(f"virtual KarMMa-3 config not found: {file}")
    raw = path.read_bytes()
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(f"{file}: not valid TOML ({exc})") from None
    sections = {}
    for name, cls in _SECTIONS.items():
        if name not in doc:
            raise SpecError(f"{file}: missing section [{name}]. Add it to the TOML file.")
        sections[name] = _build_section(cls, doc[name], name, file)
    unknown = sorted(set(doc) - set(_SECTIONS))
    if unknown:
        raise SpecError(f"{file}: unknown section(s) {', '.join(unknown)}; valid sections: {', '.join(_SECTIONS)}.")
    cfg = KarMMa3Config(**sections, source=file, sha256=hashlib.sha256(raw).hexdigest())
    _check_consistency(cfg, file)
    return cfg
