"""CelebA as the lab ships it (an HDF5 file of uint8 images with the faces' file numbers) and as
it is published (the aligned JPEG folder): its official splits and its crop. Reading HDF5 files
is genlab.data.hdf5's, reading image files genlab.data.folder's, and a --data path
genlab.data.files'.

The official aligned CelebA folder holds `img_align_celeba/*.jpg` (178 x 218 faces, eyes at the
same place) and optionally `list_eval_partition.txt` ("000001.jpg 0" per line: 0 train, 1 val,
2 test). Faces are centre-cropped to a square (148 by default, as in the VAE/GAN paper's code)
and resized to S x S.
"""


from __future__ import annotations

from pathlib import Path

import numpy as np

from genlab.data.hdf5 import HDF5_ERRORS, datasets_in, unreadable
from genlab.errors import DataError

ALIGNED_FOLDER = "img_align_celeba"
PARTITION_FILE = "list_eval_partition.txt"
PARTITIONS = {"train": "0", "val": "1", "test": "2"}
DEFAULT_CROP = 148

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
            return DEFAULT_CROP / CELEBA_WIDTH if CELEBA_IDS in datasets_in(handle) else None
    except HDF5_ERRORS:
        return None


def celeba_split_rows(handle, path: Path, n: int) -> dict[str, tuple[int, int]] | None:
    """Rows [start, stop) of each CelebA split, for a file whose `ids` dataset holds one
    increasing CelebA file number per image; None for a file without one."""
    ids = datasets_in(handle).get(CELEBA_IDS)
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


def hdf5_splits(path: Path, n: int) -> dict[str, tuple[int, int]] | None:
    """The CelebA splits' rows of an HDF5 file (see `celeba_split_rows`), or None."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            return celeba_split_rows(handle, path, n)
    except HDF5_ERRORS as exc:
        raise unreadable(path, exc) from None


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
