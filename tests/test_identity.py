"""A data set is what its files are: IDX files are identified by their decompressed content's
md5, whatever their names or gzip wrappers. Small synthetic IDX files stand in for the official
ones, their digests put in the data sets' tables for the test."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import struct

import numpy as np
import pytest

from conftest import FASHION_MNIST_SYSTEM, SHARED_MNIST, needs_shared_mnist, run_cli
from test_cli import assert_one_sentence_error
from genlab.data import identity, mnist
from genlab.data.identity import UNREADABLE, KnownFile, identify
from genlab.data.mnist import FASHION_MNIST, MNIST, find_split, known_files

SPLITS = {"train": "train", "test": "t10k"}


def idx_images(seed: int, n: int = 12) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)
    return struct.pack(">IIII", 0x803, n, 28, 28) + pixels.tobytes()


def idx_labels(seed: int, n: int = 12) -> bytes:
    return struct.pack(">II", 0x801, n) + np.random.default_rng(seed).integers(
        0, 10, n, dtype=np.uint8).tobytes()


def write_set(folder, seed: int, gzipped: bool = True) -> dict[str, tuple[str, str]]:
    """The four files of a synthetic data set in `folder`, under the official names; the md5s of
    their payloads, split -> (images, labels)."""
    folder.mkdir(parents=True, exist_ok=True)
    payloads = {}
    for i, (split, prefix) in enumerate(SPLITS.items()):
        pair = (idx_images(seed + i), idx_labels(seed + i))
        for kind, data in zip(("images-idx3", "labels-idx1"), pair):
            name = f"{prefix}-{kind}-ubyte" + (".gz" if gzipped else "")
            (folder / name).write_bytes(gzip.compress(data) if gzipped else data)
        payloads[split] = tuple(hashlib.md5(data).hexdigest() for data in pair)
    return payloads


@pytest.fixture
def two_sets(tmp_path, monkeypatch):
    """A folder of synthetic "MNIST" files and one of synthetic "Fashion-MNIST" files, each
    made the official one of its data set for this test."""
    digits, clothes = tmp_path / "digits", tmp_path / "clothes"
    monkeypatch.setattr(mnist, "IDX_DATASETS", (
        dataclasses.replace(MNIST, payloads=write_set(digits, seed=0)),
        dataclasses.replace(FASHION_MNIST, payloads=write_set(clothes, seed=10))))
    return digits, clothes


def test_each_folder_is_found_as_the_data_set_its_files_are(two_sets):
    digits, clothes = two_sets
    for split in SPLITS:
        assert find_split(MNIST, split, str(digits)).files[0].parent == digits
        assert find_split(FASHION_MNIST, split, str(clothes)).files[0].parent == clothes
        assert find_split(FASHION_MNIST, split, str(digits)).files is None
        assert find_split(MNIST, split, str(clothes)).files is None
    [other] = find_split(FASHION_MNIST, "train", str(digits)).passed_over
    assert other.what == KnownFile("mnist", MNIST.title, "train", "images")


def test_asking_for_fashion_mnist_in_an_mnist_folder_stops_naming_mnist(two_sets):
    digits, _ = two_sets
    result = run_cli("train", "vae", "--dataset", "fashion-mnist", "--data-dir", digits,
                     "--steps", "1", "--fid-samples", "0", "--run-dir", digits.parent / "run")
    assert_one_sentence_error(result, "holds MNIST handwritten digits (train images), not "
                                      "Fashion-MNIST")
    assert "--dataset mnist" in result.stderr
    assert not (digits.parent / "run").exists()


def test_datasets_reports_a_folder_as_the_data_set_its_files_match(two_sets):
    digits, _ = two_sets
    result = run_cli("datasets", "--data-dir", digits)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    mnist_lines = lines[lines.index("mnist: MNIST handwritten digits") + 1:][:2]
    fashion_at = next(i for i, line in enumerate(lines) if line.startswith("fashion-mnist:"))
    assert all(line.endswith(str(digits)) for line in mnist_lines)
    for line in lines[fashion_at + 1:fashion_at + 3]:
        assert "not found" in line and "holds MNIST handwritten digits" in line


def test_unknown_idx_files_are_refused_unless_verification_is_off(two_sets, tmp_path):
    own = tmp_path / "own"
    write_set(own, seed=99)  # well-formed IDX files that are neither data set
    search = find_split(MNIST, "test", str(own))
    assert search.files is None and search.passed_over[0].what is None
    assert "--no-verify-files" in search.passed_over[0].refusal(MNIST, "test")
    assert find_split(MNIST, "test", str(own), verify=False).files[0].parent == own
    result = run_cli("train", "vae", "--data-dir", own, "--steps", "1", "--fid-samples", "0",
                     "--run-dir", tmp_path / "run")
    assert_one_sentence_error(result, "is not the official mnist train images file")


def test_a_file_is_identified_by_its_payload_whatever_its_gzip_wrapper(two_sets, tmp_path):
    digits, _ = two_sets
    raw = tmp_path / "raw"
    raw.mkdir()
    payload = gzip.decompress((digits / "t10k-images-idx3-ubyte.gz").read_bytes())
    (raw / "t10k-images-idx3-ubyte").write_bytes(payload)                 # decompressed
    (raw / "renamed.gz").write_bytes(gzip.compress(payload, compresslevel=1))  # other wrapper
    known = known_files()
    for path in (digits / "t10k-images-idx3-ubyte.gz", raw / "t10k-images-idx3-ubyte",
                 raw / "renamed.gz"):
        assert identify(path, known) == KnownFile("mnist", MNIST.title, "test", "images")


def test_a_damaged_file_is_left_to_the_reader_which_names_the_damage(two_sets):
    digits, _ = two_sets
    path = digits / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:40])  # a cut gzip stream
    assert identify(path, known_files()) == UNREADABLE
    assert find_split(MNIST, "test", str(digits)).files[0] == path  # the reader reports it
    result = run_cli("train", "vae", "--data-dir", digits, "--train-split", "test",
                     "--steps", "1", "--fid-samples", "0", "--run-dir", digits.parent / "run")
    assert_one_sentence_error(result, "corrupt or truncated")


def test_a_digest_is_computed_once_per_file_until_the_file_changes(two_sets, monkeypatch):
    digits, _ = two_sets
    path = digits / "train-images-idx3-ubyte.gz"
    calls = []
    real = identity.payload_md5
    monkeypatch.setattr(identity, "payload_md5", lambda p: calls.append(p) or real(p))
    first = identity.cached_payload_md5(path)
    assert identity.cached_payload_md5(path) == first and len(calls) == 1
    path.write_bytes(gzip.compress(idx_images(5)))           # another content ...
    os.utime(path, ns=(1, 1))                                 # ... and mtime
    assert identity.cached_payload_md5(path) != first and len(calls) == 2
    (identity.user_cache_dir() / identity.CACHE_NAME).write_text("{not json")  # damaged cache
    assert identity.cached_payload_md5(path) == real(path) and len(calls) == 3


@needs_shared_mnist
def test_the_shared_mnist_is_mnist_and_not_fashion_mnist():
    for split in SPLITS:
        assert find_split(MNIST, split, str(SHARED_MNIST)).files[0].parent == SHARED_MNIST
        assert find_split(FASHION_MNIST, split, str(SHARED_MNIST)).files is None
    result = run_cli("train", "vae", "--dataset", "fashion-mnist", "--data-dir", SHARED_MNIST,
                     "--steps", "1")
    assert_one_sentence_error(result, "holds MNIST handwritten digits")


@pytest.mark.skipif(not (FASHION_MNIST_SYSTEM / "t10k-images-idx3-ubyte.gz").is_file(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_debians_fashion_mnist_is_the_official_one():
    # Debian recompressed the files (their gzip md5s differ from the published ones); the
    # payloads are the official ones.
    for split in SPLITS:
        search = find_split(FASHION_MNIST, split, str(FASHION_MNIST_SYSTEM))
        assert search.files[0].parent == FASHION_MNIST_SYSTEM
