"""Run every benchmark in one go and rewrite benchmarks/RESULTS.md from what this run measured.

Usage:  python benchmarks/run_all.py [--quick] [--only nuts gradient trial ode er]
                                     [--with-ode-nuts [--ode-nuts-models multiphasic effector_memory cart_tumor]
                                                      [--mechanistic-length CHAINS WARMUP SAMPLES]]
                                     [--out benchmarks/RESULTS.md] [--results-dir benchmarks/results]
        python benchmarks/run_all.py --render-from benchmarks/results/run-DATE-KIND.jsonl [--out ...]

Each benchmark script runs as its own subprocess (a fresh jax, its own ``XLA_FLAGS``: the variable is
removed from the environment it inherits, so each script sets the host-device count it documents). Their
JSON lines, tagged with the step that produced them, go to ``<results-dir>/run-<date>-<host-kind>.jsonl``
together with a header (machine, versions, git commit, load) and one line per step (wall time, exit
status, load average before/after/max, and the share of the machine's CPU time that *other* processes
used during the step, from /proc/stat minus this run's children). The markdown is then rendered from that
file alone and written atomically (temp file + ``os.replace``); ``--render-from`` re-renders a saved run.
With ``--only``, RESULTS.md holds only the benchmarks of that run (numbers are never mixed across runs);
files already in benchmarks/results/ (other machines, earlier runs, ``peers-*.jsonl``) are rendered in
sections of their own, labelled with their machine and date; quick runs' files are left out of those.
The exit status is 1 when a step failed (its stderr tail is in the Failures section).

What runs (full run; ``--quick`` in brackets):

- nuts: ``nuts_ess.py`` carkin defaults, 250 patients, 4 x 1000 draws [100 patients, 2 x 100 draws after
  100 warm-up], four fits: centred IIV with the default chain method (parallel over 4 host devices on
  CPU, vectorized on an accelerator), non-centred IIV, centred with the other chain method (vectorized on
  CPU, sequential on an accelerator), and centred with one warm-up stage (``--no-whitening``).
- gradient: ``gradient_scaling.py`` at 10^2, 10^3, 10^4, 10^5 patients [10^2, 10^3], float64 (and float32
  on an accelerator): time and peak memory.
- trial: ``trial_replicates.py`` 10,000 replicates vs a 200-replicate lifelines loop, then the scaling
  curve at 10^2..10^5 replicates [1,000 vs 20; scaling 10^2, 10^3]: time and peak memory.
- ode: ``ode_vs_closed_form.py`` 250 patients, 15 interleaved rounds, all variants [100 patients, 1 round,
  closed form / E-M default / mechanistic default]; ``--with-ode-nuts`` adds its NUTS fits (closed form,
  E/M, mechanistic), which take more than 20 minutes on 2 CPU cores and are therefore opt-in;
  ``--mechanistic-length`` runs the mechanistic model's fit with shorter chains (its gradient costs ~70x
  the closed form's), and the table lists every fit's chain lengths.
- er: ``er_two_stage.py`` 225 patients [100]: CK fit, plug-in, two-stage resample and cut.

Duration (estimated from the parts, not timed end to end yet): the full run takes roughly 15-25 minutes on
an idle 2-core machine (three 250-patient NUTS fits ~5 min, ten ODE gradient variants ~5 min, E-R ~3 min,
gradient scaling to 10^5 patients ~2 min, trial replicates and their scaling to 10^5 ~2 min; every step
compiles from scratch), about twice that under load; ``--quick`` took 7 minutes at load 5-7 on 2 cores, and
its RESULTS.md says at the top that it is a smoke run, not a measurement. Ratios are the numbers to quote:
they are measured in the same run on the same machine. A run during which the load average exceeded the
available cores when it started, or during which other processes took more than 10% of the CPU time, is
flagged as contaminated (the load average during a step includes the step's own threads).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import re
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RECORDED_DIR = HERE / "results"
BENCHMARKS = ("gradient", "trial", "ode", "er", "nuts")  # run order: cheap and short first
CONTAMINATION_SHARE = 0.10  # other processes' share of the CPU time above which a step is flagged


# ----------------------------------------------------------------------------------------------- plan


def plan(name: str, quick: bool, accelerator: bool, with_ode_nuts: bool,
         ode_nuts_models: list[str] | None = None,
         mechanistic_length: list[int] | None = None) -> list[tuple[str, list[str]]]:
    """(label, argv after the script path) for each subprocess of one benchmark."""
    if name == "nuts":
        size = ["--patients", "100", "--chains", "2", "--warmup", "100", "--samples", "100"] if quick else ["--patients", "250"]
        other = "sequential" if accelerator else "vectorized"
        base = ["nuts_ess.py", "--config", "carkin-defaults", *size]
        return [
            ("centred, default chain method", [*base, "--iiv", "centred", "--chain-method", "auto"]),
            ("non-centred, default chain method", [*base, "--iiv", "noncentred", "--chain-method", "auto"]),
            (f"centred, {other} chains", [*base, "--iiv", "centred", "--chain-method", other]),
            ("centred, one warm-up stage", [*base, "--iiv", "centred", "--chain-method", "auto", "--no-whitening"]),
        ]
    if name == "gradient":
        sizes = ["100", "1000"] if quick else ["100", "1000", "10000", "100000"]
        repeats = ["--repeats", "10"] if quick else []
        steps = [("float64", ["gradient_scaling.py", "--patients", *sizes, *repeats])]
        if accelerator:
            steps.append(("float32", ["gradient_scaling.py", "--patients", *sizes, "--dtype", "float32", *repeats]))
        return steps
    if name == "trial":
        if quick:
            args = ["--replicates", "1000", "--baseline", "20", "--scaling", "100", "1000"]
        else:
            args = ["--replicates", "10000", "--baseline", "200", "--scaling", "100", "1000", "10000", "100000"]
        return [("KarMMa-3", ["trial_replicates.py", *args])]
    if name == "ode":
        if quick:
            args = ["--patients", "100", "--rounds", "1", "--variants", "closed_form", "em_default", "cart_tumor_default"]
        else:
            args = ["--patients", "250", "--rounds", "15"]
        if with_ode_nuts:
            args.append("--nuts")
            if ode_nuts_models:
                args += ["--nuts-models", *ode_nuts_models]
            if mechanistic_length:
                args += ["--mechanistic-length", *map(str, mechanistic_length)]
        return [("gradients" + (" + NUTS" if with_ode_nuts else ""), ["ode_vs_closed_form.py", *args])]
    if name == "er":
        return [("two-stage", ["er_two_stage.py", "--patients", "100" if quick else "225"])]
    raise ValueError(name)


# -------------------------------------------------------------------------------------------- machine


PROBE = r"""
import json, platform, jax, jaxlib, numpyro, diffrax
try:
    import importlib.metadata as md; carkin = md.version("carkin")
