"""What an IDX file is, by its content: the md5 of its decompressed payload against the
published digests of the official MNIST and Fashion-MNIST files.

The two data sets use the same file names (`train-images-idx3-ubyte.gz`, ...), so a folder's
names say nothing about which one it holds. The gzip wrapper says nothing either: the same
payload recompressed (Debian's package, a mirror) has another md5. So what is compared is the
payload's md5, against the digests of the official files' payloads (computed from the files whose
gzip md5s the publishers and torchvision list).

A digest costs one pass over the decompressed file (about 0.3 s for the 47 MB training
images); it is cached per file under the user cache, keyed by the file's absolute path, size and
modification time, so it is paid once per file.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

from genlab.fsutil import atomic_write_json, user_cache_dir

CACHE_NAME = "idx-digests.json"
MAX_CACHE_ENTRIES = 1000   # a bound on the cache file, whatever a user points genlab at
_CHUNK = 1 << 20


@dataclass(frozen=True)
class KnownFile:
    dataset: str  # the data set's name, as --dataset spells it
    title: str    # what it is, for messages ("MNIST handwritten digits")
    split: str    # train or test
    kind: str     # images or labels

    def describe(self) -> str:
        return f"{self.title} ({self.split} {self.kind})"


UNREADABLE = "unreadable"  # the content could not be decompressed: the reader says why


def payload_md5(path: Path) -> str:
    """The md5 of the file's payload (decompressed when it is gzip), or UNREADABLE."""
    digest = hashlib.md5()
    try:
        with open(path, "rb") as raw:
            gzipped = raw.read(2) == b"\x1f\x8b"
        with (gzip.open(path, "rb") if gzipped else open(path, "rb")) as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except (OSError, EOFError, zlib.error):
        return UNREADABLE
    return digest.hexdigest()


def _cache_path() -> Path:
    return user_cache_dir() / CACHE_NAME


def _read_cache() -> dict:
    try:
        cache = json.loads(_cache_path().read_text())
    except (OSError, ValueError):
        return {}  # none yet, or damaged: recomputed entries replace it
    return cache if isinstance(cache, dict) else {}


def cached_payload_md5(path: Path) -> str:
    """payload_md5(path), from the cache when the file's size and mtime are unchanged."""
    path = Path(path).absolute()
    try:
        info = path.stat()
    except OSError:
        return UNREADABLE
    stamp = [info.st_size, info.st_mtime_ns]
    cache = _read_cache()
    entry = cache.get(str(path))
    if isinstance(entry, dict) and entry.get("stamp") == stamp and isinstance(entry.get("md5"), str):
        return entry["md5"]
    md5 = payload_md5(path)
    if md5 != UNREADABLE:
        cache[str(path)] = {"stamp": stamp, "md5": md5}
        while len(cache) > MAX_CACHE_ENTRIES:
            cache.pop(next(iter(cache)))  # the oldest entry first
        try:
            atomic_write_json(_cache_path(), cache)
        except OSError:
            pass  # a read-only cache folder costs a recomputation next time, nothing else
    return md5


def identify(path: Path, known: dict[str, KnownFile]) -> KnownFile | str | None:
    """The official file `path` is (by its payload's md5 in `known`), UNREADABLE, or None for a
    readable file that is none of them."""
    md5 = cached_payload_md5(path)
    if md5 == UNREADABLE:
        return UNREADABLE
    return known.get(md5)
