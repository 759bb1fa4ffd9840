"""The `genlab` command as a user runs it: its exit codes, output and files (tests/conftest.py
`run_cli` says which calls get a fresh process)."""

from __future__ import annotations

import itertools
import json
import os
import shlex
import shutil
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import REPO, SHARED_MNIST, needs_inception, needs_shared_mnist, run_cli
from genlab.cli import build_parser
from genlab.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from genlab.errors import GenlabError
from genlab.options import format_duration
from genlab.run import checkpoint_of_step
from genlab.train import api, trainer
from genlab.train.trainer import Trainer
from test_trainer import assert_same_state, final_state

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
def test_train_logs_six_curves_three_grids_and_checkpoints_then_resumes_to_more_steps(tmp_path):
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


def resume_line(result: subprocess.CompletedProcess) -> list[str]:
    """The arguments of the command a stopped run printed to resume it (after `genlab`)."""
    line, = [line for line in result.stdout.splitlines() if line.startswith("resume:")]
    argv = shlex.split(line.removeprefix("resume:"))
    assert argv[0] == "genlab", line
    return argv[1:]


def steps(run) -> list[int]:
    return [step for step, _ in list_checkpoints(run)]


def uninterrupted(tmp_path_factory, argv: list) -> Path:
    """argv's run, trained without a stop: what a stopped and resumed run must end as."""
    run = tmp_path_factory.mktemp("straight") / "run"
    result = run_cli(*argv, "--run-dir", run)
    assert result.returncode == 0, result.stderr
    return run


SIGNALLED = ["train", "vae", *TINY, "--num-training-steps", "300", "--saving-steps", "1000"]


@pytest.fixture(scope="module")
def straight_300(tmp_path_factory):
    return uninterrupted(tmp_path_factory, SIGNALLED)


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_saves_a_checkpoint_and_the_printed_command_resumes_like_a_straight_run(
        tmp_path, straight_300, signum, code):
    # A real process and a real signal (Ctrl-C, or a scheduler's SIGTERM), at whatever step.
    args = SIGNALLED
    run = tmp_path / "interrupted"
    argv = [*map(str, args), "--run-dir", str(run)]
    process = subprocess.Popen([sys.executable, "-m", "genlab", *argv], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run / "scalars.jsonl").is_file() or not (run / "scalars.jsonl").read_text():
        assert time.time() < deadline and process.poll() is None
        time.sleep(0.05)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stderr
    assert "Traceback" not in stderr
    (step, _), = list_checkpoints(run)
    assert 0 < step < 300
    assert f"stopped at step {step} by {signal.Signals(signum).name}" in stderr
    stopped = subprocess.CompletedProcess(argv, code, stdout, stderr)
    assert resume_line(stopped) == argv  # the same command, quoted for a shell

    resumed = run_cli(*resume_line(stopped))
    assert resumed.returncode == 0 and f"from step {step}" in resumed.stderr
    a, _ = latest_checkpoint(straight_300, warn=pytest.fail)
    b, _ = latest_checkpoint(run, warn=pytest.fail)
    assert a["step"] == b["step"] == 300
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


# The stop tests: 25 steps, checkpoints every 5; a straight run of the same 25 steps to compare.
STOPPABLE = ["train", "vae", *TINY, "--steps", "25", "--saving-steps", "5"]


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    return uninterrupted(tmp_path_factory, STOPPABLE)


def signals_after_step(patch: pytest.MonkeyPatch, step: int, *signums: int) -> None:
    """This process gets `signums` right after training step `step`, one after the other (as
    from a user or a scheduler, but at a known step)."""
    train_step = Trainer.train_step

    def step_then_signal(self):
        losses = train_step(self)
        if self.step == step:
            for signum in signums:
                signal.raise_signal(signum)
        return losses
    patch.setattr(Trainer, "train_step", step_then_signal)