except Exception:
    carkin = None
devs = jax.devices()
print(json.dumps({"backend": jax.default_backend(), "devices": [f"{d.platform}:{d.device_kind}" for d in devs],
                  "device_count": len(devs), "python": platform.python_version(), "jax": jax.__version__,
                  "jaxlib": jaxlib.__version__, "numpyro": numpyro.__version__, "diffrax": diffrax.__version__,
                  "carkin": carkin}))
"""


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def machine() -> dict:
    """CPU model, cores, memory, cgroup limits, accelerator and versions (the latter from a subprocess)."""
    info: dict = {"hostname": socket.gethostname(), "platform": platform.platform()}
    cpuinfo = _read("/proc/cpuinfo") or ""
    models = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    info["cpu_model"] = models[0].strip() if models else platform.processor() or None
    info["logical_cpus"] = os.cpu_count()
    info["cores_available"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    quota = (_read("/sys/fs/cgroup/cpu.max") or "").split()
    if quota and quota[0] != "max":
        info["cgroup_cpu_quota"] = round(int(quota[0]) / int(quota[1]), 2)
    meminfo = _read("/proc/meminfo") or ""
    m = re.search(r"^MemTotal:\s*(\d+) kB", meminfo, re.M)
    info["memory_gib"] = round(int(m.group(1)) / 2**20, 1) if m else None
    limit = (_read("/sys/fs/cgroup/memory.max") or "").strip()
    if limit and limit != "max":
        info["cgroup_memory_gib"] = round(int(limit) / 2**30, 1)
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    probe = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, cwd=REPO)
    if probe.returncode == 0:
        info.update(json.loads(probe.stdout.strip().splitlines()[-1]))
    else:
        info["probe_error"] = probe.stderr[-2000:]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True,
                               cwd=REPO).stdout.strip()
        info["git_commit"] = commit + (" (uncommitted changes)" if dirty else "") if commit else None
    except OSError:
        info["git_commit"] = None
    return info


def host_kind(info: dict) -> str:
    if info.get("backend") not in (None, "cpu"):
        kind = info["devices"][0].split(":", 1)[1]
        return re.sub(r"[^a-z0-9]+", "-", kind.lower()).strip("-") + (f"-x{info['device_count']}" if info["device_count"] > 1 else "")
    return f"cpu{info['cores_available']}"


# ---------------------------------------------------------------------------------- load measurement


def _cpu_jiffies() -> tuple[int, int]:
    """(busy, steal) jiffies summed over the CPUs this process may run on, from /proc/stat."""
    text = _read("/proc/stat")
    if text is None:
        return 0, 0
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    busy = steal = 0
    for line in text.splitlines():
        m = re.match(r"^cpu(\d+)\s+(.*)$", line)
        if not m or (allowed is not None and int(m.group(1)) not in allowed):
            continue
        v = [int(x) for x in m.group(2).split()]
        busy += v[0] + v[1] + v[2] + v[5] + v[6]  # user nice system irq softirq (guest is inside user)
        steal += v[7] if len(v) > 7 else 0
    return busy, steal


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_step(script_argv: list[str], timeout: float | None) -> tuple[dict, list[dict]]:
    """Run one benchmark subprocess; return (step record, its JSON records)."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["PYTHONUNBUFFERED"] = "1"
    argv = [sys.executable, str(HERE / script_argv[0]), *script_argv[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load_before = os.getloadavg()[0]
    busy0, steal0 = _cpu_jiffies()
    child0 = _children_cpu()
    load_max = [load_before]
    done = threading.Event()

    def sample():
        while not done.wait(5.0):
            load_max[0] = max(load_max[0], os.getloadavg()[0])

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    records: list[dict] = []
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True, env=env, cwd=REPO)
        killer = threading.Timer(timeout, proc.kill) if timeout else None
        if killer:
            killer.start()
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.strip()
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                    print("    " + line[:200] + ("..." if len(line) > 200 else ""), flush=True)
                except json.JSONDecodeError:
                    pass
        code = proc.wait()
        timed_out = bool(killer and killer.finished.is_set() and code != 0)
        if killer:
            killer.cancel()
        err.seek(0)
        stderr_tail = err.read()[-3000:]
    wall = time.perf_counter() - started
    done.set()
    busy1, steal1 = _cpu_jiffies()
    ours = _children_cpu() - child0
    capacity = wall * cores
    step = {
        "argv": ["python", "benchmarks/" + script_argv[0], *script_argv[1:]], "returncode": code,
        "wall_s": round(wall, 1), "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
        "load_max": round(max(load_max[0], os.getloadavg()[0]), 2), "cores": cores,
        "own_cpu_s": round(ours, 1),
    }
    if busy1 > busy0 and capacity > 0:
        step["other_cpu_share"] = round(max(0.0, (busy1 - busy0) / tick - ours) / capacity, 3)
        step["steal_share"] = round((steal1 - steal0) / tick / capacity, 3)
    if code != 0:
        step["stderr_tail"] = (f"(killed after --step-timeout {timeout} s)\n" if timed_out else "") + stderr_tail
    return step, records


# ------------------------------------------------------------------------------------------ rendering


def fmt(x, digits: int = 4) -> str:
    """A number with at most ``digits`` significant digits (thousands separated, no trailing zeros), or '-'."""
    if x is None:
        return "-"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if not math.isfinite(x):
            return str(x)
        if x == 0:
            return "0"
        mag = math.floor(math.log10(abs(x)))
        decimals = max(0, digits - 1 - mag)
        text = f"{x:,.{decimals}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    if isinstance(x, (list, dict)):
        return json.dumps(x, separators=(",", ":"))
    return str(x).replace("|", "\\|").replace("\n", " ")


def mib(b) -> str:
    return "-" if b is None else fmt(b / 2**20)


def table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(c if isinstance(c, str) else fmt(c) for c in row) + " |" for row in rows]
    return out + [""]


