"""Diagnostics of real-data layouts: a two-analyte CAR-T data set (transgene on log scale, a scaled flow count on a
linear additive-proportional scale) and a multiple-dose oral PK data set, both simulated from a known truth and
diagnosed with a posterior that is the truth (no NUTS).

Checks against independent computations: the PK PRED against the superposition formula written out here; the
flow IPRED and IWRES against the multiphasic closed form times the true scaling factor; NPDE against N(0, 1) by
a Kolmogorov-Smirnov test; the VPC bands of the truth against the observed percentiles.
"""

import copy

import jax
import matplotlib.pyplot as plt
import numpy as np
import pytest
from scipy import stats

from carkin._resources import resolve_shipped
from carkin._toml import read_toml
from carkin.diagnostics import goodness_of_fit, vpc
from carkin.models import Multiphasic
from carkin.plots import plot_gof, plot_individual_fits, plot_npde, plot_vpc
from carkin.population import spec_from_dict
from carkin.simulate import simulate_cohort

from .helpers import truth_fit

FLOW_SCALE, FLOW_SIGMA, FLOW_SIGMA_ADD = 0.004, 0.2, 0.3


def two_analyte_spec():
    """models/multiphasic.toml with a second analyte: a flow count (DVID 2) = 0.004 x transgene, additive +
    proportional error, LLOQ 0.5 cells/uL, sampled on days 7, 14, 28 and 90."""
    raw = copy.deepcopy(read_toml(resolve_shipped("multiphasic", "models"), what="model spec", example=""))
    raw.pop("residual")
    raw.pop("blq")
    raw["analytes"] = {
        "transgene": {"dvid": 1, "unit": "copies/ug", "residual": {"model": "additive_log"}},
        "flow": {"dvid": 2, "unit": "cells/uL", "scale": {"typical": FLOW_SCALE, "prior_sd": 1.0},
                 "residual": {"model": "additive_proportional"}},
    }
    raw["simulation"]["analytes"] = {"flow": {"times": [7, 14, 28, 90], "lloq": 0.5, "sigma": FLOW_SIGMA,
                                              "sigma_add": FLOW_SIGMA_ADD}}
    return spec_from_dict(raw, source="two_analytes.toml")


PK = {"cl": 2.0, "v": 30.0, "ka": 1.0}
PK_DOSE, PK_INTERVAL, PK_DOSES = 100.0, 12.0, 6


def pk_spec():
    """Oral one-compartment PK (CL, V, ka; hours), proportional error, 100 mg every 12 h x 6 (ADDL/II style)."""
    def parameter(typical):
        return {"transform": "log", "typical": typical, "prior_sd": 0.5, "omega_scale": 0.5}

    return spec_from_dict({
        "model": "pk_one_compartment", "time_unit": "h", "structure": {"route": "oral", "parameterization": "cl_v"},
        "parameters": {name: parameter(value) for name, value in PK.items()},
        "residual": {"model": "proportional"},
        "simulation": {"omega": {"cl": 0.3, "v": 0.2, "ka": 0.4}, "sigma": 0.15, "lloq": 0.05,
                       "times": [0.5, 1, 2, 4, 8, 11.9, 60.5, 61, 62, 64, 68, 72, 96],
                       "doses": {"amount": PK_DOSE, "interval": PK_INTERVAL, "number": PK_DOSES}},
    }, source="pk_oral.toml")


def _truth_setup(spec, n: int):
    """(spec, cohort, fit, gof): n patients simulated from the spec, a point-mass truth posterior, its GOF."""
    cohort = simulate_cohort(spec, key=jax.random.PRNGKey(0), n=n)
    fit = truth_fit(spec, cohort)
    gof = goodness_of_fit(fit, cohort.dataset, key=jax.random.PRNGKey(1), replicates=200)
    return spec, cohort, fit, gof


@pytest.fixture(scope="module")
def two():
    return _truth_setup(two_analyte_spec(), n=60)


@pytest.fixture(scope="module")
def pk():
    return _truth_setup(pk_spec(), n=40)


def _ks_pvalue(values, patients):
    """KS p-value of ``values`` against N(0, 1), conservative for records correlated within a patient: the
    statistic is referred to the KS distribution of one value per patient (fully correlated records)."""
    d = stats.kstest(values, "norm").statistic
    return float(stats.kstwo(patients).sf(d))


def test_two_analyte_npde_are_standard_normal_per_analyte(two):
    spec, cohort, _, gof = two
    assert gof.several and gof.labels.analytes == ("transgene", "flow")
    for k in range(2):
        mine = gof.analyte == k
        assert mine.sum() == (720, 240)[k]  # 12 transgene and 4 flow samples per patient
        assert _ks_pvalue(gof.npde[mine], cohort.dataset.n_patients) > 0.01
        s = gof.summary()["by_analyte"][spec.analytes[k].name]
        assert abs(s["npde_mean"]) < 0.2 and 0.8 < s["npde_sd"] < 1.2
        assert abs(s["iwres_mean"]) < 0.2 and 0.8 < s["iwres_sd"] < 1.2
    frame = gof.to_frame()
    assert list(frame.columns) == ["ID", "TIME", "ANALYTE", "DV", "BLQ", "PRED", "IPRED", "IRES", "IWRES", "NPDE"]


