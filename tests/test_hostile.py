"""Hostile use, defect by defect: two writers on one run folder, damaged bytes in run-folder files,
hostile config.json values, decompression bombs, huge flags, a full or read-only disk while
logging, failed starts, and the server's limits. Each stops with one sentence or works."""

from __future__ import annotations

import errno
import io
import json
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import FAST_FID_PRECISION, REPO, _inception_installed, run_cli
from genlab.checkpoint import list_checkpoints
from genlab.errors import GenlabError
from genlab.metrics.records import read_records
from genlab.train.logging import read_scalars
from test_cli import assert_one_sentence_error
from test_trainer import final_state, make_trainer

TINY = ["--dataset", "digits", "--latent-dim", "4", "--fid-samples", "0"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A VAE trained 10 steps on digits, checkpoints at 5 and 10."""
    run = tmp_path_factory.mktemp("trained") / "vae"
    result = run_cli("train", "vae", *TINY, "--steps", "10", "--saving-steps", "5",
                     "--logging-steps", "5", "--run-dir", run)
    assert result.returncode == 0, result.stderr
    return run


def copy_of(run, tmp_path):
    import shutil

    shutil.copytree(run, tmp_path / "copy")
    return tmp_path / "copy"


def start_training(run, steps="100000", extra=()):
    return subprocess.Popen([sys.executable, "-m", "genlab", "train", "vae", *TINY, "--steps", steps,
                             "--logging-steps", "5", "--saving-steps", "100000", *extra,
                             "--run-dir", str(run)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def in_process(*args) -> subprocess.CompletedProcess:
    """`genlab ARGS` in this process (no interpreter start): its exit code and stderr."""
    import contextlib

    from genlab.cli import main

    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main([str(a) for a in args])
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def wait_for(condition, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


# --- 1. two writers -------------------------------------------------------------------------

def test_a_second_trainer_on_a_folder_stops_naming_the_first_and_readers_still_work(tmp_path):
    from genlab.serve import create_app, load_runs

    run = tmp_path / "run"
    first = start_training(run, extra=["--saving-steps", "100"])  # trains until told to stop
    try:
        wait_for(lambda: len(list_checkpoints(run)) >= 1)
        second = run_cli("train", "vae", *TINY, "--latent-dim", "8", "--steps", "400",
                         "--run-dir", run)
        assert_one_sentence_error(second, f"is being trained by another genlab process (PID "
                                          f"{first.pid})", "choose another --run-dir")
        # Readers are never locked out: sample, report, serve and (with its weights) eval.
        sample = run_cli("sample", run, "-o", tmp_path / "s.png")
        assert sample.returncode == 0, sample.stderr
        report = run_cli("report", run, "-o", tmp_path / "report", "--no-interpolation")
        assert report.returncode == 0, report.stderr
        client = create_app(load_runs([str(run)], warn=pytest.fail)).test_client()
        assert client.get("/api/sample?run=0&seed=1").status_code == 200
        if _inception_installed():
            scored = run_cli("eval", run, "--fid-samples", "16", "--fid-precision",
                             FAST_FID_PRECISION)
            assert scored.returncode == 0, scored.stderr
        assert first.poll() is None  # all of it while the first was still training
    finally:
        first.send_signal(signal.SIGTERM)
        out, err = first.communicate(timeout=300)
    assert first.returncode == 143 and "checkpoint saved" in err, err
    assert json.loads((run / "config.json").read_text())["model_config"]["latent_dim"] == 4
    steps = [r["step"] for r in read_scalars(run) if "train/loss" in r]
    assert steps == sorted(set(steps))  # every record once: nobody else wrote here


# --- 4, 6, 7, 15. damaged files, kills, the logging window, stale temporaries ---------------

def test_damaged_bytes_in_the_logs_and_records_are_skipped(trained, tmp_path):
    run = copy_of(trained, tmp_path)
    with open(run / "scalars.jsonl", "ab") as f:
        f.write(b'{"step": 11, "train/loss": \xff\xfe}\n[1, 2]\n')
    metrics = run / "checkpoints" / "step-00000010-metrics.jsonl"
    # bad bytes, then records of the wrong shape (hand edits), then one good record
    wrong_shapes = [{"step": 10, "metrics": None}, {"step": 10, "metrics": ["fid"], "fid": "low"},
                    {"metrics": ["fid"], "fid": 1.0}, {"step": "10", "fid": 1.0},
                    {"step": 10, "fid": 1.0, "settings": []}, {"step": 10, "metric": 3},
                    {"step": 10, "metrics": ["fid", "pr"], "fid": 1.0, "precision": 0.5}]
    good = {"step": 10, "metrics": ["fid"], "fid": 7.5}
    metrics.write_bytes(b"\xff\xfe not json\n42\n" + b"".join(
        json.dumps(r).encode() + b"\n" for r in (*wrong_shapes, good)))
    assert read_records(metrics.with_name("step-00000010.pt")) == [good]
    resumed = run_cli("train", "vae", *TINY, "--steps", "15", "--saving-steps", "5",
                      "--logging-steps", "5", "--run-dir", run)
    assert resumed.returncode == 0, resumed.stderr
    assert [r["step"] for r in read_scalars(run) if "train/loss" in r] == [5, 10, 15]
    report = run_cli("report", run, "-o", tmp_path / "report", "--no-interpolation")
    assert report.returncode == 0, report.stderr


@pytest.mark.parametrize("edit, fragment", [
    (lambda c: c["model_config"].update(arch="conw"), "arch must be one of conv"),
    (lambda c: c["model_config"].update(latent_dim=-3), "latent_dim must be a positive integer"),
    (lambda c: c["model_config"].update(latent_dim="abc"), "latent_dim must be a positive integer"),
    (lambda c: c["model_config"].update(latent_dim=10**7), "latent_dim must be at most 65,536"),
    (lambda c: c["train"].update(batch_size=0), "batch_size must be a positive integer"),
    (lambda c: c["train"].update(logging_steps=0), "logging_steps must be a positive integer"),
    (lambda c: c["train"].update(learning_rate=float("nan")), "learning_rate must be a positive"),
    (lambda c: c.update(image_shape=[1, 32]), "image_shape [1, 32] is not"),
    (lambda c: c.update(model_config=[]), "section holds list"),
    (lambda c: c.update(model="gan"), "model 'gan' is not one of"),
])
def test_hostile_config_values_stop_every_reader_in_one_sentence(trained, tmp_path, edit, fragment):
    run = copy_of(trained, tmp_path)
    config = json.loads((run / "config.json").read_text())
    edit(config)
    (run / "config.json").write_text(json.dumps(config))
    assert_one_sentence_error(in_process("sample", run, "-o", tmp_path / "s.png"), "config.json",
                              fragment)
    # Resuming says it as well (or, for another model's name, that the folder holds one).
    assert_one_sentence_error(in_process("train", "vae", *TINY, "--steps", "20", "--run-dir", run),
                              str(run))


@pytest.mark.parametrize("content", [b"[1]", b"42", b"\xff\xfe"])
def test_a_damaged_checkpoint_marker_falls_back_to_the_one_before(trained, tmp_path, content):
    run = copy_of(trained, tmp_path)
    (run / "checkpoints" / "step-00000010.json").write_bytes(content)
    result = run_cli("sample", run, "-o", tmp_path / "s.png")
    assert result.returncode == 0, result.stderr
    assert "step 5" in result.stdout and "step-00000010" in result.stderr


def test_a_kill_before_the_first_checkpoint_leaves_no_duplicate_records(tmp_path):
    run = tmp_path / "run"
    for _ in range(2):  # two tries killed before any checkpoint, then one that finishes
        process = start_training(run)
        wait_for(lambda: len(read_scalars(run)) >= 3)
        process.send_signal(signal.SIGKILL)
        process.wait()
    (run / "checkpoints").mkdir(exist_ok=True)
    (run / "checkpoints" / ".step-00000005.pt.abc.tmp").write_bytes(b"half a checkpoint")
    (run / ".config.json.xyz.tmp").write_bytes(b"half a config")
    done = run_cli("train", "vae", *TINY, "--steps", "20", "--logging-steps", "5",
                   "--saving-steps", "10", "--run-dir", run)
    assert done.returncode == 0, done.stderr
    assert [r["step"] for r in read_scalars(run) if "train/loss" in r] == [5, 10, 15, 20]
    events = [p for p in run.glob("events.out.tfevents.*")]
    assert len(events) == 1, events
    assert not list(run.rglob("*.tmp"))  # a killed write's temporaries are removed at the start


def test_a_resumed_log_equals_a_straight_one_whatever_the_saving_step(tmp_path, monkeypatch):
    from genlab.train.trainer import Trainer

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    make_trainer(straight, 12, 10, model="dcgan", logging_steps=4).fit()
    save = Trainer.save

    def save_then_die(self, logger):  # killed right after the checkpoint of step 10
        path = save(self, logger)
        raise SystemExit("killed")
    monkeypatch.setattr(Trainer, "save", save_then_die)
    with pytest.raises(SystemExit):
        make_trainer(resumed, 12, 10, model="dcgan", logging_steps=4).fit()
    monkeypatch.setattr(Trainer, "save", save)
    make_trainer(resumed, 12, 10, model="dcgan", logging_steps=4).fit()

    def records(run):
        return [{k: v for k, v in r.items() if k != "time"} for r in read_scalars(run)
                if "train/generator_loss" in r]
    assert [r["step"] for r in records(straight)] == [4, 8, 12]
    assert records(resumed) == records(straight)  # step 12's mean covers steps 9-12 again
    assert torch.equal(final_state(straight)["model"]["generator.g1.0.weight"],
                       final_state(resumed)["model"]["generator.g1.0.weight"])


# --- 8, 9, 10. full or read-only disks, failed starts ----------------------------------------

@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "the disk is full"),
                                         (errno.EROFS, "Read-only file system")])
def test_a_full_or_read_only_disk_while_logging_is_one_sentence(tmp_path, monkeypatch, code, words):
    from torch.utils.tensorboard import SummaryWriter

    trainer = make_trainer(tmp_path, 10, 10)

    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))
    monkeypatch.setattr(SummaryWriter, "add_scalar", fail)
    with pytest.raises(GenlabError, match=words) as error:
        trainer.fit()
    assert "the last checkpoint is intact" in str(error.value)
    assert "events.out.tfevents" in str(error.value)  # the file that failed, not scalars.jsonl
    assert "\n" not in str(error.value)


def test_read_only_places_stop_sample_and_report_in_one_sentence(trained, tmp_path, monkeypatch):
    import tempfile

    from genlab.grid import save_grid

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))
    with monkeypatch.context() as patch:
        patch.setattr(tempfile, "mkstemp", read_only)
        with pytest.raises(GenlabError, match=r"cannot write .*s\.png \(Read-only file system\)"):
            save_grid(torch.rand(4, 1, 8, 8), tmp_path / "s.png")
    folder = tmp_path / "out"
    folder.mkdir()
    assert_one_sentence_error(run_cli("sample", trained, "-o", folder), "is a folder")


def test_a_start_that_fails_after_writing_its_config_does_not_fix_the_next_ones(tmp_path,
                                                                               monkeypatch):
    from genlab.console import Console
    from genlab.train import api, trainer

    def out_of_memory(self):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate "
                           "4000000000000 bytes")
    with monkeypatch.context() as patch:
        patch.setattr(trainer.Trainer, "train_step", out_of_memory)
        with pytest.raises(GenlabError, match="ran out of memory at step 1 with --batch-size 4096"):
            api.train("vae", {"dataset": "digits", "batch_size": 4096, "fid_samples": 0,
                              "num_training_steps": 5}, tmp_path / "run", Console(quiet=True))
    assert (tmp_path / "run" / "config.json").is_file()
    outcome = api.train("vae", {"dataset": "digits", "batch_size": 8, "fid_samples": 0,
                                "num_training_steps": 5}, tmp_path / "run", Console(quiet=True))
    assert outcome.result.step == 5
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["batch_size"] == 8


def test_a_start_that_fails_before_writing_leaves_no_folder(tmp_path):
    result = run_cli("train", "vae", "--data", tmp_path / "missing.h5", "--fid-samples", "0",
                     "--run-dir", tmp_path / "run")
    assert_one_sentence_error(result, "missing.h5 does not exist")
    assert not (tmp_path / "run").exists()
    # nor the parent folders it made for the run folder, while a parent that was there stays
    (tmp_path / "kept").mkdir()
    result = run_cli("train", "vae", "--data", tmp_path / "missing.h5", "--fid-samples", "0",
                     "--run-dir", tmp_path / "kept" / "runs" / "a" / "run")
    assert_one_sentence_error(result, "missing.h5 does not exist")
    assert (tmp_path / "kept").is_dir() and not list((tmp_path / "kept").iterdir())


# --- 2, 3. decompression bombs and the server's limits --------------------------------------

def bomb(path, side=20000):
    """A PNG of a few hundred KB that claims side x side pixels."""
    Image.new("1", (side, side)).save(path)
    return path


def test_decompression_bombs_are_refused_in_one_sentence_everywhere(trained, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    bomb(folder / "bomb.png")
    Image.new("RGB", (64, 64)).save(folder / "ok.png")
    for command in [
        ["train", "vae", "--data", folder, "--fid-samples", "0", "--run-dir", tmp_path / "r"],
        ["prepare", folder, "-o", tmp_path / "x.h5"],
        ["fid", folder, folder, "--metrics", "fid"],  # 2 images: enough for FID only
        ["interpolate", trained, "--images", folder / "bomb.png", folder / "ok.png",
         "-o", tmp_path / "w.png"],
    ]:
        result = run_cli(*command)
        # (after the commands' own progress lines, if any)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("genlab: error: ") and "bomb.png" in last, last
        assert "resize it first" in last and "Warning" not in result.stderr
    assert not (tmp_path / "r").exists() and not (tmp_path / "x.h5").exists()


@pytest.fixture
def client(trained):
    from genlab.serve import create_app, load_runs

    return create_app(load_runs([str(trained)], lambda message: None)).test_client()


def test_the_server_refuses_huge_images_and_answers_only_json(client, tmp_path):
    for side in (10000, 20000):
        data = bomb(tmp_path / f"b{side}.png", side).read_bytes()
        response = client.post("/api/reconstruct?run=0",
                               data={"image": (io.BytesIO(data), "b.png")})
        assert response.status_code == 400 and response.is_json
        assert "resize it first" in response.get_json()["error"]
    for url in ("/api/sample?run=-1", "/api/sample?seed=18446744073709551616",
                "/api/sample?run=0&seed=-5", "/api/nothing-here"):
        response = client.get(url)
        assert response.status_code in (400, 404) and response.is_json, url


def test_the_server_caps_an_upload_at_40_megapixels_and_files_at_64(client, tmp_path):
    from genlab.data.folder import open_image

    photo = bomb(tmp_path / "49mp.png", 7000)  # a 49-megapixel photo: a file, not an upload
    with open_image(photo, "49mp.png") as image:
        assert image.size == (7000, 7000)
    response = client.post("/api/reconstruct?run=0",
                           data={"image": (io.BytesIO(photo.read_bytes()), "49mp.png")})
    assert response.status_code == 400 and "40,000,000" in response.get_json()["error"]
    with pytest.raises(GenlabError, match="8100 x 8100 pixels, over the 64,000,000"):
        open_image(bomb(tmp_path / "66mp.png", 8100), "66mp.png")


def test_the_server_decodes_at_most_two_uploads_at_once(trained, monkeypatch):
    import threading

    from genlab import serve

    active, most = [0], [0]
    lock = threading.Lock()
    original = serve.image_from_upload

    def counted(*args, **kwargs):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.2)
        try:
            return original(*args, **kwargs)
        finally:
            with lock:
                active[0] -= 1
    monkeypatch.setattr(serve, "image_from_upload", counted)
    app = serve.create_app(serve.load_runs([str(trained)], lambda message: None))
    upload = io.BytesIO()
    Image.new("RGB", (40, 40)).save(upload, format="PNG")

    def post():
        with app.test_client() as c:
            c.post("/api/reconstruct?run=0", data={"image": (io.BytesIO(upload.getvalue()), "x.png")})
    threads = [threading.Thread(target=post) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] <= serve.DECODES


# --- 11, 12, 13, 14, 16, 17. bounds and the rest --------------------------------------------

@pytest.mark.parametrize("args, fragment", [
    (["train", "vae", "--batch-size", "1000000000"], "--batch-size: must be at most 65,536"),
    (["train", "vae", "--latent-dim", "10000000"], "--latent-dim: must be at most 65,536"),
    (["train", "vae", "--image-size", "100000"], "--image-size: must be at most 4,096"),
    (["train", "vae", "--seed", str(2**63)], "--seed: must be at most"),
    (["train", "vae", "--batch-size", "1e9"], "--batch-size: expected a positive integer"),
    (["serve", "x", "--port", "65536"], "--port: must be from 0 to 65,535"),
    (["serve", "x", "--port", "99999"], "--port: must be from 0 to 65,535"),
])
def test_huge_values_stop_in_one_sentence(args, fragment):
    assert_one_sentence_error(run_cli(*args), fragment)


@pytest.mark.parametrize("args, fragment", [
    (["sample", "-n", "100000000"], "-n: must be from 1 to 100,000"),
    (["sample", "--seed", str(2**63)], "--seed: must be from 0 to"),
    (["interpolate", "--steps", "100000000"], "--steps: must be from 1 to 1,000"),
])
def test_huge_values_of_reading_commands_stop_in_one_sentence(trained, args, fragment):
    assert_one_sentence_error(run_cli(args[0], trained, *args[1:]), fragment)


def test_eval_refuses_too_many_samples_before_generating_any(trained):
    result = run_cli("eval", trained, "--fid-samples", "20000")
    assert_one_sentence_error(result, "--fid-samples 20000 is more than the 1500 images")
    assert "generated" not in result.stderr


def test_the_memory_budget_counts_the_images_as_stored_not_as_resized(tmp_path):
    from genlab.data.files import load_files_split

    path = tmp_path / "faces.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=np.zeros((64, 3, 64, 64), np.uint8))  # 786 KB stored
    budget = 0.5 * 64 * 3 * 64 * 64 / 1024**3  # half of what is stored; 4x what 16x16 needs
    streamed = load_files_split(path, "train", 16, None, "faces", memory_budget=budget)
    assert not isinstance(streamed.images, torch.Tensor) and streamed.images.shape[2:] == (16, 16)


def test_hdf5_images_are_found_by_name_not_by_alphabet(tmp_path):
    from genlab.config import DataConfig
    from genlab.data import load_split

    path = tmp_path / "celeba.h5"
    images = np.arange(6 * 3 * 8 * 8, dtype=np.uint8).reshape(6, 3, 8, 8)
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=images)
        f.create_dataset("ids", data=np.array([3, 9, 162770, 162771, 182637, 182638], np.int32))
        f.create_dataset("attributes", data=np.zeros((6, 40), np.uint8))
    splits = {s: load_split(DataConfig(data_path=str(path)), s).images for s in ("train", "val", "test")}
    assert [len(splits[s]) for s in ("train", "val", "test")] == [3, 2, 1]  # CelebA's partition
    assert torch.equal(splits["val"], torch.from_numpy(images[3:5]))
    ambiguous = tmp_path / "two.h5"
    with h5py.File(ambiguous, "w") as f:
        f.create_dataset("real", data=images)
        f.create_dataset("fake", data=images)
    result = run_cli("train", "vae", "--data", ambiguous, "--fid-samples", "0",
                     "--run-dir", tmp_path / "r")
    assert_one_sentence_error(result, "several 4-d uint8 datasets", "'fake'", "'real'",
                              "--h5-dataset")
    named = run_cli("train", "vae", "--data", ambiguous, "--h5-dataset", "real", "--image-size",
                    "8", "--arch", "mlp", "--steps", "2", "--fid-samples", "0", "--run-dir",
                    tmp_path / "r")
    assert named.returncode == 0, named.stderr


def test_the_small_defects(trained, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert_one_sentence_error(run_cli("train", "vae", "--data", fifo, "--fid-samples", "0",
                                      "--run-dir", tmp_path / "r"),
                              "is neither a regular file nor a folder")
    tiny = tmp_path / "tiny.h5"
    with h5py.File(tiny, "w") as f:
        f.create_dataset("images", data=np.zeros((20, 3, 1, 1), np.uint8))
    assert_one_sentence_error(run_cli("train", "vae", "--data", tiny, "--fid-samples", "0",
                                      "--run-dir", tmp_path / "r2"), "holds 1x1 images")


def test_a_refused_pickle_is_one_sentence_naming_what_it_would_run(trained, tmp_path):
    import hashlib
    import pickle

    run = copy_of(trained, tmp_path)
    checkpoint = run / "checkpoints" / "step-00000010.pt"
    payload = torch.load(checkpoint, weights_only=True)

    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))
    payload["rng"] = Evil()
    buffer = io.BytesIO()
    torch.save(payload, buffer, pickle_module=pickle)
    checkpoint.write_bytes(buffer.getvalue())
    meta = checkpoint.with_suffix(".json")
    record = json.loads(meta.read_text())
    record.update(bytes=len(buffer.getvalue()), sha256=hashlib.sha256(buffer.getvalue()).hexdigest())
    meta.write_text(json.dumps(record))
    result = run_cli("sample", run, "-o", tmp_path / "s.png")
    assert result.returncode == 0, result.stderr  # the checkpoint before it is used
    warning = [line for line in result.stderr.splitlines() if "refuses to unpickle" in line]
    assert len(warning) == 1 and "it names posix.system" in warning[0]
    assert "Weights only load failed" not in result.stderr and "Warning" not in result.stderr


# --- writes only to regular files; nothing hangs on special files ----------------------------

def assert_ends_in_one_sentence(result, *fragments):
    """Exit 2, no traceback, and the last line one error sentence (after progress lines)."""
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("genlab: error: "), result.stderr
    for fragment in fragments:
        assert fragment in last, last


@pytest.mark.parametrize("kind", ["device", "fifo", "symlink"])
def test_outputs_never_replace_a_device_a_fifo_or_a_link(trained, tmp_path, kind):
    target = tmp_path / "out.png"
    if kind == "device":
        target = "/dev/null"
    elif kind == "fifo":
        os.mkfifo(target)
    else:
        (tmp_path / "elsewhere.png").write_bytes(b"keep me")
        target.symlink_to(tmp_path / "elsewhere.png")
    before = os.lstat(target)
    words = {"device": "is a character device", "fifo": "is a FIFO",
             "symlink": "is a symbolic link"}[kind]
    assert_one_sentence_error(in_process("sample", trained, "-o", target), words,
                              "genlab writes only regular files")
    after = os.lstat(target)
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)
    if kind == "symlink":
        assert (tmp_path / "elsewhere.png").read_bytes() == b"keep me"


def test_a_lock_that_is_a_symlink_is_refused_and_its_target_untouched(tmp_path):
    run, outside = tmp_path / "run", tmp_path / "precious.txt"
    run.mkdir()
    outside.write_text("not a PID")
    (run / ".genlab-lock").symlink_to(outside)
    result = in_process("train", "vae", *TINY, "--steps", "2", "--run-dir", run)
    assert_one_sentence_error(result, ".genlab-lock is a symbolic link", "remove the link")
    assert outside.read_text() == "not a PID" and (run / ".genlab-lock").is_symlink()


@pytest.mark.parametrize("kind", ["dev-zero", "fifo"])
def test_a_checkpoint_that_is_a_special_file_falls_back_without_hanging(trained, tmp_path, kind):
    run = copy_of(trained, tmp_path)
    latest = run / "checkpoints" / "step-00000010.pt"
    latest.unlink()
    if kind == "fifo":
        os.mkfifo(latest)
    else:
        latest.symlink_to("/dev/zero")
    started = time.monotonic()
    result = run_cli("sample", run, "-o", tmp_path / "s.png", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "step 5" in result.stdout and time.monotonic() - started < 30
    warning = [line for line in result.stderr.splitlines() if "step-00000010.pt" in line]
    assert len(warning) == 1 and "not a regular file" in warning[0], result.stderr


def test_a_checkpoint_longer_than_its_marker_says_is_not_read_past_it(trained, tmp_path):
    run = copy_of(trained, tmp_path)
    latest = run / "checkpoints" / "step-00000010.pt"
    with open(latest, "r+b") as f:  # a sparse 1 GiB tail: what is read is what the marker says
        f.truncate(1 << 30)
    result = run_cli("sample", run, "-o", tmp_path / "s.png")
    assert result.returncode == 0 and "step 5" in result.stdout, result.stderr
    assert "more than the" in result.stderr and "its marker records" in result.stderr


def test_a_config_that_is_a_fifo_is_one_sentence(trained, tmp_path):
    run = copy_of(trained, tmp_path)
    (run / "config.json").unlink()
    os.mkfifo(run / "config.json")
    assert_one_sentence_error(run_cli("sample", run, "-o", tmp_path / "s.png", timeout=60),
                              "is not a genlab run folder")


def test_a_scores_file_that_is_a_fifo_or_huge_is_refused_or_read_a_line_at_a_time(trained,
                                                                                 tmp_path):
    import tracemalloc

    from genlab.metrics.records import append_record

    run = copy_of(trained, tmp_path)
    checkpoint = run / "checkpoints" / "step-00000010.pt"
    scores = run / "checkpoints" / "step-00000010-metrics.jsonl"
    scores.unlink(missing_ok=True)
    with open(scores, "wb") as f:  # a record, then 64 MiB of zero bytes on one line, then one
        f.write(b'{"step": 10, "fid": 1.5, "metrics": ["fid"]}\n')
        f.truncate(scores.stat().st_size + (64 << 20))
        f.seek(0, 2)
        f.write(b'\n{"step": 10, "fid": 2.5, "metrics": ["fid"]}\n')
    tracemalloc.start()
    try:
        records = read_records(checkpoint)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [r["fid"] for r in records] == [1.5, 2.5] and peak < 8 << 20, peak
    scores.unlink()
    os.mkfifo(scores)  # neither read (it would wait for a writer) nor appended to
    with pytest.raises(GenlabError, match="is a FIFO, not a regular file"):
        read_records(checkpoint)
    with pytest.raises(GenlabError, match="is a FIFO, not a regular file"):
        append_record(checkpoint, {"step": 10})
    assert_one_sentence_error(run_cli("report", run, "-o", tmp_path / "report",
                                      "--no-interpolation", timeout=120),
                              "step-00000010-metrics.jsonl", "FIFO")


# --- sizes checked before allocating ---------------------------------------------------------

def test_an_hdf5_declaring_huge_images_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.h5"
    with h5py.File(path, "w") as f:  # declared, never written: a few KB on disk
        f.create_dataset("images", shape=(2, 3, 100000, 100000), dtype=np.uint8, chunks=(1, 1, 64, 64))
    result = run_cli("train", "vae", "--data", path, "--fid-samples", "0", "--run-dir", tmp_path / "r")
    assert_one_sentence_error(result, "holds 3x100000x100000 images", "--memory-budget 8")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("dataset", ["mnist", "digits"])
def test_a_huge_image_size_is_refused_before_resizing(tmp_path, dataset):
    result = run_cli("train", "vae", "--dataset", dataset, "--data-dir", tmp_path,
                     "--image-size", "4096", "--fid-samples", "0", "--run-dir", tmp_path / "r")
    assert_one_sentence_error(result, f"--image-size 4096 on {dataset}/train", "GiB as uint8",
                              "over --memory-budget 8")


def test_non_square_images_are_named_as_the_cause(tmp_path):
    path = tmp_path / "thin.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=np.zeros((8, 3, 32, 7), np.uint8))
    result = run_cli("train", "vae", "--data", path, "--fid-samples", "0", "--run-dir", tmp_path / "r")
    assert_ends_in_one_sentence(result, "images are 32x7, not square", "--arch mlp")


def test_a_huge_sparse_scalar_log_is_read_line_by_line_and_counted(trained, tmp_path):
    import tracemalloc

    from genlab.train.logging import scan_scalars

    run = copy_of(trained, tmp_path)
    log = run / "scalars.jsonl"
    with open(log, "ab") as f:
        f.write(b"not json\n")
        f.truncate(log.stat().st_size + (64 << 20))  # 64 MiB of zero bytes, no newline
        f.seek(0, 2)
        f.write(b"\n")
    tracemalloc.start()
    try:
        records, damaged = scan_scalars(run)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [r["step"] for r in records if "train/loss" in r] == [5, 10] and damaged == 2
    assert peak < 8 << 20, peak  # a line at a time, never the file


def test_resuming_over_damaged_log_lines_warns_with_their_count(trained, tmp_path):
    run = copy_of(trained, tmp_path)
    with open(run / "scalars.jsonl", "ab") as f:
        f.write(b'{"step": 11, "train/loss": \xff}\n[1, 2]\n\n{"step": "x"}\n')
    resumed = run_cli("train", "vae", *TINY, "--steps", "15", "--saving-steps", "5",
                      "--logging-steps", "5", "--run-dir", run)
    assert resumed.returncode == 0, resumed.stderr
    warning = [line for line in resumed.stderr.splitlines() if "damaged lines dropped" in line]
    assert len(warning) == 1 and "scalars.jsonl: 3 damaged lines" in warning[0], resumed.stderr


# --- small sample sets -----------------------------------------------------------------------

@pytest.mark.parametrize("count, metrics, words", [
    (1, "fid", "fid needs at least 2 images a side"),
    (2, "all", "pr needs at least 4 images a side"),
    (3, "pr", "pr needs at least 4 images a side"),
])
def test_fid_on_too_few_images_is_refused_before_extraction(tmp_path, monkeypatch, count,
                                                            metrics, words):
    from genlab.metrics import inception

    def no_extraction(*args, **kwargs):
        raise AssertionError("the Inception network was loaded")
    monkeypatch.setattr(inception.InceptionFeatures, "__init__", no_extraction)
    for side in "ab":
        np.savez(tmp_path / f"{side}.npz", images=np.zeros((count, 8, 8, 3), np.uint8))
    result = run_cli("fid", tmp_path / "a.npz", tmp_path / "b.npz", "--metrics", metrics)
    assert_one_sentence_error(result, words, f"A has {count}")


def test_too_few_fid_samples_are_refused_before_training_or_generating(trained, tmp_path,
                                                                       monkeypatch):
    from genlab.metrics import evaluate

    def no_generating(*args, **kwargs):
        raise AssertionError("images were generated")
    monkeypatch.setattr(evaluate, "generated_stats", no_generating)
    # The default --metrics all includes precision/recall, which needs 4 images a side.
    words = "--fid-samples 3 is too few; pr needs at least 4 images a side"
    assert_one_sentence_error(in_process("eval", trained, "--fid-samples", "3"), words)
    run = tmp_path / "run"
    assert_one_sentence_error(in_process("train", "vae", *TINY, "--steps", "2", "--fid-samples",
                                         "3", "--run-dir", run), words)
    assert not run.exists()  # refused before the first step


# --- output paths checked up front -----------------------------------------------------------

def test_an_output_folder_that_is_a_file_is_refused_up_front(trained, tmp_path):
    blocker = tmp_path / "taken"
    blocker.write_text("a file")
    assert_one_sentence_error(in_process("report", trained, "-o", blocker), "-o",
                              "is a file, not a folder")
    assert_one_sentence_error(in_process("sweep", "vae", *TINY, "--steps", "2", "--out", blocker),
                              "--out", "is a file, not a folder")
    assert blocker.read_text() == "a file"


def read_only_folders(monkeypatch):
    """Every new file fails as on a read-only file system (mkstemp is how genlab makes one)."""
    import tempfile

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))
    monkeypatch.setattr(tempfile, "mkstemp", read_only)


def test_report_and_prepare_into_a_read_only_folder_stop_before_working(trained, tmp_path,
                                                                        monkeypatch):
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (16, 16)).save(images / "a.png")
    with monkeypatch.context() as patch:
        read_only_folders(patch)
        report = in_process("report", trained, "-o", tmp_path / "ro" / "report")
        prepare = in_process("prepare", images, "-o", tmp_path / "ro.h5")
    assert_one_sentence_error(report, "cannot write", "Read-only file system")
    assert_one_sentence_error(prepare, "cannot write", "ro.h5 (Read-only file system)")
    assert "decoding" not in prepare.stderr and not (tmp_path / "ro").exists()
    assert not (tmp_path / "ro.h5").exists()


def test_a_full_disk_while_writing_the_lock_is_one_sentence_and_leaves_nothing(tmp_path,
                                                                              monkeypatch):
    write = os.write

    def full_for_the_lock(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".genlab-lock"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write(fd, data)
    with monkeypatch.context() as patch:
        patch.setattr(os, "write", full_for_the_lock)
        result = in_process("train", "vae", *TINY, "--steps", "2", "--run-dir", tmp_path / "run")
    assert_one_sentence_error(result, "the disk is full while writing", ".genlab-lock")
    assert not (tmp_path / "run").exists()


def test_a_full_disk_under_tensorboards_writer_thread_is_one_sentence(tmp_path, monkeypatch,
                                                                      capfd):
    from tensorboard.summary.writer import record_writer

    def full(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(record_writer.RecordWriter, "write", full)
    trainer = make_trainer(tmp_path, 10, 10)
    with pytest.raises(GenlabError, match="the disk is full") as error:
        trainer.fit()
    assert "\n" not in str(error.value)
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err and "Exception in thread" not in captured.err


# --- the server's queries and uploads --------------------------------------------------------

@pytest.mark.parametrize("query", ["seed=" + "9" * 5000, "seed=\u0663", "seed=\u00b2",
                                   "run=\u0660", "run=" + "0" * 5000])
def test_the_server_answers_400_to_odd_numbers(client, query):
    response = client.get(f"/api/sample?{query}")
    assert response.status_code == 400 and response.is_json, response.data[:200]
    assert "must be" in response.get_json()["error"]


def test_a_large_upload_is_reduced_before_it_is_copied(monkeypatch):
    from genlab import serve

    copied = []
    for name in ("convert", "crop"):
        original = getattr(Image.Image, name)

        def watched(self, *args, _original=original, **kwargs):
            copied.append(self.size)
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(Image.Image, name, watched)
    for mode in ("RGB", "P", "L"):
        upload = io.BytesIO()
        Image.new(mode, (2000, 1500), 120 if mode != "RGB" else (10, 200, 30)).save(upload, "PNG")
        copied.clear()
        small = serve.image_from_upload(upload.getvalue(), (3, 32, 32))
        assert small.shape == (1, 3, 32, 32)
        full = [size for size in copied if size == (2000, 1500)]
        # Only a palette image is converted whole (to RGB, before reducing); nothing is cropped
        # or converted at full size otherwise.
        assert len(full) == (1 if mode == "P" else 0), (mode, copied)
    assert int(serve.image_from_upload(upload.getvalue(), (1, 32, 32)).float().mean()) == 120
