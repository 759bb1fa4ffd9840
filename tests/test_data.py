"""The data layer: MNIST/Fashion-MNIST loading and search order, downloads into the data set
folder, the embedded digits, resizing, and the seeded batch stream."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.server
import shutil
import threading
from functools import partial

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import FASHION_MNIST_SYSTEM, SHARED_MNIST, needs_shared_mnist
from genlab.config import DataConfig
from genlab.data import DATASETS, BatchStream, load_split
from genlab.data.download import RemoteFile
from genlab.data.idx import read_idx_pair
from genlab.data.mnist import MNIST, fetch_split, find_split, load_idx_split
from genlab.data.transforms import resize_uint8, to_model_range, to_unit_range
from genlab.errors import DataError, DownloadError


# --- MNIST ------------------------------------------------------------------------------------

@needs_shared_mnist
def test_mnist_test_split_loads_as_32x32_uint8_with_official_counts():
    images = load_split(DataConfig(dataset="mnist", data_dir=str(SHARED_MNIST)), "test")
    assert images.images.shape == (10000, 1, 32, 32)
    assert images.images.dtype == torch.uint8
    assert np.bincount(images.labels.numpy()).tolist() == [
        980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert images.images.max() == 255 and images.images.min() == 0


@needs_shared_mnist
def test_resize_matches_pil_bilinear_as_the_homework_did():
    raw, _ = read_idx_pair(SHARED_MNIST / "t10k-images-idx3-ubyte.gz",
                           SHARED_MNIST / "t10k-labels-idx1-ubyte.gz")
    raw = raw[:200]
    ours = resize_uint8(torch.from_numpy(raw).unsqueeze(1), 32)[:, 0].numpy().astype(int)
    pil = np.stack([np.asarray(Image.fromarray(img).resize((32, 32), Image.BILINEAR))
                    for img in raw]).astype(int)
    assert np.abs(ours - pil).max() <= 1
    assert (ours == pil).mean() > 0.95


def test_value_ranges_for_vae_and_gan():
    pixels = torch.tensor([0, 128, 255], dtype=torch.uint8).view(1, 1, 1, 3)
    assert to_model_range(pixels, (0.0, 1.0)).flatten().tolist() == pytest.approx([0, 128 / 255, 1])
    gan = to_model_range(pixels, (-1.0, 1.0))
    assert gan.flatten().tolist() == pytest.approx([-1, 2 * 128 / 255 - 1, 1], abs=1e-6)
    assert torch.allclose(to_unit_range(gan, (-1.0, 1.0)), to_model_range(pixels, (0.0, 1.0)))


def _touch_split(folder, split="test"):
    folder.mkdir(parents=True, exist_ok=True)
    for remote in MNIST.files[split]:
        (folder / remote.name).write_bytes(b"")


def test_search_order_data_dir_then_genlab_data_then_cache(tmp_path, monkeypatch):
    # Empty files of the right names: where they are looked for, not what they hold (that is
    # tests/test_identity.py), hence verify=False.
    def where(data_dir):
        return find_split(MNIST, "test", data_dir, verify=False).files

    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    _touch_split(cache / "genlab" / "mnist")
    assert where(None)[0].parent == cache / "genlab" / "mnist"

    monkeypatch.setenv("GENLAB_DATA", str(tmp_path / "env"))
    _touch_split(tmp_path / "env" / "mnist")
    assert where(None)[0].parent == tmp_path / "env" / "mnist"

    _touch_split(tmp_path / "given")
    assert where(str(tmp_path / "given"))[0].parent == tmp_path / "given"
    # --data-dir is the only place looked at when given.
    (tmp_path / "empty").mkdir()
    assert where(str(tmp_path / "empty")) is None
    # Verified, an empty file is read for what is wrong with it.
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz is empty"):
        find_split(MNIST, "test", None)


def test_missing_data_dir_is_one_sentence(tmp_path):
    with pytest.raises(DataError, match="--data-dir .*does not exist"):
        load_split(DataConfig(data_dir=str(tmp_path / "nope")), "test")


def test_offline_without_download_says_where_to_put_the_files(tmp_path):
    with pytest.raises(DataError) as err:
        load_split(DataConfig(data_dir=str(tmp_path), download=False), "train")
    message = str(err.value)
    assert "train-images-idx3-ubyte.gz" in message and str(tmp_path) in message
    assert "\n" not in message


@needs_shared_mnist
def test_corrupt_local_file_names_the_file(tmp_path):
    shutil.copy(SHARED_MNIST / "t10k-labels-idx1-ubyte.gz", tmp_path)
    data = gzip.decompress((SHARED_MNIST / "t10k-images-idx3-ubyte.gz").read_bytes())
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(data[:-100])  # truncated, raw
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.*truncated"):
        load_split(DataConfig(data_dir=str(tmp_path)), "test")


@pytest.fixture
def mnist_server(tmp_path):
    """A local HTTP server serving a copy of the shared MNIST test files."""
    served = tmp_path / "served"
    served.mkdir()
    for remote in MNIST.files["test"]:
        shutil.copy(SHARED_MNIST / remote.name, served / remote.name)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", served
    server.shutdown()
    server.server_close()


@needs_shared_mnist
def test_missing_split_is_downloaded_verified_and_loaded(tmp_path, mnist_server):
    url, served = mnist_server
    # The served files are re-compressed, so give the spec their real md5s.
    spec = dataclasses.replace(MNIST, mirrors=(url,), files={"test": tuple(
        RemoteFile(r.name, hashlib.md5((served / r.name).read_bytes()).hexdigest())
        for r in MNIST.files["test"])})
    target = tmp_path / "data"
    target.mkdir()
    images = load_idx_split(spec, "test", str(target), 32)
    assert len(images) == 10000
    assert sorted(p.name for p in target.iterdir()) == sorted(r.name for r in spec.files["test"])


@needs_shared_mnist
def test_download_with_wrong_checksum_leaves_nothing_and_says_what_to_do(tmp_path, mnist_server):
    url, _ = mnist_server
    # The official md5s: the re-compressed copies served here do not match them.
    spec = dataclasses.replace(MNIST, mirrors=(url,))
    target = tmp_path / "data"
    target.mkdir()
    with pytest.raises(DownloadError) as err:
        fetch_split(spec, "test", str(target))
    assert "checksum" in str(err.value) and str(target) in str(err.value)
    assert list(target.iterdir()) == []


# --- Fashion-MNIST and the embedded digits ----------------------------------------------------

@pytest.mark.skipif(not (FASHION_MNIST_SYSTEM / "t10k-images-idx3-ubyte.gz").is_file(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_is_found_in_the_debian_folder():
    images = load_split(DataConfig(dataset="fashion-mnist"), "test")
    assert images.images.shape == (10000, 1, 32, 32)
    assert images.source == str(FASHION_MNIST_SYSTEM)
    assert np.bincount(images.labels.numpy()).tolist() == [1000] * 10


def test_embedded_digits_are_real_and_split():
    train = load_split(DataConfig(dataset="digits"), "train")
    test = load_split(DataConfig(dataset="digits"), "test")
    assert train.images.shape == (1500, 1, 32, 32) and test.images.shape == (297, 1, 32, 32)
    assert set(train.labels.tolist()) == set(range(10))
    assert train.images.max() == 255 and train.images.float().mean() > 20


def test_unknown_split_is_refused():
    with pytest.raises(DataError, match="no split 'validation'"):
        load_split(DataConfig(dataset="digits"), "validation")
    assert set(DATASETS) == {"mnist", "fashion-mnist", "digits"}


# --- batch stream -----------------------------------------------------------------------------

def test_batch_stream_visits_every_item_once_per_epoch_with_full_batches():
    stream = BatchStream(size=10, batch_size=4, seed=3)
    batches = [stream.next() for _ in range(5)]  # 20 indices = 2 epochs
    assert all(len(b) == 4 for b in batches)
    flat = torch.cat(batches)
    assert sorted(flat[:10].tolist()) == list(range(10))
    assert sorted(flat[10:].tolist()) == list(range(10))
    assert flat[:10].tolist() != flat[10:].tolist()  # each epoch reshuffles


def test_batch_stream_is_seeded_and_resumes_exactly():
    a = BatchStream(size=100, batch_size=7, seed=5)
    first = [a.next() for _ in range(20)]
    state = a.state_dict()
    rest = [a.next() for _ in range(30)]

    b = BatchStream(size=100, batch_size=7, seed=5)
    assert all(torch.equal(x, y) for x, y in zip(first, [b.next() for _ in range(20)]))
    resumed = BatchStream(size=100, batch_size=7, seed=5)
    resumed.load_state_dict(state)
    assert all(torch.equal(x, y) for x, y in zip(rest, [resumed.next() for _ in range(30)]))
    other = BatchStream(size=100, batch_size=7, seed=6)
    assert not torch.equal(first[0], other.next())
