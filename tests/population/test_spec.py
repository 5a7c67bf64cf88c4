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
        (
            lambda d: d["parameters"].pop("fb"),
            r"t.toml: \[parameters\] holds cmax, tmax, rho, beta, delta, but the multiphasic model needs "
            r"cmax, tmax, rho, beta, delta, fb",
        ),
        (
            lambda d: d["parameters"]["tmax"].pop("prior_sd"),
            r"t.toml: \[parameters.tmax\] prior_sd is missing; add prior_sd = <a number>",
        ),
        (
            lambda d: d["parameters"]["tmax"].update(transform="sqrt"),
            r"\[parameters.tmax\] transform = 'sqrt' is not valid; choose one of log, logit",
        ),
        (
            lambda d: d["parameters"]["rho"].update(typical=-1.0),
            r"\[parameters.rho\] typical = -1.0 is not > 0; give a number > 0",
        ),
        (lambda d: d["parameters"]["fb"].update(typical=1.5), r"\[parameters.fb\] typical = 1.5 is outside \(0, 1\)"),
        (
            lambda d: d["parameters"]["cmax"].update(omega_scale="big"),
            r"\[parameters.cmax\] omega_scale = 'big' is a string, not a number",
        ),
        (
            lambda d: d["covariates"]["log_dose"].update(parameters=["kel"]),
            r"\[covariates.log_dose\] parameters = \['kel'\] names 'kel'",
        ),
        (
            lambda d: d["iiv"].update(parameterization="partial"),
            r"\[iiv\] parameterization = 'partial' is not valid; choose one of centred, noncentred",
        ),
        (
            lambda d: d["residual"].update(model="exponential"),
            r"\[residual\] model = 'exponential' is not valid; choose one of additive_log, combined, additive",
        ),
        (lambda d: d["blq"].update(method="m1"), r"\[blq\] method = 'm1' is not valid; choose one of m3, drop"),
        # unknown keys (typos) are errors that list the valid keys
        (
            lambda d: d.update(modle="multiphasic"),
            r"t.toml: modle is not a valid key; valid keys: model, structure, parameters, covariates",
        ),
        (
            lambda d: d["parameters"]["rho"].update(prior_sdd=1.0),
            r"\[parameters.rho\] prior_sdd is not a valid key; valid keys: transform, typical, prior_sd",
        ),
        (
            lambda d: d["covariates"]["log_dose"].update(colum="DOSE"),
            r"\[covariates.log_dose\] colum is not a valid key",
        ),
        (
            lambda d: d["residual"].update(sigma=0.5),
            r"\[residual\] sigma is not a valid key; valid keys: model, sigma_scale, sigma_add_scale",
        ),
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