def generic_tables(records: list[dict]) -> list[str]:
    """Records grouped by their kind (benchmark / what / config key), one table of all their fields each."""
    groups: dict[str, list[dict]] = {}
    for r in records:
        kind = str(r.get("benchmark") or r.get("what") or r.get("kind") or ("nuts" if "ess_per_s" in r else "records"))
        groups.setdefault(kind, []).append(r)
    lines: list[str] = []
    for kind, rows in groups.items():
        # ESS/s from its own fields: ode_vs_closed_form.py rounded it to 2 decimals before 2026-12-06 (0.0033 -> 0)
        rows = [{**r, "ess_per_s": _ess_rate(r)} if "ess_per_s" in r else r for r in rows]
        keys: list[str] = []
        for r in rows:
            keys += [k for k in r if k not in keys]
        lines += [f"*{kind}*", ""]
        lines += table(keys, [[r.get(k) for k in keys] for r in rows])
    return lines


def _ess_rate(r: dict):
    """min bulk ESS / wall seconds of a NUTS row (its recorded ess_per_s when the fields are missing)."""
    if r.get("min_ess_bulk") is not None and r.get("wall_s"):
        return float(r["min_ess_bulk"]) / float(r["wall_s"])
    return r.get("ess_per_s")


def ratio(a, b) -> str:
    if a is None or b in (None, 0):
        return "-"
    return f"{a / b:.2f}x"


def slope(xs, ys) -> float | None:
    """Log-log slope between the two largest sizes (time ~ n^slope at the large end)."""
    pts = sorted((x, y) for x, y in zip(xs, ys, strict=True) if x and y)
    if len(pts) < 2:
        return None
    (x0, y0), (x1, y1) = pts[-2], pts[-1]
    return math.log(y1 / y0) / math.log(x1 / x0)


def plot_scaling(grad: list[dict], trial: list[dict], path: Path, title: str) -> bool:
    if not grad and not trial:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    ax = axes[0]
    for dtype in sorted({g["dtype"] for g in grad}):
        rows = sorted((g for g in grad if g["dtype"] == dtype), key=lambda g: g["patients"])
        ax.loglog([g["patients"] for g in rows], [g["median_ms"] for g in rows], "o-", label=f"{dtype} ({rows[0]['device']})")
    if grad:
        rows = sorted(grad, key=lambda g: g["patients"])
        x0, y0 = rows[-1]["patients"], rows[-1]["median_ms"]
        ax.loglog([rows[0]["patients"], x0], [y0 * rows[0]["patients"] / x0, y0], ":", color="grey", label="linear")
    ax.set(xlabel="patients (12 observations each)", ylabel="ms per value-and-gradient (median)",
           title="log-density gradient")
    ax.grid(True, which="both", alpha=0.3)
    if grad:
        ax.legend()
    ax = axes[1]
    if trial:
        rows = sorted(trial, key=lambda t: t["replicates"])
        ax.loglog([t["replicates"] for t in rows], [t["seconds"] for t in rows], "o-", label="carkin (JAX)")
        x0, y0 = rows[-1]["replicates"], rows[-1]["seconds"]
        ax.loglog([rows[0]["replicates"], x0], [y0 * rows[0]["replicates"] / x0, y0], ":", color="grey", label="linear")
        ax.legend()
    ax.set(xlabel="trial replicates (KarMMa-3 design)", ylabel="seconds (warm)", title="trial simulation")
    ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


UNTRACED = ("**No git commit is recorded in this file**: its numbers cannot be traced to a commit of a "
            "committed script, so nothing quotes them; rerun the benchmark to measure them.")


