"""Data sets by name. Each entry loads one split into an in-memory uint8 ImageSet."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from genlab.config import DATASET_NAMES, DataConfig
from genlab.data import digits
from genlab.data.memory import Batches, BatchStream, ImageSet, check_fits
from genlab.data.transforms import convert_channels
from genlab.data.mnist import FASHION_MNIST, MNIST, IDXDataset, find_split, load_idx_split, search_dirs
from genlab.errors import DataError

__all__ = ["DATASETS", "Batches", "BatchStream", "ImageSet", "SplitSummary", "batches", "load_split",
           "load_training_splits", "describe_split", "check_data_dir", "demo_dataset"]

HOMEWORK_SIZE = 32  # the homework's transforms.Resize(32), the IDX sets' and digits' default


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    title: str
    counts: dict[str, int]   # split -> number of images
    load: Callable[[DataConfig, str, Callable[[str], None] | None], ImageSet]
    locate: Callable[[DataConfig, str], str]  # where a split is found, or why it is not


def _idx_entry(spec: IDXDataset) -> DatasetEntry:
    def load(cfg: DataConfig, split: str, log=None) -> ImageSet:
        return load_idx_split(spec, split, cfg.data_dir, cfg.image_size or HOMEWORK_SIZE,
                              allow_download=cfg.download, log=log, verify=cfg.verify_files)

    def locate(cfg: DataConfig, split: str) -> str:
        found = find_split(spec, split, cfg.data_dir, verify=cfg.verify_files)
        if found.files:
            return str(found.files[0].parent)
        if found.passed_over:  # files of these names holding something else: named, not found
            return "not found (" + "; ".join(o.holds() for o in found.passed_over) + ")"
        return "missing (downloaded on first use; looked in " + ", ".join(
            str(d) for d in search_dirs(spec, cfg.data_dir)) + ")"

    return DatasetEntry(spec.name, spec.title, spec.counts, load, locate)


DATASETS: dict[str, DatasetEntry] = {
    "mnist": _idx_entry(MNIST),
    "fashion-mnist": _idx_entry(FASHION_MNIST),
    "digits": DatasetEntry(
        "digits", "scikit-learn's 8x8 handwritten digits (embedded, no download)", digits.COUNTS,
        lambda cfg, split, log=None: digits.load_digits_split(split,
                                                               cfg.image_size or HOMEWORK_SIZE),
        lambda cfg, split: "embedded in scikit-learn"),
}
if tuple(DATASETS) != DATASET_NAMES:  # --dataset's choices are DATASET_NAMES
    raise ImportError(f"genlab.data: DATASETS {tuple(DATASETS)} but DATASET_NAMES {DATASET_NAMES}")


def check_data_dir(cfg: DataConfig) -> None:
    if cfg.data_dir is not None and not Path(cfg.data_dir).expanduser().is_dir():
        raise DataError(f"--data-dir {cfg.data_dir} does not exist; create it (missing files are "
                        "downloaded into it) or point it at the folder holding the data files")


def load_split(cfg: DataConfig, split: str, log: Callable[[str], None] | None = None) -> ImageSet:
    """Load one split of the configured data set (or --data file/folder) into memory (CPU),
    with --channels applied."""
    if cfg.data_path is not None:
        from genlab.data.files import load_files_split  # h5py: only when asked for

        images = load_files_split(cfg.data_path, split, cfg.image_size, cfg.crop, cfg.dataset,
                                  log, memory_budget=cfg.memory_budget,
                                  h5_dataset=cfg.h5_dataset, channels=cfg.channels)
    else:
        entry = _entry(cfg, split)
        size = cfg.image_size or HOMEWORK_SIZE  # the named sets are grey: one channel
        check_fits(entry.counts[split], (max(1, cfg.channels or 1), size, size),
                   cfg.memory_budget, f"--image-size {size} on {cfg.dataset}/{split}",
                   "choose a smaller --image-size or a larger --memory-budget")
        images = entry.load(cfg, split, log)
    if cfg.channels is not None:
        if isinstance(images.images, torch.Tensor):
            images.images = convert_channels(images.images, cfg.channels)
        else:  # streamed from disk: converted as it is read
            images.images = images.images.with_channels(cfg.channels)
    return images


@dataclass(frozen=True)
class SplitSummary:
    """One split as `load_split` would load it, found without reading its images: how many, of
    which shape, from where."""

    count: int
    image_shape: tuple[int, int, int]
    split: str        # the split found: the one asked for, or "all" for a source without splits
    source: str

    def __len__(self) -> int:
        return self.count


def describe_split(cfg: DataConfig, split: str) -> SplitSummary:
    """What `load_split(cfg, split)` would load, reading only names, counts and file headers
    (and failing as it would on a missing split or file)."""
    if cfg.data_path is not None:
        from genlab.data.files import find_files_split

        found = find_files_split(cfg.data_path, split, cfg.image_size, cfg.h5_dataset)
        count, (c, h, w), split, source = len(found), found.image_shape, found.split, found.source
    else:
        entry = _entry(cfg, split)
        size = cfg.image_size or HOMEWORK_SIZE  # the named sets are grey: one channel
        count, (c, h, w), source = entry.counts[split], (1, size, size), entry.locate(cfg, split)
    return SplitSummary(count, (cfg.channels or c, h, w), split, source)


def _validates_on_training(cfg: DataConfig, found_split: str) -> bool:
    # A source without splits (a --data folder or file) is found as split "all" and serves as both.
    return cfg.val_split == cfg.train_split or found_split != cfg.train_split


def load_training_splits(cfg: DataConfig, log: Callable[[str], None] | None = None
                         ) -> tuple[ImageSet, ImageSet]:
    """The training and the validation split a run trains on: one set, both times, where the
    validation split is the training split or the source has no splits."""
    train = load_split(cfg, cfg.train_split, log)
    if _validates_on_training(cfg, train.split):
        return train, train
    return train, load_split(cfg, cfg.val_split, log)


def describe_training_splits(cfg: DataConfig) -> tuple[SplitSummary, SplitSummary]:
    """What `load_training_splits` would load, as `describe_split` finds it."""
    train = describe_split(cfg, cfg.train_split)
    if _validates_on_training(cfg, train.split):
        return train, train
    return train, describe_split(cfg, cfg.val_split)


def _entry(cfg: DataConfig, split: str) -> DatasetEntry:
    if cfg.dataset not in DATASETS:
        raise DataError(f"unknown data set {cfg.dataset!r} for --dataset; choose one of "
                        f"{', '.join(DATASETS)}")
    entry = DATASETS[cfg.dataset]
    if split not in entry.counts:
        raise DataError(f"{cfg.dataset} has no split {split!r}; choose one of "
                        f"{', '.join(entry.counts)} with --train-split/--val-split")
    check_data_dir(cfg)
    return entry


def batches(images, batch_size: int, seed: int, device, memory_budget_gib: float) -> Batches:
    """Seeded shuffled batches of a split's images, however they are stored: gathered by index
    from an in-memory tensor, or read from an HDF5 file over the memory budget in contiguous
    chunks, a background thread reading the next one ahead (genlab.data.stream)."""
    from genlab.data.memory import IndexedBatches
    from genlab.data.stream import ChunkedBatches, HDF5Images, chunk_images

    if isinstance(images, HDF5Images):
        return ChunkedBatches(images, batch_size, seed, chunk_images(images, memory_budget_gib),
                              device)
    return IndexedBatches(images, batch_size, seed, device)


def demo_dataset(download: bool, log: Callable[[str], None]) -> tuple[str, str | None]:
    """`genlab demo`'s data: MNIST where it is found or can be downloaded, else the digits
    embedded in scikit-learn; (data set, what to tell the user about the choice or None)."""
    from genlab.errors import DownloadError

    try:
        load_split(DataConfig(dataset="mnist", download=download), "train", log=log)
        return "mnist", None
    except DataError as exc:
        why = exc.reason if isinstance(exc, DownloadError) else "downloads are off"
        return "digits", (f"MNIST is neither here nor downloadable ({why}); the demo runs on the "
                          "1,797 real 8x8 handwritten digits embedded in scikit-learn, resized to "
                          "32x32 (`genlab datasets` shows where MNIST is looked for)")
