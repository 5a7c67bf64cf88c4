"""Automatic VPC bins that follow the sampling schedule.

1. Nominal times: the distinct observation times, sorted, are clustered on the log(1 + t) scale; a new
   cluster starts where the gap to the previous distinct time exceeds ``gap`` (default 0.08, i.e. times
   within ~8% of each other, as for visit windows around a nominal day, share a bin).
2. If there are more than ``max_bins`` clusters, a 1-D k-means on log(1 + t) (initialised at quantiles,
   record-weighted) reduces them to ``max_bins``.
3. Bins with fewer than ``min_count`` records are merged into their smaller neighbour, so that every bin
   can carry a 5th/95th percentile.
Edges lie halfway (on the log(1 + t) scale) between neighbouring clusters.
"""

from __future__ import annotations

import numpy as np

__all__ = ["auto_bins", "assign_bins"]


def auto_bins(times, *, max_bins: int = 15, min_count: int = 20, gap: float = 0.08) -> np.ndarray:
    """Bin edges (days, increasing, first 0 and last +inf) for observation times ``times`` (days).

    Raises
    ------
    ValueError
        For no times, negative times, or ``max_bins`` < 1.
    """
    t = np.asarray(times, dtype=float).ravel()
    if t.size == 0 or not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ValueError("auto_bins: times must be a non-empty array of finite days >= 0")
    if not (isinstance(max_bins, int) and max_bins >= 1):
        raise ValueError(f"auto_bins: max_bins must be a positive integer, got {max_bins!r}")
    x = np.log1p(t)
    distinct, counts = np.unique(x, return_counts=True)
    cluster = np.concatenate([[0], np.cumsum(np.diff(distinct) > gap)])
    k = int(cluster[-1]) + 1
    if k > max_bins:
        centres = np.quantile(x, (np.arange(max_bins) + 0.5) / max_bins)
        for _ in range(100):
            label = np.argmin(np.abs(distinct[:, None] - centres[None, :]), axis=1)
            new = np.array(
                [
                    np.average(distinct[label == c], weights=counts[label == c]) if np.any(label == c) else centres[c]
                    for c in range(max_bins)
                ]
            )
            if np.allclose(new, centres):
                break
            centres = new
        _, cluster = np.unique(label, return_inverse=True)
    # merge small bins into the smaller neighbour until every bin has min_count records (or one bin is left)
    cluster = cluster.copy()
    while True:
        ids, sizes = np.unique(cluster, return_inverse=False, return_counts=False), None
        sizes = np.array([counts[cluster == c].sum() for c in ids])
        small = np.flatnonzero(sizes < min_count)
        if small.size == 0 or ids.size == 1:
            break
        i = small[np.argmin(sizes[small])]
        if i == 0:
            j = 1
        elif i == ids.size - 1:
            j = i - 1
        else:
            j = i - 1 if sizes[i - 1] <= sizes[i + 1] else i + 1
        cluster[cluster == ids[i]] = ids[j]
        _, cluster = np.unique(cluster, return_inverse=True)
    ids = np.unique(cluster)
    highs = np.array([distinct[cluster == c].max() for c in ids])
    lows = np.array([distinct[cluster == c].min() for c in ids])
    inner = np.expm1(0.5 * (highs[:-1] + lows[1:]))
    return np.concatenate([[0.0], inner, [np.inf]])


def assign_bins(times, edges) -> np.ndarray:
    """Bin index of each time (days) for ``edges`` from `auto_bins` (or any increasing edges)."""
    edges = np.asarray(edges, dtype=float)
    return np.clip(np.searchsorted(edges, np.asarray(times, dtype=float), side="right") - 1, 0, edges.size - 2)
