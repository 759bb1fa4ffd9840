"""MNIST and Fashion-MNIST from the standard IDX files: where they are found, how they are
downloaded, and how they are loaded into one uint8 tensor."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from genlab.data.download import RemoteFile, download
from genlab.data.identity import UNREADABLE, KnownFile, identify
from genlab.data.idx import read_idx_images, read_idx_labels, read_idx_pair
from genlab.data.memory import ImageSet
from genlab.data.transforms import resize_uint8
from genlab.errors import DataError, DownloadError
from genlab.fsutil import user_cache_dir


@dataclass(frozen=True)
class IDXDataset:
    """A data set published as IDX files: one images file and one labels file per split."""

    name: str
    title: str
    files: dict[str, tuple[RemoteFile, RemoteFile]]  # split -> (images, labels)
    counts: dict[str, int]                           # split -> number of items
    mirrors: tuple[str, ...]
    payloads: dict[str, tuple[str, str]]             # split -> md5 of the decompressed files
    system_dirs: tuple[Path, ...] = field(default_factory=tuple)  # searched last, e.g. Debian's


def _remote_pairs(checksums: dict[str, str]) -> dict[str, tuple[RemoteFile, RemoteFile]]:
    prefix = {"train": "train", "test": "t10k"}
    return {split: (RemoteFile(f"{p}-images-idx3-ubyte.gz", checksums[f"{p}-images"]),
                    RemoteFile(f"{p}-labels-idx1-ubyte.gz", checksums[f"{p}-labels"]))
            for split, p in prefix.items()}


# md5 of the official gzip files (as Fashion-MNIST's README and torchvision's MNIST classes list
# them), and of their decompressed payloads, computed from those files: the payload identifies a
# file whatever its gzip wrapper (genlab.data.identity).
MNIST = IDXDataset(
    name="mnist",
    title="MNIST handwritten digits",
    files=_remote_pairs({
        "train-images": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels": "ec29112dd5afa0611ce80d1b7f02629c",
    }),
    counts={"train": 60000, "test": 10000},
    mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/",
             "https://storage.googleapis.com/cvdf-datasets/mnist/",
             "http://yann.lecun.com/exdb/mnist/"),
    payloads={"train": ("6bbc9ace898e44ae57da46a324031adb", "a25bea736e30d166cdddb491f175f624"),
              "test": ("2646ac647ad5339dbf082846283269ea", "27ae3e4e09519cfbb04c329615203637")},
)

FASHION_MNIST = IDXDataset(
    name="fashion-mnist",
    title="Fashion-MNIST clothing images",
    files=_remote_pairs({
        "train-images": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels": "bb300cfdad3c16e7a12a480ee83cd310",
    }),
    counts={"train": 60000, "test": 10000},
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
             "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"),
    payloads={"train": ("f4a8712d7a061bf5bd6d2ca38dc4d50a", "9018921c3c673c538a1fc5bad174d6f9"),
              "test": ("8181f5470baa50b63fa0f6fddb340f0a", "15d484375f8d13e6eb1aabb0c3f46965")},
    system_dirs=(Path("/usr/share/datasets/fashion-mnist"),),  # Debian's dataset-fashion-mnist
)


def search_dirs(spec: IDXDataset, data_dir: str | None) -> list[Path]:
    """Folders searched for the files, in order. --data-dir, when given, is the only place
    looked at (the folder itself or its `<dataset>/` subfolder); otherwise $GENLAB_DATA, the user
    cache and the system's data folders."""
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        return [root, root / spec.name]
    dirs = []
    if os.environ.get("GENLAB_DATA"):
        root = Path(os.environ["GENLAB_DATA"]).expanduser()
        dirs += [root / spec.name, root]
    dirs.append(user_cache_dir() / spec.name)
    dirs += list(spec.system_dirs)
    return dirs