def test_max_time_stops_at_the_step_past_it_and_the_printed_command_resumes_exactly(
        tmp_path, monkeypatch, straight_run):
    # A clock one second later at each reading: the trainer reads it as it starts training and
    # after each step, so --max-time 12s ends each process's training 12 steps after it starts.
    ticks = itertools.count()
    monkeypatch.setattr(trainer, "clock", lambda: float(next(ticks)))
    run = tmp_path / "run"
    argv = [*STOPPABLE, "--max-time", "12s", "--run-dir", str(run)]
    first = run_cli(*argv)
    assert first.returncode == 0, first.stderr
    assert "or for at most 12s (--max-time)" in first.stderr
    assert "stopped at step 12 by --max-time: checkpoint saved" in first.stderr
    assert steps(run) == [5, 10, 12] and resume_line(first) == argv
    assert json.loads((run / "config.json").read_text())["train"]["max_time"] == 12.0

    second = run_cli(*resume_line(first))  # 12 more steps: to 24
    assert second.returncode == 0 and "from step 12" in second.stderr, second.stderr
    assert steps(run)[-1] == 24 and resume_line(second) == argv
    # A run setting: a resumed run may take another deadline. This one is reached at the last
    # step, 25, which has no scores to compute (--fid-samples 0): the run is finished.
    last = run_cli(*STOPPABLE, "--max-time", "1s", "--run-dir", run)
    assert last.returncode == 0 and "trained to step 25" in last.stderr, last.stderr
    assert "resume:" not in last.stdout
    assert json.loads((run / "config.json").read_text())["train"]["max_time"] == 1.0
    assert_same_state(final_state(straight_run), final_state(run))


@needs_inception
def test_a_stop_at_the_last_step_leaves_the_final_scores_to_the_printed_command(tmp_path,
                                                                                monkeypatch):
    scored = []  # the steps scored, instead of minutes of Inception
    monkeypatch.setattr(api, "final_scores", lambda config, model, step, *rest: scored.append(step)
                        or [])
    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        signals_after_step(patch, 10, signal.SIGTERM)
        stopped = run_cli("train", "vae", *TINY, "--steps", "10", "--fid-samples", "100",
                          "--run-dir", run)
    assert stopped.returncode == 143, stopped.stderr
    assert "trained to step 10; stopped by SIGTERM before the final scores" in stopped.stderr
    assert steps(run) == [10] and scored == []
    again = run_cli(*resume_line(stopped))
    assert again.returncode == 0 and "already trained to step 10" in again.stderr, again.stderr
    assert scored == [10]


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_first_signal_checkpoints_at_the_step_boundary_and_the_run_resumes_exactly(
        tmp_path, monkeypatch, straight_run, signum, code):
    run = tmp_path / "run"
    argv = [*STOPPABLE, "--run-dir", str(run)]
    with monkeypatch.context() as patch:
        signals_after_step(patch, 7, signum)
        stopped = run_cli(*argv)
    assert stopped.returncode == code, stopped.stderr
    assert f"stopped at step 7 by {signal.Signals(signum).name}" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert steps(run) == [5, 7] and resume_line(stopped) == argv

    resumed = run_cli(*resume_line(stopped))
    assert resumed.returncode == 0 and "from step 7" in resumed.stderr, resumed.stderr
    assert_same_state(final_state(straight_run), final_state(run))


def test_a_signal_before_the_first_step_says_nothing_was_saved_and_the_command_starts_again(
        tmp_path, monkeypatch, straight_run):
    run = tmp_path / "run"
    argv = [*STOPPABLE, "--run-dir", str(run)]
    grids = Trainer.grids

    def signal_then_grids(self):  # the step-0 grids are drawn before the first step
        signal.raise_signal(signal.SIGTERM)
        return grids(self)
    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "grids", signal_then_grids)
        stopped = run_cli(*argv)
    assert stopped.returncode == 143, stopped.stderr
    assert "stopped by SIGTERM before the first step: nothing was trained or saved" in stopped.stderr
    assert "checkpoint saved" not in stopped.stderr and steps(run) == []
    started = run_cli(*resume_line(stopped))
    assert started.returncode == 0, started.stderr
    assert_same_state(final_state(straight_run), final_state(run))


@pytest.mark.parametrize("signums, code", [((signal.SIGINT, signal.SIGINT), 130),
                                           ((signal.SIGINT, signal.SIGTERM), 143)])
def test_a_second_signal_stops_at_once_and_the_last_checkpoint_resumes_exactly(
        tmp_path, monkeypatch, straight_run, signums, code):
    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        signals_after_step(patch, 7, *signums)
        stopped = run_cli(*STOPPABLE, "--run-dir", run)
    assert stopped.returncode == code, stopped.stderr
    assert f"stopped at once by a second {signal.Signals(signums[1]).name}" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert steps(run) == [5]  # no checkpoint at the stop; the last one verifies
    assert latest_checkpoint(run, warn=pytest.fail)[0]["step"] == 5

    resumed = run_cli(*resume_line(stopped))
    assert resumed.returncode == 0 and "from step 5" in resumed.stderr, resumed.stderr
    assert_same_state(final_state(straight_run), final_state(run))


