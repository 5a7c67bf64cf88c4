"""Reading tables and checking survival columns: every message names the file, the line and the column."""

import numpy as np
import pandas as pd
import pytest

from carkin.data import read_table
from carkin.errors import DataError
from carkin.survival import cox_ph, kaplan_meier, logrank_test


def _write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _table(**columns):
    """Four rows (or as long as the columns given): T = 1, 2, ...; E alternating 1, 0; G alternating a, b."""
    n = len(next(iter(columns.values()))) if columns else 4
    base = {
        "T": np.arange(1.0, n + 1),
        "E": [1, 0] * (n // 2) + [1] * (n % 2),
        "G": ["a", "b"] * (n // 2) + ["a"] * (n % 2),
    }
    base.update(columns)
    return pd.DataFrame(base)


class TestDataTables:
    def test_a_data_table_brings_its_file_and_lines_to_the_messages(self, tmp_path):
        path = _write(tmp_path, "# comment\nT,E,G\n1,1,a\n2,0,b\n-3,1,a\n4,1,b\n")
        with pytest.raises(DataError, match=r"data\.csv, row 5, column T: negative time -3"):
            kaplan_meier(read_table(path), time="T", event="E")

    def test_explicit_source_and_rows_override_the_tables_own(self, tmp_path):
        path = _write(tmp_path, "T,E\n-1,1\n2,0\n")
        with pytest.raises(DataError, match=r"other\.csv, row 9, column T"):
            kaplan_meier(read_table(path), time="T", event="E", source="other.csv", rows={0: 9, 1: 10})


class TestColumnChecks:
    def test_a_missing_column_is_named_with_the_available_ones(self):
        with pytest.raises(
            DataError, match=r"<DataFrame>, column TIME: column 'TIME' not found \(columns in the data: T, E, G\)"
        ):
            kaplan_meier(_table(), time="TIME", event="E")

    def test_the_source_name_is_used_when_given(self):
        with pytest.raises(DataError, match=r"^1 problem.*\n  - pfs\.csv, column X"):
            kaplan_meier(_table(), time="X", event="E", source="pfs.csv")

    def test_negative_time_names_the_first_row_and_counts_the_others(self):
        df = _table(T=[1.0, -2.0, 3.0, -4.0])
        with pytest.raises(DataError, match=r"row 3, column T: negative time -2\.0.*\(2 rows in all; also rows 5\)"):
            kaplan_meier(df, time="T", event="E")

    def test_non_numeric_time_is_rejected(self):
        df = _table(T=["1", "2", "soon", "4"])
        with pytest.raises(DataError, match=r"row 4, column T: non-numeric time 'soon'"):
            kaplan_meier(df, time="T", event="E")

    def test_missing_time_is_rejected(self):
        df = _table(T=[1.0, np.nan, 3.0, 4.0])
        with pytest.raises(DataError, match=r"row 3, column T: missing time"):
            kaplan_meier(df, time="T", event="E")

    def test_infinite_time_is_rejected(self):
        df = _table(T=[1.0, np.inf, 3.0, 4.0])
        with pytest.raises(DataError, match=r"row 3, column T: infinite time"):
            kaplan_meier(df, time="T", event="E")

    def test_non_binary_event_is_rejected(self):
        df = _table(T=[1.0, 2.0, 3.0, 4.0], E=[1, 0, 2, 1])
        with pytest.raises(DataError, match=r"row 4, column E: non-binary event value 2"):
            kaplan_meier(df, time="T", event="E")

    def test_boolean_events_are_accepted(self):
        df = _table(T=[1.0, 2.0, 3.0, 4.0], E=[True, False, True, True])
        assert kaplan_meier(df, time="T", event="E")["all"].events == 3

    def test_missing_event_is_rejected(self):
        df = _table(T=[1.0, 2.0, 3.0, 4.0], E=[1, None, 1, 0])
        with pytest.raises(DataError, match=r"row 3, column E: missing event value"):
            kaplan_meier(df, time="T", event="E")

    def test_missing_group_is_rejected(self):
        df = _table(T=[1.0, 2.0, 3.0, 4.0], G=["a", None, "b", "a"])
        with pytest.raises(DataError, match=r"row 3, column G: missing value"):
            kaplan_meier(df, time="T", event="E", group="G")

    def test_all_problems_are_reported_together(self):
        df = _table(T=[1.0, -2.0, 3.0, 4.0], E=[1, 0, 5, 1])
        with pytest.raises(DataError, match=r"^2 problem\(s\)") as info:
            kaplan_meier(df, time="T", event="E")
        assert {p.column for p in info.value.problems} == {"T", "E"}

    def test_a_custom_index_is_mapped_through_rows(self):
        df = _table(T=[1.0, 2.0, -3.0, 4.0]).set_index(pd.Index([10, 11, 12, 13]))
        with pytest.raises(DataError, match=r"row 40, column T"):
            kaplan_meier(df, time="T", event="E", rows={10: 20, 11: 30, 12: 40, 13: 50})

    def test_an_empty_table_is_rejected(self):
        with pytest.raises(DataError, match="the table has no rows"):
            kaplan_meier(_table().iloc[:0], time="T", event="E")

    def test_a_non_dataframe_is_a_type_error(self):
        with pytest.raises(TypeError, match="expected a pandas DataFrame or a carkin DataTable, got dict"):
            kaplan_meier({"T": [1]}, time="T", event="E")


class TestAnalysisChecks:
    def test_logrank_needs_two_groups(self):
        df = _table(G=["a"] * 4)
        with pytest.raises(DataError, match=r"column G: the log-rank test needs at least two groups"):
            logrank_test(df, time="T", event="E", group="G")

    def test_logrank_needs_events(self):
        df = _table(E=[0, 0, 0, 0])
        with pytest.raises(DataError, match=r"column E: no events in the data"):
            logrank_test(df, time="T", event="E", group="G")

    def test_a_group_named_in_groups_but_absent_is_rejected(self):
        with pytest.raises(DataError, match=r"column G: group\(s\) \['c'\] have no rows"):
            logrank_test(_table(), time="T", event="E", group="G", groups=["a", "b", "c"])

    def test_a_value_outside_groups_names_its_row(self):
        with pytest.raises(DataError, match=r"row 3, column G: value 'b' is not one of the groups \['a'\]"):
            kaplan_meier(_table(), time="T", event="E", group="G", groups=["a"])

    def test_cox_rejects_a_categorical_covariate_with_a_one_hot_hint(self):
        df = _table(SEX=["M", "F", "F", "M"])
        with pytest.raises(
            DataError, match=r"column SEX: covariate column 'SEX' is not numeric \(e\.g\. 'M'\).*pd\.get_dummies"
        ):
            cox_ph(df, time="T", event="E", covariates=["SEX"])

    def test_cox_rejects_a_binary_covariate_without_events_at_one_value(self):
        df = _table(T=[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], E=[1, 0, 1, 0, 1, 0], X=[1, 0, 1, 0, 1, 0])
        with pytest.raises(DataError, match=r"column X: no events among rows with X = 0.*monotone likelihood"):
            cox_ph(df, time="T", event="E", covariates="X")