def download_dir(spec: IDXDataset, data_dir: str | None) -> Path:
    """Where missing files are downloaded to: --data-dir, else $GENLAB_DATA/<name>, else cache."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    if os.environ.get("GENLAB_DATA"):
        return Path(os.environ["GENLAB_DATA"]).expanduser() / spec.name
    return user_cache_dir() / spec.name


def _existing(folder: Path, remote: RemoteFile) -> Path | None:
    # Accept the gzip as published or the decompressed file (same name without .gz).
    for name in (remote.name, remote.name.removesuffix(".gz")):
        if (folder / name).is_file():
            return folder / name
    return None


IDX_DATASETS: tuple[IDXDataset, ...] = (MNIST, FASHION_MNIST)


def known_files() -> dict[str, KnownFile]:
    """md5 of a decompressed official file -> what it is, over every IDX data set."""
    return {md5: KnownFile(spec.name, spec.title, split, kind)
            for spec in IDX_DATASETS
            for split, pair in spec.payloads.items()
            for kind, md5 in zip(("images", "labels"), pair)}


def _published() -> str:
    return " or ".join(spec.name for spec in IDX_DATASETS)


@dataclass(frozen=True)
class PassedOver:
    """A file of the split's name whose content is another data set's (`what`) or none known."""

    path: Path
    kind: str                 # images or labels
    what: KnownFile | None

    def holds(self) -> str:
        return (f"{self.path} holds {self.what.describe()}" if self.what is not None
                else f"{self.path} holds no published {_published()} file")

    def refusal(self, spec: IDXDataset, split: str) -> str:
        if self.what is not None:
            return (f"{self.holds()}, not {spec.title}; pass --dataset {self.what.dataset}, or "
                    f"point --data-dir at a folder holding {spec.name}'s files")
        return (f"{self.path} is not the official {spec.name} {split} {self.kind} file (its "
                f"content matches no published {_published()} file); to train on your own IDX "
                "files pass --no-verify-files")


@dataclass(frozen=True)
class SplitSearch:
    """Where a split's files are, and the folders passed over on the way: they held files of
    the split's names whose content is another data set's, or none published."""

    files: tuple[Path, Path] | None
    passed_over: tuple[PassedOver, ...] = ()


def _verify(spec: IDXDataset, split: str, files: tuple[Path, Path]) -> PassedOver | None:
    """None when both files are this split's official ones (or unreadable, which the reader
    then reports exactly), else what the first other one holds. A file of no known content is
    read first: a damaged one (truncated, a bad header) stops with what is wrong with it."""
    known = known_files()
    for kind, path in zip(("images", "labels"), files):
        what = identify(path, known)
        if what != UNREADABLE and what != KnownFile(spec.name, spec.title, split, kind):
            if what is None:
                (read_idx_images if kind == "images" else read_idx_labels)(path)
            return PassedOver(path, kind, what)
    return None


def find_split(spec: IDXDataset, split: str, data_dir: str | None, *,
               verify: bool = True) -> SplitSearch:
    """The (images, labels) files of `split` in the first folder that holds both (and, with
    `verify`, holds this data set's official files by their content), with what was passed over."""
    images_remote, labels_remote = spec.files[split]
    passed_over = []
    for folder in search_dirs(spec, data_dir):
        images, labels = _existing(folder, images_remote), _existing(folder, labels_remote)
        if images and labels:
            other = _verify(spec, split, (images, labels)) if verify else None
            if other is None:
                return SplitSearch((images, labels), tuple(passed_over))
            passed_over.append(other)
    return SplitSearch(None, tuple(passed_over))


def fetch_split(spec: IDXDataset, split: str, data_dir: str | None, *,
                allow_download: bool = True, log: Callable[[str], None] | None = None,
                mirrors: tuple[str, ...] | None = None, verify: bool = True) -> tuple[Path, Path]:
    """Find the split's files, downloading what is missing; a clear error when neither works,
    and a refusal when the only files of these names hold something else."""
    found = find_split(spec, split, data_dir, verify=verify)
    if found.files:
        return found.files
    if found.passed_over:
        raise DataError(found.passed_over[0].refusal(spec, split))
    target = download_dir(spec, data_dir)
    names = " and ".join(r.name for r in spec.files[split])
    looked = ", ".join(str(d) for d in search_dirs(spec, data_dir))
    if not allow_download:
        raise DataError(f"{spec.name} {split} split not found (looked in {looked}) and downloads "
                        f"are off; put {names} in {target} or pass --data-dir")
    paths = []
    for remote in spec.files[split]:
        existing = _existing(target, remote)
        if existing:
            paths.append(existing)
            continue
        try:
            paths.append(download(remote, mirrors or spec.mirrors, target, log=log))
        except DownloadError as exc:
            raise DownloadError(f"{spec.name} {split} split not found (looked in {looked}) and "
                                f"the download failed ({exc.reason}); without network, put "
                                f"{names} in {target} or pass --data-dir (README: 'Data "
                                "offline')", reason=exc.reason) from None
    return paths[0], paths[1]


def load_idx_split(spec: IDXDataset, split: str, data_dir: str | None, image_size: int, *,
                   allow_download: bool = True, log: Callable[[str], None] | None = None,
                   verify: bool = True) -> ImageSet:
    images_path, labels_path = fetch_split(spec, split, data_dir, allow_download=allow_download,
                                           log=log, verify=verify)
    images, labels = read_idx_pair(images_path, labels_path, count=spec.counts[split])
    pixels = torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1)  # (N, 1, 28, 28)
    return ImageSet(images=resize_uint8(pixels, image_size),
                    labels=torch.from_numpy(labels.astype(np.int64)),
                    dataset=spec.name, split=split, source=str(images_path.parent))
