"""Small trial designs for the tests (as dicts, the parsed form of a design TOML)."""

import copy

BASE = {
    "name": "test",
    "randomisation": {"n_patients": 300, "ratio": [1, 1], "method": "fixed"},
    "arms": {"experimental": {"label": "new", "median": 10.0}, "control": {"label": "old", "median": 7.0}},
    "accrual": {"type": "uniform", "months": 20.0},
    "dropout": {"per_month": 0.005},
    "analysis": {"events": 200, "alpha": 0.025, "stratified": False, "looks": [{"information": 1.0}]},
}


def design_dict(**changes) -> dict:
    """BASE with dotted-key changes, e.g. design_dict(**{"analysis.events": 150})."""
    data = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        *path, last = dotted.split(".")
        table = data
        for key in path:
            table = table.setdefault(key, {})
        if value is None:
            table.pop(last, None)
        else:
            table[last] = value
    return data
