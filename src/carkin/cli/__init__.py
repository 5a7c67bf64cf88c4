"""The ``carkin`` command line: a thin layer over the public Python API.

Each command group lives in its own module (``_fit.py``, ``_survival.py``, ...) and registers itself on
the shared ``app`` when imported here.
"""

from __future__ import annotations

import os

from ._app import app as app


def _configure_jax() -> None:
    # Only the entry point touches global JAX configuration (never an import of the library):
    # float64 for accuracy, and one host device per core so that MCMC chains run in parallel.
    cores = os.cpu_count() or 1
    flag = f"--xla_force_host_platform_device_count={max(cores, 4)}"
    if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flag).strip()
    import jax

    jax.config.update("jax_enable_x64", True)


def main() -> None:
    """Console-script entry point (``carkin``)."""
    _configure_jax()
    app()


# Command modules register on `app` when imported, in this order (the order of `carkin --help`).
# isort: off
from . import _fit  # noqa: E402,F401
from . import _survival  # noqa: E402,F401
from . import _demo  # noqa: E402,F401
from . import _simulate  # noqa: E402,F401
from . import _trial  # noqa: E402,F401
from . import _er  # noqa: E402,F401
from . import _report  # noqa: E402,F401
from . import _cohort  # noqa: E402,F401
# isort: on
