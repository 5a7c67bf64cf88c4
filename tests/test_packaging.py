"""carkin installed from a wheel, not from the checkout: the files it reads at run time travel with it.

The module fixture copies the build inputs to a temporary folder, builds an sdist there, builds the wheel from
the unpacked sdist (so both must be complete), and installs the wheel with ``--no-deps`` into a fresh virtual
environment that sees the system's site-packages (jax and the other dependencies are not downloaded). Every
command then runs from a temporary directory outside the repository, with ``PYTHONPATH`` removed, so only the
wheel's carkin can be imported. The build runs offline when this interpreter's setuptools can build a wheel
(>= 70.1, or >= 68 with ``wheel``); otherwise pip builds in an isolated environment and fetches setuptools.

About 30-60 s on 2 cores for the default tests; ``carkin demo --quick`` from the wheel adds about 4-6 min
(slow).
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# What building the package reads; models/, scenarios/ and designs/ are reached through src/carkin/_specs/.
BUILD_INPUTS = ("pyproject.toml", "README.md", "src", "models", "scenarios", "designs")


def _runtime_files() -> dict[str, Path]:
    """Every file carkin reads at run time: its path in the wheel -> the checkout's file."""
    files = {f"carkin/_specs/{kind}/{p.name}": p for kind in ("models", "scenarios", "designs")
             for p in sorted((ROOT / kind).glob("*.toml"))}
    data = ROOT / "src" / "carkin" / "_data"
    files |= {f"carkin/_data/{p.relative_to(data).as_posix()}": p for p in sorted(data.rglob("*"))
              if p.is_file() and "__pycache__" not in p.parts}
    return files


def _can_build_offline() -> bool:
    if importlib.util.find_spec("setuptools") is None:
        return False
    import setuptools

    version = tuple(int(x) for x in setuptools.__version__.split(".")[:2])
    return version >= (70, 1) or (version >= (68, 0) and importlib.util.find_spec("wheel") is not None)


def _run(cmd, *, cwd, env=None, timeout=600) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


class Installed:
    def __init__(self, venv: Path, wheel: Path, sdist: Path, outside: Path):
        self.venv, self.wheel, self.sdist, self.outside = venv, wheel, sdist, outside
        self.python = venv / "bin" / "python"
        self.env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
        self.env["PATH"] = f"{venv / 'bin'}{os.pathsep}{self.env.get('PATH', '')}"
        self.env["VIRTUAL_ENV"] = str(venv)

    def run(self, *cmd, timeout=600) -> subprocess.CompletedProcess:
        return _run(cmd, cwd=self.outside, env=self.env, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    base = tmp_path_factory.mktemp("packaging")
    tree, dist = base / "tree", base / "dist"
    for name in BUILD_INPUTS:  # a copy, so that a stale build/ or egg-info of the checkout cannot leak in
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, tree / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"))
        else:
            tree.mkdir(exist_ok=True)
            shutil.copy2(src, tree / name)
    hook = "import sys, setuptools.build_meta as b; print(b.build_sdist(sys.argv[1]))"
    sdist = dist / _run([sys.executable, "-c", hook, dist], cwd=tree).stdout.strip().splitlines()[-1]
    with tarfile.open(sdist) as tar:
        tar.extractall(base / "unpacked", **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    isolation = ["--no-build-isolation"] if _can_build_offline() else []
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-w", dist,
          base / "unpacked" / sdist.name.removesuffix(".tar.gz")], cwd=base)
    (wheel,) = dist.glob("carkin-*.whl")
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv], cwd=base)
    outside = base / "elsewhere"
    outside.mkdir()
    assert not outside.resolve().is_relative_to(ROOT)
    env = Installed(venv, wheel, sdist, outside)
    # pip comes from the system site-packages and installs into the venv; --ignore-installed leaves the
    # system's (editable) carkin alone, which the venv's own site-packages shadows.
    env.run(env.python, "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", wheel)
    return env


