"""The shipped real PK data sets (Theoph, Phenobarb) and their R nlme reference fits stay consistent.

The CSV files under ``carkin/_data/{theophylline,phenobarbital}`` are package data exported from R by
``benchmarks/peers/r/export_pk_data.R``; ``tests/reference/pk_nlme.json`` holds the nlme fits made by
``benchmarks/peers/r/nlme_reference.R`` and the MD5 of the CSV files it fitted. These tests need no R:
they check the record structure and that the reference fits belong to the files that ship.
"""

import hashlib
import json
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REFERENCE = Path(__file__).resolve().parents[1] / "reference" / "pk_nlme.json"
FILES = {
    "theophylline": "theophylline/theophylline.csv",
    "phenobarbital": "phenobarbital/phenobarbital.csv",
}


def data_path(name):
    return resources.files("carkin") / "_data" / FILES[name]


def read(name):
    return pd.read_csv(data_path(name), comment="#", na_values=".")


@pytest.fixture(scope="module")
def reference():
    return json.loads(REFERENCE.read_text())


@pytest.mark.parametrize("name", sorted(FILES))
def test_first_line_says_real_data_and_source(name):
    first = data_path(name).read_text().splitlines()[0]
    assert first.startswith("# REAL published data (not simulated)")
    assert ("datasets::Theoph" if name == "theophylline" else "nlme::Phenobarb") in first


@pytest.mark.parametrize("name", sorted(FILES))
def test_records_follow_the_nonmem_conventions(name):
    d = read(name)
    dose, obs = d[d.EVID == 1], d[d.EVID == 0]
    assert set(d.EVID) == {0, 1}
    assert (dose.MDV == 1).all() and dose.DV.isna().all() and (dose.AMT > 0).all()
    assert (obs.MDV == 0).all() and obs.AMT.isna().all() and obs.DV.notna().all()
    for _, g in d.groupby("ID", sort=False):
        assert np.all(np.diff(g.TIME.to_numpy()) >= 0)  # time-ordered within a subject
        assert g.EVID.iloc[0] == 1  # the first record is a dose
        assert g.WT.nunique() == 1


def test_theophylline_counts_and_time_zero():
    d = read("theophylline")
    assert len(d) == 144 and d.ID.nunique() == 12
    obs = d[d.EVID == 0]
    assert (obs.groupby("ID").size() == 11).all()
    assert (obs.CMT == 2).all() and (d[d.EVID == 1].CMT == 1).all()
    # dose record first at TIME 0, then the pre-dose observation at TIME 0 (kept as published)
    for _, g in d.groupby("ID"):
        assert list(g.EVID.iloc[:2]) == [1, 0] and list(g.TIME.iloc[:2]) == [0, 0]
    t0 = obs[obs.TIME == 0].set_index("ID").DV
    assert t0[t0 > 0].to_dict() == {1: 0.74, 7: 0.15, 10: 0.24}
    assert (d[d.EVID == 1].AMT.to_numpy() == d[d.EVID == 1].DOSE.to_numpy()).all()


def test_phenobarbital_counts():
    d = read("phenobarbital")
    assert len(d) == 744 and d.ID.nunique() == 59
    assert (d.EVID == 0).sum() == 155 and (d.EVID == 1).sum() == 589
    per_infant = d[d.EVID == 0].groupby("ID").size()
    assert per_infant.min() == 1 and per_infant.max() == 6
    assert d.APGAR.between(1, 10).all() and d.groupby("ID").APGAR.nunique().eq(1).all()


@pytest.mark.parametrize("name", sorted(FILES))
def test_reference_fits_belong_to_the_shipped_files(reference, name):
    entry = reference["data"][name]
    assert entry["csv_equals_R_data"] is True
    assert hashlib.md5(data_path(name).read_bytes()).hexdigest() == entry["carkin_csv_md5"]


def test_reference_fits_are_complete_and_refit_exactly(reference):
    expected = {"theophylline": ["fm1Theo.nlme", "fm2Theo.nlme", "fm3Theo.nlme"],
                "phenobarbital": ["fm1Pheno.nlme", "pheno_wt_apgar_prop.nlme"]}
    subjects = {"theophylline": 12, "phenobarbital": 59}
    for data_set, models in expected.items():
        for m in models:
            fit = reference[data_set][m]
            assert fit["fitted"] and fit["method"] == "ML"
            est, se = fit["fixed_effects"]["estimate"], fit["fixed_effects"]["std_error"]
            assert est.keys() == se.keys() and all(s > 0 for s in se.values())
            assert fit["residual_sd"] > 0 and np.isfinite(fit["log_likelihood"])
            assert len(fit["blups"]["ID"]) == subjects[data_set]
            for values in fit["blups"]["values"].values():
                assert len(values) == subjects[data_set]
            # refitting to carkin's CSV (not R's copy) gave the same numbers
            assert fit["refit_from_carkin_csv"]["max_abs_difference"] <= 1e-8


def test_book_model_values_on_record(reference):
    """Pinheiro & Bates's preferred Theoph model and the Phenobarb base model, to 3 significant digits."""
    fm3 = reference["theophylline"]["fm3Theo.nlme"]
    assert fm3["fixed_effects"]["estimate"] == pytest.approx({"lKe": -2.455, "lKa": 0.466, "lCl": -3.227}, abs=1e-3)
    assert fm3["log_likelihood"] == pytest.approx(-177.02, abs=0.01)
    pheno = reference["phenobarbital"]["fm1Pheno.nlme"]
    assert pheno["fixed_effects"]["estimate"] == pytest.approx({"lCl": -5.093, "lV": 0.343}, abs=1e-3)
