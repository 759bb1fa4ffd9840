"""HDF5 files of uint8 images: finding the image dataset, checking it, reading it whole or by
rows, and writing one atomically.

Layout: the images are uint8, N x C x H x W (C = 1 or 3) or N x H x W x C, in the dataset named
by --h5-dataset, else the one called "images", else the file's only 4-d uint8 dataset. `genlab
prepare` writes N x 3 x S x S into a dataset called "images".
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from genlab.data.stream import HDF5Images
from genlab.errors import DataError

HDF5_DATASET = "images"
READ_CHUNK = 4096  # images read from an HDF5 file at a time
MIN_SIDE = 4  # the smallest images genlab's networks take

# What h5py raises on a damaged file: OSError mostly, but RuntimeError ("Object visitation
# failed (bad heap free list)"), KeyError or ValueError from damaged metadata (found by
# tests/test_fuzz.py).
HDF5_ERRORS = (OSError, RuntimeError, KeyError, ValueError)


def unreadable(path: Path, exc: BaseException) -> DataError:
    return DataError(f"{path} is not a readable HDF5 file ({exc}); check the file or write it "
                     "again with `genlab prepare`")


def datasets_in(handle) -> dict:
    import h5py

    found = {}
    handle.visititems(lambda name, obj: found.__setitem__(name, obj)
                      if isinstance(obj, h5py.Dataset) else None)
    return found


def described(datasets: dict) -> str:
    return ", ".join(f"'{name}' ({d.dtype}, {' x '.join(map(str, d.shape))})"
                     for name, d in datasets.items()) or "none"


def image_dataset(handle, path: Path, name: str | None = None):
    """The dataset holding the images: `name` (--h5-dataset) when given, else the one called
    'images', else the file's only 4-d uint8 dataset; anything else is refused naming them all."""
    datasets = datasets_in(handle)
    if name is not None:
        if name.strip("/") not in datasets:
            raise DataError(f"{path} has no dataset {name!r} for --h5-dataset (it has: "
                            f"{described(datasets)})")
        return datasets[name.strip("/")]
    if HDF5_DATASET in datasets:
        return datasets[HDF5_DATASET]
    candidates = [d for d in datasets.values() if d.ndim == 4 and d.dtype == np.uint8]
    if len(candidates) == 1:
        return candidates[0]
    if not datasets:
        raise DataError(f"{path} holds no dataset; write the images as one uint8 dataset "
                        "(N x 3 x 64 x 64), e.g. with `genlab prepare`")
    which = "several" if candidates else "no"
    raise DataError(f"{path} has {which} 4-d uint8 datasets and none called "
                    f"'{HDF5_DATASET}' ({described(datasets)}); name the images with "
                    "--h5-dataset")


# CelebA's official partition (list_eval_partition.txt) by file number: 1-162,770 train,
# 162,771-182,637 val, 182,638-202,599 test. A file with an `ids` dataset of CelebA file numbers
# (the lab's layout) is split by it.


def layout_of(shape: tuple[int, ...], path: Path, name: str) -> str:
    """'nchw' or 'nhwc' for an image dataset's shape (N x C x H x W when both would do), or a
    DataError naming the file."""
    if len(shape) == 4 and shape[0] > 0:
        layout = "nchw" if shape[1] in (1, 3) else "nhwc" if shape[3] in (1, 3) else None
        if layout is not None:
            h, w = shape[2:] if layout == "nchw" else shape[1:3]
            if min(h, w) >= MIN_SIDE:
                return layout
            raise DataError(f"dataset {name!r} in {path} holds {h}x{w} images (shape {shape}); "
                            f"genlab's networks need at least {MIN_SIDE}x{MIN_SIDE}")
    raise DataError(f"dataset {name!r} in {path} has shape {shape}; expected images N x C x H x W "
                    "or N x H x W x C with C = 1 or 3")


def open_hdf5(path: str | Path, dataset_name: str | None = None) -> HDF5Images:
    """An HDF5 file's image dataset (see `image_dataset`), checked to hold uint8 images, as
    images read on demand."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist; pass an HDF5 file of images or a folder")
    try:
        with h5py.File(path, "r") as handle:
            dataset = image_dataset(handle, path, dataset_name)
            name = dataset.name
            if dataset.dtype != np.uint8:
                raise DataError(f"dataset {name!r} in {path} holds {dataset.dtype} values; "
                                "expected uint8 images 0..255")
            layout = layout_of(dataset.shape, path, name)
            n = dataset.shape[0]
            c, h, w = ((dataset.shape[1:]) if layout == "nchw"
                       else (dataset.shape[3], dataset.shape[1], dataset.shape[2]))
            return HDF5Images(path, name, layout, (n, c, h, w))
    except HDF5_ERRORS as exc:
        raise unreadable(path, exc) from None


def read_hdf5(path: str | Path, log: Callable[[str], None] | None = None,
              dataset_name: str | None = None, rows: tuple[int, int] | None = None) -> torch.Tensor:
    """The images of an HDF5 file's image dataset (rows [start, stop) of it when given) as one
    uint8 tensor (N, C, H, W)."""
    import h5py

    on_disk = open_hdf5(path, dataset_name)
    path, name, layout = on_disk.path, on_disk.dataset, on_disk.layout
    first, stop = rows or (0, on_disk.shape[0])
    n, (c, h, w) = stop - first, on_disk.shape[1:]
    try:
        with h5py.File(path, "r") as handle:
            dataset = handle[name]
            if log:
                log(f"reading {n} images of {c}x{h}x{w} from {path}")
            images = torch.empty((n, c, h, w), dtype=torch.uint8)
            # Chunk by chunk into the preallocated tensor: never two copies of the data set.
            for start in range(first, stop, READ_CHUNK):
                chunk = torch.from_numpy(dataset[start:min(stop, start + READ_CHUNK)])
                if layout == "nhwc":
                    chunk = chunk.permute(0, 3, 1, 2)  # (n, H, W, C) -> (n, C, H, W)
                images[start - first:start - first + len(chunk)] = chunk
            return images
    except HDF5_ERRORS as exc:
        raise unreadable(path, exc) from None


def write_hdf5(path: str | Path, batches: Iterator[torch.Tensor], count: int,
               image_shape: tuple[int, int, int]) -> Path:
    """Write `count` uint8 images (C, H, W) from `batches` to dataset "images", atomically: the
    file appears under its name only once complete."""
    import h5py

    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with h5py.File(tmp, "w") as handle:
            dataset = handle.create_dataset(HDF5_DATASET, shape=(count, *image_shape),
                                            dtype=np.uint8,
                                            chunks=(min(count, 256), *image_shape))
            written = 0
            for batch in batches:
                dataset[written:written + len(batch)] = batch.numpy()
                written += len(batch)
            if written != count:
                raise DataError(f"expected {count} images for {path} but got {written}")
        os.replace(tmp, path)
    except OSError as exc:
        raise DataError(f"cannot write {path} ({exc.strerror or exc}); check the folder and "
                        "the free space") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path
