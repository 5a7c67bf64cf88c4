"""Writing CK files and covariate tables (carkin.data._write), and reading them back."""

import os

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from carkin.data import Dataset, load_dataset, write_ck, write_covariates

CK = """\
# SIMULATED
ID,TIME,DV,EVID,AMT,MDV,BLQ,LLOQ
1,2.5,.,1,450,1,0,.
1,3.5,120.25,0,.,0,0,5
1,9.5,3000,0,.,0,0,.
1,30.5,5,0,.,0,1,5
2,0,.,1,300,1,0,.
2,14,.,0,.,0,1,2.5
"""

COVARIATES = """\
ID,AGE,TUMOR_BURDEN
1,61,35.5
2,57,12
"""


def load(ck, covariates=None, **kwargs):
    return load_dataset(ck, covariates, verbose=False, **kwargs)


def assert_same_dataset(a: Dataset, b: Dataset):
    assert a.patient_ids == b.patient_ids
    assert a.covariate_names == b.covariate_names
    assert a.simulated == b.simulated
    for name in ("times", "dv", "blq", "lloq", "obs_mask", "dose", "dose_time", "covariates", "analyte_codes"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for name in ("time", "amount", "duration", "cmt", "mask"):
        np.testing.assert_array_equal(getattr(a.dose_events, name), getattr(b.dose_events, name), err_msg=name)


def random_dataset(seed=0, n=7, m=9) -> Dataset:
    """A Dataset with awkward float64 values (no round numbers), ragged schedules and BLQ records."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, m + 1, size=n)
    counts[0] = m  # the padded width is the longest schedule, as on reading
    mask = np.arange(m)[None, :] < counts[:, None]
    times = np.sort(rng.uniform(0, 400, size=(n, m)), axis=1)
    lloq = rng.lognormal(1.0, 0.5, size=(n, m))
    blq = rng.random((n, m)) < 0.3
    dv = np.where(blq, lloq, rng.lognormal(6.0, 2.0, size=(n, m)))
    lloq = np.where(blq | (rng.random((n, m)) < 0.5), lloq, np.nan)
    return Dataset(
        patient_ids=tuple(f"P{p:03d}" for p in range(n)),
        times=jnp.asarray(np.where(mask, times, 0.0)),
        dv=jnp.asarray(np.where(mask, dv, 1.0)),
        blq=jnp.asarray(blq & mask),
        lloq=jnp.asarray(np.where(mask, lloq, 1.0)),
        obs_mask=jnp.asarray(mask),
        source_rows=jnp.zeros((n, m), dtype=int),
        dose=jnp.asarray(rng.uniform(150, 450, size=n)),
        dose_time=jnp.zeros(n),
        covariates=jnp.asarray(rng.normal(size=(n, 2)) * 1e3),
        covariate_names=("TUMOR_BURDEN", "AGE"),
    )


class TestRoundTrip:
    def test_write_then_read_gives_the_same_dataset(self, tmp_path):
        ck, covariates = tmp_path / "ck.csv", tmp_path / "patients.csv"
        ck.write_text(CK)
        covariates.write_text(COVARIATES)
        original = load(ck, covariates)
        write_ck(tmp_path / "out.csv", original)
        write_covariates(
            tmp_path / "out_patients.csv",
            original.patient_ids,
            dict(zip(original.covariate_names, np.asarray(original.covariates).T, strict=True)),
        )
        again = load(tmp_path / "out.csv", tmp_path / "out_patients.csv")
        assert_same_dataset(original, again)

    def test_awkward_float_values_survive_exactly(self, tmp_path):
        original = random_dataset()
        write_ck(tmp_path / "ck.csv", original)
        write_covariates(
            tmp_path / "patients.csv",
            original.patient_ids,
            dict(zip(original.covariate_names, original.covariates.T, strict=True)),
        )
        again = load(tmp_path / "ck.csv", tmp_path / "patients.csv", covariate_columns=original.covariate_names)
        assert_same_dataset(original, again)

    def test_a_dose_time_offset_survives_to_rounding(self, tmp_path):
        original = random_dataset(seed=1)
        original = Dataset(**{**vars(original), "dose_time": jnp.arange(7.0) * 1.3})  # type: ignore[arg-type]
        write_ck(tmp_path / "ck.csv", original)
        again = load(tmp_path / "ck.csv")
        np.testing.assert_array_equal(again.dose_time, original.dose_time)
        np.testing.assert_allclose(again.times, original.times, rtol=0, atol=1e-12)

    def test_the_comment_is_written_first_and_skipped_on_reading(self, tmp_path):
        original = load(_write(tmp_path, CK))
        write_ck(tmp_path / "out.csv", original, comment="SIMULATED: not trial data\nseed 12")
        lines = (tmp_path / "out.csv").read_text().splitlines()
        assert lines[:3] == ["# SIMULATED: not trial data", "# seed 12", "ID,TIME,DV,EVID,AMT,MDV,BLQ,LLOQ"]
        again = load(tmp_path / "out.csv")
        assert_same_dataset(original, again)
        np.testing.assert_array_equal(again.source_rows, [[5, 6, 7], [9, 0, 0]])


class TestWriteCk:
    def test_the_file_is_nonmem_style_with_the_dose_record_first(self, tmp_path):
        write_ck(tmp_path / "out.csv", load(_write(tmp_path, CK)))
        assert (tmp_path / "out.csv").read_text() == (
            "# SIMULATED data: a virtual cohort, not trial data\n"  # the input said SIMULATED: so does the output
            "ID,TIME,DV,EVID,AMT,MDV,BLQ,LLOQ\n"
            "1,2.5,.,1,450,1,0,.\n"
            "1,3.5,120.25,0,.,0,0,5\n"
            "1,9.5,3000,0,.,0,0,.\n"
            "1,30.5,5,0,.,0,1,5\n"
            "2,0,.,1,300,1,0,.\n"
            "2,14,2.5,0,.,0,1,2.5\n"
        )

    def test_an_existing_file_is_replaced_and_no_temporary_file_is_left(self, tmp_path):
        target = tmp_path / "out.csv"
        target.write_text("old content\n")
        write_ck(target, load(_write(tmp_path, CK)))
        assert target.read_text().startswith("# SIMULATED data")
        assert sorted(os.listdir(tmp_path)) == ["ck.csv", "out.csv"]

    def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(self, tmp_path, monkeypatch):
        target = tmp_path / "out.csv"
        target.write_text("old content\n")
        dataset = load(_write(tmp_path, CK))

        def failing_replace(source, destination):
            raise OSError("disk full")

        monkeypatch.setattr(os, "replace", failing_replace)
        with pytest.raises(OSError, match="disk full"):
            write_ck(target, dataset)
        assert target.read_text() == "old content\n"
        assert sorted(os.listdir(tmp_path)) == ["ck.csv", "out.csv"]

    def test_an_id_that_would_read_as_a_comment_is_refused_and_nothing_is_written(self, tmp_path):
        dataset = random_dataset(n=2)
        dataset = Dataset(**{**vars(dataset), "patient_ids": ("P1", "#2")})  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="patient ID '#2' cannot be written"):
            write_ck(tmp_path / "out.csv", dataset)
        assert os.listdir(tmp_path) == []

    def test_a_non_dataset_is_a_type_error(self, tmp_path):
        # the second pattern: under the jaxtyping+beartype hook the annotation is checked first
        with pytest.raises(TypeError, match="write_ck expects a carkin Dataset, got dict|parameter 'dataset'"):
            write_ck(tmp_path / "out.csv", {})  # type: ignore[arg-type]


class TestWriteCovariates:
    def test_a_dataframe_with_a_text_column_and_missing_values(self, tmp_path):
        frame = pd.DataFrame(
            {"age": [61, 57], "Arm": pd.Series(["ide-cel", pd.NA], dtype="string"), "tb": [35.5, np.nan]}
        )
        write_covariates(tmp_path / "patients.csv", ["1", "2"], frame, comment="# SIMULATED")
        assert (tmp_path / "patients.csv").read_text() == ("# SIMULATED\nID,AGE,ARM,TB\n1,61,ide-cel,35.5\n2,57,.,.\n")

    def test_a_value_with_a_comma_is_quoted_and_reads_back(self, tmp_path):
        write_covariates(tmp_path / "patients.csv", ["1", "2"], {"ARM": ["a,b", "c"], "AGE": [1.5, 2.0]})
        (tmp_path / "ck.csv").write_text(
            "ID,TIME,DV,EVID,AMT,MDV\n1,0,.,1,1,1\n1,1,2,0,.,0\n2,0,.,1,1,1\n2,1,2,0,.,0\n"
        )
        ds = load(tmp_path / "ck.csv", tmp_path / "patients.csv")
        assert ds.covariate_names == ("AGE",)
        np.testing.assert_array_equal(ds.covariates, [[1.5], [2.0]])

    def test_a_column_of_the_wrong_length_is_refused(self, tmp_path):
        with pytest.raises(ValueError, match=r"table column 'AGE' has shape \(3,\), expected \(2,\)"):
            write_covariates(tmp_path / "patients.csv", ["1", "2"], {"AGE": [1, 2, 3]})

    @pytest.mark.parametrize(
        ("table", "pattern"),
        [({"id": [1, 2]}, "must not contain an ID column"), ({"AGE": [1, 2], "age": [1, 2]}, "column AGE twice")],
    )
    def test_an_id_column_or_a_repeated_name_is_refused(self, tmp_path, table, pattern):
        with pytest.raises(ValueError, match=pattern):
            write_covariates(tmp_path / "patients.csv", ["1", "2"], table)


def _write(tmp_path, text, name="ck.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path
