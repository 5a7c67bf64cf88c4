"""Test configuration: float64 and four host devices (parallel chains).

Rank promotion is left at jax's default: numpyro's own samplers broadcast (patients, params) against
(params,) internally, so `jax_numpy_rank_promotion="raise"` breaks numpyro, not carkin. carkin's own code
broadcasts explicitly (`x[None, :]`).
"""

import os

# Must happen before jax initialises its backend.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)


def pytest_xdist_auto_num_workers(config):
    """Workers for ``-n auto`` (pyproject's default): one per CPU available, at most 4. Each worker is a jax
    process with its own 4 host devices and compiled functions (~1-2 GiB), and a file's tests share its
    module fixtures, so more workers than files-in-flight gain little."""
    return max(1, min(4, len(os.sched_getaffinity(0))))
