"""CelebA as the lab ships it (an HDF5 file of uint8 images) and as it is published (the aligned
JPEG folder), plus any folder of images: read into one uint8 tensor (N, C, H, W), and written to
the HDF5 layout by `genlab prepare` so later runs start fast.

HDF5 layout: the file's first dataset holds the images as uint8, N x C x H x W (C = 1 or 3) or
N x H x W x C. `genlab prepare` writes N x 3 x S x S into a dataset called "images".

The official aligned CelebA folder holds `img_align_celeba/*.jpg` (178 x 218 faces, eyes at the
same place) and optionally `list_eval_partition.txt` ("000001.jpg 0" per line: 0 train, 1 val,
2 test). Faces are centre-cropped to a square (148 by default, as in the VAE/GAN paper's code)
and resized to S x S.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image

from genlab.data.folder import image_files, open_rgb
from genlab.data.memory import ImageSet, check_fits
from genlab.data.stream import GIB, HDF5Images
from genlab.data.transforms import resize_uint8
from genlab.errors import DataError

ALIGNED_FOLDER = "img_align_celeba"
PARTITION_FILE = "list_eval_partition.txt"
PARTITIONS = {"train": "0", "val": "1", "test": "2"}
DEFAULT_CROP = 148
HDF5_DATASET = "images"
FOLDER_IMAGE_SIZE = 64     # a folder's images have no one size: the lab's 64 unless told
NO_SPLITS = "all"          # the split name of a source without splits
_READ_CHUNK = 4096  # images read from an HDF5 file at a time


# --- HDF5 -------------------------------------------------------------------------------------

# What h5py raises on a damaged file: OSError mostly, but RuntimeError ("Object visitation
# failed (bad heap free list)"), KeyError or ValueError from damaged metadata (found by
# tests/test_fuzz.py).
_HDF5_ERRORS = (OSError, RuntimeError, KeyError, ValueError)

def _datasets(handle) -> dict:
    import h5py

    found = {}
    handle.visititems(lambda name, obj: found.__setitem__(name, obj)
                      if isinstance(obj, h5py.Dataset) else None)
    return found


def _described(datasets: dict) -> str:
    return ", ".join(f"'{name}' ({d.dtype}, {' x '.join(map(str, d.shape))})"
                     for name, d in datasets.items()) or "none"


def image_dataset(handle, path: Path, name: str | None = None):
    """The dataset holding the images: `name` (--h5-dataset) when given, else the one called
    'images', else the file's only 4-d uint8 dataset; anything else is refused naming them all."""
    datasets = _datasets(handle)
    if name is not None:
        if name.strip("/") not in datasets:
            raise DataError(f"{path} has no dataset {name!r} for --h5-dataset (it has: "
                            f"{_described(datasets)})")
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
                    f"'{HDF5_DATASET}' ({_described(datasets)}); name the images with "
                    "--h5-dataset")


# CelebA's official partition (list_eval_partition.txt) by file number: 1-162,770 train,
# 162,771-182,637 val, 182,638-202,599 test. A file with an `ids` dataset of CelebA file numbers
# (the lab's layout) is split by it.
CELEBA_IDS = "ids"
CELEBA_SPLIT_ENDS = {"train": (1, 162_770), "val": (162_771, 182_637), "test": (182_638, 202_599)}


CELEBA_WIDTH = 178  # the aligned faces' width, of which DEFAULT_CROP is kept


def upload_crop_fraction(data) -> float | None:
    """The share of a new image's shorter side to keep so it is cut as the run's training
    images were: 148 / 178 for CelebA (an aligned folder, or an HDF5 file with CelebA ids, which
    `genlab prepare` and the lab's file cut so), None (the whole shorter side) otherwise."""
    path = Path(data.data_path).expanduser() if data.data_path else None
    if path is None or not path.exists():
        return None
    if path.is_dir():
        return folder_crop(path, data.crop) / CELEBA_WIDTH if is_aligned_celeba(path) else None
    try:
        import h5py

        with h5py.File(path, "r") as handle:
            return DEFAULT_CROP / CELEBA_WIDTH if CELEBA_IDS in _datasets(handle) else None
    except _HDF5_ERRORS:
        return None


def celeba_split_rows(handle, path: Path, n: int) -> dict[str, tuple[int, int]] | None:
    """Rows [start, stop) of each CelebA split, for a file whose `ids` dataset holds one
    increasing CelebA file number per image; None for a file without one."""
    ids = _datasets(handle).get(CELEBA_IDS)
    if ids is None:
        return None
    values = np.asarray(ids[()]) if ids.ndim == 1 and ids.shape[0] == n and ids.dtype.kind in "iu" \
        else None
    if values is None or (len(values) > 1 and not (np.diff(values) > 0).all()):
        raise DataError(f"dataset '{CELEBA_IDS}' in {path} should hold one increasing CelebA file "
                        f"number per image ({n}), not {ids.dtype} {ids.shape}; fix it or remove it "
                        "(then the file has no splits)")
    return {split: (int(np.searchsorted(values, first)), int(np.searchsorted(values, last, "right")))
            for split, (first, last) in CELEBA_SPLIT_ENDS.items()}


MIN_SIDE = 4  # the smallest images genlab's networks take


