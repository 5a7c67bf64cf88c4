"""fit(): dispatch, settings validation, gates, determinism, artefacts on disk."""

import dataclasses
import json
import warnings

import arviz as az
import jax
import numpy as np
import pytest

from carkin.errors import ConvergenceWarning
from carkin.inference import Gates, SamplerSettings, atomic_directory, fit, load_fit, save_fit
from carkin.population import load_spec
from carkin.simulate import simulate_cohort


@pytest.fixture(scope="module")
def spec():
    return load_spec("multiphasic")


@pytest.fixture(scope="module")
def cohort(spec):
    return simulate_cohort(spec, key=jax.random.PRNGKey(11), n=40)


QUICK = SamplerSettings(chains=2, warmup=150, samples=150, progress_bar=False)


@pytest.fixture(scope="module")
def quick_fit(spec, cohort):
    with pytest.warns(ConvergenceWarning):  # 2 x 150 draws cannot reach ESS 400
        return fit(cohort.dataset, spec, seed=3, settings=QUICK)


def test_unknown_method_lists_the_valid_ones(spec, cohort):
    with pytest.raises(ValueError, match="unknown method 'hmc' .*valid: nuts, laplace, svi, map"):
        fit(cohort.dataset, spec, method="hmc")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(chains=0), "chains must be a positive integer"),
        (dict(warmup=-1), "warmup must be a non-negative integer"),
        (dict(target_accept=1.2), r"target_accept must lie in \(0, 1\)"),
        (dict(chain_method="pmap"), "chain_method = 'pmap'; choose auto, parallel, vectorized or sequential"),
    ],
)
def test_invalid_sampler_settings_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SamplerSettings(**kwargs)


def test_short_run_fails_its_gates_loudly_and_says_why(quick_fit):
    diag = quick_fit.manifest["diagnostics"]
    assert not quick_fit.converged and not diag["passed"]
    assert any("ESS" in failure for failure in diag["failures"])
    assert "FAILED" in repr(quick_fit)


def test_gates_are_judged_against_their_thresholds(quick_fit):
    from carkin.inference._run import _judge

    info = {"divergences": 0}
    relaxed = Gates(max_r_hat=1.5, min_ess_bulk=10, min_ess_tail=10, max_divergences=10)
    assert _judge(quick_fit.table, info, relaxed, "nuts")["passed"]
    strict = _judge(quick_fit.table, {"divergences": 3}, Gates(max_divergences=2), "nuts")
    assert "3 divergent transitions > 2" in strict["failures"]


def test_same_seed_gives_identical_draws(spec, cohort, quick_fit):
    with pytest.warns(ConvergenceWarning):
        again = fit(cohort.dataset, spec, seed=3, settings=QUICK)
    np.testing.assert_array_equal(again.idata.posterior["mu"].values, quick_fit.idata.posterior["mu"].values)


@pytest.mark.slow  # minutes on 2 cores (a NUTS or joint fit); run with pytest -m slow
def test_whitened_and_plain_nuts_sample_the_same_posterior(spec, cohort, quick_fit):
    """The default NUTS warms up in two stages and samples whitened individual parameters (`Whitening`); the
    posterior must be the spec's: posterior means agree with a one-stage run within Monte Carlo error."""
    diag = quick_fit.manifest["diagnostics"]
    assert diag["whitening"] and diag["warmup_stages"] == [75, 75] and "phi_z" in quick_fit.idata.posterior
    assert diag["restarted_patients"] == []  # a unimodal posterior: no chain is stranded for any patient
    settings = SamplerSettings(chains=2, warmup=200, samples=400, progress_bar=False)
    runs = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for whitening in (True, False):
            runs[whitening] = fit(cohort.dataset, spec, seed=5,
                                  settings=dataclasses.replace(settings, whitening=whitening))
    assert not runs[False].manifest["diagnostics"]["whitening"] and "phi_z" not in runs[False].idata.posterior
    assert runs[True].manifest["diagnostics"]["restarted_patients"] == []
    z = {}
    for name in ("mu", "omega", "beta", "sigma"):
        a, b = (runs[w].idata.posterior[name] for w in (True, False))
        mcse = [np.asarray(az.mcse(r.idata, var_names=[name])[name].values) for r in (runs[True], runs[False])]
        diff = np.asarray(a.mean(("chain", "draw")).values - b.mean(("chain", "draw")).values)
        z[name] = np.abs(diff) / np.sqrt(mcse[0] ** 2 + mcse[1] ** 2)
    assert max(float(v.max()) for v in z.values()) < 4.5, z
    # and the whitened run mixes better on this problem (min bulk ESS over the population parameters)
    ess = {w: runs[w].manifest["diagnostics"]["min_ess_bulk"] for w in runs}
    assert ess[True] > ess[False], ess


