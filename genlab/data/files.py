"""A --data path: an HDF5 file of images or a folder of images (aligned CelebA, or any folder,
searched recursively), one split of it found, loaded, or written as HDF5 by `genlab prepare`."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from genlab.data.celeba import (PARTITION_FILE, aligned_files, folder_crop, hdf5_splits,
                                is_aligned_celeba)
from genlab.data.folder import folder_batches, image_files
from genlab.data.hdf5 import open_hdf5, read_hdf5, write_hdf5
from genlab.data.memory import ImageSet, check_fits
from genlab.data.stream import GIB, HDF5Images
from genlab.data.transforms import resize_uint8
from genlab.errors import DataError

FOLDER_IMAGE_SIZE = 64     # a folder's images have no one size: the lab's 64 unless told
NO_SPLITS = "all"          # the split name of a source without splits


def folder_files(folder: str | Path, split: str | None = None) -> list[Path]:
    """The images of an aligned CelebA folder (see aligned_files) or of any folder, recursively."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder of images")
    files = aligned_files(folder, split) if is_aligned_celeba(folder) else image_files(folder)
    if not files:
        raise DataError(f"{folder} holds no image files")
    return files


def prepare_hdf5(source: Path, output: Path, size: int, crop: int | None, split: str | None,
                 overwrite: bool, log: Callable[[str], None]) -> int:
    """`genlab prepare`: every image of a folder (an aligned CelebA's, or `split`'s) centre-cropped,
    resized to size x size and written as one uint8 HDF5 dataset 'images'; the image count."""
    from tqdm import tqdm

    source, output = Path(source), Path(output)
    if output.suffix.lower() not in (".h5", ".hdf5"):
        raise DataError(f"-o {output} should end in .h5 or .hdf5")
    if output.exists() and not overwrite:
        raise DataError(f"{output} exists; pass --overwrite to replace it")
    if not output.parent.is_dir():
        raise DataError(f"the folder of -o {output} does not exist; create it first")
    crop = folder_crop(source, crop)
    files = folder_files(source, split)
    what = "images"
    if is_aligned_celeba(source):
        what = f"aligned CelebA, split {split}" if split else "aligned CelebA"
    log(f"preparing {len(files)} {what} from {source}: centre crop "
        f"{crop if crop else 'to the shorter side'}, resized to {size}x{size}")
    bar = tqdm(total=len(files), unit="img", file=sys.stderr, desc="prepare",
               mininterval=0.5 if sys.stderr.isatty() else 30.0)

    def counted():
        for batch in folder_batches(files, size, crop):
            bar.update(len(batch))
            yield batch

    try:
        write_hdf5(output, counted(), len(files), (3, size, size))
    finally:
        bar.close()
    return len(files)


def has_splits(path: str | Path) -> bool:
    return is_aligned_celeba(path) and (Path(path) / PARTITION_FILE).is_file()


@dataclass
class FilesSplit:
    """One split of an HDF5 file or image folder, found but not read: its images on disk (an
    HDF5 file's rows, resized as asked) or its image files (decoded at `size`)."""

    path: Path
    split: str                        # the split found: the one asked for, or NO_SPLITS
    on_disk: HDF5Images | None = None
    files: list[Path] | None = None
    size: int | None = None           # --image-size (a folder's: FOLDER_IMAGE_SIZE unless given)

    def __len__(self) -> int:
        return len(self.on_disk) if self.on_disk is not None else len(self.files)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        if self.on_disk is not None:
            c, h, w = (int(v) for v in self.on_disk.shape[1:])
            return (c, self.size or h, self.size or w)
        return (3, self.size, self.size)

    @property
    def source(self) -> str:
        return str(self.path) if self.split != NO_SPLITS else f"{self.path}, which has no splits"