def _has_commit(records: list[dict]) -> bool:
    """Whether any record of a results file names the git commit it was measured at."""
    return any(r.get("git_commit") or any(isinstance(v, dict) and v.get("git_commit") for v in r.values())
               for r in records)


def _label_recorded(path: Path, records: list[dict]) -> str:
    head = records[0] if records else {}
    if head.get("benchmark") == "run_all":
        m = head.get("machine", {})
        dev = ", ".join(sorted(set(m.get("devices", [])))) or m.get("cpu_model")
        tag = " (quick smoke run)" if head.get("quick") else ""
        return f"{head.get('date')}: {m.get('cpu_model')}, {m.get('cores_available')} cores, {dev}{tag}"
    if head.get("benchmark") == "recorded":
        return f"{head.get('date')}: {head.get('machine')}"
    devices = sorted({str(r["device"]) for r in records if "device" in r})
    dates = re.findall(r"\d{4}-\d{2}-\d{2}", path.name)
    return f"{dates[0] if dates else 'undated'}: {', '.join(devices) or path.stem} (from the file name and its device fields)"


def _load_jsonl(path: Path) -> list[dict]:
    out = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return out


def render(records: list[dict], jsonl: Path, out: Path, png: Path | None) -> str:
    head = next(r for r in records if r.get("benchmark") == "run_all")
    end = next((r for r in records if r.get("benchmark") == "run_all_end"), {})
    steps = [r for r in records if r.get("benchmark") == "run_all_step"]
    data = [r for r in records if r.get("benchmark") not in ("run_all", "run_all_end", "run_all_step")]
    by = lambda name: [r for r in data if r.get("run_source") == name]  # noqa: E731
    m = head["machine"]
    cores = m.get("cores_available") or 1
    quick = head.get("quick")
    rel = lambda p: os.path.relpath(p, out.parent)  # noqa: E731
    L: list[str] = ["# Benchmark results", ""]
    if quick:
        L += ["> **QUICK SMOKE RUN: NOT A MEASUREMENT.** Written by `run_all.py --quick` with tiny sizes (100-1,000",
              "> patients, a few hundred draws, one timing round) to check that every benchmark runs end to end.",
              "> Do not quote any number below; run `python benchmarks/run_all.py` for the measurement.", ""]
    # The load average counts the benchmark's own threads (NUTS runs 4 host devices on 2 cores), so only the
    # load before the run started, and other processes' share of the CPU during each step, say contamination.
    loads = [head.get("load_start")]
    high_load = [x for x in loads if x is not None and x > cores]
    shared = [s for s in steps if (s.get("other_cpu_share") or 0) > CONTAMINATION_SHARE]
    if high_load or shared:
        L += [f"> **WARNING: CONTAMINATED MEASUREMENT.** The machine was not idle: load average up to "
              f"{max(loads, key=lambda x: x or 0):.1f} on {cores} cores"
              + (f"; other processes used more than {CONTAMINATION_SHARE:.0%} of the CPU time during "
                 f"{len(shared)} of {len(steps)} steps" if shared else "")
              + ". Absolute times below are slower than the machine can do, and even ratios may be skewed "
              "(see *Load during the run*).", ""]
    failed = [s for s in steps if s.get("returncode") != 0]
    if failed:
        L += [f"> **{len(failed)} step(s) failed**; see *Failures* at the end.", ""]
    L += [f"Written by `{head.get('command')}` on {head.get('date')} (started {head.get('started')}, "
          f"finished {end.get('finished', '?')}, {fmt(end.get('wall_s'))} s). Every number in the sections below "
          f"was measured in this one run on this one machine; ratios are the numbers to quote. Raw JSON lines: "
          f"[`{rel(jsonl)}`]({rel(jsonl)}).", ""]

    # machine
    L += ["## Machine and versions", ""]
    accel = ", ".join(m.get("devices", [])) if m.get("backend") not in (None, "cpu") else "none (CPU only)"
    rows = [
        ["CPU", m.get("cpu_model")],
        ["cores available to this run", f"{cores} (of {m.get('logical_cpus')} logical CPUs"
         + (f"; cgroup quota {m['cgroup_cpu_quota']}" if "cgroup_cpu_quota" in m else "") + ")"],
        ["memory", f"{m.get('memory_gib')} GiB" + (f" (cgroup limit {m['cgroup_memory_gib']} GiB)" if "cgroup_memory_gib" in m else "")],
        ["accelerator", accel],
        ["jax backend", m.get("backend")],
        ["OS", m.get("platform")],
        ["python / jax / jaxlib", f"{m.get('python')} / {m.get('jax')} / {m.get('jaxlib')}"],
        ["numpyro / diffrax / carkin", f"{m.get('numpyro')} / {m.get('diffrax')} / {m.get('carkin')}"],
        ["git commit", m.get("git_commit")],
        ["load average (1 min) at start / end", f"{fmt(head.get('load_start'))} / {fmt(end.get('load_end'))}"],
    ]
    L += table(["", ""], rows)

    # load per step
    L += ["## Load during the run", "",
          "Per step: wall time, 1-minute load average before / max (sampled every 5 s) / after, and the share of "
          f"the {cores} cores' CPU time used by *other* processes (CPU busy time on these cores from /proc/stat "
          "minus this step's own CPU time). The step's own threads count in the load average; other processes' "
          f"share above {CONTAMINATION_SHARE:.0%} means the step was contaminated (the load average includes the step's own "
          f"threads: NUTS with 4 host devices on {cores} cores shows a load near 4 on an otherwise idle machine).", ""]
    rows = []
    for s in steps:
        flag = (s.get("other_cpu_share") or 0) > CONTAMINATION_SHARE
        rows.append([f"{s['name']}: {s['label']}", s.get("wall_s"), s.get("load_before"), s.get("load_max"), s.get("load_after"),
                     "-" if s.get("other_cpu_share") is None else f"{100 * s['other_cpu_share']:.0f}%",
                     "**yes**" if flag else "no", "ok" if s.get("returncode") == 0 else f"**exit {s.get('returncode')}**"])
    L += table(["step", "wall s", "load before", "load max", "load after", "others' CPU", "contaminated", "status"], rows)

    sections = {"nuts": _nuts, "ode": _ode, "trial": _trial, "er": _er}
    order = ["nuts", "ode", "trial", "er"]
    for name in order:
        if any(s["name"] == name for s in steps):
            L += sections[name](by(name), steps)
    if any(s["name"] in ("gradient", "trial") for s in steps):
        L += _scaling(by("gradient"), [r for r in by("trial") if r.get("benchmark") == "trial_scaling"], png, rel)

    # recorded elsewhere
    recorded = sorted(p for p in RECORDED_DIR.glob("*.jsonl")
                      if p.resolve() != jsonl.resolve() and not p.name.startswith("peers-") and "-quick" not in p.stem)
    if recorded:
        L += ["## Recorded on other machines or in earlier runs", "",
              "Kept from earlier runs (not measured in this run: do not compare their absolute numbers with the ones "
              "above). One subsection per file in `benchmarks/results/`, labelled with its machine and date.", ""]
        for p in recorded:
            recs = _load_jsonl(p)
            L += [f"### {_label_recorded(p, recs)}", "", f"[`{rel(p)}`]({rel(p)})", ""]
            if not _has_commit(recs):
                L += [UNTRACED, ""]
            head_rec = recs[0] if recs else {}
            if head_rec.get("benchmark") == "recorded" and head_rec.get("note"):
                L += [head_rec["note"], ""]
            body = [r for r in recs if r.get("benchmark") not in ("run_all", "run_all_end", "run_all_step", "recorded")]
            L += generic_tables(body)
    peers = sorted(RECORDED_DIR.glob("peers-*.jsonl"))
    if peers:
        L += ["## Peers", "", "Other tools on comparable problems, one table per file in `benchmarks/results/` "
              "(rendered as recorded; see each file for how it was measured).", ""]
        for p in peers:
            L += [f"### {p.stem}", "", f"[`{rel(p)}`]({rel(p)})", ""]
            recs = _load_jsonl(p)
            if not _has_commit(recs):
                L += [UNTRACED, ""]
            L += generic_tables(recs)
    if failed:
        L += ["## Failures", ""]
        for s in failed:
            L += [f"### {s['name']}: {s['label']} (exit {s.get('returncode')})", "", "`" + " ".join(s["argv"]) + "`", "",
                  "```", (s.get("stderr_tail") or "").strip()[-2500:], "```", ""]
    return "\n".join(L).rstrip() + "\n"


