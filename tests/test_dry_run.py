"""--dry-run of `genlab train`, `sweep` and `eval`: the resolved settings with their sources, the
data with counts, the device, precision and steps; exit 0 and nothing written."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest
import torch

from conftest import run_cli
from test_cli import assert_one_sentence_error

TINY = ["--dataset", "digits", "--latent-dim", "3", "--fid-samples", "0"]


def snapshot(folder) -> dict[str, float]:
    """Every file and folder under `folder`, with its modification time."""
    found = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            found[path] = os.stat(path).st_mtime_ns
    return found


def settings_of(stdout: str) -> dict[str, tuple[str, str]]:
    """The settings table: name -> (value, source)."""
    rows = stdout.split("settings (value, then where it comes from):\n", 1)[1].splitlines()
    table = {}
    for row in rows:
        section, name, value, *source = row.split()
        table[name] = (value, " ".join(source))
    return table


@pytest.fixture
def faces(tmp_path):
    """100 RGB 64x64 images in an HDF5 file with no splits."""
    path = tmp_path / "faces.h5"
    images = np.random.default_rng(0).integers(0, 256, (100, 3, 64, 64), dtype=np.uint8)
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=images)
    return path


def test_train_dry_run_of_the_vaegan_prints_its_data_steps_and_sources(tmp_path, faces):
    before = snapshot(tmp_path)
    result = run_cli("train", "vaegan", "--dry-run", "--data", faces, "--gamma", "2",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "100 training images of 64x64x3" in out
    # 100 epochs of 100 images at batch 64: ceil(156.25)
    assert "steps:       157;" in out and "100 epochs of 100 images at batch 64 = 157 steps" in out
    assert "a new run; named from the settings" in out and "device:      cpu" in out
    settings = settings_of(out)
    assert settings["gamma"] == ("2", "flag")
    assert settings["learning_rate"] == ("0.0003", "model default")
    assert settings["image_size"] == ("64", "model default")
    assert settings["channels"] == ("3", "model default")
    assert settings["latent_dim"] == ("2,048", "default")
    assert settings["num_training_steps"] == ("157", "--epochs (model default), and the data")
    assert settings["fid_samples"][1] == "default, from the data"  # 3,000 capped at the 100
    assert snapshot(tmp_path) == before  # no runs/ folder, no file


def test_a_dry_run_of_a_resumed_run_says_which_settings_the_folder_holds(tmp_path):
    run = tmp_path / "run"
    assert run_cli("train", "vae", *TINY, "--steps", "4", "--run-dir", run).returncode == 0
    before = snapshot(tmp_path)
    result = run_cli("train", "vae", "--steps", "8", "--dry-run", "--run-dir", run)
    assert result.returncode == 0, result.stderr
    assert "resumes the run there; --run-dir" in result.stdout
    assert "1,500 training images of 32x32x1" in result.stdout
    settings = settings_of(result.stdout)
    assert settings["latent_dim"] == ("3", "run folder")
    assert settings["num_training_steps"] == ("8", "flag")
    assert snapshot(tmp_path) == before

    # What the run itself refuses, the dry run refuses the same way.
    assert_one_sentence_error(run_cli("train", "vae", "--latent-dim", "4", "--dry-run",
                                      "--run-dir", run), "--latent-dim 4 differs from the run")

    result = run_cli("eval", run, "--dry-run", "--fid-samples", "500")
    assert result.returncode == 0, result.stderr
    assert "step-00000004.pt" in result.stdout
    assert "500 generated images (seed 0) against 500 of the 1,500 real images of digits/train" \
        in result.stdout
    assert settings_of(result.stdout)["fid_samples"] == ("500", "flag")
    assert snapshot(tmp_path) == before


def test_sweep_dry_run_lists_its_runs_and_writes_no_folder(tmp_path):
    out = tmp_path / "sweep"
    result = run_cli("sweep", "vae", "--dry-run", *TINY[:2], "--latent-dim", "2", "5",
                     "--out", out)
    assert result.returncode == 0, result.stderr
    assert "latent-dim-2: latent_dim 2 (new)" in result.stdout
    assert "latent-dim-5: latent_dim 5 (new)" in result.stdout
    assert settings_of(result.stdout)["latent_dim"] == ("2", "flag")
    assert not out.exists()


def test_a_dry_run_with_an_impossible_setting_stops_with_one_sentence(tmp_path):
    result = run_cli("train", "vae", *TINY[:2], "--fid-samples", "5000", "--dry-run",
                     "--run-dir", tmp_path / "run")
    assert_one_sentence_error(result, "--fid-samples 5000 is more than the 1500 images")
    assert not (tmp_path / "run").exists()


def test_a_dry_run_refuses_the_scoring_set_up_the_run_would_refuse(tmp_path):
    """The end-of-training scores are checked before training (check_ready); a dry run says
    what the run would say, not exit 0 on a setting the run stops at."""
    result = run_cli("train", "vae", *TINY[:2], "--metrics", "fid,bogus", "--dry-run",
                     "--run-dir", tmp_path / "run")
    assert_one_sentence_error(result, "--metrics fid,bogus should be")
    assert not (tmp_path / "run").exists()


def test_a_sweep_checks_every_run_s_data_and_scores_before_its_first_run(tmp_path):
    out = tmp_path / "sweep"
    missing = tmp_path / "nowhere.h5"
    result = run_cli("sweep", "vae", "--data", missing, "--latent-dim", "2", "5", "--steps", "2",
                     "--out", out)
    assert result.returncode == 2 and str(missing) in result.stderr
    assert not out.exists()  # refused before any run's folder or log
    result = run_cli("sweep", "vae", *TINY[:2], "--latent-dim", "2", "5", "--metrics", "bogus",
                     "--out", out)
    assert_one_sentence_error(result, "--metrics bogus should be")
    assert not out.exists()
    # What the data make of the flags too: a --fid-samples the training split cannot give.
    result = run_cli("sweep", "vae", *TINY[:2], "--latent-dim", "2", "5", "--steps", "2",
                     "--fid-samples", "5000", "--out", out)
    assert_one_sentence_error(result, "--fid-samples 5000 is more than the 1500 images")
    assert not out.exists()


def test_the_inception_weights_are_hashed_once_a_process_until_the_file_changes(tmp_path,
                                                                                monkeypatch):
    """A sweep checks every run before its first: the weights' sha256 once, not once a run; a
    file that changes (size or modification time) is hashed again."""
    from genlab.config import EvalConfig
    from genlab.metrics import evaluate

    weights = tmp_path / "weights.pth"
    weights.write_bytes(b"x")
    hashed = []
    monkeypatch.setattr(evaluate, "verify_weights", lambda path: hashed.append(path))
    evaluate._verified.cache_clear()
    config = EvalConfig(fid_samples=100, inception_weights=str(weights))
    evaluate.check_ready(config, torch.device("cpu"))
    evaluate.check_ready(config, torch.device("cpu"))
    assert hashed == [weights]
    os.utime(weights, ns=(0, 12345))
    evaluate.check_ready(config, torch.device("cpu"))
    assert hashed == [weights, weights]
    evaluate._verified.cache_clear()