def _layout(shape: tuple[int, ...], path: Path, name: str) -> str:
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
            layout = _layout(dataset.shape, path, name)
            n = dataset.shape[0]
            c, h, w = ((dataset.shape[1:]) if layout == "nchw"
                       else (dataset.shape[3], dataset.shape[1], dataset.shape[2]))
            return HDF5Images(path, name, layout, (n, c, h, w))
    except _HDF5_ERRORS as exc:
        raise DataError(f"{path} is not a readable HDF5 file ({exc}); check the file or "
                        "write it again with `genlab prepare`") from None


def hdf5_splits(path: Path, n: int) -> dict[str, tuple[int, int]] | None:
    """The CelebA splits' rows of an HDF5 file (see `celeba_split_rows`), or None."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            return celeba_split_rows(handle, path, n)
    except _HDF5_ERRORS as exc:
        raise DataError(f"{path} is not a readable HDF5 file ({exc}); check the file or "
                        "write it again with `genlab prepare`") from None


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
            for start in range(first, stop, _READ_CHUNK):
                chunk = torch.from_numpy(dataset[start:min(stop, start + _READ_CHUNK)])
                if layout == "nhwc":
                    chunk = chunk.permute(0, 3, 1, 2)  # (n, H, W, C) -> (n, C, H, W)
                images[start - first:start - first + len(chunk)] = chunk
            return images
    except _HDF5_ERRORS as exc:
        raise DataError(f"{path} is not a readable HDF5 file ({exc}); check the file or "
                        "write it again with `genlab prepare`") from None


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


# --- image folders ----------------------------------------------------------------------------

def aligned_files(folder: Path, split: str | None) -> list[Path]:
    """The JPEGs of an aligned CelebA folder, in name order; only `split`'s when the partition
    file is there and a split is asked for."""
    images = Path(folder) / ALIGNED_FOLDER
    files = sorted(images.glob("*.jpg"))
    partition = Path(folder) / PARTITION_FILE
    if split is None or not partition.is_file():
        return files
    if split not in PARTITIONS:
        raise DataError(f"{partition} has splits {', '.join(PARTITIONS)}, not {split!r}")
    wanted = set()
    for number, line in enumerate(partition.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in PARTITIONS.values():
            raise DataError(f"line {number} of {partition} is {line!r}; expected "
                            "'<file>.jpg <0|1|2>'")
        if parts[1] == PARTITIONS[split]:
            wanted.add(parts[0])
    return [f for f in files if f.name in wanted]


def is_aligned_celeba(folder: str | Path) -> bool:
    return (Path(folder) / ALIGNED_FOLDER).is_dir()


def folder_crop(folder: str | Path, crop: int | None) -> int | None:
    """The centre crop for a folder: `crop` if given, else 148 for aligned CelebA, else None
    (the shorter side)."""
    if crop is not None:
        return crop
    return DEFAULT_CROP if is_aligned_celeba(folder) else None


def folder_files(folder: str | Path, split: str | None = None) -> list[Path]:
    """The images of an aligned CelebA folder (see aligned_files) or of any folder, recursively."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder of images")
    files = aligned_files(folder, split) if is_aligned_celeba(folder) else image_files(folder)
    if not files:
        raise DataError(f"{folder} holds no image files")
    return files


def crop_and_resize(path: Path, size: int, crop: int | None) -> np.ndarray:
    """One image file as (3, size, size) uint8 (see `square_rgb`)."""
    return square_rgb(open_rgb(path), size, crop)


def square_rgb(rgb: Image.Image, size: int, crop: int | None) -> np.ndarray:
    """An RGB image as (3, size, size) uint8: centre-cropped to `crop` x `crop` (or to its shorter
    side when crop is None or larger than the image), then resized with PIL's bilinear filter
    with antialiasing, as torchvision's CenterCrop + Resize do on a PIL image."""
    w, h = rgb.size
    side = min(w, h) if crop is None else min(crop, w, h)
    left, top = int(round((w - side) / 2.0)), int(round((h - side) / 2.0))
    square = rgb.crop((left, top, left + side, top + side))
    return np.asarray(square.resize((size, size), Image.BILINEAR)).transpose(2, 0, 1)


def files_as_images(files: list[str | Path], image_shape: tuple[int, int, int]) -> torch.Tensor:
    """Image files -> uint8 (N, C, H, W) at a run's image shape, each centre-cropped to a square."""
    from genlab.data.transforms import convert_channels

    c, h, _ = image_shape
    return convert_channels(torch.from_numpy(np.stack([crop_and_resize(Path(f), h, None)
                                                       for f in files])), c)


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


def folder_batches(files: list[Path], size: int, crop: int | None,
                   batch_size: int = 256) -> Iterator[torch.Tensor]:
    """uint8 (n, 3, size, size) batches of `files`, cropped and resized."""
    for start in range(0, len(files), batch_size):
        yield torch.from_numpy(np.stack([crop_and_resize(p, size, crop)
                                         for p in files[start:start + batch_size]]))


# --- a training split from --data ---------------------------------------------------------------

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
                     h5_dataset: str | None = None) -> ImageSet:
    """One split of an HDF5 file or image folder (see `find_files_split`) as an in-memory
    ImageSet; an HDF5 file whose images exceed `memory_budget` GiB (as read, and as resized)
    stays on disk, read on demand."""
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