def _cmd(steps, name) -> str:
    return "; ".join("`" + " ".join(s["argv"]) + "`" for s in steps if s["name"] == name)


def _nuts(rows: list[dict], steps) -> list[str]:
    L = ["## NUTS ESS per second (closed-form multiphasic model)", "", _cmd(steps, "nuts"), "",
         "Simulated patients x 12 observations (~10% BLQ), float64. ESS/s = min bulk ESS over the population "
         "parameters / wall seconds of the whole fit (warm-up, sampling and compilation: what a user waits for).", ""]
    if not rows:
        return L + ["No results (see *Failures*).", ""]
    L += table(["IIV", "whitening", "chain method", "patients", "chains x draws (warm-up)", "wall s", "min bulk ESS",
                "ESS/s", "max R-hat", "divergences", "mean leapfrog steps"],
               [[r["iiv"], "yes" if r.get("whitening") else "no", r["chain_method"], r["patients"],
                 f"{r.get('chains', 4)} x {r.get('samples', '?')} ({r.get('warmup', '?')})",
                 r["wall_s"], r["min_ess_bulk"], r["ess_per_s"], r["max_r_hat"], r["divergences"], r["mean_leapfrog_steps"]]
                for r in rows])
    one_stage = next((r for r in rows if r["iiv"] == "centred" and "whitening" in r and not r["whitening"]), None)
    centred = [r for r in rows if r["iiv"] == "centred" and r is not one_stage]
    default = centred[0] if centred else None
    if default and one_stage and default.get("whitening"):
        L += [f"- **whitened (two-stage warm-up, the default) / one-stage ESS/s: "
              f"{ratio(default['ess_per_s'], one_stage['ess_per_s'])}** ({default['ess_per_s']} vs "
              f"{one_stage['ess_per_s']}, centred first stage, {default['chain_method']} chains); mean leapfrog steps per "
              f"draw {default['mean_leapfrog_steps']} vs {one_stage['mean_leapfrog_steps']}."]
    nc = next((r for r in rows if r["iiv"] == "noncentred"), None)
    other = next((r for r in centred[1:] if default and r["chain_method"] != default["chain_method"]), None)
    if default and nc:
        L += [f"- **non-centred / centred ESS/s: {ratio(nc['ess_per_s'], default['ess_per_s'])}** "
              f"({nc['ess_per_s']} vs {default['ess_per_s']}, both {default['chain_method']} chains)."]
    if default and other:
        L += [f"- **{other['chain_method']} / {default['chain_method']} chains ESS/s: {ratio(other['ess_per_s'], default['ess_per_s'])}** "
              f"({other['ess_per_s']} vs {default['ess_per_s']}, centred); wall time {ratio(other['wall_s'], default['wall_s'])}."]
    return L + [""]


