"""The one reader of carkin's TOML files: model specs, dose scenarios, trial designs, the virtual-cohort config.

A `Table` is a view of one TOML table that knows its file and its dotted path. Its typed accessors check
one key and return its value; every problem is a `carkin.errors.SpecError` in one style::

    {file}: [{table}] {key} = {value!r} {what is wrong}; {fix}

for example ``models/multiphasic.toml: [parameters.rho] typical = -1.0 is not > 0; give a number > 0``.
Parts that do not apply are left out: a missing key has no value (``[doses] levels is missing; add ...``),
a key at the top of the file has no table (``model = 'gompertz' is not valid; choose one of ...``), and a
problem of a whole table has no key (``[doses] is missing; add ...``). An entry of an array of tables is
named by its position, 1-based: ``[[analysis.looks]] #3``.

Rules shared by every accessor:

- an integer is accepted where a number is expected (and returned as a float); true/false never is;
- numbers must be finite (TOML allows ``inf`` and ``nan``);
- a key absent from the file takes the accessor's ``default``; without one it is an error.

Unknown keys (a typo such as ``llqo = 18``) are errors once a reader calls `Table.check_keys` with the valid
keys of the table; the error lists them.

Examples
--------
>>> t = Table({"typical": 24000, "transform": "log"}, file="spec.toml", path="parameters.cmax")
>>> t.number("typical", gt=0)
24000.0
>>> t.choice("transform", ("log", "logit"))
'log'
>>> t.number("prior_sd")
Traceback (most recent call last):
...
carkin.errors.SpecError: spec.toml: [parameters.cmax] prior_sd is missing; add prior_sd = <a number>
"""

from __future__ import annotations

import itertools
import math
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import SpecError

__all__ = ["REQUIRED", "Table", "parse_toml", "read_toml", "spec_error"]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
"""The default of an accessor whose key must be present."""

_NO_VALUE = object()

# TOML's names of the Python types tomllib returns.
_TOML_TYPES = {bool: "a boolean", int: "an integer", float: "a float", str: "a string", list: "an array",
               dict: "a table"}

# kind -> (what it is, how to write one)
_KINDS = {
    "number": ("a number", "write a number without quotes, e.g. 1.5"),
    "integer": ("an integer", "write a whole number without quotes, e.g. 3"),
    "string": ("a string", 'write it in double quotes, e.g. "text"'),
    "boolean": ("true or false", "write true or false, without quotes"),
    "numbers": ("a list of numbers", "write a list such as [1.0, 2.0]"),
    "strings": ("a list of strings", 'write a list such as ["a", "b"]'),
}


def spec_error(
    file: str, table: str, key: str | None, problem: str, fix: str = "", *, value: Any = _NO_VALUE
) -> SpecError:
    """The `SpecError` of one problem, in the reader's style (see the module docstring).

    Parameters
    ----------
    file : str
        The file (or another source name such as ``"<dict>"``).
    table : str
        The table as a header, ``"[trial]"`` or ``"[[analysis.looks]] #2"``; ``""`` at the top of the file.
    key : str or None
        The offending key; None for a problem of the whole table.
    problem, fix : str
        What is wrong, and what to do about it.
    value : optional
        The offending value, shown as ``key = repr(value)``.
    """
    where = " ".join(part for part in (table, key or "") if part)
    if value is not _NO_VALUE:
        where = f"{where} = {value!r}" if where else repr(value)
    message = f"{file}: {where} {problem}" if where else f"{file}: {problem}"
    return SpecError(f"{message}; {fix}" if fix else message)


def _type_name(value) -> str:
    return _TOML_TYPES.get(type(value), type(value).__name__)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fmt(x: float) -> str:
    return f"{x:g}"


