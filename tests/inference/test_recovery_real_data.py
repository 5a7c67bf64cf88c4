"""Parameter recovery on real-data layouts simulated with known truth (issue #20's evidence): a two-analyte CAR-T
fit (transgene + a scaled flow count), a multiple-dose oral PK fit (6 doses every 12 h) and a co-medication
effect on the expansion.

All slow (minutes each on 2 cores; run with ``pytest -m slow``). One small data set each, short chains: every checked
quantity's truth lies inside its posterior interval at a family-wise level of 95% (Bonferroni over the quantities
checked). Coverage: several replicate data sets; the 90% intervals cover the truth at a rate consistent with the
binomial (two-sided binomial test at the 1% level).
"""

import copy
import warnings
from pathlib import Path

import jax
import numpy as np
import pytest
from scipy import stats

from carkin._resources import resolve_shipped
from carkin._toml import read_toml
from carkin.data import load_dataset, write_ck
from carkin.errors import ConvergenceWarning
from carkin.inference import SamplerSettings, fit, population_draws
from carkin.population import spec_from_dict
from carkin.simulate import simulate_cohort

FAST = SamplerSettings(chains=2, warmup=200, samples=200, progress_bar=False)


def multiphasic_raw() -> dict:
    """models/multiphasic.toml without the tumour-burden covariate (a smaller model: short chains suffice)."""
    raw = copy.deepcopy(read_toml(resolve_shipped("multiphasic", "models"), what="model spec", example=""))
    raw["covariates"].pop("tumor_burden")
    raw["simulation"]["effects"].pop("beta_tumor_burden_cmax")
    raw["simulation"]["covariates"].pop("TUMOR_BURDEN")
    return raw


def two_analyte_spec():
    """Transgene (DVID 1, additive_log, LLOQ 18) and a flow count (DVID 2) = 0.004 x transgene with additive +
    proportional error (LLOQ 0.5 cells/uL, days 7, 14, 28, 90)."""
    raw = multiphasic_raw()
    raw.pop("residual")
    raw.pop("blq")
    raw["analytes"] = {
        "transgene": {"dvid": 1, "unit": "copies/ug", "residual": {"model": "additive_log"}},
        "flow": {"dvid": 2, "unit": "cells/uL", "scale": {"typical": 0.01, "prior_sd": 2.0},
                 "residual": {"model": "additive_proportional", "sigma_add_scale": 2.0}},
    }
    raw["simulation"]["analytes"] = {"flow": {"times": [7, 14, 28, 90], "lloq": 0.5, "sigma": 0.2, "sigma_add": 0.3,
                                              "scale": 0.004}}
    return spec_from_dict(raw, source="two_analytes.toml")


TWO_TRUTH = {"typical_cmax": 24000.0, "typical_tmax": 11.0, "typical_rho": 0.752, "scale_flow": 0.004,
             "sigma_transgene": 0.4, "sigma_flow": 0.2, "sigma_add_flow": 0.3}


def pk_spec():
    """Oral one-compartment PK (CL 2, V 30, ka 1; hours), 100 mg every 12 h x 6 (ADDL = 5, II = 12), proportional
    error 15%, sampled after the first and the last dose."""
    def parameter(typical):
        return {"transform": "log", "typical": typical, "prior_sd": 1.0, "omega_scale": 0.5}

    return spec_from_dict({
        "model": "pk_one_compartment", "time_unit": "h", "structure": {"route": "oral", "parameterization": "cl_v"},
        "parameters": {"cl": parameter(2.0), "v": parameter(30.0), "ka": parameter(1.0)},
        "residual": {"model": "proportional"},
        "simulation": {"omega": {"cl": 0.3, "v": 0.2, "ka": 0.4}, "sigma": 0.15, "lloq": 0.05,
                       "times": [0.5, 1, 2, 4, 8, 11.9, 60.5, 61, 62, 64, 68, 72, 96],
                       "doses": {"amount": 100.0, "interval": 12.0, "number": 6}},
    }, source="pk_oral_md.toml")


PK_TRUTH = {"typical_cl": 2.0, "typical_v": 30.0, "typical_ka": 1.0, "omega_cl": 0.3, "sigma": 0.15}

COMED_GAMMA = -0.7  # the co-medication cuts the expansion rate to exp(-0.7) = 50%


def comedication_spec():
    """Multiphasic with a co-medication (start column TOCI_DAY) multiplying the expansion rate by exp(gamma) from
    its start on; half the patients receive it, at a median of day 3."""
    raw = multiphasic_raw()
    raw["comedication"] = {"toci": {"start_column": "TOCI_DAY", "effects": ["expansion"], "prior_sd": 1.0}}
    raw["simulation"]["gamma"] = {"gamma_toci_expansion": COMED_GAMMA}
    raw["simulation"]["comedication"] = {"toci": {"probability": 0.5,
                                                  "start": {"median": 3.0, "log_sd": 0.4, "low": 1.0, "high": 8.0}}}
    return spec_from_dict(raw, source="comedication.toml")


COMED_TRUTH = {"gamma_toci_expansion": COMED_GAMMA, "typical_rho": 0.752, "typical_cmax": 24000.0}