def _ode(rows: list[dict], steps) -> list[str]:
    L = ["## ODE models vs the closed form", "", _cmd(steps, "ode"), "",
         "One jitted value-and-gradient of the whole numpyro potential per call, timed in interleaved rounds; "
         "E/M variants and the closed form share one dataset, the mechanistic model (cart_tumor) has its own. "
         "Ratio = median time / the closed form's median time in the same run.", ""]
    grads = [r for r in rows if r.get("what") == "gradient"]
    if not grads:
        return L + ["No results (see *Failures*).", ""]
    L += table(["variant", "patients", "dtype", "median ms", "min ms", "ratio to closed form", "compile s"],
               [[g["variant"], g["patients"], g["dtype"], g["median_ms"], g["min_ms"],
                 "-" if g.get("ratio_to_closed_form") is None else f"**{g['ratio_to_closed_form']:.1f}x**", g["compile_s"]]
                for g in grads])
    nuts = [r for r in rows if r.get("what") == "nuts"]
    if nuts:
        cf = next((r for r in nuts if r["model"] == "multiphasic"), None)
        L += ["NUTS (same patients and sampler settings for every model; chain lengths as listed):", ""]
        L += table(["model", "IIV", "chain method", "chains x draws (warm-up)", "wall s", "min bulk ESS", "ESS/s",
                    "ESS/s vs closed form", "max R-hat", "divergences", "leapfrog steps", "typical values in 90% CI"],
                   [[r["model"], r.get("iiv", "centred"), r["chain_method"],
                     f"{r.get('chains', '?')} x {r.get('samples', '?')} ({r.get('warmup', '?')})", r["wall_s"],
                     r["min_ess_bulk"], _ess_rate(r),
                     ratio(_ess_rate(r), _ess_rate(cf)) if cf else "-", r["max_r_hat"], r["divergences"],
                     r["mean_leapfrog_steps"], r["typical_values_in_90pct_interval"]] for r in nuts])
        missing = [m for m in ("multiphasic", "effector_memory", "cart_tumor") if m not in {r["model"] for r in nuts}]
        if missing:
            L += [f"Not run in this run (`--ode-nuts-models`): {', '.join(missing)} (later partial runs, if any, are "
                  "under *Recorded on other machines or in earlier runs*).", ""]
    else:
        L += ["NUTS fits of the ODE models were not run (opt-in: `--with-ode-nuts`, >20 min on 2 cores).", ""]
    return L


def _trial(rows: list[dict], steps) -> list[str]:
    L = ["## Trial replicates (KarMMa-3 group-sequential design)", "", _cmd(steps, "trial"), "",
         "381 patients 2:1, looks at 95 / 231 / 289 events, float64. JAX: vmap over replicates in batches of 2,000 "
         "sharded over the host devices (warm call; compilation timed separately). Baseline: a Python loop with numpy "
         "draws and `lifelines.statistics.logrank_test` (unstratified) over fewer replicates, extrapolated linearly.", ""]
    main = next((r for r in rows if r.get("benchmark") == "trial_replicates"), None)
    if main is None:
        return L + ["No results (see *Failures*).", ""]
    L += table(["", "replicates", "seconds", "replicates/s", "speed-up over lifelines"], [
        ["carkin, stratified log-rank", main["replicates"], main["jax_seconds"], main["jax_replicates_per_second"],
         f"**{main['speedup_vs_lifelines']:.0f}x**"],
        ["carkin, unstratified (like for like)", main["replicates"], main["jax_unstratified_seconds"],
         main["jax_unstratified_replicates_per_second"], f"**{main['speedup_vs_lifelines_unstratified']:.0f}x**"],
        ["lifelines loop (unstratified)", main["lifelines_replicates"], main["lifelines_seconds"],
         main["lifelines_replicates_per_second"], "1x"],
    ])
    L += [f"First call (compilation included): {fmt(main['jax_first_call_seconds'])} s. Simulated power "
          f"{main['power']['estimate']:.3f} (MC SE {main['power']['mc_se']:.3f}); {main['devices']} devices.", ""]
    return L


