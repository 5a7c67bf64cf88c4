"""The assumptions of the virtual KarMMa-3 generator: an immutable config read from TOML.

Every number the generator uses lives in ``models/karmma3_cohort.toml``; this module only gives it a typed,
checked, hashable form (a frozen dataclass of frozen dataclasses, so that it can be a static argument of
``jax.jit``). The loader rejects a missing key, an unknown key (a typo) and an invalid value, naming the
file and the key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import typing
from pathlib import Path

from .._karmma3 import ASSESSED_RESPONSES
from .._toml import Table, parse_toml, spec_error

__all__ = ["RESPONSE_CATEGORIES", "KarMMa3Config", "default_config_path", "load_karmma3_config"]

#: Best-response categories the score model cuts into (IMWG, best first; `carkin._karmma3`); ``NE`` (not
#: evaluable) is assigned outside it.
RESPONSE_CATEGORIES: tuple[str, ...] = ASSESSED_RESPONSES

# Each field's metadata holds the arguments of its `carkin._toml.Table` accessor (bounds, list order).
_POSITIVE = {"gt": 0}
_NONNEGATIVE = {"ge": 0}
_PROBABILITY = {"gt": 0, "lt": 1}  # strictly between 0 and 1
_FRACTION = {"ge": 0, "lt": 1}
_REAL: dict = {}
_BREAKS = {"starts_at": 0.0, "increasing": True}  # piece starts: 0, then increasing
_SCHEDULE = {"gt": 0, "increasing": True}
_DECREASING = {"decreasing": True, "nonempty": False}


def _f(check: dict):
    return dataclasses.field(metadata={"check": check})


@dataclasses.dataclass(frozen=True)
class TrialConfig:
    """[trial]: sizes, accrual and data cut-off (months from study start)."""

    n_ide_cel: int = _f(_POSITIVE)
    n_standard: int = _f(_POSITIVE)
    n_not_infused: int = _f(_NONNEGATIVE)
    accrual_months: float = _f(_POSITIVE)
    accrual_shape: float = _f(_POSITIVE)
    cutoff_months: float = _f(_POSITIVE)
    days_per_month: float = _f(_POSITIVE)
    dropout_per_month: float = _f(_NONNEGATIVE)


@dataclasses.dataclass(frozen=True)
class StrataConfig:
    """[strata]: frequencies of the three stratification factors."""

    p_age_ge65: float = _f(_PROBABILITY)
    p_prior_regimens_3_4: float = _f(_PROBABILITY)
    p_high_risk_ide_cel: float = _f(_PROBABILITY)
    p_high_risk_standard: float = _f(_PROBABILITY)


@dataclasses.dataclass(frozen=True)
class BurdenConfig:
    """[tumor_burden]: bone-marrow plasma cells (%), ``100 * Beta(beta_a, beta_b)``."""

    beta_a: float = _f(_POSITIVE)
    beta_b: float = _f(_POSITIVE)
    reference_percent: float = _f(_NONNEGATIVE)
    per_percent: float = _f(_POSITIVE)
    high_threshold_percent: float = _f(_POSITIVE)


@dataclasses.dataclass(frozen=True)
class InfusionConfig:
    """[infusion]: bridging time, dose, and who is never infused."""

    bridging_median_days: float = _f(_POSITIVE)
    bridging_sd_log: float = _f(_POSITIVE)
    bridging_min_days: float = _f(_POSITIVE)
    bridging_max_days: float = _f(_POSITIVE)
    dose_min: float = _f(_POSITIVE)
    dose_max: float = _f(_POSITIVE)
    dose_beta_a: float = _f(_POSITIVE)
    dose_beta_b: float = _f(_POSITIVE)
    dose_low_tail_prob: float = _f(_FRACTION)
    dose_reference: float = _f(_POSITIVE)
    not_infused_prognosis_weight: float = _f(_REAL)


@dataclasses.dataclass(frozen=True)
class CKConfig:
    """[ck]: multiphasic transgene kinetics of infused patients, sampling and the assay."""

    cmax_typical: float = _f(_POSITIVE)
    tmax_typical: float = _f(_POSITIVE)
    rho_typical: float = _f(_POSITIVE)
    beta_typical: float = _f(_POSITIVE)
    delta_typical: float = _f(_POSITIVE)
    fb_typical: float = _f(_PROBABILITY)
    omega2_cmax: float = _f(_NONNEGATIVE)
    omega2_tmax: float = _f(_NONNEGATIVE)
    omega2_rho: float = _f(_NONNEGATIVE)
    omega2_beta: float = _f(_NONNEGATIVE)
    omega2_delta: float = _f(_NONNEGATIVE)
    omega2_fb: float = _f(_NONNEGATIVE)
    latent_log_cmax: float = _f(_REAL)
    latent_log_delta: float = _f(_REAL)
    burden_log_cmax: float = _f(_REAL)
    dose_log_cmax: float = _f(_REAL)
    residual_sd: float = _f(_POSITIVE)
    lloq: float = _f(_POSITIVE)
    missing_sample_prob: float = _f(_FRACTION)
    schedule_days: tuple[float, ...] = _f(_SCHEDULE)
    schedule_months: tuple[float, ...] = _f(_SCHEDULE)


@dataclasses.dataclass(frozen=True)
class HazardConfig:
    """A piecewise-constant hazard: ``hazard_per_month[k]`` on ``[breaks_months[k], breaks_months[k+1])``,
    the last piece extending to infinity."""

    breaks_months: tuple[float, ...] = _f(_BREAKS)
    hazard_per_month: tuple[float, ...] = _f(_POSITIVE)


@dataclasses.dataclass(frozen=True)
class PrognosisConfig:
    """[prognosis]: log hazard ratios of baseline factors (both arms) and the frailty."""

    log_hr_burden: float = _f(_REAL)
    log_hr_high_risk: float = _f(_REAL)
    log_hr_prior_3_4: float = _f(_REAL)
    log_hr_age_ge65: float = _f(_REAL)
    frailty_sd: float = _f(_NONNEGATIVE)


@dataclasses.dataclass(frozen=True)
class ExposureConfig:
    """[exposure]: how exposure and the latent factor lower the post-infusion hazard (ide-cel infused)."""

    log_hr_per_doubling_cmax: float = _f(_REAL)
    log_hr_latent: float = _f(_REAL)


@dataclasses.dataclass(frozen=True)
class ResponseConfig:
    """[response]: best response from a score ``-log-hazard predictor + noise`` cut at thresholds."""

    noise_sd: float = _f(_NONNEGATIVE)
    thresholds_ide_cel: tuple[float, ...] = _f(_DECREASING)
    thresholds_standard: tuple[float, ...] = _f(_DECREASING)
    min_months_to_response: float = _f(_NONNEGATIVE)


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


def _build_section(cls: type, table: Table):
    """One section's dataclass from its table: every field required, each checked, no unknown key."""
    hints = typing.get_type_hints(cls)
    accessors = {int: table.integer, float: table.number, tuple[float, ...]: table.numbers, tuple[str, ...]: table.strings}
    values = {f.name: accessors[hints[f.name]](f.name, **f.metadata["check"]) for f in dataclasses.fields(cls)}
    table.check_keys(values)
    return cls(**values)


