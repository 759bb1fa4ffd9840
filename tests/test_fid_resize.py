"""--fid-resize: the clean pipeline equals clean-fid's resize, and every stored score and cached
reference says which resize made it (scores without the field count as the default's)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import needs_inception, run_cli
from genlab.config import FID_RESIZES, DataConfig, EvalConfig, RunConfig, TrainConfig
from genlab.errors import GenlabError
from genlab.metrics import cache
from genlab.metrics.evaluate import reference_stats, stored_records
from genlab.metrics.inception import DEFAULT_RESIZE, PREPROCESSING, preprocess
from genlab.metrics.records import append_record
from test_cli import assert_one_sentence_error

SHAPES = [(3, 1, 32, 32),    # grey, the homework's MNIST size
          (2, 3, 64, 64),    # RGB, the lab's CelebA size
          (2, 3, 28, 40),    # not square
          (2, 1, 400, 350),  # larger than 299: PIL's bicubic antialiases when shrinking
          (1, 3, 299, 299)]  # already the network's size: clean-fid resizes it all the same


def clean_fid_inputs(images: torch.Tensor) -> torch.Tensor:
    """What clean-fid feeds its Inception in its "clean" mode: each image as an RGB uint8 HWC
    array (grey converted as PIL's convert('RGB') does: three equal planes) through
    make_resizer("PIL", False, "bicubic", (299, 299)), then ToTensor (a float32 array is only
    transposed) and InceptionV3W's (x - 128) / 128 (cleanfid/inception_torchscript.py)."""
    # cleanfid/__init__.py is empty and cleanfid/resize.py imports only numpy, torch and PIL,
    # so this runs where clean-fid is installed with --no-deps (its utils.py needs torchvision).
    resize = pytest.importorskip(
        "cleanfid.resize", reason="clean-fid is not installed (pip install --no-deps clean-fid)"
    ).make_resizer("PIL", False, "bicubic", (299, 299))
    out = []
    for image in images:
        rgb = np.ascontiguousarray(image.expand(3, -1, -1).permute(1, 2, 0).numpy())
        out.append(torch.from_numpy(resize(rgb).transpose(2, 0, 1)))
    return (torch.stack(out) - 128) / 128


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_clean_resize_gives_exactly_clean_fids_inputs(shape):
    images = torch.randint(0, 256, shape, dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(sum(shape)))
    images[0, 0, 0, :2] = torch.tensor([0, 255], dtype=torch.uint8)  # both ends of the range
    ours = preprocess(images, "clean")
    assert ours.shape == (shape[0], 3, 299, 299) and ours.dtype == torch.float32
    assert torch.equal(ours, clean_fid_inputs(images))


def test_the_resizes_differ_and_a_bad_one_stops():
    images = torch.randint(0, 256, (2, 1, 32, 32), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    assert FID_RESIZES[0] == DEFAULT_RESIZE == "pytorch-fid"
    assert torch.equal(preprocess(images), preprocess(images, "pytorch-fid"))
    assert not torch.allclose(preprocess(images), preprocess(images, "clean"), atol=1e-3)
    with pytest.raises(GenlabError, match="--fid-resize lanczos is not one of pytorch-fid, clean"):
        preprocess(images, "lanczos")


def run_config() -> RunConfig:
    from genlab.models import MODELS

    return RunConfig(model="vae", model_config=MODELS["vae"].config_class(),
                     data=DataConfig(dataset="digits"), train=TrainConfig(),
                     image_shape=(1, 32, 32))


# A stored score of run_config()'s step 10 under the 16-image protocol, and its settings.
PROTOCOL = {"protocol": "16 generated vs 16 real images of digits/train (the homework's FID "
                        "protocol)", "generated_samples": 16, "real_samples": 16,
            "generator_seed": 0, "reference_split": "train"}
SCORES = {"step": 10, "fid": 1.0, "kid": 0.1, "kid_std": 0.0, "precision": 0.5, "recall": 0.5,
          "metrics": ["fid", "kid", "pr"]}


def test_stored_scores_without_a_resize_count_as_the_default_one(tmp_path):
    config, checkpoint = run_config(), tmp_path / "step-00000010.pt"
    settings = {**PROTOCOL, "precision": "fp32"}
    unstated = {**SCORES, "settings": settings}
    append_record(checkpoint, unstated)
    default, clean = EvalConfig(fid_samples=16), EvalConfig(fid_samples=16, fid_resize="clean")
    assert stored_records(checkpoint, config, default, seed=0) == {"train": unstated}
    assert stored_records(checkpoint, config, clean, seed=0) == {"train": None}

    clean_record = {**unstated, "fid": 2.0, "settings": {**settings, "resize": "clean"}}
    append_record(checkpoint, clean_record)
    assert stored_records(checkpoint, config, clean, seed=0) == {"train": clean_record}
    assert stored_records(checkpoint, config, default, seed=0) == {"train": unstated}


def test_a_stored_bf16_score_counts_only_on_its_device_type_and_an_fp32_one_on_any(tmp_path):
    config, checkpoint = run_config(), tmp_path / "step-00000010.pt"
    for precision in ("fp32", "bf16"):
        append_record(checkpoint, {**SCORES, "settings": {**PROTOCOL, "device": "cuda:0",
                                                          "precision": precision}})
    fp32, bf16 = (EvalConfig(fid_samples=16, fid_precision=p) for p in ("fp32", "bf16"))
    for device in ("cpu", "cuda:1"):
        assert stored_records(checkpoint, config, fp32, 0, torch.device(device))["train"]
    assert stored_records(checkpoint, config, bf16, 0, torch.device("cuda:1"))["train"]
    assert stored_records(checkpoint, config, bf16, 0, torch.device("cpu")) == {"train": None}


class FakeExtractor:
    """InceptionFeatures' interface with made-up features: what the cache keys see."""

    batch_size, precision, device = 8, "fp32", torch.device("cpu")

    def __init__(self, resize: str):
        self.resize = resize
        self.settings = {"network": "fake", "weights_sha256": "0" * 64, "resize": resize,
                         "preprocessing": PREPROCESSING[resize], "precision": self.precision}

    def stream(self, batches, advance=None):
        for images in batches:
            yield torch.full((len(images), 2048), float(images.float().mean()))


def test_cached_reference_features_are_keyed_by_their_resize(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    data, quiet = DataConfig(dataset="digits"), lambda message: None
    for resize in FID_RESIZES:
        reference_stats(data, "train", 16, FakeExtractor(resize), quiet, quiet)
    fields = {path.name: json.loads(torch.load(path, weights_only=True)["fields"])
              for path in tmp_path.iterdir()}
    assert len(fields) == 2
    clean = next(key for name, key in fields.items() if name.startswith("digits-train-n16-fp32-clean-"))
    default = next(key for name, key in fields.items() if "-clean-" not in name)
    assert clean["resize"] == "clean" and clean["preprocessing"] == PREPROCESSING["clean"]
    # The default resize is keyed without the field, so features cached without it stay
    # valid; its preprocessing text tells it from the other resizes.
    assert "resize" not in default and default["preprocessing"] == PREPROCESSING[DEFAULT_RESIZE]


@pytest.mark.parametrize("command", [["fid", "a.npz", "b.npz"], ["eval", "run"],
                                     ["train", "vae", "--steps", "1"]])
def test_every_fid_command_takes_fid_resize_and_rejects_a_bad_value(tmp_path, command):
    assert_one_sentence_error(run_cli(*command, "--fid-resize", "bilinear"), "--fid-resize",
                              "invalid choice")


def test_a_stored_config_with_a_bad_resize_stops(tmp_path):
    from genlab.run import config_from_dict, new_config

    stored = new_config("vae", {}).to_dict()
    stored["image_shape"] = [1, 32, 32]
    assert config_from_dict(stored).eval.fid_resize == DEFAULT_RESIZE
    stored["eval"]["fid_resize"] = "bilinear"
    with pytest.raises(GenlabError, match="fid_resize"):
        config_from_dict(stored)


@needs_inception
def test_fid_command_records_the_resize_that_made_the_score(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "a.npz", images=rng.integers(0, 256, (6, 1, 32, 32), dtype=np.uint8))
    np.savez(tmp_path / "b.npz", images=rng.integers(0, 256, (6, 1, 32, 32), dtype=np.uint8))
    records = {}
    for resize in FID_RESIZES:
        result = run_cli("fid", tmp_path / "a.npz", tmp_path / "b.npz", "--fid-resize", resize,
                         "--metrics", "fid", "--json")
        assert result.returncode == 0, result.stderr
        assert f"{resize} resize)" in result.stdout.splitlines()[0]
        records[resize] = json.loads(result.stdout.strip().splitlines()[-1])
        assert records[resize]["settings"]["resize"] == resize
        assert records[resize]["settings"]["preprocessing"] == PREPROCESSING[resize]
    assert records["clean"]["fid"] != pytest.approx(records["pytorch-fid"]["fid"], rel=1e-6)


@needs_inception
@pytest.mark.slow
def test_a_run_keeps_one_stored_score_per_resize_and_reads_old_scores_as_the_default(tmp_path):
    run = tmp_path / "R"
    train = ["train", "vae", "--dataset", "digits", "--latent-dim", "4", "--steps", "5",
             "--fid-samples", "8", "--metrics", "fid,kid", "--run-dir", run]
    assert run_cli(*train).returncode == 0
    metrics = run / "checkpoints" / "step-00000005-metrics.jsonl"
    [default] = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert default["settings"]["resize"] == "pytorch-fid"

    clean = run_cli("eval", run, "--fid-samples", "8", "--metrics", "fid,kid", "--fid-resize",
                    "clean", "--json")
    assert clean.returncode == 0, clean.stderr
    assert json.loads(clean.stdout.strip().splitlines()[-1])["settings"]["resize"] == "clean"
    assert len(metrics.read_text().splitlines()) == 2

    # A score stored without the field is the default resize's: the finished run reuses it.
    lines = metrics.read_text().splitlines()
    unstated = json.loads(lines[0])
    del unstated["settings"]["resize"]
    metrics.write_text(json.dumps(unstated) + "\n" + lines[1] + "\n")
    for resize in FID_RESIZES:
        again = run_cli(*train, "--fid-resize", resize)
        assert again.returncode == 0, again.stderr
        assert "computing the features" not in again.stderr
        assert len(metrics.read_text().splitlines()) == 2
