"""Axes shared by the diagnostic plots: time as the data give it, each analyte on its own scale (private)."""

from __future__ import annotations

from ..diagnostics._labels import Labels

__all__ = ["labels_or_default", "set_time_axis"]

_TRANSGENE = Labels(time_unit="days", time_scale="symlog", dosed=False, analytes=("transgene",), units=("copies/ug",),
                    log_scale=(True,))
"""The labels of a result made without them (the single CAR-T transgene analyte, in days)."""


def labels_or_default(labels: Labels | None) -> Labels:
    """``labels``, or those of the single-analyte CAR-T layout when a result carries none."""
    return _TRANSGENE if labels is None else labels


def set_time_axis(ax, labels: Labels) -> None:
    """Time axis of a diagnostic panel: symlog for the CAR-T models (days to years), linear for dosed models."""
    if labels.time_scale == "symlog":
        ax.set_xscale("symlog", linthresh=30)
    ax.set_xlabel(labels.time_label)
