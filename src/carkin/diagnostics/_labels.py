"""How diagnostics and plots name time and each analyte: units from the spec, and the axis scales that suit them.

One place decides (house rule 10): the time unit is the spec's ``time_unit`` (default: days for the CAR-T
models, unnamed for the dosed PK models); an analyte's unit is its ``unit`` (default copies/ug for a transgene
output); an analyte whose error model works on log DV is drawn on a log axis, a linear-scale one (PK
concentrations, which can be 0 or negative) on a linear axis; time runs on a symlog axis for the CAR-T models
(days to years after one infusion) and on a linear one for the dosed models (hours between doses).
"""

from __future__ import annotations

import dataclasses

from ..population import PopulationSpec

__all__ = ["Labels", "labels_of"]

_DEFAULT_UNITS = {"transgene": "copies/ug"}
"""The unit of a model output when the spec's analyte names none."""


@dataclasses.dataclass(frozen=True)
class Labels:
    """Names and units for axes and tables.

    Attributes
    ----------
    time_unit : str
        The data's time unit ("" when the spec names none for a dosed model).
    time_scale : str
        "symlog" (CAR-T: days to years) or "linear" (dosed models).
    dosed : bool
        The model takes doses (time runs from the first dose of a regimen, not from one infusion).
    analytes : tuple of str
        Analyte names, ``spec.analytes`` order.
    units : tuple of str
        Each analyte's unit ("" when unknown).
    log_scale : tuple of bool
        Each analyte's error model works on log DV (drawn on a log axis).
    """

    time_unit: str
    time_scale: str
    dosed: bool
    analytes: tuple[str, ...]
    units: tuple[str, ...]
    log_scale: tuple[bool, ...]

    @property
    def time_label(self) -> str:
        """e.g. "days after infusion" (CAR-T) or "time after the first dose, h" (dosed models)."""
        if not self.dosed:
            return f"{self.time_unit or 'days'} after infusion"
        return "time after the first dose" + (f", {self.time_unit}" if self.time_unit else "")

    def value_label(self, k: int, what: str = "") -> str:
        """e.g. "DV, copies/ug" or "flow, cells/uL": ``what`` (default the analyte's name) and the unit."""
        text = what or self.analytes[k]
        return f"{text}, {self.units[k]}" if self.units[k] else text


def labels_of(spec: PopulationSpec) -> Labels:
    """The `Labels` of a spec."""
    dosed = bool(getattr(spec.kinetic_model, "dosed", False))
    return Labels(
        time_unit=spec.time_unit or ("" if dosed else "days"),
        time_scale="linear" if dosed else "symlog",
        dosed=dosed,
        analytes=tuple(a.name for a in spec.analytes),
        units=tuple(a.unit or _DEFAULT_UNITS.get(a.output, "") for a in spec.analytes),
        log_scale=tuple(a.log_scale for a in spec.analytes),
    )