def test_flow_ipred_and_iwres_are_the_scaled_closed_form_and_its_additive_proportional_sd(two):
    _, cohort, _, gof = two
    flow = (gof.analyte == 1) & ~gof.blq
    individual = {name: np.asarray(v)[gof.patient[flow]] for name, v in cohort.individual.items()}
    c = np.exp(np.asarray(Multiphasic().log_concentration(individual, gof.times[flow])))
    np.testing.assert_allclose(gof.ipred[flow], FLOW_SCALE * c, rtol=1e-9)
    sd = np.sqrt(FLOW_SIGMA_ADD**2 + (FLOW_SIGMA * FLOW_SCALE * c) ** 2)
    np.testing.assert_allclose(gof.iwres[flow], (gof.dv[flow] - FLOW_SCALE * c) / sd, rtol=1e-7)
    transgene = (gof.analyte == 0) & ~gof.blq
    np.testing.assert_allclose(gof.iwres[transgene], np.log(gof.dv[transgene] / gof.ipred[transgene]) / 0.4, rtol=1e-7)


def test_two_analyte_vpc_has_one_stratum_per_analyte_on_its_scale_covering_the_observed(two):
    _, cohort, fit, gof = two
    result = vpc(fit, cohort.dataset, key=jax.random.PRNGKey(2), replicates=100)
    assert result.strata == ("transgene", "flow") and result.scale == ("log", "linear")
    assert result.unit == ("copies/ug", "cells/uL")
    np.testing.assert_array_equal(result.count.sum(axis=1), [720, 240])
    inside, shown = result.inside(), np.isfinite(result.observed)
    for s in range(2):  # the truth's bands hold the observed percentiles of data simulated from it
        assert inside[s][shown[s]].mean() >= 0.7, (s, inside[s][shown[s]].mean())
    assert 0.75 <= result.coverage() <= 1.0
    frame = result.to_frame()
    assert set(frame["analyte"]) == {"transgene", "flow"}
    # the table is in each analyte's unit: flow percentiles are linear values of the order of the flow DV
    flow_median = frame.loc[(frame["analyte"] == "flow") & (frame["quantile"] == 0.5), "observed"].dropna()
    assert 0 < flow_median.max() < gof.dv[gof.analyte == 1].max()


def test_two_analyte_plots_draw_each_analyte_on_its_own_scale(two):
    _, cohort, fit, gof = two
    fig = plot_gof(gof)
    axes = np.asarray(fig.axes).reshape(2, 4)
    assert [ax.get_yscale() for ax in axes[:, 0]] == ["log", "linear"]
    assert axes[1, 0].get_ylabel() == "DV, cells/uL"
    fig_npde = plot_npde(gof)
    assert len(fig_npde.axes) == 6
    fig_ind = plot_individual_fits(fit, cohort.dataset, patients=2)
    shown = [ax for ax in fig_ind.axes if ax.get_visible()]
    assert [ax.get_yscale() for ax in shown] == ["log", "linear", "log", "linear"]
    assert "flow" in shown[1].get_title()
    plt.close("all")


def _superposition(t, cl, v, ka):
    """Oral one-compartment concentration after PK_DOSES doses every PK_INTERVAL (Gibaldi & Perrier)."""
    ke = cl / v
    out = np.zeros_like(t)
    for d in range(PK_DOSES):
        dt = t - d * PK_INTERVAL
        out += np.where(dt > 0, PK_DOSE * ka / (v * (ka - ke)) * (np.exp(-ke * dt) - np.exp(-ka * dt)), 0.0)
    return out


def test_pk_pred_is_the_superposition_of_the_typical_doses_and_npde_are_standard_normal(pk):
    _, cohort, _, gof = pk
    assert not gof.several and gof.labels.time_unit == "h" and gof.labels.log_scale == (False,)
    np.testing.assert_allclose(gof.pred, _superposition(gof.times, **PK), rtol=1e-9)
    individual = {k: np.asarray(v)[gof.patient] for k, v in cohort.individual.items()}
    np.testing.assert_allclose(gof.ipred, _superposition(gof.times, **individual), rtol=1e-9)
    q = ~gof.blq
    np.testing.assert_allclose(gof.iwres[q], (gof.dv[q] - gof.ipred[q]) / (0.15 * gof.ipred[q]), rtol=1e-7)
    assert _ks_pvalue(gof.npde, cohort.dataset.n_patients) > 0.01


def test_pk_vpc_is_linear_in_hours_and_covers_the_observed(pk):
    _, cohort, fit, gof = pk
    result = vpc(fit, cohort.dataset, key=jax.random.PRNGKey(2), replicates=100)
    assert result.scale == ("linear",) and result.time_unit == "h"
    assert result.time_label == "time after the first dose, h"
    assert result.coverage() >= 0.7
    # prediction correction is multiplicative on a linear scale: the corrected observations are DV x
    # median PRED of the bin / PRED
    plain = vpc(fit, cohort.dataset, key=jax.random.PRNGKey(2), replicates=100, prediction_corrected=False)
    np.testing.assert_allclose(plain.points_value[~gof.blq], gof.dv[~gof.blq], rtol=1e-12)
    to_dict = result.to_dict()
    assert to_dict["time_unit"] == "h" and "edges_days" not in to_dict
    fig = plot_vpc(result)
    assert fig.axes[0].get_yscale() == "linear" and fig.axes[0].get_xscale() == "linear"
    assert plot_individual_fits(fit, cohort.dataset, patients=2).axes[0].get_xlabel() == "time after the first dose, h"
    plt.close("all")
