"""Bad input, tried systematically (hypothesis): random CLI flags, and corrupted IDX, HDF5, image
and checkpoint files given to the real commands. Every case must either run correctly (exit 0)
or stop with exit code 2 and a one-line `... error: ...` sentence: never a traceback, never a
hang (each case has a time limit), never a file lost (inputs and earlier checkpoints are
byte-for-byte intact). The number of cases tried is printed at the end of the run (README
quotes it). These run with the kill -9 trials: `make test-extended` (CI runs both)."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import shutil
import signal
import struct
import tempfile
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import SHARED_MNIST, needs_shared_mnist
from genlab import cli

pytestmark = pytest.mark.extended

CASES: Counter = Counter()   # kind -> cases tried
CLEAN: Counter = Counter()   # kind -> cases that ended cleanly (exit 0, or 2 with one sentence)
RAN: Counter = Counter()     # kind -> of those, cases that ran to the end (exit 0)
TIME_LIMIT = 120             # seconds per case: a hang fails the test
FAST = ["--steps", "1", "--saving-steps", "1", "--val-images", "16", "--fid-samples", "0"]
def cases(n: int) -> settings:
    """n examples, the same ones every run (derandomized: CI sees what a developer saw)."""
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


class _Hang(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: int):
    def expire(signum, frame):
        raise _Hang(f"no outcome within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def genlab(kind: str, *argv) -> tuple[int, str]:
    """Run `genlab ARGV` in this process; check the outcome is clean and count the case."""
    CASES[kind] += 1
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), time_limit(TIME_LIMIT):
        try:
            code = cli.main([str(a) for a in argv])
        except SystemExit as exc:  # argparse's own errors
            code = exc.code
    said = err.getvalue()
    assert code in (0, 2), f"exit {code} for {argv}:\n{said}"
    assert "Traceback" not in said, said
    if code == 2:
        lines = said.strip().splitlines()
        assert lines and "error: " in lines[-1], f"no error sentence for {argv}:\n{said}"
    CLEAN[kind] += 1
    RAN[kind] += code == 0
    return code, said


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def damage_bytes(raw: bytes, kind: str, where: float, noise: bytes = b"") -> bytes:
    """raw cut at, flipped at or zeroed (512 bytes) from the fraction `where` of its length,
    replaced by `noise`, emptied, or left alone ("none")."""
    at = int(len(raw) * where)
    if kind == "truncate":
        return raw[:at]
    if kind in ("flip", "zeros"):
        out = bytearray(raw)
        if kind == "flip" and out:
            out[at] ^= 0xFF
        elif kind == "zeros":
            out[at:at + 512] = bytes(len(out[at:at + 512]))
        return bytes(out)
    if kind == "none":
        return raw
    return noise if kind == "random" else b""


# --- CLI flags ----------------------------------------------------------------------------------

INTS = ["0", "1", "2", "-1", "3", "x", "1.5", "", "99999999999999999999"]
FLAG_VALUES = {
    "--latent-dim": INTS + ["2", "16"],
    "--batch-size": INTS + ["4", "64", "100000"],
    "--learning-rate": ["0", "-1", "nan", "inf", "1e-3", "1e9", "abc", "1e-300"],
    "--seed": ["-1", "0", "7", "99999999999999999999", "s"],
    "--image-size": ["0", "1", "7", "8", "30", "32", "33", "64", "-4", "q"],
    "--logging-steps": INTS,
    "--saving-steps": INTS,
    "--val-images": INTS + ["100000"],
    "--keep-checkpoints": INTS,
    "--lr-half-life": INTS,
    "--device": ["cpu", "auto", "cuda", "cuda:7", "tpu", "", "cpu:0"],
    "--precision": ["fp32", "bf16", "auto", "fp64"],
    "--nonfinite": ["stop", "skip", "ignore"],
    "--train-split": ["train", "test", "val", ""],
    "--val-split": ["train", "test", "holdout"],
    "--channels": ["1", "3", "2", "0"],
    "--epochs": ["0", "-1", "nan", "0.001", "x"],
    "--memory-budget": ["0", "-1", "0.001", "8", "nan"],
    "--fid-samples": ["0", "-1", "1", "x"],
}
MODEL_FLAGS = {
    "vae": {"--arch": ["conv", "mlp", "conv-shallow", "larsen64", "resnet"]},
    "dcgan": {"--generator-loss": ["nonsaturating", "saturating", "wasserstein"],
              "--diff-augment": ["none", "translation", "cutout", "translation,cutout", "color"],
              "--generator-hidden-dim": INTS, "--arch": ["homework", "dcgan64", "big"]},
}


@st.composite
def train_flags(draw):
    model = draw(st.sampled_from(["vae", "dcgan"]))
    table = {**FLAG_VALUES, **MODEL_FLAGS[model]}
    chosen = draw(st.lists(st.sampled_from(sorted(table)), min_size=1, max_size=5, unique=True))
    flags = []
    for flag in chosen:
        flags += [flag, draw(st.sampled_from(table[flag]))]
    if draw(st.booleans()):
        flags.append(draw(st.sampled_from(["--sync-batchnorm", "--compile=false", "--bogus",
                                           "--no-sync-batchnorm"])))
    return model, flags


@cases(150)
@given(train_flags())
def test_random_train_flags_run_or_stop_in_one_sentence(case):
    model, flags = case
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        # The fixed flags first: a fuzzed --steps, --saving-steps, ... given later wins.
        code, said = genlab("flags", "train", model, "--dataset", "digits", *FAST, *flags,
                            "--run-dir", run)
        if code == 2 and "training stopped at step" not in said:
            assert not run.exists(), f"{flags} failed but left {run}"


# --- corrupted IDX files -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mnist_test_images() -> bytes:
    return gzip.decompress((SHARED_MNIST / "t10k-images-idx3-ubyte.gz").read_bytes())


@st.composite
def idx_damage(draw, size: int):
    kind = draw(st.sampled_from(["truncate", "flip", "header", "append", "gzip-cut", "empty"]))
    if kind in ("truncate", "gzip-cut"):
        return kind, draw(st.integers(0, size - 1))
    if kind == "flip":
        return kind, draw(st.lists(st.tuples(st.integers(0, size - 1), st.integers(1, 255)),
                                   min_size=1, max_size=8))
    if kind == "header":  # magic (dtype code, number of dims) or one of the three dimensions
        return kind, (draw(st.integers(0, 3)), draw(st.sampled_from(
            [0, 1, 2, 3, 8, 9, 13, 27, 28, 29, 255, 9999, 10001, 2**31 - 1, 2**32 - 1])))
    if kind == "append":
        return kind, draw(st.binary(min_size=1, max_size=64))
    return kind, None


def damaged_idx(data: bytes, damage) -> bytes:
    kind, how = damage
    if kind == "truncate":
        return data[:how]
    if kind == "flip":
        out = bytearray(data)
        for position, mask in how:
            out[position] ^= mask
        return bytes(out)
    if kind == "header":
        field, value = how
        out = bytearray(data)
        if field == 0:
            out[0:4] = bytes([0, 0, value % 256, (value // 256) % 256])
        else:
            out[4 * field:4 * field + 4] = struct.pack(">I", value % 2**32)
        return bytes(out)
    if kind == "append":
        return data + how
    if kind == "gzip-cut":
        return gzip.compress(data, compresslevel=1)[:how]
    return b""


@needs_shared_mnist
@cases(60)
@given(data=st.data())
def test_corrupted_idx_files_run_or_stop_in_one_sentence(mnist_test_images, data):
    damage = data.draw(idx_damage(len(mnist_test_images)))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "mnist"
        folder.mkdir()
        bad = damaged_idx(mnist_test_images, damage)
        name = "t10k-images-idx3-ubyte" + (".gz" if damage[0] == "gzip-cut" else "")
        (folder / name).write_bytes(bad)
        shutil.copy(SHARED_MNIST / "t10k-labels-idx1-ubyte.gz", folder)
        before = {p.name: digest(p) for p in folder.iterdir()}
        genlab("idx", "train", "vae", "--dataset", "mnist", "--data-dir", folder, "--train-split",
               "test", "--val-split", "test", *FAST, "--run-dir", Path(tmp) / "run")
        assert {p.name: digest(p) for p in folder.iterdir()} == before  # inputs untouched


# --- corrupted HDF5 files ------------------------------------------------------------------------

@st.composite
def hdf5_content(draw):
    dtype = draw(st.sampled_from([np.uint8, np.uint8, np.uint8, np.float32, np.int16, np.bool_]))
    # Half well-formed image shapes (N x C x H x W or N x H x W x C), half anything.
    shape = tuple(draw(st.one_of(
        st.sampled_from([(4, 3, 32, 32), (6, 1, 16, 16), (4, 32, 32, 3), (5, 8, 8, 1),
                         (3, 3, 64, 64), (4, 3, 16, 8), (2, 4, 32, 32), (0, 3, 32, 32)]),
        st.lists(st.sampled_from([0, 1, 2, 3, 4, 5, 8, 16, 32]), min_size=1, max_size=5))))
    layout = draw(st.sampled_from(["dataset", "dataset", "in-group", "no-dataset",
                                   "attribute-only"]))
    damage = draw(st.sampled_from(["none", "none", "none", "truncate", "flip", "zeros"]))
    where = draw(st.floats(0.0, 0.999))
    return dtype, shape, layout, damage, where


@cases(100)
@given(hdf5_content())
def test_corrupted_hdf5_files_run_or_stop_in_one_sentence(content):
    dtype, shape, layout, damage, where = content
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "faces.h5"
        rng = np.random.default_rng(0)
        array = (rng.integers(0, 256, size=shape) if np.prod(shape) else np.zeros(shape)).astype(dtype)
        with h5py.File(path, "w") as handle:
            if layout == "dataset":
                handle.create_dataset("images", data=array)
            elif layout == "in-group":
                handle.create_group("a/b").create_dataset("images", data=array)
            elif layout == "attribute-only":
                handle.attrs["images"] = 1
            else:
                handle.create_group("empty")
        path.write_bytes(damage_bytes(path.read_bytes(), damage, where))
        before = digest(path)
        genlab("hdf5", "train", "vae", "--data", path, "--image-size", "32", *FAST,
               "--run-dir", Path(tmp) / "run")
        assert digest(path) == before


# --- corrupted image folders ---------------------------------------------------------------------

@st.composite
def image_file(draw):
    fmt = draw(st.sampled_from(["PNG", "JPEG", "BMP", "GIF"]))
    mode = draw(st.sampled_from(["L", "RGB", "RGBA", "P", "1", "I;16", "CMYK", "LA"]))
    size = (draw(st.integers(1, 80)), draw(st.integers(1, 80)))
    damage = draw(st.sampled_from(["none"] * 6 + ["truncate", "flip", "random", "empty"]))
    return fmt, mode, size, damage, draw(st.floats(0.0, 0.999)), draw(st.binary(max_size=64))


def write_image(path: Path, spec) -> None:
    fmt, mode, size, damage, where, noise = spec
    buffer = io.BytesIO()
    image = Image.new("RGB", size, (200, 30, 90)).convert(mode)
    try:
        image.save(buffer, format=fmt)
    except (OSError, ValueError, KeyError):  # a mode the format cannot hold: save it as PNG
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="PNG")
    path.write_bytes(damage_bytes(buffer.getvalue(), damage, where, noise))


@cases(100)
@given(st.lists(image_file(), min_size=1, max_size=4))
def test_corrupted_image_folders_run_or_stop_in_one_sentence(specs):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        (folder / "sub").mkdir(parents=True)
        suffix = {"PNG": ".png", "JPEG": ".jpg", "BMP": ".bmp", "GIF": ".gif"}
        for i, spec in enumerate(specs):
            write_image(folder / ("sub" if i % 2 else "") / f"{i}{suffix[spec[0]]}", spec)
        before = {p: digest(p) for p in folder.rglob("*") if p.is_file()}
        genlab("images", "train", "vae", "--data", folder, "--image-size", "32", "--batch-size",
               "2", *FAST, "--run-dir", Path(tmp) / "run")
        assert {p: digest(p) for p in folder.rglob("*") if p.is_file()} == before


# --- corrupted checkpoints -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("ckpt") / "run"
    code, said = genlab("setup", "train", "vae", "--dataset", "digits", "--latent-dim", "4",
                        "--steps", "2", "--saving-steps", "1", "--val-images", "16",
                        "--fid-samples", "0", "--run-dir", run)
    assert code == 0, said
    return run


@st.composite
def checkpoint_damage(draw):
    target = draw(st.sampled_from(["pt", "pt", "json", "both", "delete-pt", "config"]))
    kind = draw(st.sampled_from(["truncate", "flip", "random", "empty"]))
    reseal = draw(st.booleans())  # recompute the sha256: the damage reaches torch.load
    return target, kind, draw(st.floats(0.0, 0.999)), draw(st.binary(max_size=256)), reseal


@cases(60)
@given(checkpoint_damage(), st.sampled_from(["sample", "train"]))
def test_corrupted_checkpoints_are_skipped_or_refused_in_one_sentence(trained_run, damage, command):
    target, kind, where, noise, reseal = damage
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        shutil.copytree(trained_run, run)
        latest = run / "checkpoints" / "step-00000002.pt"
        meta = latest.with_suffix(".json")
        if target in ("pt", "both"):
            latest.write_bytes(damage_bytes(latest.read_bytes(), kind, where, noise))
            if reseal:
                data = latest.read_bytes()
                record = json.loads(meta.read_text())
                record.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
                meta.write_text(json.dumps(record))
        if target in ("json", "both"):
            meta.write_bytes(damage_bytes(meta.read_bytes(), kind, where, noise))
        if target == "delete-pt":
            latest.unlink()
        if target == "config":
            config = run / "config.json"
            config.write_bytes(damage_bytes(config.read_bytes(), kind, where, noise))
        previous = run / "checkpoints" / "step-00000001.pt"
        kept = digest(previous)
        if command == "sample":
            genlab("checkpoints", "sample", run, "-o", Path(tmp) / "grid.png")
        else:
            genlab("checkpoints", "train", "vae", "--dataset", "digits", "--latent-dim", "4",
                   "--steps", "3", "--saving-steps", "1", "--val-images", "16", "--fid-samples",
                   "0", "--run-dir", run)
        assert digest(previous) == kept  # the good checkpoint is never lost


# --- damaged bytes in any file of a run folder ------------------------------------------------

@pytest.fixture(scope="module")
def scored_run(trained_run, tmp_path_factory) -> Path:
    """The trained run with a scores record and a stale lock file: every kind of file a run
    folder holds."""
    from genlab.metrics.records import append_record

    run = tmp_path_factory.mktemp("scored") / "run"
    shutil.copytree(trained_run, run)
    append_record(run / "checkpoints" / "step-00000002.pt",
                  {"step": 2, "fid": 100.0, "metrics": ["fid"],
                   "settings": {"protocol": "2 vs 2", "precision": "fp32"}})
    (run / ".genlab-lock").write_text("12345\n")
    return run


@cases(60)
@given(st.data(), st.sampled_from(["sample", "train", "report"]))
def test_damaged_bytes_in_any_run_folder_file_work_or_stop_in_one_sentence(scored_run, data,
                                                                            command):
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        shutil.copytree(scored_run, run)
        files = sorted(p for p in run.rglob("*") if p.is_file() and p.suffix != ".png")
        target = data.draw(st.sampled_from(files), label="file")
        kind = data.draw(st.sampled_from(["truncate", "flip", "random", "empty", "zeros"]))
        target.write_bytes(damage_bytes(target.read_bytes(), kind, data.draw(st.floats(0, 0.999)),
                                        data.draw(st.binary(max_size=64))))
        argv = {"sample": ["sample", run, "-o", Path(tmp) / "grid.png"],
                "report": ["report", run, "-o", Path(tmp) / "report", "--no-interpolation"],
                "train": ["train", "vae", "--dataset", "digits", "--latent-dim", "4", "--steps",
                          "3", "--saving-steps", "1", "--val-images", "16", "--fid-samples", "0",
                          "--run-dir", run]}[command]
        genlab("run folders", *argv)


# --- hostile config.json values -------------------------------------------------------------

HOSTILE = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
                    st.lists(st.integers(-3, 3), max_size=3), st.dictionaries(st.text(max_size=3),
                                                                              st.integers(), max_size=2))


@cases(60)
@given(st.data())
def test_hostile_config_values_work_or_stop_in_one_sentence(trained_run, data):
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        shutil.copytree(trained_run, run)
        config = json.loads((run / "config.json").read_text())
        section = data.draw(st.sampled_from(["model_config", "data", "train", "eval", None]))
        if section is None:
            key = data.draw(st.sampled_from(["model", "image_shape", "model_config", "train"]))
            config[key] = data.draw(HOSTILE)
        else:
            config[section][data.draw(st.sampled_from(sorted(config[section])))] = data.draw(HOSTILE)
        (run / "config.json").write_text(json.dumps(config))
        genlab("configs", "sample", run, "-o", Path(tmp) / "grid.png")


# --- decompression bombs and huge images -------------------------------------------------------

@cases(12)
@given(st.integers(1, 30000), st.integers(1, 30000), st.sampled_from(["PNG", "GIF"]))
def test_images_claiming_any_size_work_or_stop_in_one_sentence(width, height, kind):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        Image.new("1" if kind == "PNG" else "L", (width, height)).save(folder / f"x.{kind.lower()}")
        Image.new("RGB", (40, 40)).save(folder / "ok.png")
        genlab("image sizes", "prepare", folder, "-o", Path(tmp) / "x.h5", "--size", "16")


# --- the server's uploads ---------------------------------------------------------------------

@cases(40)
@given(st.one_of(st.binary(max_size=2048),
                 st.tuples(st.integers(1, 12000), st.integers(1, 12000),
                           st.sampled_from(["PNG", "JPEG", "GIF", "BMP"]))),
       st.sampled_from(["0", "all", "-1", "x", "9"]), st.text(max_size=6))
def test_any_upload_gets_an_image_or_a_json_sentence(trained_run, upload, run_arg, seed):
    from genlab.serve import create_app, load_runs

    CASES["uploads"] += 1
    if isinstance(upload, tuple):
        width, height, kind = upload
        buffer = io.BytesIO()
        Image.new("1" if kind in ("PNG", "GIF") else "L", (width, height)).save(buffer, format=kind)
        upload = buffer.getvalue()
    client = create_app(load_runs([str(trained_run)], lambda message: None)).test_client()
    response = client.post(f"/api/reconstruct?run={run_arg}&seed={seed}",
                           data={"image": (io.BytesIO(upload), "x")})
    if response.status_code == 200:
        assert response.mimetype == "image/png"
        RAN["uploads"] += 1
    else:
        assert response.status_code in (400, 413) and response.is_json, response.data[:200]
        assert response.get_json()["error"]
    CLEAN["uploads"] += 1


def test_report_the_cases_tried():
    """Last in the file: the figures docs/reliability.md quotes."""
    total, clean = sum(CASES.values()), sum(CLEAN.values())
    print(f"\nbad-input cases tried: {total}, clean outcomes: {clean} ("
          + ", ".join(f"{k} {CLEAN[k]}/{CASES[k]} ({RAN[k]} ran)" for k in sorted(CASES)) + ")")
    assert total >= 450 and clean == total
