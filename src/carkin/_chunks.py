"""Chunked evaluation of a batched computation, with an optional rich progress bar.

Simulators that vmap over many draws or replicates evaluate them in chunks (bounded memory, shared
compilations) and concatenate the results; this is that loop, written once.
"""

from __future__ import annotations

from typing import Callable

import jax
import numpy as np

__all__ = ["map_chunks"]


def map_chunks(run: Callable[[int], object], total: int, size: int, *, label: str, progress: bool):
    """Call ``run(start)`` for ``start`` in ``range(0, total, size)`` and concatenate the pytrees it returns.

    ``run`` must return a pytree of arrays whose leading axis holds ``min(size, total - start)`` items.
    With ``progress``, a transient rich progress bar on stderr counts the items done.
    """
    starts = range(0, total, size)
    if progress:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        parts = []
        with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task(label, total=total)
            for start in starts:
                parts.append(run(start))
                bar.update(task, advance=min(size, total - start))
    else:
        parts = [run(start) for start in starts]
    return jax.tree_util.tree_map(lambda *xs: np.concatenate(xs, axis=0), *parts)
