"""A data set held in memory as one uint8 tensor, and a seeded stream of shuffled index batches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from genlab.errors import DataError


@dataclass
class ImageSet:
    """One split of a data set: all images as one uint8 tensor (N, C, H, W), labels if known."""

    images: torch.Tensor          # (N, C, H, W) uint8
    labels: torch.Tensor | None   # (N,) int64, or None for unlabelled data
    dataset: str
    split: str
    source: str                   # where the data came from, said to the user

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)

    def to(self, device: torch.device | str) -> "ImageSet":
        labels = None if self.labels is None else self.labels.to(device)
        return ImageSet(self.images.to(device), labels, self.dataset, self.split, self.source)


def check_fits(count: int, shape: tuple[int, int, int], budget_gib: float | None, what: str,
               advice: str) -> None:
    """Refuse, before allocating, `count` uint8 images of `shape` (C, H, W) that would exceed
    --memory-budget: a DataError saying how much they need and `advice`."""
    c, h, w = shape
    needed = count * c * h * w
    if budget_gib is not None and needed > budget_gib * 1024**3:
        raise DataError(f"{what}: {count:,} images of {c}x{h}x{w} need "
                        f"{needed / 1024**3:,.1f} GiB as uint8, over --memory-budget "
                        f"{budget_gib:g} (GiB); {advice}")


def epoch_seed(seed: int, epoch: int) -> int:
    # A distinct, reproducible permutation per epoch, whatever the order epochs are reached in.
    return (seed * 1_000_003 + epoch * 7919 + 12345) % (2**63)


class BatchStream:
    """Endless shuffled batches of indices into a data set of `size` items.

    Epoch e visits the items in the order torch.randperm(size) gives under a generator seeded
    from (seed, e), so the whole data order is a function of (seed, epoch, position): that pair is
    the stream's state, saved in every checkpoint, and a resumed run draws exactly the batches an
    uninterrupted one would. Batches are always full: one that crosses an epoch boundary takes the
    rest of this epoch and the start of the next.
    """

    def __init__(self, size: int, batch_size: int, seed: int, device: torch.device | str = "cpu"):
        if size <= 0:
            raise ValueError("cannot draw batches from an empty data set")
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.device = torch.device(device)
        self.epoch, self.position = 0, 0
        self._order: torch.Tensor | None = None

    def _epoch_order(self) -> torch.Tensor:
        if self._order is None:
            generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
            self._order = torch.randperm(self.size, generator=generator).to(self.device)
        return self._order

    def next(self) -> torch.Tensor:
        """The next batch of indices, (batch_size,) int64 on the stream's device."""
        parts, needed = [], self.batch_size
        while needed:
            order = self._epoch_order()
            take = order[self.position:self.position + needed]
            parts.append(take)
            needed -= len(take)
            self.position += len(take)
            if self.position == self.size:
                self.epoch, self.position, self._order = self.epoch + 1, 0, None
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "size": self.size,
                "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        if state["size"] != self.size or state["seed"] != self.seed:
            raise ValueError(f"data order was saved for {state['size']} items with seed "
                             f"{state['seed']}, not {self.size} items with seed {self.seed}")
        self.epoch, self.position, self._order = int(state["epoch"]), int(state["position"]), None


class Batches(Protocol):
    """Endless seeded batches of uint8 images, whatever holds them (IndexedBatches in memory,
    genlab.data.stream.ChunkedBatches from disk); their data order is saved in checkpoints."""

    def next(self) -> torch.Tensor: ...              # (batch, C, H, W) uint8

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...

    def close(self) -> None: ...


class IndexedBatches:
    """Batches of an in-memory data set: the stream's indices gathered from one uint8 tensor
    (on the training device) in a single indexing operation."""

    def __init__(self, images: torch.Tensor, batch_size: int, seed: int,
                 device: torch.device | str = "cpu"):
        self.images = images
        self.stream = BatchStream(len(images), batch_size, seed, device)

    def next(self) -> torch.Tensor:
        """The next batch of images, (batch_size, C, H, W) uint8."""
        return self.images[self.stream.next()]

    def state_dict(self) -> dict:
        return self.stream.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.stream.load_state_dict(state)

    def close(self) -> None:
        pass
