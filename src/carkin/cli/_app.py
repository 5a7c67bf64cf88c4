"""The typer application object; command modules register on it."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="carkin",
    help="CAR-T cellular kinetics and exposure-response (JAX). Every command is a thin layer over the "
    "Python API (`import carkin`).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