def test_parameter_table_has_the_documented_columns_and_rows(spec, quick_fit):
    table = quick_fit.summary()
    assert list(table.columns) == ["parameter", "mean", "sd", "q05", "q50", "q95", "r_hat", "ess_bulk", "ess_tail"]
    expected = {f"typical_{n}" for n in spec.parameter_names} | {"typical_alpha", "typical_foldx"}
    expected |= {f"omega_{n}" for n in spec.parameter_names} | set(spec.effect_names) | {"sigma"}
    assert set(table.parameter) == expected
    alpha = table.set_index("parameter").loc[["typical_alpha", "typical_beta", "typical_delta"], "mean"]
    assert alpha["typical_alpha"] == pytest.approx(alpha["typical_beta"] + alpha["typical_delta"], rel=1e-9)


SLOW = pytest.mark.slow  # minutes on 2 cores


@pytest.mark.parametrize("method", [pytest.param("laplace", marks=SLOW), pytest.param("svi", marks=SLOW), "map"])
def test_approximate_methods_run_and_are_flagged_as_approximations(spec, cohort, method):
    settings = SamplerSettings(steps=1500, samples=200, learning_rate=0.02, progress_bar=False)
    with pytest.warns(ConvergenceWarning, match="approximation"):
        result = fit(cohort.dataset, spec, seed=0, method=method, settings=settings)
    assert result.method == method and not result.converged
    typical_tmax = result.table.set_index("parameter").loc["typical_tmax", "q50"]
    assert typical_tmax == pytest.approx(11.0, rel=0.15)  # truth 11 d; optimisers get near it


def test_save_and_load_round_trip(tmp_path, quick_fit):
    out = save_fit(quick_fit, tmp_path / "run")
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "parameters.csv", "posterior.nc"]
    loaded = load_fit(out)
    np.testing.assert_allclose(loaded.table["mean"], quick_fit.table["mean"], rtol=1e-9)
    np.testing.assert_array_equal(loaded.idata.posterior["phi"].values, quick_fit.idata.posterior["phi"].values)
    assert loaded.patient_ids == quick_fit.patient_ids
    manifest = json.loads((out / "manifest.json").read_text())
    for key in ("seed", "settings", "model", "data", "versions", "diagnostics"):
        assert key in manifest


def test_the_manifest_records_the_datas_lloq(quick_fit, cohort):
    """Dose scenarios censor their simulated observations at it (carkin.simulate.scenario_lloq)."""
    import equinox as eqx

    from carkin.inference._run import _data_lloq

    spec_lloq = quick_fit.spec.simulation["lloq"]  # the cohort was simulated with models/multiphasic.toml's
    assert quick_fit.manifest["data"]["lloq"] == spec_lloq
    lloq = np.asarray(cohort.dataset.lloq).copy()
    lloq[:5] = 20.0
    lloq[5:8] = np.nan  # quantified records given no LLOQ do not count
    assert _data_lloq(eqx.tree_at(lambda d: d.lloq, cohort.dataset, jax.numpy.asarray(lloq))) == spec_lloq
    assert _data_lloq(eqx.tree_at(lambda d: d.lloq, cohort.dataset, jax.numpy.full(lloq.shape, np.nan))) is None


def test_load_fit_names_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest.json is missing"):
        load_fit(tmp_path)


def test_interrupted_write_leaves_no_directory_behind(tmp_path):
    target = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        with atomic_directory(target) as tmp:
            (tmp / "half.csv").write_text("x")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_rewrite_replaces_a_previous_run_of_the_same_writer(tmp_path):
    target = tmp_path / "run"
    for text in ("old", "new"):
        with atomic_directory(target) as tmp:
            (tmp / "result.txt").write_text(text)
    assert (target / "result.txt").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_a_folder_with_other_files_is_never_replaced(tmp_path):
    target = tmp_path / "precious"
    target.mkdir()
    (target / "thesis.tex").write_text("years of work")
    with pytest.raises(FileExistsError, match=r"holds files this command did not write \(thesis.tex\)"):
        with atomic_directory(target) as tmp:
            (tmp / "result.txt").write_text("x")
    with pytest.raises(FileExistsError, match="thesis.tex"):
        with atomic_directory(target, owned=("result.txt",)):
            pass
    assert (target / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious"]
