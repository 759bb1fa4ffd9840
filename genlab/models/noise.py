"""Per-sample random draws that a data-parallel run splits across its processes.

Every process of a run keeps the same random state. A draw with one value (or row) per sample is
made for the whole global batch on every process, and each keeps the rows of its own shard: N
processes then use exactly the numbers one process would, so a run's result does not depend on
how many processes trained it (tested), and the random state stays the same everywhere.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch

_shard = (0, 1)  # (this process's rank, number of processes) while a data-parallel step runs


@contextlib.contextmanager
def sharded(rank: int, world_size: int) -> Iterator[None]:
    """Within: per_sample draws return rank's rows of a world_size-times larger draw."""
    global _shard
    previous, _shard = _shard, (rank, world_size)
    try:
        yield
    finally:
        _shard = previous


def per_sample(draw: Callable[[int], torch.Tensor], n: int) -> torch.Tensor:
    """draw(n) for this process's n samples: rows [rank*n, (rank+1)*n) of draw(world_size*n)."""
    rank, world_size = _shard
    if world_size == 1:
        return draw(n)
    return draw(n * world_size)[rank * n:(rank + 1) * n]
