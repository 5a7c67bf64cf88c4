"""The population likelihood of real data sets: PK models with dosing histories, several analytes, linear-scale
error models, each checked against a hand computation with scipy on the same records."""

import math

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from carkin._resources import shipped_data_file
from carkin.data import load_dataset
from carkin.errors import SpecError
from carkin.models import Multiphasic
from carkin.population import log_likelihood, patient_log_likelihood, prepare, spec_from_dict

PARAMETER = {"transform": "log", "typical": 1.0, "prior_sd": 1.0, "omega_scale": 1.0}
MULTIPHASIC = {n: {**PARAMETER} for n in ("cmax", "tmax", "rho", "beta", "delta")}
MULTIPHASIC["fb"] = {"transform": "logit", "typical": 0.01, "prior_sd": 1.0, "omega_scale": 1.0}


def _write(tmp_path, text, name="ck.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


class TestTheophylline:
    """Theoph with the nlme SSfol model: the likelihood is the normal density of DV around R's formula."""

    @pytest.fixture(scope="class")
    def setup(self):
        spec = spec_from_dict({
            "model": "pk_one_compartment", "structure": {"route": "oral", "parameterization": "ssfol"},
            "parameters": {n: dict(PARAMETER) for n in ("ke", "ka", "cl")}, "residual": {"model": "additive"},
        }, source="theoph.toml")
        dataset = load_dataset(shipped_data_file("theophylline", "theophylline.csv"), spec=spec, verbose=False)
        return spec, dataset

    def test_the_log_likelihood_is_the_normal_density_around_ssfol(self, setup):
        spec, dataset = setup
        data = prepare(dataset, spec)
        rng = np.random.default_rng(0)
        # per subject lKe, lKa, lCl near the nlme estimates (Pinheiro & Bates 2000, sec. 8.2)
        phi = np.column_stack([-2.45 + 0.1 * rng.normal(size=12), 0.47 + 0.6 * rng.normal(size=12),
                               -3.23 + 0.2 * rng.normal(size=12)])
        sigma_add = 0.7
        dose = np.asarray(dataset.dose)
        expected = 0.0
        mask = np.asarray(dataset.obs_mask)
        for i in range(12):
            lke, lka, lcl = phi[i]
            t = np.asarray(dataset.times)[i][mask[i]]
            conc = (dose[i] * math.exp(lke + lka - lcl) * (np.exp(-math.exp(lke) * t) - np.exp(-math.exp(lka) * t))
                    / (math.exp(lka) - math.exp(lke)))
            expected += stats.norm.logpdf(np.asarray(dataset.dv)[i][mask[i]], conc, sigma_add).sum()
        got = log_likelihood(spec, data, jnp.asarray(phi), None, sigma_add)
        assert float(got) == pytest.approx(expected, rel=1e-12)
        per_patient = patient_log_likelihood(spec, data, jnp.asarray(phi), None, sigma_add)
        assert float(per_patient.sum()) == pytest.approx(expected, rel=1e-12)

    def test_a_log_scale_error_model_refuses_the_zero_concentrations_with_their_row(self, setup):
        spec, dataset = setup
        with pytest.raises(
            SpecError,
            match=r"log-scale error model \(additive_log\), but the data .*row 16\) have DV = 0 on a "
            r"quantified observation \(9 in all\)",
        ):
            prepare(dataset, spec.replace(residual="additive_log"))


class TestTwoAnalytes:
    CK = ("ID,TIME,DV,EVID,AMT,MDV,DVID,BLQ,LLOQ\n"
          "1,0,.,1,450,1,.,0,.\n1,5,800,0,.,0,1,0,10\n1,5,3.5,0,.,0,2,0,1\n1,20,2000,0,.,0,1,0,10\n1,20,1,0,.,0,2,1,1\n"
          "2,0,.,1,300,1,.,0,.\n2,7,150,0,.,0,1,0,10\n2,40,10,0,.,0,1,1,10\n2,40,0.2,0,.,0,2,0,1\n")

    @pytest.fixture(scope="class")
    def spec(self):
        return spec_from_dict({
            "model": "multiphasic", "parameters": MULTIPHASIC,
            "analytes": {
                "transgene": {"dvid": 1, "residual": {"model": "additive_log"}},
                "flow": {"dvid": 2, "scale": {"typical": 0.01, "prior_sd": 2.0},
                         "residual": {"model": "additive_proportional"}},
            },
        }, source="two.toml")

    def test_each_record_gets_its_analytes_error_model_scale_and_m3(self, spec, tmp_path):
        dataset = load_dataset(_write(tmp_path, self.CK), spec=spec, verbose=False)
        data = prepare(dataset, spec)
        phi = jnp.log(jnp.asarray([[20000.0, 11.0, 0.75, 0.003, 0.15, 0.01], [5000.0, 9.0, 0.6, 0.004, 0.2, 0.02]]))
        phi = phi.at[:, 5].set(jnp.log(jnp.asarray([0.01, 0.02]) / (1 - jnp.asarray([0.01, 0.02]))))
        sigma = jnp.asarray([0.4, 0.25])  # transgene: log SD; flow: proportional coefficient
        sigma_add = jnp.asarray([99.0, 0.3])  # unused by the transgene's error model
        log_scale = jnp.asarray([0.0, math.log(0.004)])
        got = float(log_likelihood(spec, data, phi, sigma, sigma_add, log_scale=log_scale))

        model = Multiphasic()
        individual = {n: np.asarray(v) for n, v in zip(("cmax", "tmax", "rho", "beta", "delta", "fb"),
                      [np.exp(phi[:, 0]), np.exp(phi[:, 1]), np.exp(phi[:, 2]), np.exp(phi[:, 3]), np.exp(phi[:, 4]),
                       1 / (1 + np.exp(-phi[:, 5]))], strict=True)}

        def conc(i, t):
            return float(np.exp(model.log_concentration({k: v[i] for k, v in individual.items()}, t)))

        expected = (
            stats.norm.logpdf(math.log(800), math.log(conc(0, 5)), 0.4)
            + stats.norm.logpdf(3.5, 0.004 * conc(0, 5), math.sqrt(0.3**2 + (0.25 * 0.004 * conc(0, 5)) ** 2))
            + stats.norm.logpdf(math.log(2000), math.log(conc(0, 20)), 0.4)
            + stats.norm.logcdf(1.0, 0.004 * conc(0, 20), math.sqrt(0.3**2 + (0.25 * 0.004 * conc(0, 20)) ** 2))
            + stats.norm.logpdf(math.log(150), math.log(conc(1, 7)), 0.4)
            + stats.norm.logcdf(math.log(10), math.log(conc(1, 40)), 0.4)
            + stats.norm.logpdf(0.2, 0.004 * conc(1, 40), math.sqrt(0.3**2 + (0.25 * 0.004 * conc(1, 40)) ** 2))
        )
        assert got == pytest.approx(expected, rel=1e-10)

    def test_an_undeclared_analyte_is_named_by_its_row(self, spec, tmp_path):
        from carkin.errors import DataError

        text = self.CK.replace("2,40,0.2,0,.,0,2,0,1", "2,40,0.2,0,.,0,3,0,1")
        with pytest.raises(DataError, match=r"row 10, column DVID: analyte code 3 is not declared by two.toml"):
            load_dataset(_write(tmp_path, text), spec=spec, verbose=False)


def test_a_model_without_reinfusion_refuses_a_second_infusion(tmp_path, monkeypatch):
    spec = spec_from_dict({"model": "multiphasic", "parameters": MULTIPHASIC}, source="m.toml")
    ck = "ID,TIME,DV,EVID,AMT,MDV\n1,0,.,1,450,1\n1,7,900,0,.,0\n1,60,.,1,300,1\n1,70,500,0,.,0\n"
    dataset = load_dataset(_write(tmp_path, ck), spec=spec, verbose=False)
    doses = prepare(dataset, spec).doses  # the multiphasic model superposes the infusions (tests/models)
    np.testing.assert_array_equal(np.asarray(doses.time)[0], [0.0, 60.0])
    monkeypatch.setattr(Multiphasic, "reinfusion", False)
    with pytest.raises(SpecError,
                       match=r"the multiphasic model takes one infusion per patient, but patient '1' .* has 2"):
        prepare(dataset, spec)
