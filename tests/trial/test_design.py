"""Reading and validating trial designs (TOML): the shipped KarMMa-3 design and errors naming file and key."""

from pathlib import Path

import numpy as np
import pytest

from carkin._karmma3 import N_RANDOMIZED, STRATIFICATION_FACTORS
from carkin.errors import SpecError
from carkin.trial import (
    PiecewiseExponential,
    analyse_design,
    design_from_dict,
    load_design,
    schoenfeld_events,
    schoenfeld_power,
)

from .helpers import design_dict

KARMMA3 = Path(__file__).resolve().parents[2] / "designs" / "karmma3.toml"


class TestKarMMa3Design:
    def test_the_shipped_design_encodes_the_published_numbers(self):
        d = load_design(KARMMA3)
        assert (d.n_patients, d.ratio, d.events, d.alpha) == (381, (2, 1), 289, 0.025)
        assert d.experimental.pfs.median() == pytest.approx(14.0) and d.control.pfs.median() == pytest.approx(9.0)
        assert d.hazard_ratio == pytest.approx(9 / 14)
        assert [(look.information, look.efficacy, look.futility) for look in d.looks] == [
            (0.33, False, True), (0.8, True, False), (1.0, True, False)]
        assert d.look_events.tolist() == [95, 231, 289]
        assert d.stratified and tuple(f.name for f in d.strata) == STRATIFICATION_FACTORS
        assert d.spending.kind == "obf" and d.n_experimental == N_RANDOMIZED["ide-cel"]

    def test_design_report_has_boundaries_and_schoenfeld_power(self):
        report = analyse_design(load_design(KARMMA3)).to_dict()
        looks = report["boundaries"]["looks"]
        assert looks[0]["efficacy_z"] is None and looks[0]["futility_z"] < 0
        assert 2.0 < looks[1]["efficacy_z"] < 2.5 and 1.9 < looks[2]["efficacy_z"] < 2.1
        p = 2 / 3
        drift = -np.log(9 / 14) * np.sqrt(289 * p * (1 - p))
        assert report["drift"] == pytest.approx(drift)
        assert report["schoenfeld_power"] == pytest.approx(schoenfeld_power(9 / 14, 289, allocation=p))
        assert report["group_sequential_power"] < report["schoenfeld_power"]
        assert report["boundaries"]["type_i_error"] == pytest.approx(0.025, abs=1e-9)

    def test_under_null_copies_the_control_arm(self):
        d = load_design(KARMMA3).under_null()
        assert d.experimental.pfs == d.control.pfs and d.experimental.label == "ide-cel"


class TestSchoenfeld:
    def test_textbook_event_count(self):
        # HR 0.75, 1:1, one-sided 0.025, 90% power: 4 (1.960 + 1.2816)^2 / log(0.75)^2 = 508 events
        assert schoenfeld_events(0.75, 0.9) == pytest.approx(507.84, abs=0.01)
        assert schoenfeld_power(0.75, 507.84) == pytest.approx(0.9, abs=1e-4)


class TestPiecewiseExponential:
    def test_inverse_and_median(self):
        h = PiecewiseExponential((0.0, 2.0, 6.0), (0.3, 0.1, 0.05))
        t = np.array([0.5, 2.0, 4.0, 10.0])
        assert np.asarray(h.inverse_cumulative_hazard(h.cumulative_hazard(t))) == pytest.approx(t)
        assert float(h.survival(h.median())) == pytest.approx(0.5)
        assert h.on_breaks((0.0, 1.0, 2.0, 6.0, 8.0)).hazards == (0.3, 0.3, 0.1, 0.05, 0.05)


class TestErrors:
    @pytest.mark.parametrize(
        "change, message",
        [
            (
                {"randomisation.n_patients": "many"},
                r"\[randomisation\] n_patients = 'many' is a string, not an integer",
            ),
            ({"randomisation.ratio": [2]}, r"\[randomisation\] ratio = \[2\] is not two positive integers"),
            (
                {"randomisation.method": "blocks"},
                r"\[randomisation\] method = 'blocks' is not valid; choose one of fixed, simple",
            ),
            ({"arms.control.median": -3.0}, r"\[arms.control\] median = -3.0 is not > 0"),
            ({"arms.control.median": None}, r"\[arms.control\] has no PFS"),
            ({"accrual.type": "poisson"}, r"\[accrual\] type = 'poisson' is not valid"),
            ({"analysis.events": 400}, r"\[analysis\] events = 400 exceeds \[randomisation\] n_patients = 300"),
            ({"analysis.alpha": 0.7}, r"\[analysis\] alpha = 0.7 is outside \(0, 0.5\]"),
            (
                {"analysis.looks": [{"information": 0.5}, {"information": 0.4}, {"information": 1.0}]},
                r"\[analysis\] looks have information fractions",
            ),
            (
                {"analysis.looks": [{"information": 0.5, "futility": True}, {"information": 1.0}]},
                r"\[analysis.futility\] is missing, but some looks test futility",
            ),
            ({"analysis.stratified": True}, r"\[analysis\] stratified = True but the design has no \[\[strata\]\]"),
            (
                {"analysis.efficacy": {"spending": "haybittle"}},
                r"\[analysis.efficacy\] spending = 'haybittle' is not valid; choose one of obf, pocock, hsd",
            ),
            # an entry of an array of tables is named by its 1-based position
            (
                {"analysis.looks": [{"information": 0.5}, {"information": 1.0, "efficacy": False}]},
                r"\[\[analysis.looks\]\] #2 efficacy = False at the final analysis",
            ),
            (
                {"strata": [{"name": "AGE", "probability": 0.4}, {"probability": 0.5}]},
                r"\[\[strata\]\] #2 name is missing; add name = <a string>",
            ),
            # unknown keys (typos) are errors that list the valid keys
            ({"analysis.event": 200}, r"\[analysis\] event is not a valid key; valid keys: events, alpha"),
            ({"arms.control.medain": 7.0}, r"\[arms.control\] medain is not a valid key"),
            (
                {"arms.placebo": {"median": 7.0}},
                r"\[arms\] placebo is not a valid key; valid keys: experimental, control",
            ),
            (
                {"randomization": {"n_patients": 300}},
                r"randomization is not a valid key; valid keys: name, randomisation",
            ),
        ],
    )
    def test_bad_keys_are_named_with_the_file(self, change, message):
        with pytest.raises(SpecError, match="bad.toml: " + message):
            design_from_dict(design_dict(**change), source="bad.toml")

    def test_piecewise_pfs_needs_a_design_hazard_ratio(self):
        arms = {"experimental": {"breaks": [0.0, 3.0], "hazards": [0.1, 0.05]}, "control": {"median": 7.0}}
        with pytest.raises(SpecError, match=r"\[analysis\] hazard_ratio is missing"):
            design_from_dict(design_dict(arms=arms), source="bad.toml")
        d = design_from_dict(design_dict(arms=arms, **{"analysis.hazard_ratio": 0.7}), source="ok.toml")
        assert d.hazard_ratio == 0.7

    def test_missing_file_and_invalid_toml(self, tmp_path):
        with pytest.raises(SpecError, match="nope.toml: design file not found"):
            load_design(tmp_path / "nope.toml")
        bad = tmp_path / "bad.toml"
        bad.write_text("name = \n")
        with pytest.raises(SpecError, match="bad.toml: not valid TOML"):
            load_design(bad)
