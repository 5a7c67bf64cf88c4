"""carkin._toml: the one TOML reader. Every accessor, and every message in its one style
``{file}: [{table}] {key} = {value!r} {what is wrong}; {fix}``."""

import math
import re

import pytest

from carkin._toml import Table, parse_toml, read_toml, spec_error
from carkin.errors import SpecError


def t(**values) -> Table:
    return Table(values, file="f.toml", path="a.b")


def fails(match: str):
    return pytest.raises(SpecError, match="^" + re.escape(match) + "$")


class TestStyle:
    def test_every_part_of_the_message_is_in_its_place(self):
        err = spec_error("f.toml", "[a]", "k", "is wrong", "fix it", value=3)
        assert str(err) == "f.toml: [a] k = 3 is wrong; fix it" and isinstance(err, ValueError)

    def test_parts_that_do_not_apply_are_left_out(self):
        assert str(spec_error("f.toml", "", "k", "is missing", "add k")) == "f.toml: k is missing; add k"
        assert str(spec_error("f.toml", "[a]", None, "is missing", "add [a]")) == "f.toml: [a] is missing; add [a]"
        assert str(spec_error("f.toml", "", None, "not valid TOML")) == "f.toml: not valid TOML"

    def test_the_top_of_the_file_has_no_table_and_array_entries_are_numbered_from_1(self):
        top = Table({"model": "x", "strata": [{"name": "A"}, {}]}, file="f.toml")
        with fails("f.toml: model = 'x' is not valid; choose one of a, b"):
            top.choice("model", ("a", "b"))
        second = top.array("strata")[1]
        assert second.path == "strata[2]" and second.header == "[[strata]] #2"
        with fails("f.toml: [[strata]] #2 name is missing; add name = <a string>"):
            second.string("name")

    def test_fail_and_wrap_name_the_table(self):
        with fails("f.toml: [a.b] low = 5 is above high; swap them"):
            raise t(low=5).fail("low", "is above high", "swap them", value=5)

        def build(x):
            raise ValueError(f"x = {x} is odd")

        with fails("f.toml: [a.b] x = 3 is odd"):
            t().wrap(None, build, 3)
        assert t().wrap(None, lambda x: x + 1, 1) == 2