def test_a_branch_with_no_setting_changed_trains_bit_for_bit_as_its_parent_goes_on(
        tmp_path, straight_run):
    child = tmp_path / "child"
    parent = checkpoint_of_step(straight_run, 10)
    result = run_cli("train", "vae", "--branch-from", parent, "--run-dir", child)
    assert result.returncode == 0, result.stderr
    assert f"branching {child} from {parent} at step 10" in result.stderr
    assert steps(child) == [15, 20, 25]  # the parent's settings: --steps 25, --saving-steps 5
    assert_same_state(final_state(straight_run), final_state(child))
    assert json.loads((child / "config.json").read_text())["train"]["branch_from"] == str(parent)


def test_a_branch_run_again_by_the_same_command_resumes_from_its_own_checkpoint(
        tmp_path, straight_run):
    # experiments/celeba_long.sh climbs its ladder this way: --branch-from stays in the command.
    child = tmp_path / "child"
    argv = ["train", "vae", "--branch-from", checkpoint_of_step(straight_run, 10), "--run-dir", child]
    assert run_cli(*argv, "--steps", "15").returncode == 0
    again = run_cli(*argv, "--steps", "25")
    assert again.returncode == 0, again.stderr
    assert f"resuming {child} from step 15" in again.stderr and "branching" not in again.stderr
    assert steps(child) == [15, 20, 25]
    assert_same_state(final_state(straight_run), final_state(child))


def test_a_branch_does_not_inherit_the_parents_max_time(tmp_path):
    parent = tmp_path / "parent"
    trained = run_cli("train", "vae", *TINY, "--steps", "2", "--saving-steps", "2", "--max-time",
                      "1h", "--run-dir", parent)
    assert trained.returncode == 0, trained.stderr
    argv = ["train", "vae", "--branch-from", checkpoint_of_step(parent, 2), "--steps", "4",
            "--run-dir", tmp_path / "child", "--dry-run"]
    shown = run_cli(*argv).stdout
    assert re.search(r"train\s+max_time\s+-\s+default", shown), shown
    assert re.search(r"train\s+max_time\s+60\s+flag", run_cli(*argv, "--max-time", "1m").stdout)


def test_a_branch_takes_the_flags_given_and_the_rest_from_its_parent(tmp_path, straight_run):
    child = tmp_path / "child"
    argv = ["train", "vae", "--branch-from", checkpoint_of_step(straight_run, 10),
            "--learning-rate", "5e-4", "--steps", "15", "--run-dir", child]
    result = run_cli(*argv)
    assert result.returncode == 0, result.stderr
    config = json.loads((child / "config.json").read_text())
    assert config["model_config"]["latent_dim"] == 10  # the parent's, not the default
    assert config["train"]["learning_rate"] == 5e-4 and config["train"]["saving_steps"] == 5
    branched = final_state(child)
    [optimizer] = branched["optimizers"].values()  # the VAE's one Adam
    [group] = optimizer["param_groups"]
    assert group["lr"] == group["initial_lr"] == 5e-4
    # The optimiser's state went on from the parent's (Adam's step count), at another rate.
    step_counts = {float(s["step"]) for s in optimizer["state"].values()}
    assert step_counts == {15.0}
    parent_at_15 = load_checkpoint(checkpoint_of_step(straight_run, 15))
    assert not torch.equal(next(iter(branched["model"].values())),
                           next(iter(parent_at_15["model"].values())))
    again = run_cli(*argv)  # the same command again: the stored parent is the same setting
    assert again.returncode == 0 and "already trained to step 15" in again.stderr, again.stderr


def test_a_branchs_data_flag_replaces_its_parents_data_source(tmp_path, straight_run):
    from genlab.run import _apply, new_config, plan_run

    parent = str(checkpoint_of_step(straight_run, 10))  # trained on --dataset digits
    on_file = plan_run("vae", {"branch_from": parent, "data_path": "/data/faces.h5"},
                       tmp_path / "child").config.data
    assert (on_file.data_path, on_file.dataset) == ("/data/faces.h5", "faces")  # named after it
    on_set = plan_run("vae", {"branch_from": parent, "dataset": "fashion-mnist"},
                      tmp_path / "child").config.data
    assert (on_set.data_path, on_set.dataset) == (None, "fashion-mnist")
    with pytest.raises(GenlabError, match="name two data sources"):
        plan_run("vae", {"branch_from": parent, "dataset": "mnist", "data_path": "/d/f.h5"},
                 tmp_path / "child")
    # A parent trained on a file: --dataset drops its file (the branch would train on it).
    parents = new_config("vae", {"data_path": "/data/faces.h5"})
    _apply(parents, {"dataset": "mnist"})
    assert (parents.data.data_path, parents.data.dataset) == (None, "mnist")