def _er(rows: list[dict], steps) -> list[str]:
    L = ["## Exposure-response: plug-in vs two-stage", "", _cmd(steps, "er"), "",
         "One simulated study (true HR per doubling of Cmax shown); each analysis timed from the analysis set to "
         "the summary, compilation included. Ratios are to the plug-in (lifelines Cox) time.", ""]
    r = next(iter(rows), None)
    if r is None:
        return L + ["No results (see *Failures*).", ""]
    hr = lambda v: "-" if not v else f"{v[0]:.2f} ({v[1]:.2f}-{v[2]:.2f})"  # noqa: E731
    body = [["CK fit (NUTS 2 x 500)", r["ck_fit_s"], "-", "-", "-"],
            ["plug-in (Cox on posterior-mean exposure)", r["plugin_s"], "1x", hr(r.get("plugin_hr")), "-"]]
    for scheme in ("resample", "cut"):
        if f"two_stage_{scheme}_s" in r:
            body.append([f"two-stage, {scheme}", r[f"two_stage_{scheme}_s"], f"**{r[f'two_stage_{scheme}_vs_plugin']:.0f}x**",
                         hr(r.get(f"two_stage_{scheme}_hr")), r.get(f"two_stage_{scheme}_width_ratio")])
    if "joint_s" in r:
        body.append(["joint CK + PFS", r["joint_s"], ratio(r["joint_s"], r["plugin_s"]), hr(r.get("joint_hr")), "-"])
    L += table(["analysis", "seconds", "vs plug-in", "HR per doubling (90% CI)", "CI width vs plug-in"], body)
    L += [f"{r['patients']} patients simulated ({r.get('analysed')} analysed, {r.get('events')} events); "
          f"true HR per doubling {r.get('true_hr_per_doubling')}; CK max R-hat {fmt(r.get('ck_max_r_hat'))}.", ""]
    return L


def _scaling(grad: list[dict], trial: list[dict], png: Path | None, rel) -> list[str]:
    L = ["## Scaling and peak memory", ""]
    if png is not None and png.exists():
        L += [f"![scaling]({rel(png)})", "", f"Log-log plot: [`{rel(png)}`]({rel(png)}).", ""]
    if grad:
        L += ["### Log-density gradient vs patients", "",
              "`benchmarks/gradient_scaling.py`: median of repeated jitted value-and-gradient calls of the numpyro "
              "potential (closed form, 12 observations per patient), after compilation. Peak memory: XLA's memory "
              "analysis of the compiled gradient (temporaries + arguments + outputs) plus the dataset it closes over; "
              "RSS: the process's peak resident set while that patient count was set up, compiled and timed "
              "(includes Python, jax and the compiler).", ""]
        rows = []
        for g in sorted(grad, key=lambda g: (g["dtype"], g["patients"])):
            rows.append([g["patients"], g["records"], g["dtype"], g["device"], g["median_ms"], g["min_ms"],
                         1e3 * g["median_ms"] / g["patients"], mib(g.get("peak_bytes")), mib(g.get("max_rss_bytes")),
                         mib(g.get("device_peak_bytes_in_use"))])
        L += table(["patients", "records", "dtype", "device", "median ms", "min ms", "us per patient", "XLA peak MiB",
                    "process RSS MiB", "device peak MiB"], rows)
        for dtype in sorted({g["dtype"] for g in grad}):
            d = [g for g in grad if g["dtype"] == dtype]
            k = slope([g["patients"] for g in d], [g["median_ms"] for g in d])
            if k is not None:
                L += [f"- {dtype}: time grows as patients^{k:.2f} between the two largest sizes."]
        L += [""]
    if trial:
        L += ["### Trial simulation vs replicates", "",
              "`benchmarks/trial_replicates.py --scaling`: one warm call per replicate count (the batch shape compiled "
              "beforehand). Peak memory: XLA's memory analysis of one compiled batch (per device, times the devices) "
              "plus the results gathered on the host; RSS: the process's peak resident set during the timed call.", ""]
        rows = []
        for t in sorted(trial, key=lambda t: t["replicates"]):
            per_dev = t.get("batch_peak_bytes_per_device")
            rows.append([t["replicates"], t["seconds"], t["replicates_per_second"], t["batch_replicates"],
                         mib(None if per_dev is None else per_dev * t["devices"]), mib(t.get("result_bytes")),
                         mib(t.get("max_rss_bytes"))])
        L += table(["replicates", "seconds", "replicates/s", "batch", "XLA batch peak MiB (all devices)", "results MiB",
                    "process RSS MiB"], rows)
        k = slope([t["replicates"] for t in trial], [t["seconds"] for t in trial])
        if k is not None:
            L += [f"- time grows as replicates^{k:.2f} between the two largest counts.", ""]
    # the two numbers issue 10 asks for
    L += ["### Peak memory at the largest size", ""]
    g64 = [g for g in grad if g["dtype"] == "float64"] or grad
    if g64:
        g = max(g64, key=lambda g: g["patients"])
        note = "" if g["patients"] >= 100_000 else " (**not 10^5**: a smaller run)"
        L += [f"- **Gradient, {g['patients']:,} patients{note}** ({g['dtype']}, {g['device']}): XLA peak "
              f"{mib(g.get('peak_bytes'))} MiB (temporaries {mib(g.get('temp_bytes'))}, dataset {mib(g.get('data_bytes'))}, "
              f"arguments + outputs {mib((g.get('argument_bytes') or 0) + (g.get('output_bytes') or 0))})"
              + (f"; device allocator peak {mib(g['device_peak_bytes_in_use'])} MiB" if g.get("device_peak_bytes_in_use") else "")
              + f"; process peak RSS {mib(g.get('max_rss_bytes'))} MiB ({g.get('max_rss_kind')})."]
    if trial:
        t = max(trial, key=lambda t: t["replicates"])
        note = "" if t["replicates"] >= 100_000 else " (**not 10^5**: a smaller run)"
        per_dev = t.get("batch_peak_bytes_per_device")
        L += [f"- **Trial simulation, {t['replicates']:,} replicates{note}**: batches of {t['batch_replicates']:,}, XLA peak "
              f"{mib(per_dev)} MiB per device x {t['devices']} devices; results {mib(t.get('result_bytes'))} MiB; "
              f"process peak RSS {mib(t.get('max_rss_bytes'))} MiB ({t.get('max_rss_kind')}). Memory is bounded by the "
              "batch, not the replicate count."]
    return L + [""]


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def render_and_write(jsonl: Path, out: Path) -> Path:
    records = _load_jsonl(jsonl)
    head = next(r for r in records if r.get("benchmark") == "run_all")
    grad = [r for r in records if r.get("run_source") == "gradient" and r.get("benchmark") == "gradient"]
    trial = [r for r in records if r.get("run_source") == "trial" and r.get("benchmark") == "trial_scaling"]
    png = jsonl.parent / head["scaling_png"] if head.get("scaling_png") else None
    if png is not None:
        m = head["machine"]
        accel = ", " + ", ".join(m.get("devices", [])) if m.get("backend") not in (None, "cpu") else ""
        title = (f"{head['date']} - {m.get('cpu_model')}, {m.get('cores_available')} cores{accel}"
                 + (" - QUICK SMOKE RUN" if head.get("quick") else ""))
        if not plot_scaling(grad, trial, png, title):
            png = None
    write_atomic(out, render(records, jsonl, out, png))
    return out


