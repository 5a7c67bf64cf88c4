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

__all__ = ["MAX_GRADE", "RESPONSE_CATEGORIES", "KarMMa3Config", "default_config_path", "load_karmma3_config"]

#: Highest grade of the CRS and neurotoxicity models (grade 5, death, is not modelled separately).
MAX_GRADE = 4

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
_INCREASING = {"increasing": True}
_PROBABILITIES = {"ge": 0, "le": 1}


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
class CRSConfig:
    """[crs]: cytokine release syndrome of the infused, an ordinal (proportional-odds) model of the maximal grade.

    ``P(grade >= k) = sigmoid(eta - thresholds[k-1])``, ``eta = log_or_per_doubling_cmax * log2(cmax /
    cmax_typical) + log_or_burden * x_burden``; onset and duration log-normal (whole days).
    """

    log_or_per_doubling_cmax: float = _f(_REAL)
    log_or_burden: float = _f(_REAL)
    thresholds: tuple[float, ...] = _f(_INCREASING)
    onset_median_days: float = _f(_POSITIVE)
    onset_sd_log: float = _f(_NONNEGATIVE)
    duration_median_days: float = _f(_POSITIVE)
    duration_sd_log: float = _f(_NONNEGATIVE)
    duration_log_per_grade: float = _f(_REAL)


@dataclasses.dataclass(frozen=True)
class NeurotoxicityConfig:
    """[neurotoxicity]: investigator-identified neurotoxicity of the infused, an ordinal model like [crs] with
    the CRS grade as a predictor (``eta = log_or_per_doubling_cmax * log2(cmax / cmax_typical) +
    log_or_per_crs_grade * CRS grade``)."""

    log_or_per_doubling_cmax: float = _f(_REAL)
    log_or_per_crs_grade: float = _f(_REAL)
    thresholds: tuple[float, ...] = _f(_INCREASING)
    onset_median_days: float = _f(_POSITIVE)
    onset_sd_log: float = _f(_NONNEGATIVE)
    duration_median_days: float = _f(_POSITIVE)
    duration_sd_log: float = _f(_NONNEGATIVE)


@dataclasses.dataclass(frozen=True)
class TocilizumabConfig:
    """[tocilizumab]: given for CRS with a probability by maximal grade (1-4), started whole days after onset."""

    p_by_crs_grade: tuple[float, ...] = _f(_PROBABILITIES)
    delay_mean_days: float = _f(_NONNEGATIVE)


@dataclasses.dataclass(frozen=True)
class CorticosteroidConfig:
    """[corticosteroids]: given for CRS (probability by grade, after tocilizumab) or for neurotoxicity."""

    p_by_crs_grade: tuple[float, ...] = _f(_PROBABILITIES)
    p_neurotoxicity: float = _f(_FRACTION)
    crs_delay_mean_days: float = _f(_NONNEGATIVE)
    nt_delay_mean_days: float = _f(_NONNEGATIVE)


@dataclasses.dataclass(frozen=True)
class MarkerConfig:
    """[marker]: serum M-protein (g/dL) of the infused, from infusion to the end of PFS follow-up."""

    baseline_floor_g_dl: float = _f(_NONNEGATIVE)
    baseline_typical_g_dl: float = _f(_POSITIVE)
    baseline_log_per_log_burden: float = _f(_REAL)
    baseline_sd_log: float = _f(_NONNEGATIVE)
    decline_half_life_days: float = _f(_POSITIVE)
    decline_sd_log: float = _f(_NONNEGATIVE)
    nadir_fraction_low: tuple[float, ...] = _f(_POSITIVE)
    nadir_fraction_high: tuple[float, ...] = _f(_POSITIVE)
    progression_relative_increase: float = _f(_NONNEGATIVE)
    progression_min_increase_g_dl: float = _f(_POSITIVE)
    regrowth_doubling_days: float = _f(_POSITIVE)
    residual_sd: float = _f(_NONNEGATIVE)
    lloq_g_dl: float = _f(_POSITIVE)
    missing_sample_prob: float = _f(_FRACTION)
    interval_months: float = _f(_POSITIVE)
    last_month: float = _f(_POSITIVE)


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
    crs: CRSConfig
    neurotoxicity: NeurotoxicityConfig
    tocilizumab: TocilizumabConfig
    corticosteroids: CorticosteroidConfig
    marker: MarkerConfig
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
    accessors = {
        int: table.integer, float: table.number, tuple[float, ...]: table.numbers, tuple[str, ...]: table.strings
    }
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
        raise spec_error(
            file,
            "[infusion]",
            "dose_min",
            f"is not < dose_max = {i.dose_max}",
            "give dose_min < dose_max",
            value=i.dose_min,
        )
    if not i.bridging_min_days < i.bridging_max_days:
        raise spec_error(file, "[infusion]", "bridging_min_days", f"is not < bridging_max_days = {i.bridging_max_days}",
                         "give bridging_min_days < bridging_max_days", value=i.bridging_min_days)
    for name in ("pfs_standard", "pfs_not_infused", "pfs_ide_cel_infused"):
        h = getattr(cfg, name)
        if len(h.breaks_months) != len(h.hazard_per_month):
            raise spec_error(file, f"[{name}]", "breaks_months",
                             f"has {len(h.breaks_months)} entries but hazard_per_month has {len(h.hazard_per_month)}",
                             "give one hazard per piece", value=list(h.breaks_months))
    for name in ("crs", "neurotoxicity"):
        thresholds = getattr(cfg, name).thresholds
        if len(thresholds) != MAX_GRADE:
            raise spec_error(file, f"[{name}]", "thresholds", f"has {len(thresholds)} entries",
                             f"give {MAX_GRADE} increasing cut points, one per grade 1-{MAX_GRADE}",
                             value=list(thresholds))
    for name in ("tocilizumab", "corticosteroids"):
        values = getattr(cfg, name).p_by_crs_grade
        if len(values) != MAX_GRADE:
            raise spec_error(file, f"[{name}]", "p_by_crs_grade", f"has {len(values)} entries",
                             f"give {MAX_GRADE} probabilities, one per CRS grade 1-{MAX_GRADE}", value=list(values))
    m = cfg.marker
    for name in ("nadir_fraction_low", "nadir_fraction_high"):
        values = getattr(m, name)
        if len(values) != len(RESPONSE_CATEGORIES):
            raise spec_error(file, "[marker]", name, f"has {len(values)} entries",
                             f"give one per best response {', '.join(RESPONSE_CATEGORIES)}", value=list(values))
    if any(lo > hi for lo, hi in zip(m.nadir_fraction_low, m.nadir_fraction_high, strict=True)):
        raise spec_error(file, "[marker]", "nadir_fraction_low", "exceeds nadir_fraction_high for some category",
                         "give low <= high for every best response", value=list(m.nadir_fraction_low))
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