@pytest.mark.parametrize("flags, fragment", [
    (["--latent-dim", "3", "--run-dir", "{child}"], "change the networks of --branch-from"),
    (["--seed", "1", "--run-dir", "{child}"], "--seed 1 has no effect on a branch"),
    (["--init", "kaiming", "--run-dir", "{child}"], "--init kaiming has no effect on a branch"),
    (["--steps", "10", "--run-dir", "{child}"], "so a branch to step 10 has nothing to train"),
    ([], "--branch-from needs --run-dir"),
    (["--run-dir", "{other}"], "holds a run of its own, not a branch from"),
    (["--run-dir", "{parent}"], "is a checkpoint of --run-dir"),
])
def test_a_branch_that_cannot_be_refuses_in_one_sentence_and_writes_nothing(
        tmp_path, straight_run, flags, fragment):
    child = tmp_path / "child"
    other = tmp_path / "other"  # a run in the folder named: a branch must not extend it
    if "{other}" in flags:
        shutil.copytree(straight_run, other)
    flags = [flag.format(child=child, parent=straight_run, other=other) for flag in flags]
    before = sorted(straight_run.rglob("*"))
    result = run_cli("train", "vae", "--branch-from", checkpoint_of_step(straight_run, 10),
                     *flags)
    assert_one_sentence_error(result, fragment)
    assert not child.exists() and sorted(straight_run.rglob("*")) == before


def test_a_branch_from_a_damaged_checkpoint_or_a_folder_names_it(tmp_path, straight_run):
    damaged = tmp_path / "parent" / "checkpoints" / "step-00000010.pt"
    damaged.parent.mkdir(parents=True)
    source = checkpoint_of_step(straight_run, 10)
    data = bytearray(source.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    damaged.with_suffix(".json").write_bytes(source.with_suffix(".json").read_bytes())
    for parent, fragment in ((damaged, "is damaged"), (straight_run, "is a folder"),
                             (damaged.with_name("step-00000011.pt"), "does not exist")):
        result = run_cli("train", "vae", "--branch-from", parent, "--run-dir", tmp_path / "child")
        assert_one_sentence_error(result, f"--branch-from", fragment)
        assert not (tmp_path / "child").exists()


@pytest.mark.parametrize("text, seconds", [("2h20m", 8400), ("90m", 5400), ("45s", 45),
                                           ("1h", 3600), ("3600", 3600), ("1.5h", 5400),
                                           ("1d2h3m4.5s", 93784.5)])
def test_max_time_takes_a_duration_with_units_or_plain_seconds(text, seconds):
    args = build_parser().parse_args(["train", "vae", "--max-time", text])
    assert args.max_time == seconds
    assert build_parser().parse_args(["train", "vae", "--max-time",
                                      format_duration(seconds)]).max_time == seconds


@pytest.mark.parametrize("flags, fragments", [
    (["--latent-dim", "0"], ["--latent-dim", "must be a positive integer, got 0"]),
    (["--batch-size", "-1"], ["--batch-size", "must be a positive integer, got -1"]),
    (["--learning-rate", "nan"], ["--learning-rate", "positive finite number"]),
    (["--dataset", "cifar10"], ["--dataset", "invalid choice: 'cifar10'"]),
    (["--arch", "resnet"], ["--arch", "invalid choice"]),
    (["--steps", "ten"], ["--steps", "expected a positive integer"]),
    (["--keep-checkpoints", "-1"], ["--keep-checkpoints", "must be an integer >= 0, got -1"]),
    (["--max-time", "5x"], ["--max-time", "expected a positive duration", "got '5x'"]),
    (["--max-time", "-5"], ["--max-time", "expected a positive duration", "got '-5'"]),
    (["--max-time", "0"], ["--max-time", "must be a positive duration", "got 0"]),
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


def test_output_into_a_closed_pipe_ends_quietly_with_the_sigpipe_code(tmp_path):
    # `genlab datasets | head -1`, with the reader gone before the first write so that the
    # write fails every time, not only when the reader wins the race.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run([sys.executable, "-m", "genlab", "datasets", "--data-dir", tmp_path],
                                cwd=REPO, stdout=write_end, stderr=subprocess.PIPE, text=True)
    finally:
        os.close(write_end)
    assert result.returncode == 128 + signal.SIGPIPE, result.stderr
    assert result.stderr == ""


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