class TestScalars:
    def test_number_accepts_an_integer_and_returns_a_float(self):
        assert t(x=3).number("x") == 3.0 and isinstance(t(x=3).number("x"), float)
        assert t().number("x", 2.5) == 2.5  # the default, unchecked

    @pytest.mark.parametrize(
        "value, kwargs, message",
        [
            (None, {}, "f.toml: [a.b] x is missing; add x = <a number>"),
            ("1", {}, "f.toml: [a.b] x = '1' is a string, not a number; write a number without quotes, e.g. 1.5"),
            (True, {}, "f.toml: [a.b] x = True is a boolean, not a number; write a number without quotes, e.g. 1.5"),
            (math.inf, {}, "f.toml: [a.b] x = inf is not finite; give a finite number"),
            (0, {"gt": 0}, "f.toml: [a.b] x = 0 is not > 0; give a number > 0"),
            (-1.0, {"ge": 0}, "f.toml: [a.b] x = -1.0 is not >= 0; give a number >= 0"),
            (2, {"lt": 1}, "f.toml: [a.b] x = 2 is not < 1; give a number < 1"),
            (1.5, {"gt": 0, "lt": 1}, "f.toml: [a.b] x = 1.5 is outside (0, 1); give a number in (0, 1)"),
            (0, {"gt": 0, "le": 0.5, "hint": "one-sided"},
             "f.toml: [a.b] x = 0 is outside (0, 0.5]; give a number in (0, 0.5] (one-sided)"),
            (None, {"hint": "days"}, "f.toml: [a.b] x is missing; add x = <a number> (days)"),
        ],
    )
    def test_number_errors(self, value, kwargs, message):
        table = t() if value is None else t(x=value)
        with fails(message):
            table.number("x", **kwargs)

    def test_bounds_that_hold_pass(self):
        assert t(x=0).number("x", ge=0, lt=1) == 0.0 and t(x=0.5).number("x", gt=0, le=0.5) == 0.5

    def test_integer(self):
        assert t(n=3).integer("n", ge=1) == 3 and t().integer("n", 7) == 7
        with fails("f.toml: [a.b] n = 3.0 is a float, not an integer; write a whole number without quotes, e.g. 3"):
            t(n=3.0).integer("n")
        with fails("f.toml: [a.b] n = False is a boolean, not an integer; write a whole number without quotes, e.g. 3"):
            t(n=False).integer("n")
        with fails("f.toml: [a.b] n = 0 is not >= 1; give an integer >= 1"):
            t(n=0).integer("n", ge=1)
        with fails("f.toml: [a.b] n is missing; add n = <an integer>"):
            t().integer("n")

    def test_string(self):
        assert t(s="x").string("s") == "x" and t().string("s", "d") == "d"
        with fails('f.toml: [a.b] s = 1 is an integer, not a string; write it in double quotes, e.g. "text"'):
            t(s=1).string("s")
        with fails("f.toml: [a.b] s = '' is empty; give a non-empty string (a column)"):
            t(s="").string("s", nonempty=True, hint="a column")

    def test_boolean(self):
        assert t(b=True).boolean("b") is True and t().boolean("b", False) is False
        with fails("f.toml: [a.b] b = 'yes' is a string, not true or false; write true or false, without quotes"):
            t(b="yes").boolean("b")
        with fails("f.toml: [a.b] b is missing; add b = <true or false>"):
            t().boolean("b")

    def test_choice_lists_the_valid_values(self):
        assert t(m="log").choice("m", ("log", "logit")) == "log" and t().choice("m", ("log",), "log") == "log"
        with fails("f.toml: [a.b] m = 'sqrt' is not valid; choose one of log, logit"):
            t(m="sqrt").choice("m", ("log", "logit"))
        with fails("f.toml: [a.b] m is missing; add m = one of log, logit"):
            t().choice("m", ("log", "logit"))


class TestLists:
    def test_numbers_returns_a_tuple_of_floats(self):
        assert t(v=[1, 2.5]).numbers("v") == (1.0, 2.5) and t().numbers("v", (3.0,)) == (3.0,)
        assert t(v=[]).numbers("v", nonempty=False) == ()

    @pytest.mark.parametrize(
        "value, kwargs, message",
        [
            (None, {}, "f.toml: [a.b] v is missing; add v = <a list of numbers>"),
            (3, {}, "f.toml: [a.b] v = 3 is an integer, not a list of numbers; write a list such as [1.0, 2.0]"),
            ([1, "2"], {}, "f.toml: [a.b] v = [1, '2'] is not a list of numbers; write a list such as [1.0, 2.0]"),
            ([1, True], {}, "f.toml: [a.b] v = [1, True] is not a list of numbers; write a list such as [1.0, 2.0]"),
            ([], {}, "f.toml: [a.b] v = [] is empty; give at least one number"),
            ([1, math.nan], {}, "f.toml: [a.b] v = [1, nan] holds nan; give finite numbers"),
            ([150, -1], {"gt": 0}, "f.toml: [a.b] v = [150, -1] holds -1, which is not > 0; give numbers > 0"),
            ([1, 2], {"starts_at": 0.0}, "f.toml: [a.b] v = [1, 2] does not start at 0; make the first value 0"),
            ([0, 2, 2], {"increasing": True},
             "f.toml: [a.b] v = [0, 2, 2] does not increase strictly; sort the values and remove repeats"),
            ([3, 1, 2], {"decreasing": True},
             "f.toml: [a.b] v = [3, 1, 2] does not decrease strictly; give strictly decreasing values"),
        ],
    )
    def test_numbers_errors(self, value, kwargs, message):
        table = t() if value is None else t(v=value)
        with fails(message):
            table.numbers("v", **kwargs)

    def test_strings(self):
        assert t(v=["a", "b"]).strings("v") == ("a", "b") and t().strings("v", ()) == ()
        with fails("f.toml: [a.b] v = 'a' is a string, not a list of strings; write a list such as [\"a\", \"b\"]"):
            t(v="a").strings("v")
        with fails("f.toml: [a.b] v = ['a', 1] is not a list of strings; write a list such as [\"a\", \"b\"]"):
            t(v=["a", 1]).strings("v")
        with fails("f.toml: [a.b] v = [] is empty; give at least one string"):
            t(v=[]).strings("v")


