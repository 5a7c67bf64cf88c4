"""carkin._resources: one place finds the shipped specs, scenarios, designs and cohort, from any directory."""

from pathlib import Path

import pytest

import carkin
from carkin._resources import resolve_shipped, shipped_cohort_dir, shipped_dir, shipped_file, shipped_names
from carkin.cohorts import default_config_path, karmma3_sim_paths
from carkin.population._spec import default_models_dir
from carkin.simulate import load_scenario
from carkin.trial import load_design

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("models", "scenarios", "designs")


@pytest.mark.parametrize("kind", KINDS)
def test_the_packages_spec_folders_are_links_to_the_top_level_folders_so_there_is_one_copy(kind):
    link = ROOT / "src" / "carkin" / "_specs" / kind
    assert link.is_symlink(), f"{link} must be a symbolic link to ../../../{kind} (is git's core.symlinks off?)"
    assert link.resolve() == (ROOT / kind).resolve()
    assert shipped_dir(kind) == (ROOT / kind).resolve()


def test_the_shipped_names_are_the_files_of_each_folder():
    assert {"multiphasic", "effector_memory", "cart_tumor", "karmma3_cohort"} <= set(shipped_names("models"))
    assert "doses" in shipped_names("scenarios") and "karmma3" in shipped_names("designs")
    assert shipped_file("models", "multiphasic") == shipped_file("models", "multiphasic.toml")
    assert default_models_dir() == shipped_dir("models")
    assert default_config_path() == shipped_file("models", "karmma3_cohort")
    assert karmma3_sim_paths()["ck"] == shipped_cohort_dir() / "ck.csv"
    assert all(p.is_file() for p in karmma3_sim_paths().values())


def test_bare_names_and_repository_paths_resolve_to_the_shipped_files_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("multiphasic", "multiphasic.toml", "models/multiphasic.toml"):
        assert resolve_shipped(name, "models") == shipped_file("models", "multiphasic"), name
    assert carkin.load_spec("models/multiphasic.toml").model == "multiphasic"
    assert Path(load_scenario("doses").source) == shipped_file("scenarios", "doses")
    assert Path(load_scenario("scenarios/doses.toml").source) == shipped_file("scenarios", "doses")
    assert load_design("designs/karmma3.toml").name == load_design("karmma3").name == "KarMMa-3"


def test_an_existing_path_wins_over_the_shipped_file_of_the_same_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    own = tmp_path / "models" / "multiphasic.toml"
    own.write_text(shipped_file("models", "multiphasic").read_text())
    assert resolve_shipped("models/multiphasic.toml", "models") == Path("models/multiphasic.toml")
    assert carkin.load_spec("models/multiphasic.toml").model == "multiphasic"


@pytest.mark.parametrize("path", ["nosuch", "models/nosuch.toml", "scenarios/doses.toml", "other/multiphasic.toml",
                                  "a/models/multiphasic.toml", "multiphasic.csv"])
def test_a_path_that_names_no_shipped_file_comes_back_unchanged(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_shipped(path, "models") == Path(path)


def test_an_unknown_kind_is_rejected_with_the_valid_ones():
    with pytest.raises(
        ValueError, match="kind must be one of 'models', 'scenarios', 'designs'; got 'model' .type str."
    ):
        shipped_dir("model")
