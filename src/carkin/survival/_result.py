"""Helpers shared by the survival result objects: JSON-ready numbers and read-only arrays."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def json_float(value: Any) -> float | None:
    """A float for JSON: NaN and +-inf (not estimable, not reached) become ``None``."""
    value = float(value)
    return value if math.isfinite(value) else None


def json_label(label: Any) -> str:
    """A group label as a JSON key: ``1.0`` prints as ``"1"``, strings are kept."""
    if isinstance(label, (bool, np.bool_)):
        return str(int(label))
    if isinstance(label, (float, np.floating)) and float(label).is_integer():
        return str(int(label))
    if isinstance(label, np.generic):
        return str(label.item())
    return str(label)


def frozen_array(values: Any) -> np.ndarray:
    """A float64 copy that cannot be written to, so that frozen results stay immutable."""
    array = np.array(values, dtype=float)
    array.flags.writeable = False
    return array


def format_p(p: float) -> str:
    """A p-value as trial reports print it: '< 0.001' below 0.001, else '= 0.012'."""
    return "< 0.001" if p < 0.001 else f"= {p:.3f}"
