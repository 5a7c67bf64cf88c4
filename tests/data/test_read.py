"""Reading and validating CK files and covariate tables (carkin.data._read)."""

import hashlib
import re

import jax.numpy as jnp
import numpy as np
import pytest

from carkin.data import Dataset, data_hash, load_dataset, read_ck, read_covariates
from carkin.errors import DataError

HEADER = "ID,TIME,DV,EVID,AMT,MDV,BLQ,LLOQ"

GOOD_CK = """\
ID,TIME,DV,EVID,AMT,MDV,BLQ,LLOQ
1,0,.,1,450,1,0,.
1,1,120.5,0,.,0,0,5
1,7,3000,0,.,0,0,5
1,28,5,0,.,0,1,5
2,0,.,1,300,1,0,.
2,14,80,0,.,0,0,.
"""

GOOD_COVARIATES = """\
ID,AGE,ARM,TUMOR_BURDEN
1,61,ide-cel,35.5
2,57,ide-cel,12
"""


def write(tmp_path, text, name="ck.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def ck_file(tmp_path, *records, header=HEADER, name="ck.csv"):
    """A CK file: the header on line 1, then the given records (lines 2, 3, ...)."""
    return write(tmp_path, "\n".join([header, *records]) + "\n", name)


def where(row, column, file="ck.csv"):
    """Regex for the location prefix of one DataProblem line."""
    prefix = f"{file}, row {row}" if row is not None else file
    if column is not None:
        prefix += f", column {column}"
    return re.escape(prefix + ": ")


def only_problem(excinfo):
    problems = excinfo.value.problems
    assert len(problems) == 1, str(excinfo.value)
    return problems[0]


def load(path, covariates=None, **kwargs):
    return load_dataset(path, covariates, verbose=False, **kwargs)


# ---------------------------------------------------------------------------------------------------------
# Rejections in the CK file, one class at a time
# ---------------------------------------------------------------------------------------------------------


class TestCkFileRejections:
    @pytest.mark.parametrize("missing", ["ID", "TIME", "DV", "EVID", "AMT", "MDV"])
    def test_a_missing_required_column_is_named_with_the_columns_found(self, tmp_path, missing):
        columns = ["ID", "TIME", "DV", "EVID", "AMT", "MDV"]
        values = {"ID": "1", "TIME": "0", "DV": ".", "EVID": "1", "AMT": "450", "MDV": "1"}
        kept = [c for c in columns if c != missing]
        path = ck_file(tmp_path, ",".join(values[c] for c in kept), header=",".join(kept))
        with pytest.raises(DataError, match=where(None, missing) + f"required column {missing} is missing") as e:
            load(path)
        problem = only_problem(e)
        assert (problem.row, problem.column) == (None, missing)
        assert "columns found: " + ", ".join(kept) in problem.message

    def test_a_semicolon_separated_file_gets_a_hint_about_the_separator(self, tmp_path):
        path = write(tmp_path, "ID;TIME;DV;EVID;AMT;MDV\n1;0;.;1;450;1\n")
        with pytest.raises(DataError, match="comma-separated"):
            load(path)

    @pytest.mark.parametrize(
        ("cell", "column", "shown"),
        [("abc", "DV", "'abc'"), ('"1,5"', "DV", "'1,5'"), ("1_000", "DV", "'1_000'"), ("4 days", "TIME", "'4 days'")],
    )
    def test_a_non_numeric_value_is_named_with_its_row_and_column(self, tmp_path, cell, column, shown):
        record = {"DV": f"1,1,{cell},0,.,0,0,.", "TIME": f"1,{cell},10,0,.,0,0,."}[column]
        path = ck_file(tmp_path, "1,0,.,1,450,1,0,.", record)
        with pytest.raises(DataError, match=where(3, column) + f"{column} is not a number: {re.escape(shown)}") as e:
            load(path)
        assert only_problem(e).row == 3

    def test_a_decimal_comma_gets_a_decimal_point_suggestion(self, tmp_path):
        path = ck_file(tmp_path, "1,0,.,1,450,1,0,.", '1,1,"1,5",0,.,0,0,.')
        with pytest.raises(DataError, match=re.escape("write it with a decimal point ('1.5')")):
            load(path)

    def test_an_unquoted_decimal_comma_is_a_field_count_problem_on_its_row(self, tmp_path):
        path = ck_file(tmp_path, "1,0,.,1,450,1,0,.", "1,1,1,5,0,.,0,0,.", "1,2,10,0,.,0,0,.")
        with pytest.raises(DataError, match=where(3, None) + "the record has 9 fields but the header has 8") as e:
            load(path)
        assert only_problem(e).column is None  # the shifted cells are not reported one by one

    @pytest.mark.parametrize("value", ["-1", "-0.5", "nan", "inf", "-inf", "NaN"])
    def test_a_negative_or_non_finite_time_is_rejected(self, tmp_path, value):
        path = ck_file(tmp_path, "1,0,.,1,450,1,0,.", f"1,{value},10,0,.,0,0,.", "1,2,10,0,.,0,0,.")
        with pytest.raises(DataError, match=where(3, "TIME") + f"TIME must .*{re.escape(repr(value))}") as e:
            load(path)
        assert only_problem(e).row == 3

    def test_a_missing_time_is_rejected(self, tmp_path):
        path = ck_file(tmp_path, "1,0,.,1,450,1,0,.", "1,.,10,0,.,0,0,.", "1,2,10,0,.,0,0,.")
        with pytest.raises(DataError, match=where(3, "TIME") + re.escape("TIME is '.' (missing)")):
            load(path)

    @pytest.mark.parametrize(
        ("cell", "shown"),
        [("0", "'0'"), ("-3", "'-3'"), ("inf", "'inf'"), (".", "'.' (missing)"), ("", "an empty cell")],
    )
    def test_dv_must_be_positive_on_a_quantified_observation(self, tmp_path, cell, shown):
        path = ck_file(tmp_path, "1,0,.,1,450,1,0,.", f"1,1,{cell},0,.,0,0,.", "1,2,10,0,.,0,0,.")
        with pytest.raises(DataError, match=where(3, "DV") + f"DV .*{re.escape(shown)}") as e:
            load(path)
        assert only_problem(e).row == 3

    def test_a_zero_dv_message_suggests_flagging_the_record_blq(self, tmp_path):
        path = ck_file(tmp_path, "1,0,.,1,450,1,0,.", "1,1,0,0,.,0,0,.")
        with pytest.raises(DataError, match="flag the record BLQ=1"):
            load(path)

    def test_a_censored_record_without_any_lloq_is_rejected(self, tmp_path):
        path = ck_file(tmp_path, "1,0,.,1,450,1,0,.", "1,1,10,0,.,0,0,.", "1,2,.,0,.,0,1,.")
        with pytest.raises(
            DataError, match=where(4, "LLOQ") + r"the record is censored \(BLQ=1\) but gives no LLOQ: DV is '\.'"
        ):
            load(path)

    def test_a_censored_record_without_an_lloq_column_and_dv_missing_is_rejected(self, tmp_path):
        path = ck_file(
            tmp_path, "1,0,.,1,450,1,0", "1,1,10,0,.,0,0", "1,2,,0,.,0,1", header="ID,TIME,DV,EVID,AMT,MDV,BLQ"
        )
        with pytest.raises(DataError, match=where(4, "DV") + ".*there is no LLOQ column"):
            load(path)

    def test_a_zero_dv_cannot_serve_as_the_lloq_of_a_censored_record(self, tmp_path):
        path = ck_file(
            tmp_path, "1,0,.,1,450,1,0", "1,1,10,0,.,0,0", "1,2,0,0,.,0,1", header="ID,TIME,DV,EVID,AMT,MDV,BLQ"
        )
        with pytest.raises(DataError, match=where(4, "DV") + ".*DV must hold the LLOQ \\(> 0\\), got '0'"):
            load(path)

    def test_duplicate_records_name_both_rows(self, tmp_path):
        path = ck_file(tmp_path, "1,0,.,1,450,1,0,.", "1,3,10,0,.,0,0,.", "1,3.0,12,0,.,0,0,.", "1,5,11,0,.,0,0,.")
        with pytest.raises(
            DataError, match=where(4, "TIME") + r"duplicate observation record: same ID '1', TIME 3\.0"
        ) as e:
            load(path)
        assert "rows 3 and 4" in only_problem(e).message

    def test_records_out_of_time_order_name_both_rows(self, tmp_path):
        path = ck_file(tmp_path, "1,0,.,1,450,1,0,.", "1,5,11,0,.,0,0,.", "1,3,10,0,.,0,0,.")
        with pytest.raises(DataError, match=where(4, "TIME") + r"TIME 3 is earlier than the patient's record before it "
                                                                r"\(row 3, TIME 5\)") as e:
            load(path)
        assert "sort the file by ID and TIME" in only_problem(e).message

    def test_an_lloq_that_disagrees_with_dv_on_a_censored_record_is_rejected(self, tmp_path):
        path = ck_file(tmp_path, "1,0,.,1,450,1,0,.", "1,1,10,0,.,0,0,.", "1,2,7,0,.,0,1,5")
        with pytest.raises(DataError, match=where(4, "DV") + "on a censored record .*DV is '7' and LLOQ is '5'"):
            load(path)

    def test_an_lloq_equal_to_dv_up_to_rounding_is_accepted(self, tmp_path):
        path = ck_file(tmp_path, "1,0,.,1,450,1,0,.", "1,1,10,0,.,0,0,.", "1,2,5.0000001,0,.,0,1,5")
        assert load(path).lloq[0, 1] == 5.0

    def test_a_patient_without_a_dose_record_is_named_at_its_first_row(self, tmp_path):
        path = ck_file(tmp_path, "1,0,.,1,450,1,0,.", "1,1,10,0,.,0,0,.", "B7,1,10,0,.,0,0,.", "B7,2,10,0,.,0,0,.")
        with pytest.raises(DataError, match=where(4, "ID") + "patient 'B7' has no dose record"):
            load(path)


    def test_an_observation_before_the_dose_is_rejected(self, tmp_path):
        path = ck_file(tmp_path, "1,5,.,1,450,1,0,.", "1,4,10,0,.,0,0,.", "1,6,10,0,.,0,0,.")
        with pytest.raises(
            DataError,
            match=where(3, "TIME")
            + r"observation at TIME 4 is before the first dose of patient '1' at TIME 5 \(row 2\)",
        ):
            load(path)

    @pytest.mark.parametrize(("cell", "shown"), [("0", "'0'"), ("-5", "'-5'"), ("inf", "'inf'")])
    def test_an_lloq_that_is_not_positive_and_finite_is_rejected(self, tmp_path, cell, shown):
        path = ck_file(tmp_path, "1,0,.,1,450,1,0,.", f"1,1,10,0,.,0,0,{cell}")
        with pytest.raises(DataError, match=where(3, "LLOQ") + f"LLOQ must be > 0 and finite .*got {re.escape(shown)}"):
            load(path)

    @pytest.mark.parametrize(
        ("cell", "shown"), [("0", "'0'"), ("-450", "'-450'"), (".", "'.' (missing)"), ("nan", "'nan'")]
    )
    def test_amt_must_be_a_positive_dose_on_the_dose_record(self, tmp_path, cell, shown):
        path = ck_file(tmp_path, f"1,0,.,1,{cell},1,0,.", "1,1,10,0,.,0,0,.")
        with pytest.raises(DataError, match=where(2, "AMT") + f"AMT must be the dose .*got {re.escape(shown)}"):
            load(path)

    @pytest.mark.parametrize(("column", "record", "pattern"), [
        ("EVID", "1,1,10,2,.,0,0,.", r"EVID must be 0 \(observation\) or 1 \(dose\), got '2'"),
        ("EVID", "1,1,10,.,.,0,0,.", r"EVID must be 0 \(observation\) or 1 \(dose\), got '\.' \(missing\)"),
        ("MDV", "1,1,10,0,.,2,0,.", r"MDV must be 0 \(observed\) or 1 \(no observation\), got '2'"),
        ("MDV", "1,1,10,0,.,.,0,.", r"MDV must be 0 .*got '\.' \(missing\)"),
        ("BLQ", "1,1,10,0,.,0,2,.", r"BLQ must be 0 \(quantified\) or 1 \(below the LLOQ\), got '2'"),
        ("BLQ", "1,1,10,0,.,0,.,.", r"BLQ is '\.' \(missing\) on an observation record"),
    ])  # fmt: skip
    def test_flags_outside_zero_and_one_are_rejected(self, tmp_path, column, record, pattern):
        path = ck_file(tmp_path, "1,0,.,1,450,1,0,.", record, "1,2,10,0,.,0,0,.")
        with pytest.raises(DataError, match=where(3, column) + pattern) as e:
            load(path)
        assert only_problem(e).row == 3

    def test_right_censoring_cens_minus_one_is_rejected_with_an_explanation(self, tmp_path):
        header = "ID,TIME,DV,EVID,AMT,MDV,CENS,LLOQ"
        path = ck_file(tmp_path, "1,0,.,1,450,1,0,.", "1,1,10,0,.,0,0,.", "1,2,1e6,0,.,0,-1,.", header=header)
        with pytest.raises(DataError, match=where(4, "CENS") + r"CENS=-1 \(right-censoring.*only left-censoring"):
            load(path)

    def test_mdv_one_on_a_censored_record_is_rejected_with_an_explanation(self, tmp_path):
        path = ck_file(tmp_path, "1,0,.,1,450,1,0,.", "1,1,10,0,.,0,0,.", "1,2,5,0,.,1,1,5")
        with pytest.raises(DataError, match=where(4, "MDV") + r"MDV=1 on a censored record \(BLQ=1\).*information"):
            load(path)

    def test_blq_on_a_dose_record_is_rejected(self, tmp_path):
        path = ck_file(tmp_path, "1,0,.,1,450,1,1,.", "1,1,10,0,.,0,0,.")
        with pytest.raises(DataError, match=where(2, "BLQ") + "BLQ=1 on a dose record"):
            load(path)

    def test_both_blq_and_cens_columns_are_rejected_as_ambiguous(self, tmp_path):
        path = ck_file(tmp_path, "1,0,.,1,450,1,0,0", "1,1,10,0,.,0,0,0", header="ID,TIME,DV,EVID,AMT,MDV,BLQ,CENS")
        with pytest.raises(DataError, match=where(None, "CENS") + "the file has both BLQ and CENS columns"):
            load(path)

    def test_a_patient_with_a_dose_but_no_observation_is_rejected(self, tmp_path):
        path = ck_file(tmp_path, "1,0,.,1,450,1,0,.", "1,1,10,0,.,0,0,.", "2,0,.,1,300,1,0,.")
        with pytest.raises(DataError, match=where(4, "ID") + "patient '2' has a dose record but no observation") as e:
            load(path)
        assert "remove the patient" in only_problem(e).message

    def test_a_patient_whose_only_observations_have_mdv_one_is_rejected(self, tmp_path):
        path = ck_file(tmp_path, "1,0,.,1,450,1,0,.", "1,1,10,0,.,0,0,.", "2,0,.,1,300,1,0,.", "2,3,.,0,.,1,0,.")
        with pytest.raises(
            DataError, match=where(4, "ID") + r"patient '2' .*\(its 1 observation record\(s\) have MDV=1\)"
        ):
            load(path)

    def test_a_bad_dose_record_is_not_also_reported_as_a_missing_dose(self, tmp_path):
        path = ck_file(tmp_path, "1,0,.,x,450,1,0,.", "1,1,10,0,.,0,0,.")
        with pytest.raises(DataError, match=where(2, "EVID") + "EVID is not a number: 'x'") as e:
            load(path)
        assert only_problem(e).column == "EVID"

    def test_a_malformed_record_is_not_also_reported_at_the_patient_level(self, tmp_path):
        ck = ck_file(tmp_path, "1,0,.,1,450,1,0,.,extra", "1,1,10,0,.,0,0,.", "2,0,.,1,450,1,0,.", "2,1,10,0,.,0,0,.")
        covariates = write(tmp_path, "ID,AGE\n1,61\n2,57,\n", "patients.csv")
        with pytest.raises(DataError) as e:
            load(ck, covariates)
        assert [(p.file.endswith("ck.csv"), p.row) for p in e.value.problems] == [(True, 2), (False, 3)]

    def test_a_missing_id_is_not_also_reported_as_a_patient_without_covariates(self, tmp_path):
        ck = ck_file(tmp_path, "1,0,.,1,450,1,0,.", "1,1,10,0,.,0,0,.", ",2,10,0,.,0,0,.")
        covariates = write(tmp_path, "ID,AGE\n1,61\n", "patients.csv")
        with pytest.raises(DataError, match=where(4, "ID") + "ID is an empty cell") as e:
            load(ck, covariates)
        assert only_problem(e).row == 4

    def test_a_missing_id_is_rejected(self, tmp_path):
        path = ck_file(tmp_path, "1,0,.,1,450,1,0,.", "1,1,10,0,.,0,0,.", ".,2,10,0,.,0,0,.")
        with pytest.raises(DataError, match=where(4, "ID") + r"ID is '\.' \(missing\)"):
            load(path)

    def test_a_column_named_twice_is_rejected(self, tmp_path):
        path = ck_file(tmp_path, "1,0,.,1,450,1,1", header="ID,TIME,DV,EVID,AMT,MDV,dv")
        with pytest.raises(DataError, match=where(1, "DV") + "the column name appears twice"):
            load(path)

    @pytest.mark.parametrize("text", ["", "\n\n", "# SIMULATED\n# nothing else\n"])
    def test_an_empty_file_is_rejected(self, tmp_path, text):
        path = write(tmp_path, text)
        with pytest.raises(DataError, match=where(None, None) + "the file is empty"):
            load(path)

    def test_a_header_without_records_is_rejected(self, tmp_path):
        path = write(tmp_path, "# SIMULATED\n" + HEADER + "\n")
        with pytest.raises(
            DataError, match=where(2, None) + r"the file has a header \(ID, TIME.*\) but no data records"
        ):
            load(path)


# ---------------------------------------------------------------------------------------------------------
# Reporting: all problems at once, physical line numbers
# ---------------------------------------------------------------------------------------------------------


class TestProblemReporting:
    def test_every_problem_in_a_file_is_reported_at_once_in_row_order(self, tmp_path):
        path = ck_file(
            tmp_path,
            "1,0,.,1,450,1,0,.",
            "1,-2,10,0,.,0,0,.",  # row 3: negative TIME
            "1,3,abc,0,.,0,0,.",  # row 4: non-numeric DV
            "1,4,0,0,.,0,0,.",  # row 5: DV <= 0
            "2,1,10,0,.,0,0,.",  # row 6: patient 2 has no dose
            "3,0,.,1,0,1,0,.",  # row 7: AMT 0
            "3,1,10,0,.,0,0,-1",  # row 8: LLOQ < 0
        )
        with pytest.raises(DataError, match=r"^6 problem\(s\) in the input data:") as e:
            load(path)
        found = [(p.row, p.column) for p in e.value.problems]
        assert found == [(3, "TIME"), (4, "DV"), (5, "DV"), (6, "ID"), (7, "AMT"), (8, "LLOQ")]
        assert all(p.file == str(path) for p in e.value.problems)

    def test_problems_in_both_files_are_reported_together(self, tmp_path):
        ck = ck_file(tmp_path, "1,0,.,1,450,1,0,.", "1,1,0,0,.,0,0,.")
        covariates = write(tmp_path, "ID,AGE\n1,.\n", "patients.csv")
        with pytest.raises(DataError) as e:
            load(ck, covariates, covariate_columns=["AGE"])
        assert [(p.file.endswith("ck.csv"), p.row, p.column) for p in e.value.problems] == [
            (True, 3, "DV"),
            (False, 2, "AGE"),
        ]

    def test_comment_lines_shift_row_numbers_to_the_physical_line(self, tmp_path):
        text = (
            "# SIMULATED cohort: not trial data\n"  # line 1
            + HEADER + "\n"  # line 2
            + "1,0,.,1,450,1,0,.\n"  # line 3
            + "  # a comment inside the records\n"  # line 4
            + "\n"  # line 5 (blank)
            + "1,2,-7,0,.,0,0,.\n"  # line 6
        )  # fmt: skip
        path = write(tmp_path, text)
        with pytest.raises(DataError, match=where(6, "DV") + "DV must be > 0 .*got '-7'"):
            load(path)

    def test_source_rows_record_physical_lines_around_comments(self, tmp_path):
        text = "# SIMULATED\n" + HEADER + "\n1,0,.,1,450,1,0,.\n# note\n1,2,7,0,.,0,0,.\n,,,,,,,\n1,3,8,0,.,0,0,.\n"
        ds = load(write(tmp_path, text))
        np.testing.assert_array_equal(ds.source_rows, [[5, 7]])

    def test_a_windows_file_with_a_byte_order_mark_reads_with_the_same_row_numbers(self, tmp_path):
        path = tmp_path / "ck.csv"
        path.write_bytes(("\ufeff" + HEADER + "\r\n1,0,.,1,450,1,0,.\r\n1,1,abc,0,.,0,0,.\r\n").encode("utf-8"))
        with pytest.raises(DataError, match=where(3, "DV") + "DV is not a number: 'abc'"):
            load(path)

    def test_a_file_that_is_not_utf8_is_named_at_its_line(self, tmp_path):
        path = tmp_path / "ck.csv"
        path.write_bytes((HEADER + "\n1,0,.,1,450,1,0,.\n").encode() + "1,1,10,0,.,0,0,\u00b5\n".encode("latin-1"))
        with pytest.raises(DataError, match=where(3, None) + "the file is not UTF-8 text"):
            load(path)

    def test_many_problems_are_all_kept_though_the_message_shows_the_first_25(self, tmp_path):
        records = ["1,0,.,1,450,1,0,."] + [f"1,{t},0,0,.,0,0,." for t in range(1, 41)]
        with pytest.raises(DataError, match=r"\.\.\. and 15 more") as e:
            load(ck_file(tmp_path, *records))
        assert len(e.value.problems) == 40


# ---------------------------------------------------------------------------------------------------------
# Happy paths
# ---------------------------------------------------------------------------------------------------------


class TestReadingValidFiles:
    def test_ragged_schedules_are_padded_with_harmless_values_and_masked(self, tmp_path):
        ds = load(write(tmp_path, GOOD_CK))
        assert isinstance(ds, Dataset)
        assert ds.patient_ids == ("1", "2")
        assert ds.times.shape == (2, 3)
        np.testing.assert_array_equal(ds.obs_mask, [[True, True, True], [True, False, False]])
        np.testing.assert_array_equal(ds.times, [[1, 7, 28], [14, 0, 0]])
        np.testing.assert_array_equal(ds.dv, [[120.5, 3000, 5], [80, 1, 1]])
        np.testing.assert_array_equal(ds.blq, [[False, False, True], [False, False, False]])
        np.testing.assert_array_equal(ds.lloq, [[5, 5, 5], [np.nan, 1, 1]])
        np.testing.assert_array_equal(ds.source_rows, [[3, 4, 5], [7, 0, 0]])
        np.testing.assert_array_equal(ds.dose, [450, 300])
        assert ds.covariates.shape == (2, 0) and ds.covariate_names == ()
        assert ds.source == f"ck={tmp_path / 'ck.csv'}"
        assert (ds.n_observations, ds.n_blq) == (4, 1)

    def test_arrays_are_float64_under_x64(self, tmp_path):
        ds = load(write(tmp_path, GOOD_CK))
        for name in ("times", "dv", "lloq", "dose", "dose_time", "covariates"):
            assert getattr(ds, name).dtype == jnp.float64, name
        assert ds.blq.dtype == jnp.bool_ and ds.obs_mask.dtype == jnp.bool_
        assert jnp.issubdtype(ds.source_rows.dtype, jnp.integer)

    def test_the_dose_time_is_subtracted(self, tmp_path):
        path = ck_file(tmp_path, "1,10.5,.,1,450,1,0,.", "1,10.5,7,0,.,0,0,.", "1,12,9,0,.,0,0,.", "1,30,8,0,.,0,0,.")
        ds = load(path)
        np.testing.assert_array_equal(ds.times, [[0.0, 1.5, 19.5]])
        np.testing.assert_array_equal(ds.dv, [[7, 9, 8]])
        np.testing.assert_array_equal(ds.source_rows, [[3, 4, 5]])
        np.testing.assert_array_equal(ds.dose_time, [10.5])
        assert ds.doses is None  # one infusion: Dataset.dose says it all
        np.testing.assert_array_equal(ds.dose_events.time, [[0.0]])

    def test_patients_keep_the_order_of_first_appearance(self, tmp_path):
        records = ["10,0,.,1,1,1,0,.", "2,0,.,1,2,1,0,.", "10,1,5,0,.,0,0,.", "2,1,6,0,.,0,0,."]
        path = ck_file(tmp_path, *records, "A,0,.,1,3,1,0,.", "A,1,7,0,.,0,0,.")
        ds = load(path)
        assert ds.patient_ids == ("10", "2", "A")
        np.testing.assert_array_equal(ds.dose, [1, 2, 3])

    def test_blq_records_take_the_lloq_from_dv_or_from_the_lloq_column(self, tmp_path):
        path = ck_file(
            tmp_path, "1,0,.,1,450,1,0,.", "1,1,100,0,.,0,0,.", "1,2,4,0,.,0,1,.", "1,3,.,0,.,0,1,6", "1,4,,0,.,0,1,7"
        )
        ds = load(path)
        np.testing.assert_array_equal(ds.blq, [[False, True, True, True]])
        np.testing.assert_array_equal(ds.dv, [[100, 4, 6, 7]])
        np.testing.assert_array_equal(ds.lloq, [[np.nan, 4, 6, 7]])

    def test_blq_without_an_lloq_column_uses_dv_as_the_lloq(self, tmp_path):
        path = ck_file(
            tmp_path, "1,0,.,1,450,1,.", "1,1,100,0,.,0,0", "1,2,4,0,.,0,1", header="ID,TIME,DV,EVID,AMT,MDV,BLQ"
        )
        ds = load(path)
        np.testing.assert_array_equal(ds.lloq, [[np.nan, 4]])
        np.testing.assert_array_equal(ds.dv, [[100, 4]])

    def test_cens_is_a_synonym_of_blq(self, tmp_path):
        path = ck_file(
            tmp_path,
            "1,0,.,1,450,1,0,.",
            "1,1,100,0,.,0,0,.",
            "1,2,4,0,.,0,1,4",
            header="ID,TIME,DV,EVID,AMT,MDV,CENS,LLOQ",
        )
        np.testing.assert_array_equal(load(path).blq, [[False, True]])

    def test_without_a_blq_column_every_observation_is_quantified(self, tmp_path):
        path = ck_file(tmp_path, "1,0,.,1,450,1", "1,1,100,0,.,0", "1,2,4,0,.,0", header="ID,TIME,DV,EVID,AMT,MDV")
        ds = load(path)
        assert not ds.blq.any() and np.isnan(ds.lloq).all()

    def test_headers_are_case_insensitive_and_other_columns_are_ignored(self, tmp_path, capsys):
        path = ck_file(
            tmp_path, "1,0,.,1,450,1,0,.,x", "1,1,100,0,.,0,0,.,y", header=" id,Time,dv,evid,Amt,mdv,cens,lloq ,Site"
        )
        ds = load_dataset(path)
        assert ds.patient_ids == ("1",)
        assert "columns of ck.csv not used: SITE" in capsys.readouterr().out

    def test_mdv_one_observations_are_left_out_and_reported(self, tmp_path, capsys):
        path = ck_file(tmp_path, "1,0,.,1,450,.,.,.", "1,1,100,0,.,0,0,.", "1,2,.,0,.,1,.,.", "1,3,50,0,.,1,0,.")
        ds = load_dataset(path)
        assert ds.n_observations == 1
        out = capsys.readouterr().out
        assert "1 patients, 1 observation records" in out
        assert "2 records with MDV=1 ignored" in out and "rows 4, 5" in out

    def test_verbose_false_prints_nothing(self, tmp_path, capsys):
        load_dataset(write(tmp_path, GOOD_CK), verbose=False)
        assert capsys.readouterr().out == ""

    def test_leading_comments_such_as_simulated_are_passed_on(self, tmp_path, capsys):
        load_dataset(write(tmp_path, "# SIMULATED: not trial data\n" + GOOD_CK))
        assert "ck.csv says: SIMULATED: not trial data" in capsys.readouterr().out

    def test_integral_decimal_ids_match_between_files(self, tmp_path):
        ck = ck_file(tmp_path, "1.0,0,.,1,450,1,0,.", "1,1,100,0,.,0,0,.", " 007 ,0,.,1,300,1,0,.", "007,1,5,0,.,0,0,.")
        covariates = write(tmp_path, "ID,AGE\n1,60\n007.00,70\n", "patients.csv")
        ds = load(ck, covariates)
        assert ds.patient_ids == ("1", "007")
        np.testing.assert_array_equal(ds.covariate("AGE"), [60, 70])

    def test_duplicates_across_patients_or_event_types_are_not_duplicates(self, tmp_path):
        path = ck_file(tmp_path, "1,0,.,1,450,1,0,.", "1,0,100,0,.,0,0,.", "2,0,.,1,450,1,0,.", "2,0,100,0,.,0,0,.")
        np.testing.assert_array_equal(load(path).times, [[0], [0]])

    def test_read_ck_reads_a_file_on_its_own(self, tmp_path):
        ds = read_ck(write(tmp_path, GOOD_CK), verbose=False)
        assert ds.n_patients == 2

    def test_a_five_thousand_record_file_loads(self, tmp_path):
        records = []
        for p in range(250):
            records.append(f"P{p},0,.,1,{100 + p},1,0,.")
            records += [f"P{p},{t},{10 + t + p / 7},0,.,0,0,2" for t in range(1, 20)]
        ds = load(ck_file(tmp_path, *records))
        assert ds.times.shape == (250, 19) and ds.n_observations == 4750


# ---------------------------------------------------------------------------------------------------------
# Covariates
# ---------------------------------------------------------------------------------------------------------


class TestCovariateTable:
    def test_covariates_follow_the_requested_order_and_patient_order(self, tmp_path):
        ck = write(tmp_path, GOOD_CK)
        covariates = write(tmp_path, "id,tumor_burden,AGE,ARM\n2,12,57,ide-cel\n1,35.5,61,std\n", "patients.csv")
        ds = load(ck, covariates, covariate_columns=["age", "Tumor_Burden"])
        assert ds.covariate_names == ("AGE", "TUMOR_BURDEN")
        np.testing.assert_array_equal(ds.covariates, [[61, 35.5], [57, 12]])
        assert ds.source == f"ck={ck}; covariates={covariates}"

    def test_without_covariate_columns_every_numeric_column_is_taken(self, tmp_path, capsys):
        ds = load_dataset(write(tmp_path, GOOD_CK), write(tmp_path, GOOD_COVARIATES, "patients.csv"))
        assert ds.covariate_names == ("AGE", "TUMOR_BURDEN")
        assert "not used as covariates (not numeric or empty): ARM" in capsys.readouterr().out

    def test_the_table_needs_an_id_column(self, tmp_path):
        covariates = write(tmp_path, "PATIENT,AGE\n1,61\n2,57\n", "patients.csv")
        with pytest.raises(
            DataError,
            match=where(None, "ID", "patients.csv")
            + "the covariate table has no ID column; columns found: PATIENT, AGE",
        ):
            load(write(tmp_path, GOOD_CK), covariates)

    def test_duplicate_ids_name_both_rows(self, tmp_path):
        covariates = write(tmp_path, "# SIMULATED\nID,AGE\n1,61\n2,57\n1.0,62\n", "patients.csv")
        with pytest.raises(
            DataError, match=where(5, "ID", "patients.csv") + r"patient '1' appears twice \(rows 3 and 5\)"
        ):
            load(write(tmp_path, GOOD_CK), covariates)

    def test_a_patient_missing_from_the_table_is_named_with_its_ck_row(self, tmp_path):
        covariates = write(tmp_path, "ID,AGE\n1,61\n", "patients.csv")
        with pytest.raises(
            DataError,
            match=where(None, "ID", "patients.csv")
            + r"patient '2' has CK records \(first record: ck.csv row 6\) but no row",
        ):
            load(write(tmp_path, GOOD_CK), covariates)

    def test_extra_ids_are_rejected_by_default(self, tmp_path):
        covariates = write(tmp_path, GOOD_COVARIATES + "3,70,std,1\n", "patients.csv")
        with pytest.raises(
            DataError,
            match=where(4, "ID", "patients.csv")
            + "patient '3' is in the covariate table but has no CK records.*allow_extra_ids=True",
        ):
            load(write(tmp_path, GOOD_CK), covariates)

    def test_extra_ids_are_counted_when_allowed(self, tmp_path, capsys):
        covariates = write(tmp_path, GOOD_COVARIATES + "3,70,std,.\n4,71,std,2\n", "patients.csv")
        ds = load_dataset(
            write(tmp_path, GOOD_CK), covariates, covariate_columns=["TUMOR_BURDEN"], allow_extra_ids=True
        )
        assert ds.patient_ids == ("1", "2")
        assert "2 rows of patients.csv are for IDs without CK records" in capsys.readouterr().out

    def test_a_requested_column_that_is_absent_is_named(self, tmp_path):
        covariates = write(tmp_path, GOOD_COVARIATES, "patients.csv")
        with pytest.raises(
            DataError,
            match=where(None, "ECOG", "patients.csv")
            + "requested covariate ECOG is not a column.*columns found: ID, AGE, ARM, TUMOR_BURDEN",
        ):
            load(write(tmp_path, GOOD_CK), covariates, covariate_columns=["AGE", "ECOG"])

    def test_a_requested_text_column_is_non_numeric(self, tmp_path):
        covariates = write(tmp_path, GOOD_COVARIATES, "patients.csv")
        with pytest.raises(DataError, match=where(2, "ARM", "patients.csv") + "ARM is not a number: 'ide-cel'") as e:
            load(write(tmp_path, GOOD_CK), covariates, covariate_columns=["ARM"])
        assert [p.row for p in e.value.problems] == [2, 3]

    @pytest.mark.parametrize(
        ("cell", "shown"), [(".", "'.' (missing)"), ("", "an empty cell"), ("nan", "'nan'"), ("inf", "'inf'")]
    )
    def test_a_non_finite_covariate_is_rejected(self, tmp_path, cell, shown):
        covariates = write(tmp_path, f"ID,AGE\n1,61\n2,{cell}\n", "patients.csv")
        with pytest.raises(
            DataError, match=where(3, "AGE", "patients.csv") + f"covariate AGE is {re.escape(shown)} for patient '2'"
        ):
            load(write(tmp_path, GOOD_CK), covariates, covariate_columns=["AGE"])

    def test_unrequested_columns_are_not_checked(self, tmp_path):
        covariates = write(tmp_path, "ID,AGE,NOTES,PFS\n1,61,n/a,.\n2,57,,abc\n", "patients.csv")
        ds = load(write(tmp_path, GOOD_CK), covariates, covariate_columns=["AGE"])
        assert ds.covariate_names == ("AGE",)

    def test_covariate_columns_must_be_a_list_of_names(self, tmp_path):
        with pytest.raises(TypeError, match=r"covariate_columns=\['AGE'\]"):
            load(write(tmp_path, GOOD_CK), covariate_columns="AGE")
        with pytest.raises(ValueError, match="AGE more than once"):
            load(write(tmp_path, GOOD_CK), covariate_columns=["AGE", "age"])

    def test_read_covariates_returns_names_and_a_patients_by_covariates_array(self, tmp_path):
        path = write(tmp_path, GOOD_COVARIATES, "patients.csv")
        names, values = read_covariates(path, ["2", "1"], covariate_columns=["TUMOR_BURDEN", "AGE"], verbose=False)
        assert names == ("TUMOR_BURDEN", "AGE")
        np.testing.assert_array_equal(values, [[12, 57], [35.5, 61]])

    def test_read_covariates_without_ck_data_reports_the_missing_patient(self, tmp_path):
        path = write(tmp_path, GOOD_COVARIATES, "patients.csv")
        with pytest.raises(
            DataError, match=where(None, "ID", "patients.csv") + "patient '9' has CK records but no row"
        ):
            read_covariates(path, ["1", "2", "9"], verbose=False)


class TestCovariatesFromTheCkFile:
    HEADER = HEADER + ",WT,SITE"

    def test_a_named_column_constant_within_patients_is_a_covariate(self, tmp_path):
        records = [
            "1,0,.,1,450,1,0,.,70,a",
            "1,1,100,0,.,0,0,.,70,a",
            "2,0,.,1,300,1,0,.,.,b",
            "2,1,9,0,.,0,0,.,82.5,b",
        ]
        path = ck_file(tmp_path, *records, header=self.HEADER)
        ds = load(path, covariate_columns=["wt"])
        assert ds.covariate_names == ("WT",)
        np.testing.assert_array_equal(ds.covariates, [[70], [82.5]])
        assert ds.source == f"ck={path}"

    def test_a_named_column_that_varies_within_a_patient_is_rejected(self, tmp_path):
        path = ck_file(tmp_path, "1,0,.,1,450,1,0,.,70,a", "1,1,100,0,.,0,0,.,71,a", header=self.HEADER)
        with pytest.raises(
            DataError,
            match=where(3, "WT") + "covariate WT is not constant within patient '1': '71' here, '70' on row 2",
        ):
            load(path, covariate_columns=["WT"])

    def test_a_record_column_is_not_a_covariate(self, tmp_path):
        path = ck_file(tmp_path, "1,0,.,1,450,1,0,.,70,a", "1,1,100,0,.,0,0,.,70,a", header=self.HEADER)
        with pytest.raises(DataError, match=where(None, "AMT") + "AMT is a CK record column"):
            load(path, covariate_columns=["AMT"])

    def test_a_named_column_absent_from_the_ck_file_is_named(self, tmp_path):
        path = ck_file(tmp_path, "1,0,.,1,450,1,0,.,70,a", "1,1,100,0,.,0,0,.,70,a", header=self.HEADER)
        with pytest.raises(
            DataError, match=where(None, "AGE") + "requested covariate AGE is not a column of the CK file"
        ):
            load(path, covariate_columns=["AGE"])


# ---------------------------------------------------------------------------------------------------------
# data_hash
# ---------------------------------------------------------------------------------------------------------


class TestDataHash:
    def test_the_hash_is_the_sha256_of_the_files_concatenated_in_order(self, tmp_path):
        ck = write(tmp_path, GOOD_CK)
        covariates = write(tmp_path, GOOD_COVARIATES, "patients.csv")
        expected = hashlib.sha256((GOOD_CK + GOOD_COVARIATES).encode()).hexdigest()
        assert data_hash([ck, covariates]) == expected
        assert data_hash([str(ck), str(covariates)]) == expected
        assert data_hash(ck) == hashlib.sha256(GOOD_CK.encode()).hexdigest()

    def test_the_hash_is_stable_and_changes_with_content_or_order(self, tmp_path):
        ck = write(tmp_path, GOOD_CK)
        covariates = write(tmp_path, GOOD_COVARIATES, "patients.csv")
        first = data_hash([ck, covariates])
        assert data_hash([ck, covariates]) == first
        assert data_hash([covariates, ck]) != first
        write(tmp_path, GOOD_CK.replace("120.5", "120.6"))
        assert data_hash([ck, covariates]) != first

    def test_a_non_path_is_a_type_error(self):
        # the second pattern: under the jaxtyping+beartype hook the annotation is checked first
        with pytest.raises(TypeError, match="data_hash expects file paths, got 3 of type int|parameter 'paths'"):
            data_hash([3])


# ---------------------------------------------------------------------------------------------------------
# Dosing histories, analytes and time-varying covariates (NONMEM conventions)
# ---------------------------------------------------------------------------------------------------------

DOSING = "ID,TIME,DV,EVID,AMT,MDV,CMT,ADDL,II,RATE,DUR"


class TestDosingHistories:
    def test_a_second_infusion_is_a_second_dose_event_timed_from_the_first(self, tmp_path):
        path = ck_file(tmp_path, "1,10,.,1,450,1,0,.", "1,12,100,0,.,0,0,.", "1,40,.,1,300,1,0,.",
                       "1,45,900,0,.,0,0,.")
        ds = load(path)
        np.testing.assert_array_equal(ds.dose, [450.0])
        np.testing.assert_array_equal(ds.dose_time, [10.0])
        np.testing.assert_array_equal(ds.dose_events.time, [[0.0, 30.0]])
        np.testing.assert_array_equal(ds.dose_events.amount, [[450.0, 300.0]])
        np.testing.assert_array_equal(ds.times, [[2.0, 35.0]])

    def test_addl_and_ii_expand_into_explicit_doses(self, tmp_path):
        path = ck_file(tmp_path, "1,0,.,1,100,1,1,2,12,.,.", "1,1,5,0,.,0,2,.,.,.,.", "1,30,4,0,.,0,2,.,.,.,.",
                       header=DOSING)
        ds = load(path)
        np.testing.assert_array_equal(ds.dose_events.time, [[0.0, 12.0, 24.0]])
        np.testing.assert_array_equal(ds.dose_events.cmt, [[1, 1, 1]])
        np.testing.assert_array_equal(ds.analyte_codes, [[2.0, 2.0]])  # the observations' CMT names the analyte

    def test_rate_and_dur_give_the_infusion_duration(self, tmp_path):
        path = ck_file(tmp_path, "1,0,.,1,100,1,1,.,.,50,.", "1,1,5,0,.,0,1,.,.,.,.", "1,3,.,1,60,1,1,.,.,.,0.5",
                       "1,4,5,0,.,0,1,.,.,.,.", "1,6,.,1,80,1,1,.,.,40,2", "1,7,5,0,.,0,1,.,.,.,.", header=DOSING)
        np.testing.assert_array_equal(load(path).dose_events.duration, [[2.0, 0.5, 2.0]])

    @pytest.mark.parametrize(
        ("record", "column", "message"),
        [
            ("1,0,.,1,100,1,1,2,.,.,.", "II", r"ADDL=2 additional doses need an interval, but II is '\.' \(missing\)"),
            ("1,0,.,1,100,1,1,.,12,.,.", "II", r"II=12 is given without ADDL"),
            ("1,0,.,1,100,1,1,1.5,12,.,.", "ADDL", r"ADDL must be the number of additional doses"),
            ("1,0,.,1,100,1,1,.,.,-2,.", "RATE", r"RATE=-2 asks for a modelled infusion rate or duration"),
            ("1,0,.,1,100,1,1,.,.,50,3", "DUR", r"DUR=3 disagrees with AMT / RATE = 2"),
            ("1,0,.,1,100,1,0,.,.,.,.", "CMT", r"CMT must be a compartment number"),
            ("1,0,.,1,100,1,x,.,.,.,.", "CMT", r"CMT is not a number: 'x'"),
        ],
    )
    def test_bad_dosing_columns_name_the_row_and_column(self, tmp_path, record, column, message):
        path = ck_file(tmp_path, record, "1,1,5,0,.,0,1,.,.,.,.", header=DOSING)
        with pytest.raises(DataError, match=where(2, column) + message):
            load(path)

    def test_steady_state_doses_are_refused(self, tmp_path):
        path = ck_file(tmp_path, "1,0,.,1,100,1,1", "1,1,5,0,.,0,0", header="ID,TIME,DV,EVID,AMT,MDV,SS")
        with pytest.raises(DataError, match=where(2, "SS") + r"SS=1 \(a steady-state dose\) is not supported"):
            load(path)

    def test_doses_round_trip_through_write_ck(self, tmp_path):
        from carkin.data import write_ck

        path = ck_file(tmp_path, "1,0,.,1,100,1,1,1,12,.,.", "1,1,5,0,.,0,2,.,.,.,.", "1,13,4,0,.,0,2,.,.,.,.",
                       "2,0,.,1,80,1,2,.,.,40,.", "2,5,3,0,.,0,2,.,.,.,.", header=DOSING)
        original = load(path)
        write_ck(tmp_path / "out.csv", original)
        again = load(tmp_path / "out.csv")
        for name in ("time", "amount", "duration", "cmt", "mask"):
            np.testing.assert_array_equal(getattr(again.dose_events, name), getattr(original.dose_events, name))
        np.testing.assert_array_equal(again.analyte_codes, original.analyte_codes)
        np.testing.assert_array_equal(again.times, original.times)


class TestAnalytes:
    CK = ("1,0,.,1,450,1,.", "1,7,1200,0,.,0,1", "1,7,35,0,.,0,2", "1,14,.,0,.,0,1")
    HEADER = "ID,TIME,DV,EVID,AMT,MDV,DVID"

    def requirements(self, *analytes):
        from carkin.data import AnalyteNeed, DataRequirements

        return DataRequirements(analytes=tuple(AnalyteNeed(*a) for a in analytes), source="m.toml")

    def test_dvid_names_each_observations_analyte(self, tmp_path):
        path = ck_file(tmp_path, *self.CK[:3], header=self.HEADER)
        ds = load(path, requirements=self.requirements((1.0, "transgene"), (2.0, "flow")))
        np.testing.assert_array_equal(ds.analyte_codes, [[1.0, 2.0]])
        assert "analytes (DVID) 1, 2" in ds.summary()

    def test_an_analyte_the_model_does_not_declare_names_its_row(self, tmp_path):
        path = ck_file(tmp_path, *self.CK[:3], header=self.HEADER)
        with pytest.raises(DataError, match=where(4, "DVID") + r"analyte code 2 is not declared by m\.toml, which "
                                                               r"declares transgene \(DVID 1\)"):
            load(path, requirements=self.requirements((1.0, "transgene"), (3.0, "marker")))

    def test_several_analytes_for_a_one_analyte_model_is_an_error(self, tmp_path):
        path = ck_file(tmp_path, *self.CK[:3], header=self.HEADER)
        with pytest.raises(DataError, match=r"the observations name 2 analytes \(DVID 1 \(first on row 3\), 2 \(first "
                                            r"on row 4\)\), but m\.toml declares one"):
            load(path, requirements=self.requirements((None, "transgene")))

    def test_a_missing_dvid_on_an_observation_is_an_error(self, tmp_path):
        path = ck_file(tmp_path, *self.CK[:2], "1,9,10,0,.,0,.", header=self.HEADER)
        with pytest.raises(DataError, match=where(4, "DVID") + r"DVID is '\.' \(missing\) on an observation"):
            load(path)

    def test_dv_zero_is_accepted_only_for_an_analyte_with_a_linear_scale_error_model(self, tmp_path):
        path = ck_file(
            tmp_path, "1,0,.,1,4,1,1", "1,0,0,0,.,0,2", "1,1,3.5,0,.,0,2", header="ID,TIME,DV,EVID,AMT,MDV,CMT"
        )
        ds = load(path, requirements=self.requirements((None, "theophylline", False)))
        np.testing.assert_array_equal(ds.dv, [[0.0, 3.5]])
        with pytest.raises(DataError, match=where(3, "DV") + r"DV must be > 0 and finite on a quantified observation"):
            load(path, requirements=self.requirements((None, "transgene", True)))


class TestTimeVaryingCovariates:
    HEADER = "ID,TIME,DV,EVID,AMT,MDV,TOCI,WT"
    RECORDS = ("1,0,.,1,450,1,0,70", "1,1,10,0,.,0,0,70", "1,3,50,0,.,0,1,70", "1,7,900,0,.,0,.,70",
               "2,5,.,1,300,1,.,60", "2,6,20,0,.,0,0,60", "2,12,80,0,.,0,0,60")

    def test_a_time_varying_column_becomes_a_step_function_carried_forward(self, tmp_path):
        from carkin.data import DataRequirements

        path = ck_file(tmp_path, *self.RECORDS, header=self.HEADER)
        ds = load(path, requirements=DataRequirements(time_varying=("TOCI",)))
        np.testing.assert_array_equal(ds.steps.first_time_above("TOCI"), [3.0, np.inf])
        times, values, mask = ds.steps.column("TOCI")
        np.testing.assert_array_equal(times[0][mask[0]], [-np.inf, 3.0])
        np.testing.assert_array_equal(values[0][mask[0]], [0.0, 1.0])
        np.testing.assert_array_equal(np.asarray(ds.steps.rows)[0][mask[0]], [2, 4])
        with pytest.raises(ValueError, match=r"covariate TOCI changes within patient '1' \(rows 2, 4"):
            ds.covariate("TOCI")

    def test_a_constant_column_that_varies_names_the_rows_and_the_fix(self, tmp_path):
        path = ck_file(tmp_path, *self.RECORDS, header=self.HEADER)
        with pytest.raises(DataError, match=where(4, "TOCI") + r"covariate TOCI is not constant within patient '1'.*"
                                            r"\[comedication\] indicator"):
            load(path, covariate_columns=["TOCI"])

    def test_an_event_time_column_may_be_missing_meaning_never(self, tmp_path):
        from carkin.data import DataRequirements

        ck = ck_file(tmp_path, "1,0,.,1,450,1,0,.", "1,3,50,0,.,0,0,.", "2,0,.,1,300,1,0,.", "2,6,20,0,.,0,0,.")
        table = write(tmp_path, "ID,TOCI_DAY,TB\n1,2.5,30\n2,.,12\n", "patients.csv")
        ds = load(ck, table, requirements=DataRequirements(covariates=("TB",), event_times=("TOCI_DAY",)))
        np.testing.assert_array_equal(ds.covariate("TOCI_DAY"), [2.5, np.inf])
        with pytest.raises(DataError, match=where(3, "TB", "patients.csv") + "covariate TB is '.' "):
            load(ck, write(tmp_path, "ID,TOCI_DAY,TB\n1,2.5,30\n2,.,.\n", "patients.csv"),
                 requirements=DataRequirements(covariates=("TB",), event_times=("TOCI_DAY",)))


class TestShippedPKData:
    """The real data sets carkin ships (Theoph, Phenobarb) read as NONMEM data with several doses and DV = 0."""

    def test_theophylline_reads_with_a_linear_scale_error_model(self):
        from carkin._resources import shipped_data_file
        from carkin.data import AnalyteNeed, DataRequirements

        ds = load(shipped_data_file("theophylline", "theophylline.csv"), covariate_columns=["WT"],
                  requirements=DataRequirements(analytes=(AnalyteNeed(None, "theophylline", False),)))
        assert ds.n_patients == 12 and ds.n_observations == 132 and not ds.simulated
        assert (np.asarray(ds.dv)[np.asarray(ds.obs_mask)] == 0).sum() == 9

    def test_phenobarbital_reads_its_repeated_doses(self):
        from carkin._resources import shipped_data_file

        ds = load(shipped_data_file("phenobarbital", "phenobarbital.csv"), covariate_columns=["WT", "APGAR"])
        assert ds.n_patients == 59 and ds.n_observations == 155
        assert int(ds.n_doses.sum()) == 589 and int(ds.n_doses.max()) == 15
