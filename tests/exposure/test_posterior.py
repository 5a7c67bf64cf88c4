"""Posterior exposures from a Fit: shapes, summary table, plug-in values, LLOQ and dataset checks."""

import arviz as az
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from carkin.exposure import PosteriorExposure, exposure_metrics, posterior_exposures
from carkin.inference import Fit
from carkin.models import Multiphasic
from carkin.population import load_spec, natural_parameters
from carkin.population._spec import to_transformed
from tests.helpers import small_dataset


def fake_fit(n_chains=2, n_draws=50, simulated=True, seed=0):
    """A Fit with random phi draws around the spec's typical values for the two patients of small_dataset."""
    spec = load_spec("multiphasic")
    rng = np.random.default_rng(seed)
    mu = np.array([to_transformed(p.transform, p.typical) for p in spec.parameters])
    phi = mu + 0.3 * rng.standard_normal((n_chains, n_draws, 2, len(mu)))
    idata = az.from_dict(
        posterior={"phi": phi},
        coords={"patient": ["A", "B"], "parameter": list(spec.parameter_names)},
        dims={"phi": ["patient", "parameter"]},
    )
    manifest = {"method": "nuts", "data": {"simulated": simulated}}
    return Fit(idata=idata, spec=spec, manifest=manifest, table=pd.DataFrame(), patient_ids=("A", "B"))


def test_draws_have_chains_draws_patients_and_match_the_metric_function():
    fit = fake_fit()
    ex = posterior_exposures(fit, small_dataset(), metrics=["cmax", "auc28", "persistence"])
    assert ex.draws["auc28"].shape == (2, 50, 2) and ex.n_samples == 100
    individual = natural_parameters(fit.spec, jnp.asarray(fit.idata.posterior["phi"].values))
    expected = exposure_metrics(Multiphasic(), individual, ["auc28"])["auc28"]
    np.testing.assert_allclose(ex.draws["auc28"], expected)
    np.testing.assert_allclose(ex.lloq, [10.0, 10.0])
    np.testing.assert_allclose(ex.dose, [450.0, 300.0])
    assert ex.method == "closed-form" and ex.simulated and not ex.draws["cmax"].flags.writeable


def test_summary_is_a_long_table_with_mean_sd_and_the_90_percent_interval():
    ex = posterior_exposures(fake_fit(), small_dataset(), metrics=["cmax", "tmax"])
    table = ex.summary()
    assert list(table.columns) == ["ID", "metric", "label", "unit", "mean", "sd", "q05", "q50", "q95"]
    assert len(table) == 4
    row = table[(table.ID == "B") & (table.metric == "cmax")].iloc[0]
    x = ex.values("cmax")[:, 1]
    assert row.q50 == pytest.approx(np.median(x)) and row.q05 == pytest.approx(np.quantile(x, 0.05))
    np.testing.assert_allclose(ex.plug_in("cmax"), np.median(ex.values("cmax"), axis=0))


def test_thinning_keeps_evenly_spaced_draws():
    ex = posterior_exposures(fake_fit(), metrics=["cmax"], max_draws=10)
    assert ex.draws["cmax"].shape == (2, 10, 2)


def test_persistence_without_any_lloq_is_refused():
    with pytest.raises(ValueError, match="need the LLOQ"):
        posterior_exposures(fake_fit(), metrics=["persistence"])


def test_a_dataset_of_other_patients_is_refused():
    fit = fake_fit()
    fit = Fit(idata=fit.idata, spec=fit.spec, manifest=fit.manifest, table=fit.table, patient_ids=("B", "A"))
    with pytest.raises(ValueError, match="are not the fit's"):
        posterior_exposures(fit, small_dataset(), metrics=["cmax"])


def test_subset_and_values_given_directly():
    ex = posterior_exposures(fake_fit(), small_dataset(), metrics=["cmax"])
    sub = ex.subset(["B"])
    np.testing.assert_allclose(sub.values("cmax")[:, 0], ex.values("cmax")[:, 1])
    given = PosteriorExposure.from_values(["x", "y"], {"cmax": np.array([1.0, 2.0])})
    assert given.values("cmax").shape == (1, 2) and given.method == "given"
    with pytest.raises(ValueError, match="must have shape"):
        PosteriorExposure.from_values(["x"], {"cmax": np.ones((2, 3))})
    with pytest.raises(KeyError, match="was not computed"):
        ex.metric("auc28")
