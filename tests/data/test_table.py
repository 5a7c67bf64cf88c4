"""carkin.data's table boundary: `read_table`, `write_table`, and the provenance that travels with data."""

import io

import jax
import numpy as np
import pandas as pd
import pytest

from carkin.data import (
    SIMULATED_NOTE,
    DataTable,
    load_dataset,
    read_table,
    says_simulated,
    write_ck,
    write_table,
)
from carkin.errors import DataError


def _write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


class TestReadTable:
    def test_comment_and_blank_lines_are_skipped_and_counted_in_line_numbers(self, tmp_path):
        path = _write(tmp_path, "# SIMULATED\n# second comment\nT,E\n1,1\n\n# note\n2,0\n3,.\n")
        table = read_table(path)
        assert isinstance(table, DataTable)
        assert list(table.frame.columns) == ["T", "E"]
        assert table.frame["T"].tolist() == [1, 2, 3]
        assert dict(table.lines) == {0: 4, 1: 7, 2: 8}
        assert np.isnan(table.frame["E"].iloc[2])  # "." is missing
        assert table.comments == ("SIMULATED", "second comment")
        assert table.source == str(path)

    def test_columns_are_typed_as_pandas_reads_them(self, tmp_path):
        text = "ID,ARM,N,X,FLAG,EMPTY,MIXED\n1,a,3,1.5,true,.,2\n2,b,4,.,False,,x\n10,.,5,-2e3,TRUE,,3\n"
        table = read_table(_write(tmp_path, text)).frame
        expected = pd.read_csv(io.StringIO(text), na_values=".")
        assert list(table.columns) == list(expected.columns)
        for column in expected.columns:
            assert table[column].dtype == expected[column].dtype, column
            pd.testing.assert_series_equal(table[column], expected[column], check_names=False)

    def test_header_names_keep_their_case(self, tmp_path):
        table = read_table(_write(tmp_path, "time,Event\n1,0\n")).frame
        assert list(table.columns) == ["time", "Event"]

    def test_an_empty_file_is_reported_by_name(self, tmp_path):
        path = _write(tmp_path, "# only a comment\n")
        with pytest.raises(DataError, match=r"data\.csv: the file is empty: no header line"):
            read_table(path)

    def test_a_record_with_too_many_fields_names_its_line(self, tmp_path):
        path = _write(tmp_path, "# comment\nT,E\n1,1\n2,0,7\n")
        with pytest.raises(DataError, match=r"data\.csv, row 4: the record has 3 fields but the header has 2"):
            read_table(path)

    def test_a_column_named_twice_is_reported(self, tmp_path):
        path = _write(tmp_path, "T,E,T\n1,1,2\n")
        with pytest.raises(DataError, match=r"data\.csv, row 1, column T: the column name appears twice"):
            read_table(path)

    def test_a_file_that_is_not_utf8_is_reported(self, tmp_path):
        path = tmp_path / "latin.csv"
        path.write_bytes("T,E\n1,1\n# caf\xe9\n".encode("latin-1"))
        with pytest.raises(DataError, match=r"latin\.csv, row 3: the file is not UTF-8 text"):
            read_table(path)

    def test_a_missing_file_raises_file_not_found(self, tmp_path):
        with pytest.raises(FileNotFoundError):
            read_table(tmp_path / "absent.csv")


class TestProvenance:
    @pytest.mark.parametrize(
        "text, simulated",
        [
            ("# SIMULATED data: not trial data\nID,X\n1,2\n", True),
            ("# a simulated cohort\nID,X\n1,2\n", True),  # the word, in any case
            ("ID,X,SIMULATED\n1,2,0\n2,3,1\n", True),
            ("ID,X,SIMULATED\n1,2,0\n2,3,0\n", False),
            ("ID,X\n1,2\n# SIMULATED after the header is not a leading comment\n", False),
            ("ID,X\n1,2\n", False),
        ],
    )
    def test_a_table_says_whether_it_is_simulated(self, tmp_path, text, simulated):
        assert read_table(_write(tmp_path, text)).simulated is simulated

    def test_the_rule_on_its_own(self):
        assert says_simulated(["SIMULATED"]) and not says_simulated(["real data"])
        assert says_simulated(frame=pd.DataFrame({"SIMULATED": [0, 1]}))
        assert not says_simulated(frame=pd.DataFrame({"SIMULATED": [0, 0]}))

    CK = "ID,TIME,DV,EVID,AMT,MDV\n1,0,.,1,400,1\n1,7,120,0,.,0\n2,0,.,1,300,1\n2,7,80,0,.,0\n"

    def test_a_dataset_is_simulated_when_its_ck_file_says_so(self, tmp_path):
        plain = load_dataset(_write(tmp_path, self.CK, "ck.csv"), verbose=False)
        marked = load_dataset(_write(tmp_path, "# SIMULATED\n" + self.CK, "sim.csv"), verbose=False)
        assert not plain.simulated and marked.simulated
        assert marked.summary().startswith("SIMULATED data: 2 patients")

    def test_a_dataset_is_simulated_when_its_covariate_table_says_so(self, tmp_path):
        ck = _write(tmp_path, self.CK, "ck.csv")
        flagged = _write(tmp_path, "ID,TB,SIMULATED\n1,10,1\n2,20,1\n", "patients.csv")
        assert load_dataset(ck, flagged, covariate_columns=["TB"], verbose=False).simulated

    def test_write_ck_marks_a_simulated_dataset_so_that_it_reads_back_simulated(self, tmp_path):
        marked = load_dataset(_write(tmp_path, "# SIMULATED\n" + self.CK, "sim.csv"), verbose=False)
        out = tmp_path / "out.csv"
        write_ck(out, marked, comment="written by a test")
        assert out.read_text().splitlines()[0] == f"# {SIMULATED_NOTE}"
        assert load_dataset(out, verbose=False).simulated

    def test_a_simulated_cohort_is_simulated(self):
        from carkin.population import load_spec
        from carkin.simulate import simulate_cohort

        cohort = simulate_cohort(load_spec("multiphasic"), key=jax.random.key(0), n=3)
        assert cohort.dataset.simulated


class TestWriteTable:
    def test_a_table_reads_back_with_its_values_and_provenance(self, tmp_path):
        frame = pd.DataFrame({"ID": ["a", "b"], "X": [1.25, np.nan], "N": [1, 2]})
        path = tmp_path / "t.csv"
        write_table(path, frame, simulated=True, comment="two rows")
        lines = path.read_text().splitlines()
        assert lines[:2] == [f"# {SIMULATED_NOTE}", "# two rows"]
        back = read_table(path)
        assert back.simulated
        pd.testing.assert_frame_equal(back.frame, frame)

    def test_float_format_none_writes_numbers_exactly(self, tmp_path):
        frame = pd.DataFrame({"X": [0.1 + 0.2, 1 / 3]})
        write_table(tmp_path / "t.csv", frame, float_format=None)
        assert read_table(tmp_path / "t.csv").frame["X"].tolist() == frame["X"].tolist()
        write_table(tmp_path / "u.csv", frame)
        assert read_table(tmp_path / "u.csv").frame["X"].tolist() == [0.3, 0.33333333]