class TestAnalytesComedicationStructure:
    """The model-file tables of real data sets: several analytes, co-medication, PK structure, correlated IIV."""

    def test_a_spec_without_analytes_observes_one_with_the_top_level_tables(self, raw):
        spec = spec_from_dict(raw, source="t.toml")
        (analyte,) = spec.analytes
        assert analyte.code is None and analyte.log_scale and spec.residual_sites(analyte) == ("sigma", None)
        needs = spec.data_requirements()
        assert needs.analytes[0].code is None and needs.analytes[0].positive_dv
        assert needs.covariates == ("TUMOR_BURDEN",)  # DOSE comes from the dose records

    def test_two_analytes_each_with_its_code_scale_and_error_model(self, raw):
        raw.pop("residual", None)
        raw.pop("blq", None)
        raw["analytes"] = {
            "transgene": {"dvid": 1, "unit": "copies/ug", "residual": {"model": "additive_log"}},
            "flow": {"dvid": 2, "unit": "cells/uL", "scale": {"typical": 0.01, "prior_sd": 2.0},
                     "residual": {"model": "additive_proportional", "sigma_add_scale": 5.0}},
        }
        spec = spec_from_dict(raw, source="t.toml")
        transgene, flow = spec.analytes
        assert (transgene.code, flow.code) == (1.0, 2.0)
        assert spec.residual_sites(transgene) == ("sigma_transgene", None)
        assert spec.residual_sites(flow) == ("sigma_flow", "sigma_add_flow")
        assert spec.scale_site(flow) == "log_scale_flow" and spec.scale_site(transgene) is None
        assert [(a.code, a.positive_dv) for a in spec.data_requirements().analytes] == [(1.0, True), (2.0, False)]
        assert spec.replace(residual="additive").analytes[0].residual == "additive"  # every analyte's

    @pytest.mark.parametrize(
        "analytes, match",
        [
            ({"a": {"dvid": 1}, "b": {}}, r"\[analytes.b\] dvid is missing"),
            ({"a": {"dvid": 1}, "b": {"dvid": 1}}, r"\[analytes.b\] dvid = 1.0 is also the code of analyte 'a'"),
            (
                {"a": {"dvid": 1, "output": "tumour"}},
                r"\[analytes.a\] output = 'tumour' is not valid; choose one of transgene",
            ),
            ({"a": {"dvid": 1, "scale": {"typical": 1.0}}}, r"\[analytes.a.scale\] prior_sd is missing"),
        ],
    )
    def test_bad_analyte_tables_name_the_table_and_key(self, raw, analytes, match):
        raw.pop("residual", None)
        raw.pop("blq", None)
        raw["analytes"] = analytes
        with pytest.raises(SpecError, match=match):
            spec_from_dict(raw, source="t.toml")

    def test_residual_beside_analytes_is_an_error(self, raw):
        raw["analytes"] = {"a": {"dvid": 1}}
        with pytest.raises(SpecError, match=r"\[residual\] is given beside \[analytes.<name>\] tables"):
            spec_from_dict(raw, source="t.toml")

    def test_a_pk_spec_takes_its_parameters_from_its_structure(self):
        raw = {"model": "pk_one_compartment",
               "structure": {"route": "oral", "parameterization": "ssfol"},
               "parameters": {n: {"transform": "log", "typical": 1.0, "prior_sd": 1.0, "omega_scale": 1.0}
                              for n in ("ke", "ka", "cl")},
               "residual": {"model": "additive"}}
        spec = spec_from_dict(raw, source="pk.toml")
        assert spec.parameter_names == ("ke", "ka", "cl")
        assert spec.kinetic_model.route == "oral" and spec.residual_sites(spec.analytes[0]) == (None, "sigma_add")
        assert not spec.data_requirements().analytes[0].positive_dv
        raw["structure"]["route"] = "iv"
        with pytest.raises(SpecError, match=r"pk.toml: .*needs route=\"oral\""):
            spec_from_dict(raw, source="pk.toml")
        raw["structure"] = {"route": "oral", "compartments": 3}
        with pytest.raises(SpecError, match=r"\[structure\] compartments is not a valid key; valid keys: route, "
                                            r"parameterization, lag"):
            spec_from_dict(raw, source="pk.toml")

    def test_structure_is_only_for_pk_models(self, raw):
        raw["structure"] = {"route": "oral"}
        with pytest.raises(SpecError, match=r"\[structure\] is only for PK models"):
            spec_from_dict(raw, source="t.toml")

    @pytest.mark.parametrize(
        "iiv, blocks",
        [({"correlation": "full"}, (("cmax", "tmax", "rho", "beta", "delta", "fb"),)),
         ({"blocks": [["tmax", "cmax"], ["beta", "delta"]]}, (("cmax", "tmax"), ("beta", "delta"))),
         ({}, ())],
    )
    def test_correlated_iiv_blocks_in_parameter_order(self, raw, iiv, blocks):
        raw["iiv"] = iiv
        spec = spec_from_dict(raw, source="t.toml")
        assert spec.iiv_blocks == blocks and spec.lkj_concentration == 2.0

    @pytest.mark.parametrize(
        "iiv, match",
        [({"blocks": [["cmax"]]}, r"has a block of 1 parameter"),
         ({"blocks": [["cmax", "tmax"], ["tmax", "rho"]]}, r"names 'tmax' in two blocks"),
         ({"blocks": [["cmax", "alpha"]]}, r"names 'alpha', which is not a parameter"),
         ({"correlation": "full", "noncentred": ["fb"]}, r"is not available with correlated random effects")],
    )
    def test_bad_iiv_correlation(self, raw, iiv, match):
        raw["iiv"] = iiv
        with pytest.raises(SpecError, match=match):
            spec_from_dict(raw, source="t.toml")

    def test_comedication_needs_one_start_and_effects_the_model_can_switch(self, raw):
        raw["comedication"] = {"toci": {"start_column": "toci_day", "indicator_column": "TOCI",
                                        "effects": ["expansion"], "prior_sd": 0.5}}
        with pytest.raises(SpecError, match=r"\[comedication.toci\] needs exactly one of start_column and "
                                            r"indicator_column"):
            spec_from_dict(raw, source="t.toml")
        raw["comedication"]["toci"].pop("indicator_column")
        raw["comedication"]["toci"]["effects"] = ["killing"]
        with pytest.raises(SpecError, match=r"\[comedication.toci\] effects = \['killing'\] names 'killing', which "
                                            r"the multiphasic model cannot switch"):
            spec_from_dict(raw, source="t.toml")
