"""Read IDX files (the MNIST / Fashion-MNIST format) into numpy arrays, with strict checks.

Every problem with a file (missing, empty, corrupt gzip, bad header, truncated or oversized
payload, wrong shape, out-of-range label) raises :class:`~genlab.errors.DataError` with a
one-sentence message that names the file and says what to do; no raw ``struct.error``,
``OSError``, ``EOFError`` or ``zlib.error`` escapes.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from genlab.errors import DataError

__all__ = ["read_idx", "read_idx_images", "read_idx_labels", "read_idx_pair"]

PathLike = str | os.PathLike

_GZIP_MAGIC = b"\x1f\x8b"

# IDX type code -> (on-disk dtype, human name). Multi-byte types are big-endian on disk.
_TYPES: dict[int, tuple[np.dtype, str]] = {
    0x08: (np.dtype(np.uint8), "unsigned bytes"),
    0x09: (np.dtype(np.int8), "signed bytes"),
    0x0B: (np.dtype(">i2"), "16-bit integers"),
    0x0C: (np.dtype(">i4"), "32-bit integers"),
    0x0D: (np.dtype(">f4"), "32-bit floats"),
    0x0E: (np.dtype(">f8"), "64-bit floats"),
}
_UBYTE = 0x08

_REDOWNLOAD = "download it again"


def _name(path: PathLike) -> str:
    """The full path used in messages, so the user knows exactly which file is meant."""
    return os.path.abspath(os.fspath(path))


def _one_line(text: object) -> str:
    """Collapse whitespace so an OS/zlib message cannot break the one-sentence rule."""
    return " ".join(str(text).split()).rstrip(".")


def _read_bytes(path: PathLike) -> bytes:
    """Return the file's contents, gunzipped when it starts with the gzip magic bytes."""
    name = _name(path)
    p = Path(path)
    if not p.exists():
        raise DataError(f"{name} does not exist; download it or check the path.")
    if p.is_dir():
        raise DataError(f"{name} is a folder, not an IDX file; pass the path of the file itself.")
    try:
        with open(p, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DataError(f"{name} could not be read ({_one_line(e.strerror or e)}); check its permissions.") from e
    if not raw:
        raise DataError(f"{name} is empty; {_REDOWNLOAD}.")
    # Detect gzip by content, not by name: files get renamed, and servers sometimes gunzip.
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    # BadGzipFile (bad CRC / length / header, an OSError), EOFError (stream cut short) and
    # zlib.error (garbled deflate data) all mean the same thing to the user: a bad download.
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(
            f"{name} starts like a gzip file but is corrupt or truncated ({_one_line(e)}); {_REDOWNLOAD}."
        ) from e


def _parse(path: PathLike) -> tuple[int, np.ndarray]:
    """Parse an IDX file and return its type code and a writable native-endian array."""
    name = _name(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataError(
            f"{name} is too short to be an IDX file ({len(data)} bytes, the header alone needs at least 4); "
            f"{_REDOWNLOAD}."
        )
    if data[0] != 0 or data[1] != 0:
        raise DataError(
            f"{name} is not an IDX file (its first two bytes are {data[:2].hex()} instead of 0000); "
            "check that you passed the right file."
        )
    code, ndim = data[2], data[3]
    if code not in _TYPES:
        known = ", ".join(f"0x{c:02X}" for c in _TYPES)
        raise DataError(
            f"{name} has the unknown IDX type code 0x{code:02X} (known: {known}); "
            "the file is corrupt or not an IDX file."
        )
    if ndim < 1:
        raise DataError(f"{name} declares 0 dimensions in its IDX header; the file is corrupt, {_REDOWNLOAD}.")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DataError(
            f"{name} is truncated inside its header ({len(data)} bytes, but {ndim} dimensions need "
            f"{header_len}); {_REDOWNLOAD}."
        )
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = _TYPES[code][0]
    # Python ints: a corrupt header can promise more than 2**63 bytes without overflowing.
    expected = dtype.itemsize
    for d in dims:
        expected *= d
    found = len(data) - header_len
    if found < expected:
        raise DataError(
            f"{name} is truncated: its header promises {expected} bytes of data but only {found} are there; "
            f"{_REDOWNLOAD}."
        )
    if found > expected:
        raise DataError(
            f"{name} has {found - expected} unexpected bytes after the {expected} bytes its header promises; "
            f"the file is corrupt, {_REDOWNLOAD}."
        )
    count = expected // dtype.itemsize
    view = np.frombuffer(data, dtype=dtype, count=count, offset=header_len).reshape(dims)
    # astype copies: the result owns writable memory in native byte order.
    return code, view.astype(dtype.newbyteorder("="))


def read_idx(path: PathLike) -> np.ndarray:
    """Read any IDX file (raw or gzip) into a writable, native-endian array of its declared shape."""
    return _parse(path)[1]


def _check_count(name: str, n: int, count: int | None, what: str) -> None:
    if count is not None and n != count:
        raise DataError(
            f"{name} holds {n} {what} but {count} were expected; check that it is the right file or {_REDOWNLOAD}."
        )


def _check_ubyte(name: str, code: int, what: str) -> None:
    if code != _UBYTE:
        raise DataError(
            f"{name} holds {_TYPES[code][1]} (IDX type 0x{code:02X}), but {what} must be unsigned bytes (0x08); "
            "check that you passed the right file."
        )


def read_idx_images(
    path: PathLike, *, count: int | None = None, shape: tuple[int, int] = (28, 28)
) -> np.ndarray:
    """Read an IDX image file as a uint8 array of shape (N, H, W), checking shape and count."""
    name = _name(path)
    code, arr = _parse(path)
    _check_ubyte(name, code, "an image file")
    if arr.ndim != 3:
        raise DataError(
            f"{name} has {arr.ndim} dimension(s) {arr.shape}, but an image file needs 3 (count, height, width); "
            "check that you passed the images file, not the labels file."
        )
    h, w = (int(s) for s in shape)
    if arr.shape[1:] != (h, w):
        raise DataError(
            f"{name} holds {arr.shape[1]}x{arr.shape[2]} images but {h}x{w} were expected; "
            "check that it is the right dataset."
        )
    _check_count(name, arr.shape[0], count, "images")
    return arr


def read_idx_labels(path: PathLike, *, count: int | None = None, num_classes: int = 10) -> np.ndarray:
    """Read an IDX label file as a uint8 array of shape (N,), checking every label is < num_classes."""
    name = _name(path)
    code, arr = _parse(path)
    _check_ubyte(name, code, "a label file")
    if arr.ndim != 1:
        raise DataError(
            f"{name} has {arr.ndim} dimensions {arr.shape}, but a label file needs 1; "
            "check that you passed the labels file, not the images file."
        )
    _check_count(name, arr.shape[0], count, "labels")
    bad = np.flatnonzero(arr >= num_classes)
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"{name} has the label {int(arr[i])} at index {i} ({bad.size} bad in all), but labels must be below "
            f"{num_classes}; the file is corrupt or not a label file."
        )
    return arr


def read_idx_pair(
    images_path: PathLike, labels_path: PathLike, *, count: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Read matching image and label files, checking they hold the same number of items."""
    images = read_idx_images(images_path, count=count)
    labels = read_idx_labels(labels_path, count=count)
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{_name(images_path)} holds {images.shape[0]} images but {_name(labels_path)} holds "
            f"{labels.shape[0]} labels; use the images and labels files of the same split."
        )
    return images, labels
