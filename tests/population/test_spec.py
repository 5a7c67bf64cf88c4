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
        (lambda d: d.update(model="gompertz"), r"t.toml: model = 'gompertz' is not a known kinetic model; choose one of multiphasic"),
        (lambda d: d["parameters"].pop("fb"), r"t.toml: the multiphasic model needs parameters cmax, tmax, rho, beta, delta, fb"),
        (lambda d: d["parameters"]["tmax"].pop("prior_sd"), r"t.toml: missing key parameters.tmax.prior_sd"),
        (lambda d: d["parameters"]["tmax"].update(transform="sqrt"), r"parameters.tmax.transform = 'sqrt' is not valid; choose one of log, logit"),
        (lambda d: d["parameters"]["rho"].update(typical=-1.0), r"parameters.rho.typical = -1.0 must be a positive finite number"),
        (lambda d: d["parameters"]["fb"].update(typical=1.5), r"parameters.fb.typical = 1.5 must lie in \(0, 1\)"),
        (lambda d: d["parameters"]["cmax"].update(omega_scale="big"), r"parameters.cmax.omega_scale = 'big' has type str, expected float"),
        (lambda d: d["covariates"]["log_dose"].update(parameters=["kel"]), r"covariates.log_dose.parameters names 'kel'"),
        (lambda d: d["iiv"].update(parameterization="partial"), r"iiv.parameterization = 'partial' is not valid; choose one of centred, noncentred"),
        (lambda d: d["residual"].update(model="proportional"), r"residual.model = 'proportional' is not valid"),
        (lambda d: d["blq"].update(method="m1"), r"blq.method = 'm1' is not valid; choose one of m3, drop"),
    ],
)
def test_invalid_spec_names_file_and_key(raw, edit, match):
    data = copy.deepcopy(raw)
    edit(data)
    with pytest.raises(SpecError, match=match):
        spec_from_dict(data, source="t.toml")


def test_missing_and_malformed_files_are_reported(tmp_path):
    with pytest.raises(SpecError, match="not found"):
        load_spec(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("model = \n")
    with pytest.raises(SpecError, match="bad.toml: not valid TOML"):
        load_spec(bad)
