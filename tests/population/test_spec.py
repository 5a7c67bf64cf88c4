"""The TOML spec: the shipped one loads; every invalid spec gets a message naming the file and key."""

import copy
import tomllib
from pathlib import Path

import pytest

from carkin.errors import SpecError
from carkin.population import load_spec, spec_from_dict

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "multiphasic.toml"


@pytest.fixture
def raw():
    return tomllib.loads(SHIPPED.read_text())


def test_shipped_spec_loads_with_model_order_and_covariates():
    spec = load_spec(SHIPPED)
    assert spec.parameter_names == ("cmax", "tmax", "rho", "beta", "delta", "fb")
    assert spec.effect_names == ("beta_log_dose_cmax", "beta_tumor_burden_cmax")
    assert spec.iiv == "centred" and spec.blq == "m3" and spec.residual == "additive_log"


def test_spec_can_be_found_by_bare_name():
    assert load_spec("multiphasic").parameter_names == load_spec(SHIPPED).parameter_names


def test_replace_changes_one_option_and_keeps_the_rest():
    spec = load_spec(SHIPPED)
    other = spec.replace(iiv="noncentred")
    assert other.iiv == "noncentred" and other.parameters == spec.parameters


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda d: d.update(model="gompertz"), r"t.toml: model = 'gompertz' is not valid; choose one of multiphasic"),
        (lambda d: d["parameters"].pop("fb"), r"t.toml: \[parameters\] holds cmax, tmax, rho, beta, delta, but the multiphasic model needs cmax, tmax, rho, beta, delta, fb"),
        (lambda d: d["parameters"]["tmax"].pop("prior_sd"), r"t.toml: \[parameters.tmax\] prior_sd is missing; add prior_sd = <a number>"),
        (lambda d: d["parameters"]["tmax"].update(transform="sqrt"), r"\[parameters.tmax\] transform = 'sqrt' is not valid; choose one of log, logit"),
        (lambda d: d["parameters"]["rho"].update(typical=-1.0), r"\[parameters.rho\] typical = -1.0 is not > 0; give a number > 0"),
        (lambda d: d["parameters"]["fb"].update(typical=1.5), r"\[parameters.fb\] typical = 1.5 is outside \(0, 1\)"),
        (lambda d: d["parameters"]["cmax"].update(omega_scale="big"), r"\[parameters.cmax\] omega_scale = 'big' is a string, not a number"),
        (lambda d: d["covariates"]["log_dose"].update(parameters=["kel"]), r"\[covariates.log_dose\] parameters = \['kel'\] names 'kel'"),
        (lambda d: d["iiv"].update(parameterization="partial"), r"\[iiv\] parameterization = 'partial' is not valid; choose one of centred, noncentred"),
        (lambda d: d["residual"].update(model="proportional"), r"\[residual\] model = 'proportional' is not valid"),
        (lambda d: d["blq"].update(method="m1"), r"\[blq\] method = 'm1' is not valid; choose one of m3, drop"),
        # unknown keys (typos) are errors that list the valid keys
        (lambda d: d.update(modle="multiphasic"), r"t.toml: modle is not a valid key; valid keys: model, parameters, covariates"),
        (lambda d: d["parameters"]["rho"].update(prior_sdd=1.0), r"\[parameters.rho\] prior_sdd is not a valid key; valid keys: transform, typical, prior_sd"),
        (lambda d: d["covariates"]["log_dose"].update(colum="DOSE"), r"\[covariates.log_dose\] colum is not a valid key"),
        (lambda d: d["residual"].update(sigma=0.5), r"\[residual\] sigma is not a valid key; valid keys: model, sigma_scale, sigma_add_scale"),
        (lambda d: d["blq"].update(lloq=10), r"\[blq\] lloq is not a valid key; valid keys: method"),
    ],
)
def test_invalid_spec_names_file_and_key(raw, edit, match):
    data = copy.deepcopy(raw)
    edit(data)
    with pytest.raises(SpecError, match=match):
        spec_from_dict(data, source="t.toml")


def test_missing_and_malformed_files_are_reported(tmp_path):
    with pytest.raises(SpecError, match="nope.toml: model spec file not found; give the path of a TOML file"):
        load_spec(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("model = \n")
    with pytest.raises(SpecError, match="bad.toml: not valid TOML"):
        load_spec(bad)