# ------------------------------------------------------------------------------------------------ main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run, not a measurement")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=None, help="run only these benchmarks")
    parser.add_argument("--with-ode-nuts", action="store_true", help="also run the ODE NUTS fits (>20 min on 2 cores)")
    parser.add_argument("--ode-nuts-models", nargs="+", default=None,
                        choices=["multiphasic", "effector_memory", "cart_tumor"],
                        help="with --with-ode-nuts: which models' NUTS fits to run (default all three)")
    parser.add_argument("--mechanistic-length", nargs=3, type=int, metavar=("CHAINS", "WARMUP", "SAMPLES"),
                        default=None, help="with --with-ode-nuts: shorter chains for the mechanistic model only")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--results-dir", type=Path, default=RECORDED_DIR, help="where the run's JSON lines and plot go")
    parser.add_argument("--step-timeout", type=float, default=None, help="kill a step after this many seconds")
    parser.add_argument("--render-from", type=Path, default=None, help="re-render RESULTS.md from a saved run's JSON lines")
    args = parser.parse_args(argv)
    if args.render_from:
        print(render_and_write(args.render_from, args.out))
        return 0

    now = dt.datetime.now(dt.timezone.utc)
    info = machine()
    accelerator = info.get("backend") not in (None, "cpu")
    kind = host_kind(info)
    stem = f"run-{now:%Y-%m-%d}-{kind}" + ("-quick" if args.quick else "")
    args.results_dir.mkdir(parents=True, exist_ok=True)
    jsonl = args.results_dir / f"{stem}.jsonl"
    n = 2
    while jsonl.exists():  # never overwrite an earlier run of the same day
        jsonl = args.results_dir / f"{stem}-{n}.jsonl"
        n += 1
    png_name = jsonl.stem.replace("run-", "scaling-", 1) + ".png"
    names = [b for b in BENCHMARKS if args.only is None or b in args.only]
    head = {"benchmark": "run_all", "date": f"{now:%Y-%m-%d}", "started": f"{now:%Y-%m-%d %H:%M:%S} UTC",
            "quick": args.quick, "command": "python benchmarks/run_all.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "benchmarks": names, "host_kind": kind, "machine": info, "load_start": round(os.getloadavg()[0], 2),
            "scaling_png": png_name}
    print(f"machine: {info.get('cpu_model')}, {info.get('cores_available')} cores, {', '.join(info.get('devices', []))} ({kind}); "
          f"load {head['load_start']}; writing {jsonl}", flush=True)
    started = time.perf_counter()
    with open(jsonl, "w", encoding="utf-8") as log:
        def emit(rec):
            log.write(json.dumps(rec) + "\n")
            log.flush()

        emit(head)
        for name in names:
            for label, script_argv in plan(name, args.quick, accelerator, args.with_ode_nuts, args.ode_nuts_models,
                                          args.mechanistic_length):
                print(f"[{name}] {label}: python benchmarks/{' '.join(script_argv)}", flush=True)
                step, records = run_step(script_argv, args.step_timeout)
                step = {"benchmark": "run_all_step", "name": name, "label": label, **step}
                for rec in records:
                    emit({**rec, "run_source": name, "run_step": label})
                emit(step)
                status = "ok" if step["returncode"] == 0 else f"FAILED (exit {step['returncode']})"
                print(f"    {status} in {step['wall_s']} s; load {step['load_before']} -> {step['load_after']}, "
                      f"others' CPU {step.get('other_cpu_share')}", flush=True)
                if step["returncode"] != 0:
                    print(step.get("stderr_tail", "")[-1500:], file=sys.stderr)
        end = dt.datetime.now(dt.timezone.utc)
        emit({"benchmark": "run_all_end", "finished": f"{end:%Y-%m-%d %H:%M:%S} UTC",
              "wall_s": round(time.perf_counter() - started, 1), "load_end": round(os.getloadavg()[0], 2)})
    out = render_and_write(jsonl, args.out)
    print(f"wrote {out} and {jsonl}")
    failed = sum(1 for r in _load_jsonl(jsonl) if r.get("benchmark") == "run_all_step" and r.get("returncode") != 0)
    if failed:
        print(f"{failed} step(s) failed; see the Failures section of {out}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
