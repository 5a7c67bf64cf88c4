"""Records of the population log-likelihood sharded across devices (``jax.sharding``).

`shard_records` pads the flat record arrays to a multiple of the device count with zero-weight records
(patient 0, log DV 0: finite, and multiplied by 0) and places them on a one-axis mesh ``"records"``.
Records are sorted by patient, so each device holds a contiguous block of patients' records; the
individual parameters (patients x params, small) stay replicated and XLA's SPMD partitioner runs the
per-record kinetic model, residual and M3 terms on each device and adds the partial sums. Only the order of
that final sum changes with the device count, so results agree to rounding (~1e-13 relative).

On CPU the host platform splits into devices with ``XLA_FLAGS=--xla_force_host_platform_device_count=N``
(set before importing jax). Multi-host: call ``jax.distributed.initialize()`` on every host first; then
``jax.devices()`` lists the devices of all hosts and the same mesh spans them (each process must build the
same PopulationData).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ..data import FlatObservations
from ._model import PopulationData

__all__ = ["shard_records"]


def _pad(values: np.ndarray, size: int, fill) -> np.ndarray:
    return np.concatenate([values, np.full((size - values.shape[0],), fill, dtype=values.dtype)])


def shard_records(data: PopulationData, devices: Sequence[jax.Device] | None = None) -> PopulationData:
    """Return ``data`` with its records padded and sharded over ``devices`` (default: all local devices).

    Parameters
    ----------
    data : PopulationData
        From `carkin.population.prepare`; not already sharded.
    devices : sequence of jax.Device, optional
        One mesh axis over these devices. With one device the records are only padded (a useful
        reference: the same computation, unsharded).

    Returns
    -------
    PopulationData
        Same likelihood (zero-weight padding records), arrays placed with ``NamedSharding``; the index
        sets (quantified, censored) are padded with the first padding record's index.
    """
    if data.record_weight is not None:
        raise ValueError("shard_records: these data are already padded/sharded")
    devices = list(devices) if devices is not None else jax.local_devices()
    d = len(devices)
    rec = data.records
    n = int(rec.patient.shape[0])
    size = (n // d + 1) * d  # at least one padding record, for the index sets to point at
    pad = n  # index of the first padding record

    def index_set(index) -> np.ndarray:
        index = np.asarray(index)
        if index.size == 0:
            return index
        return _pad(index, -(-index.size // d) * d, pad)

    records = FlatObservations(
        patient=_pad(np.asarray(rec.patient), size, 0),
        times=_pad(np.asarray(rec.times), size, 1.0),
        log_dv=_pad(np.asarray(rec.log_dv), size, 0.0),
        blq=_pad(np.asarray(rec.blq), size, False),
        quantified_index=index_set(rec.quantified_index),
        censored_index=index_set(rec.censored_index),
    )
    weight = _pad(np.ones(n), size, 0.0)
    slot = None if data.record_slot is None else _pad(np.asarray(data.record_slot), size, 0)
    sharded = NamedSharding(Mesh(np.asarray(devices), ("records",)), PartitionSpec("records"))
    replicated = NamedSharding(Mesh(np.asarray(devices), ("records",)), PartitionSpec())

    def place(x, how=sharded):
        return None if x is None else jax.device_put(jnp.asarray(x), how)

    return PopulationData(
        records=jax.tree.map(place, records),
        covariate_z=place(data.covariate_z, replicated),
        n_patients=data.n_patients,
        inputs={k: place(v, replicated) for k, v in data.inputs.items()},
        padded_times=place(data.padded_times, replicated),
        record_slot=place(slot),
        record_weight=place(weight),
    )