def intervals(spec, dataset, truth: dict, *, seed: int, settings: SamplerSettings, level: float) -> dict:
    """Fit ``dataset``; return {name: (true value, lower, upper)} of the central ``level`` posterior intervals."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # short chains; recovery is what is tested here
        result = fit(dataset, spec, seed=seed, settings=settings)
    draws = population_draws(result.idata.posterior, spec)
    tail = (1 - level) / 2
    return {name: (value, *np.quantile(np.asarray(draws[name]).ravel(), [tail, 1 - tail]))
            for name, value in truth.items()}


def familywise(spec, seed: int, n: int, truth: dict, settings: SamplerSettings = FAST):
    """Intervals of one simulated data set at a family-wise 95% level over the checked quantities."""
    cohort = simulate_cohort(spec, key=jax.random.PRNGKey(seed), n=n)
    return cohort, intervals(spec, cohort.dataset, truth, seed=seed, settings=settings, level=1 - 0.05 / len(truth))


def assert_covered(found: dict):
    missed = {name: (t, lo, hi) for name, (t, lo, hi) in found.items() if not lo <= t <= hi}
    assert not missed, f"truth outside the interval: {missed}"


@pytest.mark.slow  # minutes on 2 cores: the default run keeps the exact likelihood and diagnostics tests
def test_two_analyte_fit_recovers_the_flow_scaling_factor_and_both_error_models():
    spec = two_analyte_spec()
    cohort, found = familywise(spec, seed=3, n=40, truth=TWO_TRUTH)
    assert set(np.unique(np.asarray(cohort.dataset.analyte)[np.asarray(cohort.dataset.obs_mask)])) == {1.0, 2.0}
    assert_covered(found)


def as_addl(dataset, path: Path, spec):
    """``dataset`` written as a NONMEM file whose regimen is one dose record per patient with ADDL = 5, II = 12
    (the other dose records removed), read back with ``spec``."""
    write_ck(path, dataset)
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    header = lines[0].split(",")
    evid, time = header.index("EVID"), header.index("TIME")
    out = [lines[0] + ",ADDL,II"]
    for line in lines[1:]:
        row = line.split(",")
        if row[evid] != "1":
            out.append(line + ",.,.")
        elif float(row[time]) == 0.0:  # the first dose carries the regimen
            out.append(line + ",5,12")
    path.write_text("\n".join(out) + "\n")
    return load_dataset(path, spec=spec, verbose=False)


@pytest.mark.slow  # minutes on 2 cores: the default run keeps the exact likelihood and diagnostics tests
def test_multiple_dose_pk_fit_from_addl_ii_records_recovers_clearance_volume_and_absorption(tmp_path):
    spec = pk_spec()
    cohort = simulate_cohort(spec, key=jax.random.PRNGKey(4), n=24)
    dataset = as_addl(cohort.dataset, tmp_path / "pk.csv", spec)
    # ADDL/II expand to the simulated regimen: 6 doses at 0, 12, ..., 60 h
    np.testing.assert_array_equal(np.asarray(dataset.doses.time), np.asarray(cohort.dataset.doses.time))
    np.testing.assert_array_equal(np.asarray(dataset.dv), np.asarray(cohort.dataset.dv))
    found = intervals(spec, dataset, PK_TRUTH, seed=4, settings=FAST, level=1 - 0.05 / len(PK_TRUTH))
    assert_covered(found)


@pytest.mark.slow  # minutes on 2 cores: the default run keeps the exact likelihood and diagnostics tests
def test_comedication_fit_recovers_the_expansion_effect():
    spec = comedication_spec()
    cohort, found = familywise(spec, seed=5, n=60, truth=COMED_TRUTH)
    received = np.isfinite(cohort.covariates["TOCI_DAY"])
    assert 0.3 < received.mean() < 0.7
    assert_covered(found)


def _coverage(spec, truth: dict, seeds, n: int, settings: SamplerSettings):
    hits = total = 0
    for seed in seeds:
        cohort = simulate_cohort(spec, key=jax.random.PRNGKey(1000 + seed), n=n)
        for t, lo, hi in intervals(spec, cohort.dataset, truth, seed=seed, settings=settings, level=0.9).values():
            hits += lo <= t <= hi
            total += 1
    return hits, total


SLOW = SamplerSettings(chains=2, warmup=300, samples=300, progress_bar=False)


def _assert_binomial(hits: int, total: int):
    # two-sided exact binomial test of the coverage rate against 0.9 (intervals of one data set are correlated,
    # so this is lenient on purpose: 1% level)
    p = stats.binomtest(hits, total, 0.9).pvalue
    assert p > 0.01, f"90% intervals covered the truth {hits}/{total} times (binomial p = {p:.3g})"


@pytest.mark.slow
def test_two_analyte_ninety_percent_intervals_cover_at_the_nominal_rate():
    _assert_binomial(*_coverage(two_analyte_spec(), TWO_TRUTH, range(8), n=40, settings=SLOW))


@pytest.mark.slow
def test_multiple_dose_pk_ninety_percent_intervals_cover_at_the_nominal_rate():
    _assert_binomial(*_coverage(pk_spec(), PK_TRUTH, range(10), n=24, settings=SLOW))


@pytest.mark.slow
def test_comedication_ninety_percent_intervals_cover_at_the_nominal_rate():
    _assert_binomial(*_coverage(comedication_spec(), COMED_TRUTH, range(8), n=60, settings=SLOW))
