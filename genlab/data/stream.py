"""An HDF5 file of images too large for the memory budget: read on demand, and trained on in
contiguous chunks that a background thread reads ahead.

The full CelebA is 202,599 images, 2.5 GB at 3 x 64 x 64 (more at larger sizes): where that does
not fit `--memory-budget`, the trainer draws its batches from `ChunkedBatches` instead of gathering
them from one in-memory tensor. Reading whole contiguous chunks keeps the disk sequential (random
single images from HDF5 cost a seek each); shuffling within the chunk and the chunk order per epoch
keeps batches mixed. Batches are gathered from the chunk tensor by index, as from an in-memory
data set: no per-image Python in the hot loop.
"""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import numpy as np
import torch

from genlab.data.memory import epoch_seed
from genlab.data.transforms import convert_channels, resize_uint8
from genlab.errors import DataError

GIB = 1024**3


class HDF5Images:
    """The images of an HDF5 dataset, (N, C, H, W) uint8, read when indexed: `images[a:b]` reads a
    contiguous range, `images[index_tensor]` the given images. --image-size and --channels are
    applied to what is read, so it stands in for the in-memory tensor of an ImageSet."""

    def __init__(self, path: Path, dataset: str, layout: str, stored_shape: tuple[int, ...],
                 size: int | None = None, channels: int | None = None,
                 rows: tuple[int, int] | None = None):
        self.path, self.dataset, self.layout = Path(path), dataset, layout
        n, c, h, w = stored_shape
        self._stored = (n, c, h, w)
        self.size, self.channels = size, channels
        # The dataset's rows [start, stop) that these images are (one split of the file).
        self.rows = rows or (0, n)
        self.shape = torch.Size((self.rows[1] - self.rows[0], channels or c, size or h, size or w))
        self.dtype = torch.uint8

    def resized(self, size: int | None) -> "HDF5Images":
        return HDF5Images(self.path, self.dataset, self.layout, self._stored, size, self.channels,
                          self.rows)

    def split(self, rows: tuple[int, int]) -> "HDF5Images":
        """Rows [start, stop) of these images (offsets into them)."""
        first = self.rows[0]
        return HDF5Images(self.path, self.dataset, self.layout, self._stored, self.size,
                          self.channels, (first + rows[0], first + rows[1]))

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape))

    def with_channels(self, channels: int) -> "HDF5Images":
        return HDF5Images(self.path, self.dataset, self.layout, self._stored, self.size, channels,
                          self.rows)

    def to(self, device) -> "HDF5Images":
        return self  # stays on disk; what is read is moved by whoever reads it

    def _transform(self, array: np.ndarray) -> torch.Tensor:
        images = torch.from_numpy(array)
        if self.layout == "nhwc":
            images = images.permute(0, 3, 1, 2)  # (n, H, W, C) -> (n, C, H, W)
        images = images.contiguous()
        if self.size and images.shape[2:] != (self.size, self.size):
            images = resize_uint8(images, self.size)
        if self.channels:
            images = convert_channels(images, self.channels)
        return images

    def _read(self, selection) -> np.ndarray:
        import h5py

        try:
            with h5py.File(self.path, "r") as handle:
                return handle[self.dataset][selection]
        except (OSError, KeyError, RuntimeError, ValueError) as exc:  # h5py's, on a damaged file
            raise DataError(f"cannot read images from {self.path} ({exc}); the file changed or "
                            "is damaged since training started; check it or write it again "
                            "with `genlab prepare`") from None

    def __getitem__(self, key) -> torch.Tensor:
        first = self.rows[0]
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step != 1:
                raise ValueError("HDF5Images reads contiguous ranges only")
            return self._transform(self._read(slice(first + start, first + max(start, stop))))
        indices = torch.as_tensor(key).cpu().long()
        # h5py reads a list of increasing, distinct indices: read those, then put them in order.
        unique, inverse = torch.unique(indices, sorted=True, return_inverse=True)
        return self._transform(self._read((unique + first).tolist()))[inverse]


