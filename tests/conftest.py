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
