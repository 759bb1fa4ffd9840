"""Tests for genlab.data.idx: real IDX files written to tmp_path, raw and gzip."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from genlab.data.idx import read_idx, read_idx_images, read_idx_labels, read_idx_pair
from genlab.errors import DataError

MNIST_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"

_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}


def idx_bytes(arr: np.ndarray) -> bytes:
    """Encode arr as IDX: 2 zero bytes, type code, ndim, big-endian uint32 dims, big-endian payload."""
    code = _CODES[arr.dtype.type]
    header = struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write(path: Path, data: bytes, *, gz: bool = False) -> Path:
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def images(n: int = 5, h: int = 28, w: int = 28) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(n, h, w), dtype=np.uint8)


def labels(n: int = 5) -> np.ndarray:
    return (np.arange(n) % 10).astype(np.uint8)


def assert_data_error(path: Path, fn, *args, match: str | None = None, **kwargs) -> str:
    """Call fn, expect DataError naming path in a one-line message; return the message."""
    with pytest.raises(DataError) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert str(path) in msg
    assert "\n" not in msg
    if match is not None:
        assert match in msg, msg
    return msg


# --- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_images_and_labels_round_trip(tmp_path: Path, gz: bool) -> None:
    x, y = images(7), labels(7)
    xp = write(tmp_path / "imgs", idx_bytes(x), gz=gz)
    yp = write(tmp_path / "labs", idx_bytes(y), gz=gz)
    got_x = read_idx_images(xp, count=7)
    got_y = read_idx_labels(yp, count=7)
    assert got_x.dtype == np.uint8 and got_x.shape == (7, 28, 28)
    assert got_y.dtype == np.uint8 and got_y.shape == (7,)
    np.testing.assert_array_equal(got_x, x)
    np.testing.assert_array_equal(got_y, y)
    assert got_x.flags.writeable and got_y.flags.writeable
    got_x[0, 0, 0] = 1  # must not raise
    px, py = read_idx_pair(xp, yp)
    np.testing.assert_array_equal(px, x)
    np.testing.assert_array_equal(py, y)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_read_idx_all_types_native_order(tmp_path: Path, dtype) -> None:
    arr = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    got = read_idx(write(tmp_path / "a.idx", idx_bytes(arr)))
    assert got.dtype == np.dtype(dtype)
    assert got.dtype.isnative
    assert got.flags.writeable
    np.testing.assert_array_equal(got, arr)


def test_custom_shape_and_empty_set(tmp_path: Path) -> None:
    p = write(tmp_path / "small", idx_bytes(images(3, 8, 6)))
    assert read_idx_images(p, shape=(8, 6)).shape == (3, 8, 6)
    empty = write(tmp_path / "empty-set", idx_bytes(np.zeros((0, 28, 28), np.uint8)))
    assert read_idx_images(empty).shape == (0, 28, 28)


def test_gzip_detected_by_magic_not_name(tmp_path: Path) -> None:
    x = images(2)
    gz_without_suffix = write(tmp_path / "train-images-idx3-ubyte", idx_bytes(x), gz=True)
    raw_with_gz_suffix = write(tmp_path / "train-images-idx3-ubyte.gz", idx_bytes(x))
    np.testing.assert_array_equal(read_idx_images(gz_without_suffix), x)
    np.testing.assert_array_equal(read_idx_images(raw_with_gz_suffix), x)


def test_recompressed_gzip_reads_the_same(tmp_path: Path) -> None:
    payload = idx_bytes(images(3))
    a = tmp_path / "a.gz"
    b = tmp_path / "b.gz"
    a.write_bytes(gzip.compress(payload, compresslevel=9, mtime=0))
    b.write_bytes(gzip.compress(payload, compresslevel=1, mtime=12345))
    assert a.read_bytes() != b.read_bytes()
    np.testing.assert_array_equal(read_idx(a), read_idx(b))


# --- header and payload errors ------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_bad_zero_bytes(tmp_path: Path, gz: bool) -> None:
    data = bytearray(idx_bytes(labels()))
    data[1] = 7
    p = write(tmp_path / "labels", bytes(data), gz=gz)
    assert_data_error(p, read_idx, p, match="not an IDX file")


def test_unknown_type_code(tmp_path: Path) -> None:
    data = bytearray(idx_bytes(labels()))
    data[2] = 0x0A
    p = write(tmp_path / "labels", bytes(data))
    assert_data_error(p, read_idx, p, match="0x0A")


def test_zero_ndim(tmp_path: Path) -> None:
    p = write(tmp_path / "labels", b"\x00\x00\x08\x00")
    assert_data_error(p, read_idx, p, match="0 dimensions")


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_payload(tmp_path: Path, gz: bool) -> None:
    data = idx_bytes(np.zeros((10000, 28, 28), np.uint8))
    header_len = 16
    p = write(tmp_path / "t10k-images-idx3-ubyte.gz", data[: header_len + 1000], gz=gz)
    msg = assert_data_error(p, read_idx_images, p, match="truncated")
    assert "7840000" in msg and "1000" in msg


def test_truncated_header(tmp_path: Path) -> None:
    p = write(tmp_path / "imgs", idx_bytes(images(2))[:9])
    assert_data_error(p, read_idx, p, match="truncated")


def test_trailing_bytes(tmp_path: Path) -> None:
    p = write(tmp_path / "labels", idx_bytes(labels()) + b"\x00\x00\x00")
    assert_data_error(p, read_idx_labels, p, match="3 unexpected bytes")


def test_header_shorter_than_four_bytes(tmp_path: Path) -> None:
    p = write(tmp_path / "short", b"\x00\x00")
    assert_data_error(p, read_idx, p, match="too short")


def test_empty_file(tmp_path: Path) -> None:
    p = write(tmp_path / "empty", b"")
    assert_data_error(p, read_idx, p, match="empty")


def test_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "nope" / "train-images-idx3-ubyte.gz"
    assert_data_error(p, read_idx_images, p, match="does not exist")


def test_directory_instead_of_file(tmp_path: Path) -> None:
    assert_data_error(tmp_path, read_idx, tmp_path, match="folder")


# --- gzip errors --------------------------------------------------------------------------------


def test_corrupt_gzip_crc(tmp_path: Path) -> None:
    data = bytearray(gzip.compress(idx_bytes(labels())))
    data[-8] ^= 0xFF  # the CRC32 field of the gzip trailer
    p = write(tmp_path / "labels.gz", bytes(data))
    assert_data_error(p, read_idx_labels, p, match="corrupt or truncated")


def test_truncated_gzip(tmp_path: Path) -> None:
    data = gzip.compress(idx_bytes(images(20)))
    p = write(tmp_path / "imgs.gz", data[: len(data) // 2])
    assert_data_error(p, read_idx_images, p, match="corrupt or truncated")


def test_gzip_magic_then_garbage(tmp_path: Path) -> None:
    p = write(tmp_path / "imgs.gz", b"\x1f\x8b" + bytes(range(200)))
    assert_data_error(p, read_idx_images, p, match="gzip")


def test_garbled_deflate_stream(tmp_path: Path) -> None:
    data = bytearray(gzip.compress(idx_bytes(images(20)), mtime=0))
    for i in range(12, 40):  # inside the deflate data, after the 10-byte header
        data[i] ^= 0x5A
    p = write(tmp_path / "imgs.gz", bytes(data))
    assert_data_error(p, read_idx_images, p)


# --- semantic checks ----------------------------------------------------------------------------


def test_images_wrong_ndim(tmp_path: Path) -> None:
    p = write(tmp_path / "labels-as-images", idx_bytes(labels()))
    assert_data_error(p, read_idx_images, p, match="needs 3")


def test_images_wrong_type(tmp_path: Path) -> None:
    p = write(tmp_path / "float-images", idx_bytes(images(2).astype(np.float32)))
    assert_data_error(p, read_idx_images, p, match="unsigned bytes")


def test_images_wrong_shape(tmp_path: Path) -> None:
    p = write(tmp_path / "imgs", idx_bytes(images(2, 32, 32)))
    assert_data_error(p, read_idx_images, p, match="32x32")


def test_images_count_mismatch(tmp_path: Path) -> None:
    p = write(tmp_path / "imgs", idx_bytes(images(4)))
    assert_data_error(p, read_idx_images, p, count=5, match="4 images but 5")


def test_labels_wrong_ndim(tmp_path: Path) -> None:
    p = write(tmp_path / "images-as-labels", idx_bytes(images(2)))
    assert_data_error(p, read_idx_labels, p, match="needs 1")


def test_labels_count_mismatch(tmp_path: Path) -> None:
    p = write(tmp_path / "labs", idx_bytes(labels(6)))
    assert_data_error(p, read_idx_labels, p, count=5, match="6 labels but 5")


def test_label_out_of_range(tmp_path: Path) -> None:
    y = labels(8)
    y[3] = 10
    p = write(tmp_path / "labs", idx_bytes(y))
    assert_data_error(p, read_idx_labels, p, match="label 10 at index 3")
    assert read_idx_labels(p, num_classes=11)[3] == 10


def test_pair_count_mismatch(tmp_path: Path) -> None:
    xp = write(tmp_path / "imgs", idx_bytes(images(5)))
    yp = write(tmp_path / "labs", idx_bytes(labels(4)))
    msg = assert_data_error(xp, read_idx_pair, xp, yp)
    assert str(yp) in msg


def test_relative_path_reported_in_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "rel", b"")
    assert_data_error(tmp_path / "rel", read_idx, "rel")


# --- the real MNIST test set, when this machine has it ------------------------------------------


@pytest.mark.skipif(not MNIST_DIR.is_dir(), reason=f"{MNIST_DIR} is absent (shared MNIST data not on this machine)")
def test_real_mnist_t10k() -> None:
    x, y = read_idx_pair(
        MNIST_DIR / "t10k-images-idx3-ubyte.gz", MNIST_DIR / "t10k-labels-idx1-ubyte.gz", count=10000
    )
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8
    assert y.shape == (10000,) and y.dtype == np.uint8
    assert np.bincount(y, minlength=10).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
