"""CelebA's files: the lab's HDF5 layout, the official aligned JPEG folder, `genlab prepare`.
No CelebA exists here: every test writes its own small files of the same layouts."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import run_cli
from genlab.data.files import folder_files
from genlab.data.folder import crop_and_resize
from genlab.data.hdf5 import read_hdf5
from genlab.errors import DataError


def faces(n: int, seed: int = 0, size=(218, 178)) -> np.ndarray:
    """n smooth random RGB images (H, W, 3) uint8: JPEG keeps them close to what was written."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (n, 6, 5, 3), dtype=np.uint8)
    return np.stack([np.asarray(Image.fromarray(s).resize(size[::-1], Image.BILINEAR))
                     for s in small])


def write_aligned(folder, n: int, partition: list[int] | None = None):
    images = folder / "img_align_celeba"
    images.mkdir(parents=True)
    for i, face in enumerate(faces(n)):
        Image.fromarray(face).save(images / f"{i + 1:06d}.jpg", quality=95)
    if partition is not None:
        (folder / "list_eval_partition.txt").write_text(
            "".join(f"{i + 1:06d}.jpg {p}\n" for i, p in enumerate(partition)))
    return folder


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_hdf5_first_dataset_is_read_as_nchw_uint8(tmp_path, layout):
    images = np.random.default_rng(0).integers(0, 256, (10, 3, 64, 64), dtype=np.uint8)
    stored = images if layout == "nchw" else images.transpose(0, 2, 3, 1)
    path = tmp_path / "celeba.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("a_faces", data=stored)           # first dataset in the file
        f.create_dataset("b_labels", data=np.arange(10))
    out = read_hdf5(path)
    assert out.dtype == torch.uint8 and out.shape == (10, 3, 64, 64)
    assert torch.equal(out, torch.from_numpy(images))


@pytest.mark.parametrize("write, fragments", [
    (lambda f: f.create_dataset("x", data=np.zeros((4, 3, 8, 8), np.float32)), ["float32", "uint8"]),
    (lambda f: f.create_dataset("x", data=np.zeros((4, 5, 8, 8), np.uint8)), ["shape (4, 5, 8, 8)"]),
    (lambda f: f.create_group("empty"), ["holds no dataset", "genlab prepare"]),
])
def test_bad_hdf5_files_stop_with_one_sentence_naming_them(tmp_path, write, fragments):
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        write(f)
    with pytest.raises(DataError) as err:
        read_hdf5(path)
    assert str(path) in str(err.value) and all(f in str(err.value) for f in fragments)


def test_truncated_or_foreign_hdf5_file_is_refused(tmp_path):
    path = tmp_path / "celeba.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=np.zeros((100, 3, 64, 64), np.uint8))
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataError, match="not a readable HDF5 file"):
        read_hdf5(path)
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(DataError, match="text.h5 is not a readable HDF5 file"):
        read_hdf5(tmp_path / "text.h5")


def test_aligned_folder_splits_follow_the_partition_file(tmp_path):
    folder = write_aligned(tmp_path / "celeba", 6, partition=[0, 0, 0, 1, 2, 2])
    assert [p.name for p in folder_files(folder, "train")] == ["000001.jpg", "000002.jpg",
                                                               "000003.jpg"]
    assert [p.name for p in folder_files(folder, "val")] == ["000004.jpg"]
    assert len(folder_files(folder, "test")) == 2 and len(folder_files(folder)) == 6
    (folder / "list_eval_partition.txt").write_text("000001.jpg 7\n")
    with pytest.raises(DataError, match="line 1 of .*list_eval_partition.txt"):
        folder_files(folder, "train")


def test_crop_and_resize_matches_centre_crop_then_bilinear_resize(tmp_path):
    face = faces(1)[0]
    path = tmp_path / "face.png"  # lossless, so the reference sees the same pixels
    Image.fromarray(face).save(path)
    out = crop_and_resize(path, 64, 148)
    top, left = (218 - 148) // 2, (178 - 148) // 2
    expected = Image.fromarray(face[top:top + 148, left:left + 148]).resize((64, 64), Image.BILINEAR)
    assert out.shape == (3, 64, 64) and out.dtype == np.uint8
    assert np.array_equal(out, np.asarray(expected).transpose(2, 0, 1))
    # Any other folder: cropped to the shorter side (178 here).
    assert crop_and_resize(path, 32, None).shape == (3, 32, 32)


def test_prepare_writes_an_hdf5_file_training_can_read(tmp_path):
    folder = write_aligned(tmp_path / "celeba", 5, partition=[0, 0, 0, 1, 2])
    out = tmp_path / "celeba-train.h5"
    result = run_cli("prepare", folder, "-o", out, "--size", "64", "--split", "train")
    assert result.returncode == 0, result.stderr
    assert "3 aligned CelebA" in result.stderr and "centre crop 148" in result.stderr
    images = read_hdf5(out)
    assert images.shape == (3, 3, 64, 64)
    first = crop_and_resize(folder / "img_align_celeba" / "000001.jpg", 64, 148)
    assert np.array_equal(images[0].numpy(), first)
    assert not list(tmp_path.glob(".*.tmp"))
    # The output is not overwritten by accident; bad names stop before any work.
    again = run_cli("prepare", folder, "-o", out)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    wrong = run_cli("prepare", folder, "-o", tmp_path / "x.png")
    assert wrong.returncode == 2 and ".h5" in wrong.stderr


