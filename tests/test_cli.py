"""The `genlab` command as a user runs it: its exit codes, output and files (tests/conftest.py
`run_cli` says which calls get a fresh process)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import REPO, SHARED_MNIST, needs_shared_mnist, run_cli
from genlab.cli import build_parser
from genlab.checkpoint import latest_checkpoint, list_checkpoints

TINY = ["--dataset", "digits", "--latent-dim", "10", "--logging-steps", "5", "--fid-samples", "0"]


def assert_one_sentence_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@needs_shared_mnist
@pytest.mark.slow
def test_issue_example_logs_six_curves_three_grids_checkpoints_and_resumes(tmp_path):
    run = tmp_path / "R"
    common = ["train", "vae", "--dataset", "mnist", "--data-dir", SHARED_MNIST,
              "--train-split", "test", "--saving-steps", "30", "--logging-steps", "10",
              "--fid-samples", "0", "--run-dir", run]
    first = run_cli(*common, "--num-training-steps", "60")
    assert first.returncode == 0, first.stderr
    assert [s for s, _ in list_checkpoints(run)] == [30, 60]
    assert f"checkpoint:  {run}/checkpoints/step-00000060.pt" in first.stdout
    assert "step 60/60" in first.stderr and "img/s" in first.stderr and "eta" in first.stderr

    second = run_cli(*common, "--num-training-steps", "90")
    assert second.returncode == 0, second.stderr
    assert "resuming" in second.stderr and "from step 60" in second.stderr
    assert [s for s, _ in list_checkpoints(run)] == [30, 60, 90]

    events = EventAccumulator(str(run), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    assert {t for t in tags["scalars"] if "dead_fraction" not in t} == {
        "train/rec", "train/kl", "train/loss", "val/rec", "val/kl", "val/loss",
        "val/active_dims", "val/kl_per_dim_max", "val/kl_per_dim_median"}
    assert {f"val/dead_fraction/encoder.enc{i}" for i in range(1, 6)} <= set(tags["scalars"])
    assert set(tags["images"]) == {"images/val", "images/reconstructions", "images/samples"}
    assert [e.step for e in events.Scalars("train/loss")] == list(range(10, 91, 10))
    assert [e.step for e in events.Scalars("val/loss")] == [30, 60, 90]
    assert [e.step for e in events.Images("images/samples")] == [0, 30, 60, 90]
    # Training lowers the loss, and the scalars also exist as JSON lines.
    records = [json.loads(line) for line in (run / "scalars.jsonl").read_text().splitlines()]
    losses = [r["train/loss"] for r in records if "train/loss" in r]
    assert len(losses) == 9 and losses[-1] < losses[0]
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["num_training_steps"] == 90 and config["image_shape"] == [1, 32, 32]


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_the_resumed_run_matches_a_straight_one(tmp_path):
    args = ["train", "vae", *TINY, "--num-training-steps", "300", "--saving-steps", "1000"]
    straight = run_cli(*args, "--run-dir", tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr

    run = tmp_path / "interrupted"
    process = subprocess.Popen([sys.executable, "-m", "genlab", *map(str, args), "--run-dir",
                                str(run)], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run / "scalars.jsonl").is_file() or not (run / "scalars.jsonl").read_text():
        assert time.time() < deadline and process.poll() is None
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted at step" in stderr
    (step, _), = list_checkpoints(run)
    assert 0 < step < 300

    resumed = run_cli(*args, "--run-dir", run)
    assert resumed.returncode == 0 and f"from step {step}" in resumed.stderr
    a, _ = latest_checkpoint(tmp_path / "straight", warn=pytest.fail)
    b, _ = latest_checkpoint(run, warn=pytest.fail)
    assert a["step"] == b["step"] == 300
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


@pytest.mark.parametrize("flags, fragments", [
    (["--latent-dim", "0"], ["--latent-dim", "must be a positive integer, got 0"]),
    (["--batch-size", "-1"], ["--batch-size", "must be a positive integer, got -1"]),
    (["--learning-rate", "nan"], ["--learning-rate", "positive finite number"]),
    (["--dataset", "cifar10"], ["--dataset", "invalid choice: 'cifar10'"]),
    (["--arch", "resnet"], ["--arch", "invalid choice"]),
    (["--steps", "ten"], ["--steps", "expected a positive integer"]),
    (["--keep-checkpoints", "-1"], ["--keep-checkpoints", "must be an integer >= 0, got -1"]),
    (["--data-dir", "/nonexistent/mnist"], ["--data-dir /nonexistent/mnist does not exist"]),
    (["--train-split", "validation"], ["no split 'validation'"]),
    (["--device", "cuda:0"] if not torch.cuda.is_available() else ["--device", "tpu"],
     ["--device"]),
])
def test_bad_flags_stop_with_one_sentence_and_write_nothing(tmp_path, flags, fragments):
    run = tmp_path / "run"
    result = run_cli("train", "vae", "--dataset", "digits", *flags, "--run-dir", run,
                     cwd=tmp_path)
    assert_one_sentence_error(result, *fragments)
    assert not run.exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("flags, fragments", [
    (["--equilibrium-margin", "-0.1"], ["--equilibrium-margin", "must be a finite number >= 0"]),
    (["--max-log-sigma", "inf"], ["--max-log-sigma", "must be a finite number, got inf"]),
    (["--gamma", "0"], ["--gamma", "must be a positive finite number, got 0"]),
])
def test_float_flags_keep_their_own_bounds(tmp_path, flags, fragments):
    run = tmp_path / "run"
    assert_one_sentence_error(run_cli("train", "vaegan", *flags, "--run-dir", run), *fragments)
    assert not run.exists()


def test_float_flags_take_zero_and_negative_values_where_their_bounds_allow():
    args = build_parser().parse_args(["train", "vaegan", "--equilibrium-margin", "0",
                                      "--max-log-sigma", "-1.5"])
    assert (args.equilibrium_margin, args.max_log_sigma) == (0.0, -1.5)


def test_run_folder_of_another_model_or_settings_is_refused(tmp_path):
    other = tmp_path / "gan"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model": "dcgan"}))
    assert_one_sentence_error(run_cli("train", "vae", *TINY, "--steps", "5", "--run-dir", other),
                              "holds a dcgan run, not a vae run")
    assert sorted(p.name for p in other.iterdir()) == ["config.json"]

    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "notes.txt").write_text("mine")
    assert_one_sentence_error(run_cli("train", "vae", *TINY, "--steps", "5", "--run-dir", stray),
                              "not a genlab run folder")

    run = tmp_path / "vae"
    assert run_cli("train", "vae", *TINY, "--steps", "5", "--run-dir", run).returncode == 0
    before = sorted(p.name for p in run.rglob("*"))
    assert_one_sentence_error(
        run_cli("train", "vae", *TINY, "--latent-dim", "3", "--steps", "10", "--run-dir", run),
        "--latent-dim 3 differs from the run", "latent_dim = 10")
    assert sorted(p.name for p in run.rglob("*")) == before


def test_sample_writes_a_grid_from_the_latest_checkpoint(tmp_path):
    run = tmp_path / "run"
    assert run_cli("train", "vae", *TINY, "--steps", "10", "--run-dir", run).returncode == 0
    out = tmp_path / "grid.png"
    result = run_cli("sample", run, "-n", "12", "--nrow", "4", "-o", out)
    assert result.returncode == 0, result.stderr
    image = Image.open(out)
    assert image.mode == "L" and image.size == (4 * 34 + 2, 3 * 34 + 2)
    again = tmp_path / "again.png"
    run_cli("sample", run, "-n", "12", "--nrow", "4", "-o", again)
    assert again.read_bytes() == out.read_bytes()  # same seed, same samples
    assert_one_sentence_error(run_cli("sample", tmp_path, "-o", out), "not a genlab run folder")


def test_datasets_lists_every_data_set(tmp_path):
    result = run_cli("datasets", "--data-dir", tmp_path)  # an empty folder: nothing found there
    assert result.returncode == 0, result.stderr
    for name in ("mnist:", "fashion-mnist:", "digits:"):
        assert name in result.stdout


@needs_shared_mnist
def test_datasets_says_where_the_shared_mnist_is_found():
    result = run_cli("datasets", "--data-dir", SHARED_MNIST)
    assert result.returncode == 0, result.stderr
    test_line = next(line for line in result.stdout.splitlines() if "10000" in line)
    assert str(SHARED_MNIST) in test_line


def test_demo_falls_back_to_the_embedded_digits_and_says_so(tmp_path):
    result = run_cli("demo", "--no-download", "--steps", "20", "--fid-samples", "0",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "1,797 real 8x8 handwritten digits" in result.stderr
    samples = tmp_path / "runs" / "demo-vae-digits" / "checkpoints" / "step-00000020-samples.png"
    assert samples.is_file() and "samples:     runs/demo-vae-digits" in result.stdout


@pytest.mark.parametrize("command", [[], ["train"], ["train", "vae"], ["train", "dcgan"],
                                     ["eval"], ["fid"], ["sample"], ["prepare"], ["datasets"],
                                     ["demo"]])
def test_help_for_every_command(command):
    result = run_cli(*command, "--help")
    assert result.returncode == 0 and "usage: genlab" in result.stdout