def _bounds(gt, ge, lt, le) -> tuple[Callable[[float], bool], str, str | None] | None:
    """(test, text, interval) of the bounds given: text "> 0" (interval None) or "in (0, 1]" (interval
    "(0, 1]"); None without bounds."""
    low = (gt, "(", ">") if gt is not None else (ge, "[", ">=") if ge is not None else None
    high = (lt, ")", "<") if lt is not None else (le, "]", "<=") if le is not None else None
    if low is None and high is None:
        return None

    def test(x: float) -> bool:
        ok = True
        if low is not None:
            ok = x > low[0] if low[1] == "(" else x >= low[0]
        if high is not None:
            ok = ok and (x < high[0] if high[1] == ")" else x <= high[0])
        return ok

    if low is not None and high is not None:
        interval = f"{low[1]}{_fmt(low[0])}, {_fmt(high[0])}{high[1]}"
        return test, f"in {interval}", interval
    bound = low if low is not None else high
    return test, f"{bound[2]} {_fmt(bound[0])}", None


class Table:
    """A view of one TOML table: its values, the file they came from and the table's path.

    Parameters
    ----------
    data : Mapping
        The parsed table (``tomllib`` output).
    file : str
        Shown first in every error (a path, or ``"<dict>"`` for a table built in Python).
    path : str
        Dotted path of the table (``"parameters.cmax"``); ``""`` for the top of the file.
    header : str, optional
        How errors name the table; default ``[path]`` (nothing at the top of the file).

    Accessors (each takes ``default``; `REQUIRED`, the default, makes the key required):
    `number`, `integer`, `string`, `boolean`, `choice`, `numbers`, `strings`; sub-tables `table`, `tables`
    (the ``[name.<x>]`` family), `array` (``[[name]]``); `check_keys` rejects unknown keys; `fail` builds an
    error for a check that spans several keys; `wrap` turns a constructor's ValueError into one.
    """

    def __init__(self, data: Mapping, *, file: str, path: str = "", header: str | None = None):
        self.raw = data
        self.file = file
        self.path = path
        self.header = header if header is not None else (f"[{path}]" if path else "")

    def __contains__(self, key: str) -> bool:
        return key in self.raw

    def __iter__(self):
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)

    def __repr__(self) -> str:
        return f"Table({self.file}: {self.header or '<top>'}, keys {list(self.raw)})"

    def keys(self):
        return self.raw.keys()

    def get(self, key: str, default=None):
        """The raw value of ``key`` (unchecked), or ``default``."""
        return self.raw.get(key, default)

    def fail(self, key: str | None, problem: str, fix: str = "", *, value: Any = _NO_VALUE) -> SpecError:
        """The `SpecError` for ``key`` of this table (raise it).

        Its message: ``{file}: [{table}] {key} = {value!r} {problem}; {fix}``.
        """
        return spec_error(self.file, self.header, key, problem, fix, value=value)

    def wrap(self, key: str | None, fn: Callable, *args, **kwargs):
        """``fn(*args, **kwargs)``, its ValueError or TypeError re-raised as a `SpecError` naming the table and key."""
        try:
            return fn(*args, **kwargs)
        except (ValueError, TypeError) as err:
            raise self.fail(key, str(err)) from None

    # -- scalars -------------------------------------------------------------------------------------------

    def _value(self, key: str, default, kind: str, hint: str):
        """(present?, value): the default when absent, an error when absent and required."""
        if key in self.raw:
            return True, self.raw[key]
        if default is REQUIRED:
            raise self.fail(key, "is missing", f"add {key} = <{_KINDS[kind][0]}>" + (f" ({hint})" if hint else ""))
        return False, default

    def _wrong_type(self, key: str, value, kind: str) -> SpecError:
        what, fix = _KINDS[kind]
        return self.fail(key, f"is {_type_name(value)}, not {what}", fix, value=value)

    def _in_bounds(self, key: str, value, bounds, noun: str, hint: str):
        if bounds is not None and not bounds[0](value):
            problem = f"is outside {bounds[2]}" if bounds[2] else f"is not {bounds[1]}"
            raise self.fail(key, problem, f"give {noun} {bounds[1]}" + (f" ({hint})" if hint else ""), value=value)

    def number(self, key: str, default=REQUIRED, *, gt=None, ge=None, lt=None, le=None, hint: str = "") -> float:
        """A finite number (an integer is accepted and returned as a float), optionally bounded.

        ``gt``/``ge``/``lt``/``le``: bounds (> , >=, <, <=). ``hint``: added to the fix (e.g. the unit).
        A default is returned as given (not checked).
        """
        present, value = self._value(key, default, "number", hint)
        if not present:
            return value
        if not _is_number(value):
            raise self._wrong_type(key, value, "number")
        if not math.isfinite(value):
            raise self.fail(key, "is not finite", "give a finite number", value=value)
        self._in_bounds(key, value, _bounds(gt, ge, lt, le), "a number", hint)
        return float(value)

    def integer(self, key: str, default=REQUIRED, *, gt=None, ge=None, lt=None, le=None, hint: str = "") -> int:
        """An integer (not a float, not true/false), optionally bounded."""
        present, value = self._value(key, default, "integer", hint)
        if not present:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._wrong_type(key, value, "integer")
        self._in_bounds(key, value, _bounds(gt, ge, lt, le), "an integer", hint)
        return value

    def string(self, key: str, default=REQUIRED, *, nonempty: bool = False, hint: str = "") -> str:
        """A string (``nonempty``: not ``""``)."""
        present, value = self._value(key, default, "string", hint)
        if not present:
            return value
        if not isinstance(value, str):
            raise self._wrong_type(key, value, "string")
        if nonempty and not value:
            raise self.fail(key, "is empty", "give a non-empty string" + (f" ({hint})" if hint else ""), value=value)
        return value

    def boolean(self, key: str, default=REQUIRED) -> bool:
        """true or false."""
        present, value = self._value(key, default, "boolean", "")
        if present and not isinstance(value, bool):
            raise self._wrong_type(key, value, "boolean")
        return value

    def choice(self, key: str, valid: Iterable[str], default=REQUIRED) -> str:
        """One of ``valid``; the error lists them."""
        valid = tuple(valid)
        if key not in self.raw and default is REQUIRED:
            raise self.fail(key, "is missing", f"add {key} = one of {', '.join(valid)}")
        value = self.raw.get(key, default)
        if value not in valid:  # a default outside ``valid`` is an error too: it is an option like any other
            raise self.fail(key, "is not valid", f"choose one of {', '.join(valid)}", value=value)
        return value

    # -- lists ---------------------------------------------------------------------------------------------

    def numbers(self, key: str, default=REQUIRED, *, gt=None, ge=None, lt=None, le=None, nonempty: bool = True,
                increasing: bool = False, decreasing: bool = False, starts_at: float | None = None,
                hint: str = "") -> tuple[float, ...]:
        """A list of finite numbers, as a tuple of floats.

        ``gt``/``ge``/``lt``/``le`` bound every element; ``nonempty`` (default) refuses ``[]``;
        ``increasing``/``decreasing``: strictly; ``starts_at``: the first element's value.
        """
        present, value = self._value(key, default, "numbers", hint)
        if not present:
            return value
        if not isinstance(value, list):
            raise self._wrong_type(key, value, "numbers")
        if not all(_is_number(x) for x in value):
            raise self.fail(key, "is not a list of numbers", _KINDS["numbers"][1], value=value)
        if nonempty and not value:
            raise self.fail(key, "is empty", "give at least one number" + (f" ({hint})" if hint else ""), value=value)
        for x in value:
            if not math.isfinite(x):
                raise self.fail(key, f"holds {x!r}", "give finite numbers", value=value)
        bounds = _bounds(gt, ge, lt, le)
        if bounds is not None:
            for x in value:
                if not bounds[0](x):
                    raise self.fail(key, f"holds {x!r}, which is not {bounds[1]}",
                                    f"give numbers {bounds[1]}" + (f" ({hint})" if hint else ""), value=value)
        if starts_at is not None and value and value[0] != starts_at:
            raise self.fail(key, f"does not start at {_fmt(starts_at)}", f"make the first value {_fmt(starts_at)}",
                            value=value)
        if increasing and any(b <= a for a, b in itertools.pairwise(value)):
            raise self.fail(key, "does not increase strictly", "sort the values and remove repeats", value=value)
        if decreasing and any(b >= a for a, b in itertools.pairwise(value)):
            raise self.fail(key, "does not decrease strictly", "give strictly decreasing values", value=value)
        return tuple(float(x) for x in value)

    def strings(self, key: str, default=REQUIRED, *, nonempty: bool = True, hint: str = "") -> tuple[str, ...]:
        """A list of strings, as a tuple (``nonempty``, default: refuse ``[]``)."""
        present, value = self._value(key, default, "strings", hint)
        if not present:
            return value
        if not isinstance(value, list):
            raise self._wrong_type(key, value, "strings")
        if not all(isinstance(x, str) for x in value):
            raise self.fail(key, "is not a list of strings", _KINDS["strings"][1], value=value)
        if nonempty and not value:
            raise self.fail(key, "is empty", "give at least one string" + (f" ({hint})" if hint else ""), value=value)
        return tuple(value)

    # -- tables --------------------------------------------------------------------------------------------

    def _child(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def table(self, key: str, *, required: bool = False, hint: str = "") -> Table:
        """The sub-table ``[path.key]``; an empty view when absent and not ``required``."""
        path = self._child(key)
        if key not in self.raw:
            if required:
                raise spec_error(self.file, f"[{path}]", None, "is missing",
                                 f"add a [{path}] table" + (f" with {hint}" if hint else ""))
            return Table({}, file=self.file, path=path)
        value = self.raw[key]
        if not isinstance(value, dict):
            raise self.fail(key, f"is {_type_name(value)}, not a table", f"write it as a table [{path}]", value=value)
        return Table(value, file=self.file, path=path)

    def tables(self, key: str) -> dict[str, Table]:
        """The family ``[key.<name>]``: name -> its table (empty when ``[key]`` is absent)."""
        family = self.table(key)
        return {name: family.table(name) for name in family}

    def array(self, key: str, default=REQUIRED) -> list[Table]:
        """The array of tables ``[[key]]``, one view per entry (named ``[[path.key]] #i``, 1-based).

        ``default``: a list of dicts used when the key is absent.
        """
        path = self._child(key)
        if key in self.raw:
            value = self.raw[key]
        elif default is REQUIRED:
            raise spec_error(self.file, f"[[{path}]]", None, "is missing", f"add one or more [[{path}]] tables")
        else:
            value = default
        if not isinstance(value, list) or not all(isinstance(x, dict) for x in value):
            raise self.fail(key, "is not an array of tables", f"write each entry as a [[{path}]] table", value=value)
        return [
            Table(x, file=self.file, path=f"{path}[{i}]", header=f"[[{path}]] #{i}") for i, x in enumerate(value, 1)
        ]

    def check_keys(self, valid: Iterable[str]) -> None:
        """Raise if the table holds a key not in ``valid`` (a typo); the error lists the valid keys."""
        valid = tuple(valid)
        unknown = [k for k in self.raw if k not in valid]
        if unknown:
            verb = "is not a valid key" if len(unknown) == 1 else "are not valid keys"
            raise self.fail(", ".join(unknown), verb,
                            f"valid keys: {', '.join(valid) or '(none)'} (check the spelling)")


def parse_toml(text: bytes | str, file: str) -> dict:
    """The parsed TOML document; a `SpecError` naming ``file`` if it is not UTF-8 or not valid TOML."""
    try:
        return tomllib.loads(text.decode("utf-8") if isinstance(text, bytes) else text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise spec_error(
            file, "", None, f"not valid TOML ({err})", "fix the syntax at the line and column given"
        ) from None


def read_toml(path: str | Path, *, what: str, example: str) -> dict:
    """Read and parse a TOML file.

    Parameters
    ----------
    path : str or Path
    what : str
        What the file holds, for the error (``"scenario"``: "scenario file not found").
    example : str
        A file of that kind, for the fix (``"scenarios/doses.toml"``).

    Raises
    ------
    SpecError
        If the file does not exist, is not UTF-8 or is not valid TOML.
    """
    path = Path(path)
    if not path.is_file():
        raise spec_error(
            str(path), "", None, f"{what} file not found", f"give the path of a TOML file such as {example}"
        )
    return parse_toml(path.read_bytes(), str(path))
