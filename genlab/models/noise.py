"""Per-sample random draws that a data-parallel run splits across its processes.

Every process of a run keeps the same random state. A draw with one value (or row) per sample is
made for the whole global batch on every process, and each keeps the rows of its own shard: N
processes then use exactly the numbers one process would, so a run's result does not depend on
how many processes trained it (tested), and the random state stays the same everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class Shard:
    """This process's place in a data-parallel step: rank `rank` of `world_size`."""

    rank: int = 0
    world_size: int = 1

    def rows(self, draw: Callable[[int], torch.Tensor], n: int) -> torch.Tensor:
        """draw(n) for this process's n samples: rows [rank*n, (rank+1)*n) of
        draw(world_size*n)."""
        if self.world_size == 1:
            return draw(n)
        return draw(n * self.world_size)[self.rank * n:(self.rank + 1) * n]


WHOLE = Shard()  # one process: every row is its own
