"""Atomic writes: a reader (or a crash) never sees a half-written file or output directory."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path

__all__ = ["atomic_directory", "atomic_write_text", "check_replaceable"]


def _foreign_entries(out_dir: Path, allowed) -> list[str]:
    return sorted(set(os.listdir(out_dir)) - set(allowed))


def check_replaceable(out_dir: str | Path, owned) -> None:
    """Raise ``FileExistsError`` if ``out_dir`` exists and is not a folder holding only ``owned`` entries.

    Call it before long work whose result goes to ``out_dir``, so that a refusal comes first, not last.
    """
    out_dir = Path(out_dir)
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} exists and is not a folder; choose another output folder")
    foreign = _foreign_entries(out_dir, owned)
    if foreign:
        raise FileExistsError(
            f"{out_dir} holds files this command did not write ({', '.join(foreign[:8])}); "
            "choose a new or empty output folder, or remove them"
        )


@contextlib.contextmanager
def atomic_directory(out_dir: str | Path, *, owned=None):
    """Yield a temporary sibling directory; on success it replaces ``out_dir``, on any error it vanishes.

    The final step is a rename within one filesystem, so ``out_dir`` is either the old complete result, the
    new complete result, or absent: never half-written. An existing ``out_dir`` is replaced only if every
    entry in it is one the new result also writes (a previous run of the same command), or is listed in
    ``owned`` (checked up front); a folder with anything else in it is never deleted (``FileExistsError``).
    """
    out_dir = Path(out_dir)
    if owned is not None:
        check_replaceable(out_dir, owned)
    elif out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} exists and is not a folder; choose another output folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        yield tmp
        if out_dir.exists():
            check_replaceable(out_dir, set(os.listdir(tmp)) | set(owned or ()))
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            os.replace(out_dir, old / out_dir.name)
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    except BaseException:  # includes KeyboardInterrupt: leave nothing behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then move it into place in one step."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    # os.open with mode 0o666 lets the umask decide the permissions, as for an ordinary new file.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