def test_the_wheel_holds_every_file_carkin_reads_at_run_time_with_the_checkouts_contents(installed):
    expected = _runtime_files()
    assert {"carkin/_specs/models/multiphasic.toml", "carkin/_specs/models/karmma3_cohort.toml",
            "carkin/_specs/scenarios/doses.toml", "carkin/_specs/designs/karmma3.toml",
            "carkin/_data/karmma3_sim/ck.csv", "carkin/_data/karmma3_sim/patients.csv"} <= set(expected)
    with zipfile.ZipFile(installed.wheel) as whl:
        names = set(whl.namelist())
        assert "carkin/py.typed" in names and "carkin/_resources.py" in names
        missing = sorted(set(expected) - names)
        assert not missing, f"not in {installed.wheel.name}: {missing}"
        for name, path in expected.items():  # the linked files' text, not the links
            assert whl.read(name) == path.read_bytes(), name


def test_the_sdist_holds_the_same_files_as_regular_files(installed):
    with tarfile.open(installed.sdist) as tar:
        top = installed.sdist.name.removesuffix(".tar.gz")
        members = {m.name.removeprefix(f"{top}/src/"): m for m in tar.getmembers()}
        for name, path in _runtime_files().items():
            assert name in members, f"{name} not in {installed.sdist.name}"
            assert members[name].isfile(), f"{name} is not a regular file in the sdist"
            assert tar.extractfile(members[name]).read() == path.read_bytes(), name


def test_the_installed_wheel_finds_its_files_by_bare_name_from_outside_the_repository(installed):
    script = """
import json
from pathlib import Path
import carkin
from carkin.cohorts import default_config_path, karmma3_sim_paths, load_karmma3_config
from carkin.simulate import load_scenario
from carkin.trial import load_design
print(json.dumps({
    "carkin": carkin.__file__,
    "spec": carkin.load_spec("multiphasic").model,
    "spec_by_repo_path": carkin.load_spec("models/effector_memory.toml").model,
    "scenario": load_scenario("scenarios/doses.toml").source,
    "design": load_design("karmma3").name,
    "config": load_karmma3_config().source,
    "config_path": str(default_config_path()),
    "cohort": [str(p) for p in karmma3_sim_paths().values() if Path(p).is_file()],
}))
"""
    got = json.loads(installed.run(installed.python, "-c", script).stdout.strip().splitlines()[-1])
    site = str(installed.venv.resolve())
    assert got["carkin"].startswith(site), f"imported {got['carkin']}, not the wheel's carkin in {site}"
    assert got["spec"] == "multiphasic" and got["spec_by_repo_path"] == "effector_memory"
    assert got["design"] == "KarMMa-3"
    assert len(got["cohort"]) == 4  # ck.csv, markers.csv, patients.csv, README.md
    for key in ("scenario", "config", "config_path", "cohort"):
        for path in [got[key]] if isinstance(got[key], str) else got[key]:
            assert path.startswith(site), f"{key}: {path} is not the installed package's"
    help_text = installed.run(installed.venv / "bin" / "carkin", "--help").stdout
    assert "demo" in help_text and "fit" in help_text


@pytest.mark.slow
def test_the_installed_wheel_runs_the_quick_demo_from_outside_the_repository(installed):
    out = installed.outside / "demo"
    installed.run(installed.venv / "bin" / "carkin", "demo", "--quick", "--out", "demo", "--no-progress", timeout=1800)
    for name in ("trial", "ck_fit", "diagnostics", "exposure", "er", "scenario"):
        assert (out / name).is_dir(), name
    assert "SIMULATED" in (out / "summary.md").read_text()
    assert "SIMULATED data" in (out / "report.html").read_text()
    demo = json.loads((out / "demo.json").read_text())
    assert demo["simulated"] and demo["quick"]
    assert json.loads((out / "scenario" / "summary.json").read_text())["simulated_data"]