def test_prepare_names_a_broken_image_and_leaves_no_file(tmp_path):
    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(faces(1, size=(40, 50))[0]).save(folder / "sub" / "a.png")
    (folder / "b.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    out = tmp_path / "out.h5"
    result = run_cli("prepare", folder, "-o", out, "--size", "16")
    assert result.returncode == 2
    assert "b.jpg is not a readable image" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))


def test_train_on_an_hdf5_file_resumes_exactly_and_writes_grids(tmp_path):
    from genlab.checkpoint import latest_checkpoint

    path = tmp_path / "faces.h5"
    smooth = torch.from_numpy(faces(96, size=(32, 32))).permute(0, 3, 1, 2)  # (N, 3, 32, 32)
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=smooth.numpy())

    def train(run, steps):
        return run_cli("train", "vae", "--data", path, "--run-dir", run, "--steps", steps,
                       "--saving-steps", "10", "--batch-size", "16", "--fid-samples", "0")

    result = train(tmp_path / "straight", 20)
    assert result.returncode == 0, result.stderr
    assert "has no splits" in result.stderr and "validating on the training split (all)" in result.stderr
    assert train(tmp_path / "resumed", 10).returncode == 0
    result = train(tmp_path / "resumed", 20)
    assert result.returncode == 0 and "resuming" in result.stderr
    a, _ = latest_checkpoint(tmp_path / "straight", pytest.fail)
    b, _ = latest_checkpoint(tmp_path / "resumed", pytest.fail)
    assert a["step"] == b["step"] == 20
    assert all(torch.equal(v, b["model"][k]) for k, v in a["model"].items())
    import json

    config = json.loads((tmp_path / "straight" / "config.json").read_text())
    assert config["data"]["dataset"] == "faces" and config["data"]["image_size"] == 32
    assert config["image_shape"] == [3, 32, 32]
    for name in ("val", "reconstructions", "samples"):
        with Image.open(tmp_path / "straight" / "checkpoints" / f"step-00000020-{name}.png") as grid:
            assert grid.mode == "RGB"


def test_train_on_an_aligned_folder_uses_its_splits_and_size(tmp_path):
    folder = write_aligned(tmp_path / "celeba", 12, partition=[0] * 8 + [1, 1, 2, 2])
    run = tmp_path / "run"
    result = run_cli("train", "vae", "--data", folder, "--image-size", "16", "--run-dir", run,
                     "--steps", "2", "--batch-size", "4", "--fid-samples", "0")
    assert result.returncode == 0, result.stderr
    assert "decoding 8 images" in result.stderr and "decoding 2 images" in result.stderr
    import json

    config = json.loads((run / "config.json").read_text())
    assert config["image_shape"] == [3, 16, 16] and config["data"]["dataset"] == "celeba"


def test_data_flag_errors_are_one_sentence(tmp_path):
    both = run_cli("train", "vae", "--data", tmp_path, "--dataset", "digits",
                   "--run-dir", tmp_path / "r1")
    assert both.returncode == 2 and "two data sources" in both.stderr
    missing = run_cli("train", "vae", "--data", tmp_path / "nope.h5", "--run-dir", tmp_path / "r2")
    assert missing.returncode == 2 and "nope.h5 does not exist" in missing.stderr
    assert "Traceback" not in both.stderr + missing.stderr
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()


def test_channels_conversion_matches_pil_and_applies_to_every_source(tmp_path):
    from genlab.data.transforms import convert_channels

    rgb = faces(4, size=(20, 20))                                   # (4, 20, 20, 3)
    grey = convert_channels(torch.from_numpy(rgb).permute(0, 3, 1, 2), 1)
    expected = np.stack([np.asarray(Image.fromarray(f).convert("L")) for f in rgb])
    assert grey.shape == (4, 1, 20, 20) and np.array_equal(grey[:, 0].numpy(), expected)
    back = convert_channels(grey, 3)
    assert back.shape == (4, 3, 20, 20) and all(torch.equal(back[:, i], grey[:, 0]) for i in range(3))

    run = tmp_path / "run"
    result = run_cli("train", "vae", "--dataset", "digits", "--channels", "3", "--image-size",
                     "16", "--run-dir", run, "--steps", "2", "--fid-samples", "0")
    assert result.returncode == 0, result.stderr
    import json

    assert json.loads((run / "config.json").read_text())["image_shape"] == [3, 16, 16]
    bad = run_cli("train", "vae", "--dataset", "digits", "--channels", "2",
                  "--run-dir", tmp_path / "r2")
    assert bad.returncode == 2 and "--channels" in bad.stderr and "Traceback" not in bad.stderr