def find_files_split(path: str | Path, split: str, image_size: int | None,
                     h5_dataset: str | None = None) -> FilesSplit:
    """Where one split of an HDF5 file or image folder is, with its size and shape, reading
    nothing but the file's metadata or the folder's names.

    An aligned CelebA folder with its partition file, and an HDF5 file with an `ids` dataset of
    CelebA file numbers, have the splits train, val and test; any other source has one, "all",
    returned whatever split is asked for.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        split_used = split if has_splits(path) else NO_SPLITS
        files = folder_files(path, split if split_used != NO_SPLITS else None)
        return FilesSplit(path, split_used, files=files, size=image_size or FOLDER_IMAGE_SIZE)
    if path.is_file():
        on_disk = open_hdf5(path, h5_dataset)
        if image_size and on_disk.shape[2] != on_disk.shape[3]:
            raise DataError(f"{path} holds {on_disk.shape[2]}x{on_disk.shape[3]} images; "
                            "--image-size makes square images from square ones only")
        splits = hdf5_splits(path, len(on_disk))
        split_used = NO_SPLITS if splits is None else split
        if splits is not None:
            if split not in splits:
                raise DataError(f"{path} has the CelebA splits {', '.join(splits)}, not "
                                f"{split!r}; choose one with --train-split/--val-split")
            on_disk = on_disk.split(splits[split])
            if not len(on_disk):
                raise DataError(f"{path} holds no images of CelebA's {split} split; choose "
                                "another with --train-split/--val-split")
        return FilesSplit(path, split_used, on_disk=on_disk, size=image_size)
    if path.exists():
        raise DataError(f"--data {path} is neither a regular file nor a folder; pass an HDF5 "
                        "file of images or a folder")
    raise DataError(f"--data {path} does not exist; pass an HDF5 file of images or a folder")


def load_files_split(path: str | Path, split: str, image_size: int | None, crop: int | None,
                     name: str, log: Callable[[str], None] | None = None,
                     memory_budget: float | None = None,
                     h5_dataset: str | None = None, channels: int | None = None) -> ImageSet:
    """One split of an HDF5 file or image folder (see `find_files_split`) as an in-memory
    ImageSet; an HDF5 file whose images exceed `memory_budget` GiB (as read, and as resized to
    --image-size and converted to --channels) stays on disk, read on demand."""
    found = find_files_split(path, split, image_size, h5_dataset)
    path, split_used = found.path, found.split
    if found.files is not None:
        files, size = found.files, found.size
        check_fits(len(files), (3, size, size), memory_budget, f"--data {path}",
                   "choose a smaller --image-size or a larger --memory-budget")
        crop = folder_crop(path, crop)
        if log:
            log(f"decoding {len(files)} images of {path} (centre crop "
                f"{crop or 'to the shorter side'}, {size}x{size}); `genlab prepare` makes an "
                "HDF5 file that loads faster")
        images = torch.cat(list(folder_batches(files, size, crop)))
    else:
        on_disk = found.on_disk
        stored_bytes = on_disk.nbytes
        stored_shape = tuple(on_disk.shape[1:])
        on_disk = on_disk.resized(image_size)
        if channels is not None:  # grey stored, RGB trained: three times the bytes held
            on_disk = on_disk.with_channels(channels)
        per_image = max(int(np.prod(stored_shape)), int(np.prod(on_disk.shape[1:])))
        if memory_budget is not None and 3 * per_image > memory_budget * GIB:
            # Streamed or not, images are read whole: the chunk in use, the one read ahead and
            # the batches gathered from them get a third of the budget each (chunk_images).
            c, h, w = stored_shape
            raise DataError(f"{path} holds {c}x{h}x{w} images, {per_image / GIB:,.1f} GiB each "
                            "as read, and genlab holds at least three at once, over "
                            f"--memory-budget {memory_budget:g} (GiB); write the file at a smaller size "
                            "with `genlab prepare`, or raise --memory-budget")
        if memory_budget is not None and max(stored_bytes, on_disk.nbytes) > memory_budget * GIB:
            if log:
                log(f"{path}: {len(on_disk)} images of {tuple(on_disk.shape[1:])} need "
                    f"{max(stored_bytes, on_disk.nbytes) / GIB:.1f} GiB, over --memory-budget "
                    f"{memory_budget:g}; streaming them from disk in chunks")
            where = f"{path}, {_split_words(split_used)}, streamed from disk"
            return ImageSet(images=on_disk, labels=None, dataset=name, split=split_used,
                            source=where)
        images = read_hdf5(path, log, h5_dataset, on_disk.rows)
        if image_size:
            images = resize_uint8(images, image_size)
    return ImageSet(images=images, labels=None, dataset=name, split=split_used,
                    source=found.source)


def _split_words(split: str) -> str:
    return "which has no splits" if split == NO_SPLITS else f"its {split} split"
