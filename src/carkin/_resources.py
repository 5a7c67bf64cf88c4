"""The files carkin reads at run time, found inside the installed package (the one place that locates them).

Two folders of package data:

- ``carkin/_specs/{models,scenarios,designs}/*.toml``: the shipped model specs, the cohort configuration
  (``models/karmma3_cohort.toml``), dose scenarios and trial designs. In a source checkout each of these three
  folders is a symbolic link to the repository's top-level folder of the same name (``models/`` etc., the
  copies users edit), so there is one file of each and a checkout, an editable install and a wheel read the
  same text; building a wheel or an sdist copies the files the links point to.
- ``carkin/_data/``: the shipped data sets: ``karmma3_sim/`` (the SIMULATED virtual KarMMa-3 cohort) and real
  published PK data (``theophylline/``, ``phenobarbital/``), each with its README.

A bare name (``"multiphasic"``) or a repository-relative path (``"models/multiphasic.toml"``) that does not
exist from the working directory resolves to the shipped file, so the names in the README and the docstrings
work from any directory, with an installed wheel as well as in a checkout. An existing path always wins.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

__all__ = ["SpecKind", "shipped_cohort_dir", "shipped_data_file", "shipped_dir", "shipped_file", "shipped_names",
           "resolve_shipped"]

SpecKind = Literal["models", "scenarios", "designs"]
_KINDS: tuple[str, ...] = ("models", "scenarios", "designs")


def _package_root() -> Path:
    root = resources.files("carkin")
    if not isinstance(root, Path):  # e.g. imported from a zip archive: carkin reads its files by path
        raise RuntimeError(f"carkin must be installed as files on disk, not imported from {root!r}")
    return root


def shipped_dir(kind: SpecKind) -> Path:
    """The folder of the shipped ``kind`` files (``"models"``, ``"scenarios"`` or ``"designs"``).

    In a checkout this resolves to the repository's top-level folder of that name; in an installed wheel, to
    ``carkin/_specs/<kind>`` in site-packages.

    Raises
    ------
    ValueError
        If ``kind`` is not one of the three folders.
    """
    if kind not in _KINDS:
        raise ValueError(
            f"kind must be one of {', '.join(map(repr, _KINDS))}; got {kind!r} (type {type(kind).__name__})"
        )
    return (_package_root() / "_specs" / kind).resolve()


def shipped_file(kind: SpecKind, name: str) -> Path:
    """The shipped file ``<kind>/<name>.toml`` (``name`` with or without ``.toml``); it need not exist."""
    return shipped_dir(kind) / f"{name.removesuffix('.toml')}.toml"


def shipped_names(kind: SpecKind) -> list[str]:
    """The bare names of the shipped ``kind`` files, sorted (for error messages and listings)."""
    return sorted(p.stem for p in shipped_dir(kind).glob("*.toml"))


def resolve_shipped(path: str | Path, kind: SpecKind) -> Path:
    """``path`` if it exists, else the shipped file it names, else ``path`` unchanged (the caller reports it).

    A shipped file is named by a bare name (``"multiphasic"``, ``"multiphasic.toml"``) or by the
    repository-relative path of the docs (``"models/multiphasic.toml"``); any other path is returned as given.
    """
    path = Path(path)
    if path.exists():
        return path
    parts = path.parts
    if path.suffix in ("", ".toml") and (len(parts) == 1 or (len(parts) == 2 and parts[0] == kind)):
        candidate = shipped_file(kind, path.name)
        if candidate.is_file():
            return candidate
    return path


def shipped_cohort_dir() -> Path:
    """The folder of the shipped SIMULATED virtual KarMMa-3 cohort (``carkin/_data/karmma3_sim``)."""
    return shipped_data_file("karmma3_sim")


def shipped_data_file(data_set: str, name: str = "") -> Path:
    """A file (or, without ``name``, the folder) of a shipped data set, ``carkin/_data/<data_set>/<name>``.

    Raises
    ------
    FileNotFoundError
        If there is no such data set or file (the message lists the shipped data sets).
    """
    root = _package_root() / "_data"
    path = root / data_set / name if name else root / data_set
    if not path.exists():
        available = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("_"))
        raise FileNotFoundError(f"{path}: no such shipped data file; shipped data sets: {', '.join(available)}")
    return path