def chunk_images(images: HDF5Images, memory_budget_gib: float) -> int:
    """Images per chunk: a third of the budget each, for the chunk in use, the one read ahead and
    the batches gathered from them."""
    per_image = images.nbytes // len(images)
    return max(1, min(len(images), int(memory_budget_gib * GIB) // (3 * per_image)))


class ChunkedBatches:
    """Endless shuffled batches of uint8 images (batch, C, H, W) on `device`, read from `images`
    in contiguous chunks of `chunk` images.

    Epoch e visits the chunks in the order torch.randperm(number of chunks) gives under a
    generator seeded from (seed, e), and each chunk's images in the order of a permutation seeded
    from (seed, e, chunk). The data order is therefore a function of (seed, epoch, position),
    like BatchStream's: that pair is the state saved in checkpoints, and a resumed run draws the
    batches an uninterrupted one would. While a chunk is used, the next one is read by a
    background thread.
    """

    def __init__(self, images: HDF5Images, batch_size: int, seed: int, chunk: int,
                 device: torch.device | str = "cpu"):
        self.images, self.batch_size, self.seed, self.chunk = images, batch_size, seed, chunk
        self.size = len(images)
        self.device = torch.device(device)
        self.num_chunks = -(-self.size // chunk)
        self.epoch, self.position = 0, 0
        self._reader: concurrent.futures.ThreadPoolExecutor | None = None  # started on first use
        self._loaded: tuple[tuple[int, int], torch.Tensor] | None = None
        self._ahead: tuple[tuple[int, int], concurrent.futures.Future] | None = None
        self._orders: dict[int, list[int]] = {}  # chunk orders of the current and last epoch

    def _chunk_order(self, epoch: int) -> list[int]:
        if epoch not in self._orders:
            generator = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
            self._orders = {epoch: torch.randperm(self.num_chunks, generator=generator).tolist(),
                            **{e: o for e, o in self._orders.items() if e == epoch - 1}}
        return self._orders[epoch]

    def _chunk_length(self, chunk_index: int) -> int:
        return min(self.chunk, self.size - chunk_index * self.chunk)

    def _locate(self, epoch: int, position: int) -> tuple[int, int]:
        """(k, offset): the position is `offset` images into the epoch's k-th chunk."""
        for k, c in enumerate(self._chunk_order(epoch)):
            length = self._chunk_length(c)
            if position < length:
                return k, position
            position -= length
        raise AssertionError("position beyond the epoch")

    def _read_chunk(self, epoch: int, k: int) -> torch.Tensor:
        """The epoch's k-th chunk, its images in their shuffled order, on the device."""
        c = self._chunk_order(epoch)[k]
        start = c * self.chunk
        images = self.images[start:start + self._chunk_length(c)]
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, epoch) + 1 + c)
        return images[torch.randperm(len(images), generator=generator)].to(self.device)

    def _following(self, key: tuple[int, int]) -> tuple[int, int]:
        epoch, k = key
        return (epoch, k + 1) if k + 1 < self.num_chunks else (epoch + 1, 0)

    def _chunk(self, key: tuple[int, int]) -> torch.Tensor:
        if self._loaded is None or self._loaded[0] != key:
            if self._ahead is not None and self._ahead[0] == key:
                data = self._ahead[1].result()
            else:
                data = self._read_chunk(*key)
            self._loaded = (key, data)
            following = self._following(key)
            if self.num_chunks > 1:
                if self._reader is None:
                    self._reader = concurrent.futures.ThreadPoolExecutor(
                        1, thread_name_prefix="genlab-hdf5")
                self._ahead = (following, self._reader.submit(self._read_chunk, *following))
        return self._loaded[1]

    def next(self) -> torch.Tensor:
        """The next batch of images, (batch_size, C, H, W) uint8 on the device."""
        parts, needed = [], self.batch_size
        while needed:
            k, offset = self._locate(self.epoch, self.position)
            take = self._chunk((self.epoch, k))[offset:offset + needed]
            parts.append(take)
            needed -= len(take)
            self.position += len(take)
            if self.position == self.size:
                self.epoch, self.position = self.epoch + 1, 0
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "size": self.size,
                "seed": self.seed, "chunk": self.chunk}

    def load_state_dict(self, state: dict) -> None:
        if (state["size"], state["seed"], state.get("chunk")) != (self.size, self.seed, self.chunk):
            raise ValueError(f"data order was saved for {state['size']} items with seed "
                             f"{state['seed']} in chunks of {state.get('chunk')}, not "
                             f"{self.size} items with seed {self.seed} in chunks of {self.chunk}")
        self.epoch, self.position = int(state["epoch"]), int(state["position"])

    def close(self) -> None:
        """Stop the read-ahead thread (a later `next` starts another)."""
        if self._reader is not None:
            self._reader.shutdown(wait=True, cancel_futures=True)
        self._reader, self._ahead = None, None