def _check_consistency(cfg: KarMMa3Config, file: str) -> None:
    """Checks that involve more than one key; each message names the keys."""
    t = cfg.trial
    if t.n_not_infused >= t.n_ide_cel:
        raise spec_error(file, "[trial]", "n_not_infused", f"is not < n_ide_cel = {t.n_ide_cel}",
                         "fewer patients than randomised can go without infusion", value=t.n_not_infused)
    if t.cutoff_months < t.accrual_months:
        raise spec_error(file, "[trial]", "cutoff_months", f"is before the end of accrual, accrual_months = "
                         f"{t.accrual_months}", "give cutoff_months >= accrual_months", value=t.cutoff_months)
    i = cfg.infusion
    if not i.dose_min < i.dose_max:
        raise spec_error(file, "[infusion]", "dose_min", f"is not < dose_max = {i.dose_max}", "give dose_min < dose_max",
                         value=i.dose_min)
    if not i.bridging_min_days < i.bridging_max_days:
        raise spec_error(file, "[infusion]", "bridging_min_days", f"is not < bridging_max_days = {i.bridging_max_days}",
                         "give bridging_min_days < bridging_max_days", value=i.bridging_min_days)
    for name in ("pfs_standard", "pfs_not_infused", "pfs_ide_cel_infused"):
        h = getattr(cfg, name)
        if len(h.breaks_months) != len(h.hazard_per_month):
            raise spec_error(file, f"[{name}]", "breaks_months",
                             f"has {len(h.breaks_months)} entries but hazard_per_month has {len(h.hazard_per_month)}",
                             "give one hazard per piece", value=list(h.breaks_months))
    n_thr = len(RESPONSE_CATEGORIES) - 1
    for name in ("thresholds_ide_cel", "thresholds_standard"):
        values = getattr(cfg.response, name)
        if len(values) != n_thr:
            raise spec_error(file, "[response]", name, f"has {len(values)} entries",
                             f"give {n_thr} cut points between {', '.join(RESPONSE_CATEGORIES)}", value=list(values))


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
        names the file, the table and the key (e.g. ``[ck] lloq is missing; ...``).
    """
    path = Path(path) if path is not None else default_config_path()
    file = str(path)
    if not path.is_file():
        raise FileNotFoundError(f"virtual KarMMa-3 config not found: {file}")
    raw = path.read_bytes()
    doc = Table(parse_toml(raw, file), file=file)
    sections = {name: _build_section(cls, doc.table(name, required=True)) for name, cls in _SECTIONS.items()}
    doc.check_keys(_SECTIONS)
    cfg = KarMMa3Config(**sections, source=file, sha256=hashlib.sha256(raw).hexdigest())
    _check_consistency(cfg, file)
    return cfg