class TestTables:
    def test_a_sub_table_knows_its_path(self):
        sub = t(c={"x": 1}).table("c")
        assert sub.path == "a.b.c" and sub.header == "[a.b.c]" and sub.file == "f.toml" and sub.number("x") == 1.0
        empty = t().table("c")
        assert len(empty) == 0 and empty.number("x", 2.0) == 2.0  # an absent table reads as empty

    def test_sub_table_errors(self):
        with fails("f.toml: [a.b.c] is missing; add a [a.b.c] table with levels = [...]"):
            t().table("c", required=True, hint="levels = [...]")
        with fails("f.toml: [a.b] c = 3 is an integer, not a table; write it as a table [a.b.c]"):
            t(c=3).table("c")

    def test_a_family_of_tables(self):
        family = Table({"p": {"cmax": {"x": 1}, "tmax": {"x": 2}}}, file="f.toml").tables("p")
        assert list(family) == ["cmax", "tmax"] and family["tmax"].header == "[p.tmax]"
        assert Table({}, file="f.toml").tables("p") == {}
        with fails("f.toml: [p] cmax = 1 is an integer, not a table; write it as a table [p.cmax]"):
            Table({"p": {"cmax": 1}}, file="f.toml").tables("p")

    def test_an_array_of_tables(self):
        top = Table({}, file="f.toml")
        assert [x.number("i") for x in top.array("looks", [{"i": 1.0}])] == [1.0]
        with fails("f.toml: [[looks]] is missing; add one or more [[looks]] tables"):
            top.array("looks")
        with fails("f.toml: looks = [1, 2] is not an array of tables; write each entry as a [[looks]] table"):
            Table({"looks": [1, 2]}, file="f.toml").array("looks")

    def test_unknown_keys_are_errors_that_list_the_valid_keys(self):
        t(lloq=1).check_keys(("lloq", "sigma"))
        with fails("f.toml: [a.b] llqo is not a valid key; valid keys: lloq, sigma (check the spelling)"):
            t(llqo=1).check_keys(("lloq", "sigma"))
        with fails("f.toml: [a.b] x, y are not valid keys; valid keys: lloq (check the spelling)"):
            t(x=1, y=2, lloq=3).check_keys(["lloq"])
        with fails("f.toml: [a.b] x is not a valid key; valid keys: (none) (check the spelling)"):
            t(x=1).check_keys(())


class TestFiles:
    def test_read_toml_parses_a_file(self, tmp_path):
        path = tmp_path / "s.toml"
        path.write_text('name = "x"\n[a]\nb = 1\n', encoding="utf-8")
        assert read_toml(path, what="scenario", example="scenarios/doses.toml") == {"name": "x", "a": {"b": 1}}

    def test_missing_invalid_and_non_utf8_files(self, tmp_path):
        missing = tmp_path / "nope.toml"
        with fails(f"{missing}: scenario file not found; give the path of a TOML file such as scenarios/doses.toml"):
            read_toml(missing, what="scenario", example="scenarios/doses.toml")
        with pytest.raises(SpecError, match=r"^bad.toml: not valid TOML \(.*line 1.*\); fix the syntax at the line"):
            parse_toml("name = \n", "bad.toml")
        with pytest.raises(SpecError, match=r"^bin.toml: not valid TOML"):
            parse_toml(b"name = '\xff'\n", "bin.toml")
