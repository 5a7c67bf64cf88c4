"""The CLI's one user-error handler and one list splitter (`carkin.cli._common`)."""

import pytest
import typer
from typer.testing import CliRunner

from carkin.cli._common import default_of, split_list, user_errors
from carkin.errors import (
    ConvergenceError,
    DataError,
    DataProblem,
    SolverError,
    SpecError,
)


def _run(error: BaseException):
    """Exit code and stderr of a one-command app whose work raises ``error`` inside `user_errors`."""
    app = typer.Typer()

    @app.command()
    def work() -> None:
        with user_errors():
            raise error

    result = CliRunner().invoke(app, [])
    return result.exit_code, result.stderr


class TestUserErrors:
    def test_a_data_error_prints_one_line_per_problem_naming_file_row_and_column(self):
        error = DataError(
            [DataProblem("p.csv", 3, "TIME", "negative time -1"), DataProblem("p.csv", None, "DV", "bad")]
        )
        code, err = _run(error)
        assert code == 2
        assert err.splitlines() == [
            "error: p.csv, row 3, column TIME: negative time -1",
            "error: p.csv, column DV: bad",
        ]

    @pytest.mark.parametrize("error", [
        SpecError("m.toml: [simulation].omega has no value for cmax"),
        SolverError("the ODE solve failed for patient 3"),
        ValueError("method='nut' (str) is not valid; choose one of nuts, laplace, svi, map"),
        FileExistsError("out holds files this command did not write (notes.txt)"),
    ])
    def test_user_fixable_errors_exit_2_with_their_message_and_no_traceback(self, error):
        code, err = _run(error)
        assert code == 2 and err.strip() == f"error: {error}"

    def test_an_os_error_names_the_path(self, tmp_path):
        code, err = _run(FileNotFoundError(2, "No such file or directory", str(tmp_path / "absent.csv")))
        assert code == 2 and err.strip() == f"error: {tmp_path / 'absent.csv'}: no such file or directory"

    def test_a_convergence_error_exits_1(self):
        code, err = _run(ConvergenceError("the Cox fit did not converge"))
        assert code == 1 and err.strip() == "error: the Cox fit did not converge"

    def test_a_bug_keeps_its_traceback(self):
        app = typer.Typer()

        @app.command()
        def work() -> None:
            with user_errors():
                raise TypeError("a programming error")

        result = CliRunner().invoke(app, [])
        assert isinstance(result.exception, TypeError)

    def test_markup_in_a_message_is_printed_as_is(self):
        code, err = _run(ValueError("column [bold]x[/bold] not found"))
        assert err.strip() == "error: column [bold]x[/bold] not found"


class TestSplitList:
    def test_repeated_and_comma_separated_values_are_flattened(self):
        assert split_list(["cmax,auc28", " c_m6 ", "a,,b,"]) == ["cmax", "auc28", "c_m6", "a", "b"]

    def test_nothing_gives_an_empty_list(self):
        assert split_list(None) == [] and split_list([]) == [] and split_list([" , "]) == []

    def test_a_single_string_is_split_too(self):
        assert split_list("x1, x2") == ["x1", "x2"]


def test_default_of_reads_a_library_default():
    def f(*, window_days: float = 28.0) -> None: ...

    assert default_of(f, "window_days") == 28.0
