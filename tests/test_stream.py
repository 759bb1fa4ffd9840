"""HDF5 files over --memory-budget: read on demand, trained on in chunks read ahead by a
background thread, with a data order that resumes exactly."""

from __future__ import annotations

import threading

import h5py
import numpy as np
import pytest
import torch

from conftest import run_cli
from genlab.config import DataConfig
from genlab.data import load_split
from genlab.data.files import load_files_split
from genlab.data.hdf5 import read_hdf5
from genlab.data.stream import GIB, ChunkedBatches, HDF5Images, chunk_images
from genlab.errors import DataError
from genlab.checkpoint import latest_checkpoint


def numbered_h5(path, n: int = 50, layout: str = "nchw", size: int = 8):
    """n images whose first pixel is their index (and the rest varied), stored in `layout`."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 3, size, size), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(n)
    with h5py.File(path, "w") as f:
        f.create_dataset("faces", data=images if layout == "nchw" else images.transpose(0, 2, 3, 1))
    return path, torch.from_numpy(images)


def ids(batch: torch.Tensor) -> list[int]:
    return batch[:, 0, 0, 0].tolist()


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_an_hdf5_file_over_the_budget_stays_on_disk_and_reads_like_the_tensor(tmp_path, layout):
    path, images = numbered_h5(tmp_path / "x.h5", layout=layout)
    over = load_files_split(path, "train", None, None, "x", memory_budget=1e-6)
    under = load_files_split(path, "train", None, None, "x", memory_budget=1.0)
    assert isinstance(over.images, HDF5Images) and isinstance(under.images, torch.Tensor)
    assert "streamed from disk" in over.source
    assert over.image_shape == under.image_shape == (3, 8, 8) and len(over) == 50
    assert torch.equal(over.images[10:20], images[10:20])
    picked = torch.tensor([7, 3, 7, 49, 0])
    assert torch.equal(over.images[picked], images[picked])  # any order, repeats allowed
    # --image-size and --channels apply to what is read, as to the in-memory tensor.
    resized = load_files_split(path, "train", 4, None, "x", memory_budget=1e-6).images
    assert torch.equal(resized[0:50], load_files_split(path, "train", 4, None, "x").images)
    from genlab.data.transforms import convert_channels
    assert torch.equal(resized.with_channels(1)[5:9],
                       convert_channels(load_files_split(path, "train", 4, None, "x").images[5:9], 1))


def test_the_budget_counts_a_grey_file_at_the_channels_it_is_trained_with(tmp_path):
    path = tmp_path / "grey.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=np.zeros((50, 1, 8, 8), np.uint8))  # 3,200 bytes
    budget = 5000 / GIB  # holds them grey (3,200 bytes), not as RGB (9,600)
    # through load_split, as a run loads it: --channels must reach the budget check
    grey = load_split(DataConfig(data_path=str(path), memory_budget=budget), "train")
    rgb = load_split(DataConfig(data_path=str(path), memory_budget=budget, channels=3), "train")
    assert isinstance(grey.images, torch.Tensor)
    assert isinstance(rgb.images, HDF5Images) and rgb.images.shape[1:] == (3, 8, 8)


def test_chunked_batches_visit_every_image_once_per_epoch_in_a_new_order(tmp_path):
    path, _ = numbered_h5(tmp_path / "x.h5")
    on_disk = load_files_split(path, "train", None, None, "x", memory_budget=1e-6).images
    batches = ChunkedBatches(on_disk, batch_size=7, seed=3, chunk=8)  # 7 chunks, the last of 2
    seen = [i for _ in range(50) for i in ids(batches.next())]  # 350 images = 7 epochs
    epochs = [seen[e * 50:(e + 1) * 50] for e in range(7)]
    assert all(sorted(epoch) == list(range(50)) for epoch in epochs)
    assert len({tuple(epoch) for epoch in epochs}) == 7
    # Each epoch is the 7 contiguous chunks one after another, each shuffled inside: the
    # sequence of chunk numbers i // 8 changes exactly 6 times.
    for epoch in epochs:
        blocks = [i // 8 for i in epoch]
        assert sum(a != b for a, b in zip(blocks, blocks[1:])) == 6
        assert epoch != sorted(epoch)
    batches.close()


def test_chunked_batches_resume_exactly_and_read_ahead_in_another_thread(tmp_path, monkeypatch):
    path, _ = numbered_h5(tmp_path / "x.h5")
    on_disk = load_files_split(path, "train", None, None, "x", memory_budget=1e-6).images
    readers = set()
    original = HDF5Images._read

    def recording_read(self, selection):
        readers.add(threading.current_thread().name)
        return original(self, selection)

    monkeypatch.setattr(HDF5Images, "_read", recording_read)
    straight = ChunkedBatches(on_disk, 7, seed=1, chunk=8)
    for _ in range(9):  # into the second epoch
        straight.next()
    state = straight.state_dict()
    expected = [ids(straight.next()) for _ in range(12)]
    resumed = ChunkedBatches(on_disk, 7, seed=1, chunk=8)
    resumed.load_state_dict(state)
    assert [ids(resumed.next()) for _ in range(12)] == expected
    assert any(name.startswith("genlab-hdf5") for name in readers)
    other_chunks = ChunkedBatches(on_disk, 7, seed=1, chunk=16)
    with pytest.raises(ValueError, match="chunks of 8"):
        other_chunks.load_state_dict(state)
    for b in (straight, resumed, other_chunks):
        b.close()


def test_chunk_size_follows_the_budget(tmp_path):
    path, _ = numbered_h5(tmp_path / "x.h5", n=1000, size=64)
    per_image = 3 * 64 * 64
    # Room for 40 of the 1,000 images: streamed (a budget under three images is refused).
    on_disk = load_files_split(path, "train", None, None, "x",
                               memory_budget=40 * per_image / GIB).images
    assert chunk_images(on_disk, 30 * 3 * per_image / GIB) == 30
    assert chunk_images(on_disk, 1e-9) == 1 and chunk_images(on_disk, 100.0) == 1000


def test_a_file_damaged_after_the_start_is_named(tmp_path):
    path, _ = numbered_h5(tmp_path / "x.h5")
    on_disk = load_files_split(path, "train", None, None, "x", memory_budget=1e-6).images
    path.write_bytes(b"not hdf5 any more")
    with pytest.raises(DataError, match=f"cannot read images from {path}.*genlab prepare"):
        on_disk[0:4]


def test_training_streamed_from_disk_resumes_exactly_and_matches_its_data(tmp_path):
    path, _ = numbered_h5(tmp_path / "faces.h5", n=40, size=16)
    common = ["--data", path, "--batch-size", "8", "--saving-steps", "4", "--fid-samples", "0",
              "--memory-budget", "0.00002"]  # 21 KB < 40 x 768 bytes: chunks of 9 images
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    result = run_cli("train", "vae", *common, "--steps", "8", "--run-dir", straight)
    assert result.returncode == 0, result.stderr
    assert "streaming them from disk in chunks" in result.stderr
    assert run_cli("train", "vae", *common, "--steps", "4", "--run-dir", resumed).returncode == 0
    result = run_cli("train", "vae", *common, "--steps", "8", "--run-dir", resumed)
    assert result.returncode == 0 and "resuming" in result.stderr, result.stderr
    a, _ = latest_checkpoint(straight, pytest.fail)
    b, _ = latest_checkpoint(resumed, pytest.fail)
    assert a["data_order"] == b["data_order"] and a["data_order"]["chunk"] < 40
    assert all(torch.equal(v, b["model"][k]) for k, v in a["model"].items())
    # The budget decides the data order, so it is fixed once the run starts.
    changed = run_cli("train", "vae", "--data", path, "--batch-size", "8", "--fid-samples", "0",
                      "--memory-budget", "1", "--steps", "12", "--run-dir", resumed)
    assert changed.returncode == 2 and "--memory-budget 1.0 differs" in changed.stderr
    assert torch.equal(read_hdf5(path)[:, 0, 0, 0], torch.arange(40, dtype=torch.uint8))
