"""Hostile trials: special files, huge sizes, tiny sample sets, unwritable outputs, odd server
queries and damaged logs, each run as a user would run it, each judged clean or not.

Every case runs `genlab ...` in a fresh Python (a fault such as a full disk or a read-only
folder is injected by a preamble that patches the one call that fails), with a 120 s limit. A
case is clean when:
* it ends within the limit, with exit 0, or with exit 2 and a last stderr line that is one
  `genlab: error: ...` sentence (no traceback, nothing after it);
* the words the case expects are in that line or in the warnings (the cause is named);
* the case's own check holds: no file outside the run written, no device or FIFO replaced,
  nothing half-written, the peak memory within its bound.

Usage:  nice -n 19 .venv/bin/python benchmarks/hostile_trials.py [--jobs 2]
It prints one line per case and a table of kinds; exit 1 if any case is not clean.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
LIMIT_S = 120

# Preambles: run before genlab's main in the child; each makes one call fail as on a bad disk.
PEAK = ("import atexit, resource, sys\n"
        "atexit.register(lambda: print('peak-rss-mb', resource.getrusage(resource.RUSAGE_SELF)"
        ".ru_maxrss // 1024, file=sys.stderr))\n")
READ_ONLY = ("import errno, os, tempfile\n"
             "def _ro(*a, **k): raise OSError(errno.EROFS, os.strerror(errno.EROFS))\n"
             "tempfile.mkstemp = _ro\n")
FULL_AT_LOCK = ("import errno, os\n_write = os.write\n"
                "def _w(fd, data):\n"
                "    if os.readlink(f'/proc/self/fd/{fd}').endswith('.genlab-lock'):\n"
                "        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))\n"
                "    return _write(fd, data)\n"
                "os.write = _w\n")
FULL_UNDER_TENSORBOARD = ("import errno, os\n"
                          "from tensorboard.summary.writer import record_writer\n"
                          "def _full(self, data): raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))\n"
                          "record_writer.RecordWriter.write = _full\n")


@dataclass
class Case:
    kind: str
    name: str
    argv: list[str] | None               # genlab's arguments (None: `script` runs instead)
    expect: tuple[str, ...] = ()          # words of the error sentence or a warning
    check: Callable[[], str | None] = lambda: None   # None when the side effects are right
    peak_mb: int | None = None            # at most this peak resident size (PEAK preamble)
    preamble: str = ""
    script: str | None = None             # a Python program run instead of genlab
    exit_codes: tuple[int, ...] = (0, 2)
    outcome: str = field(default="", init=False)


def run_case(case: Case) -> Case:
    if case.script is not None:
        program = case.script
    else:
        program = (case.preamble + "import sys\nfrom genlab.cli import main\n"
                   f"sys.exit(main({json.dumps(case.argv)}))\n")
    started = time.monotonic()
    try:
        result = subprocess.run([sys.executable, "-c", program], cwd=REPO, capture_output=True,
                                text=True, timeout=LIMIT_S,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})
    except subprocess.TimeoutExpired:
        case.outcome = f"NOT CLEAN: still running after {LIMIT_S} s"
        return case
    seconds = time.monotonic() - started
    lines = [l for l in result.stderr.strip().splitlines() if not l.startswith("peak-rss-mb")]
    problems = []
    if result.returncode not in case.exit_codes:
        problems.append(f"exit {result.returncode}")
    if "Traceback" in result.stderr or "Exception in thread" in result.stderr:
        problems.append("a traceback")
    if result.returncode == 2 and not (lines and lines[-1].startswith("genlab: error: ")):
        problems.append("no one-sentence error last")
    said = "\n".join(lines + result.stdout.splitlines())
    problems += [f"does not say {w!r}" for w in case.expect if w not in said]
    side = case.check()
    if side:
        problems.append(side)
    peaks = [int(l.split()[1]) for l in result.stderr.splitlines() if l.startswith("peak-rss-mb")]
    if case.peak_mb is not None and not (peaks and peaks[0] <= case.peak_mb):
        problems.append(f"peak {peaks[0] if peaks else '?'} MB, over {case.peak_mb} MB")

    last = (lines or result.stdout.strip().splitlines() or [""])[-1][:150]
    if peaks:
        last += f" [peak resident {peaks[0]} MB]"
    case.outcome = (("clean" if not problems else "NOT CLEAN: " + "; ".join(problems))
                    + f" (exit {result.returncode}, {seconds:.0f} s): {last}")
    return case


def unchanged(path: Path, content: bytes) -> Callable[[], str | None]:
    return lambda: None if path.read_bytes() == content else f"{path} was overwritten"


def still(path: str | Path, is_kind: Callable[[int], bool], words: str) -> Callable[[], str | None]:
    import stat

    return lambda: None if is_kind(os.lstat(path).st_mode) else f"{path} is no longer {words}"


def absent(*paths: Path) -> Callable[[], str | None]:
    return lambda: next((f"{p} was written" for p in paths if p.exists()), None)


def cases(root: Path, run: Path) -> list[Case]:
    import shutil
    import stat

    def copy(name: str) -> Path:
        target = root / name
        shutil.copytree(run, target)
        return target

    out: list[Case] = []
    add = out.append
    tiny = ["--dataset", "digits", "--latent-dim", "4", "--fid-samples", "0"]

    # 1. writes only to regular files
    fifo = root / "out.fifo"
    os.mkfifo(fifo)
    add(Case("outputs that are not regular files", "sample -o /dev/null",
             ["sample", str(run), "-o", "/dev/null"], ("is a character device",),
             still("/dev/null", stat.S_ISCHR, "a character device")))
    add(Case("outputs that are not regular files", "sample -o a FIFO",
             ["sample", str(run), "-o", str(fifo)], ("is a FIFO",),
             still(fifo, stat.S_ISFIFO, "a FIFO")))
    locked, outside = root / "locked", root / "outside.txt"
    locked.mkdir()
    outside.write_bytes(b"precious")
    (locked / ".genlab-lock").symlink_to(outside)
    add(Case("outputs that are not regular files", "a .genlab-lock symlinked outside the run",
             ["train", "vae", *tiny, "--steps", "2", "--run-dir", str(locked)],
             ("is a symbolic link",), unchanged(outside, b"precious")))

    # 2. nothing hangs on special files
    zero = copy("zero")
    (zero / "checkpoints" / "step-00000004.pt").unlink()
    (zero / "checkpoints" / "step-00000004.pt").symlink_to("/dev/zero")
    add(Case("inputs that are special files", "a checkpoint linked to /dev/zero",
             ["sample", str(zero), "-o", str(root / "z.png")], ("not a regular file", "step 2")))
    fifo_run = copy("fifo-run")
    (fifo_run / "checkpoints" / "step-00000004.pt").unlink()
    os.mkfifo(fifo_run / "checkpoints" / "step-00000004.pt")
    add(Case("inputs that are special files", "a checkpoint that is a FIFO",
             ["sample", str(fifo_run), "-o", str(root / "f.png")], ("not a regular file", "step 2")))

    # 3. sizes checked before allocating
    huge = root / "huge.h5"
    with h5py.File(huge, "w") as f:
        f.create_dataset("images", shape=(2, 3, 100000, 100000), dtype=np.uint8, chunks=(1, 1, 64, 64))
    add(Case("sizes beyond memory", "--data: an HDF5 declaring 100000x100000 images",
             ["train", "vae", "--data", str(huge), "--fid-samples", "0", "--run-dir", str(root / "h")],
             ("3x100000x100000", "--memory-budget"), absent(root / "h"), preamble=PEAK))
    (root / "empty").mkdir()
    add(Case("sizes beyond memory", "--image-size 4096 on MNIST",
             ["train", "vae", "--dataset", "mnist", "--data-dir", str(root / "empty"), "--image-size",
              "4096", "--fid-samples", "0", "--run-dir", str(root / "m")],
             ("--image-size 4096 on mnist/train", "--memory-budget"), preamble=PEAK))
    sparse = copy("sparse")
    with open(sparse / "scalars.jsonl", "ab") as f:
        f.truncate((sparse / "scalars.jsonl").stat().st_size + (2 << 30))  # 2 GiB of zero bytes
    add(Case("sizes beyond memory", "resuming over a 2 GiB sparse scalars.jsonl",
             ["train", "vae", *tiny, "--steps", "6", "--saving-steps", "2", "--run-dir", str(sparse)],
             ("1 damaged line dropped",), preamble=PEAK, peak_mb=1500))
    thin = root / "thin.h5"
    with h5py.File(thin, "w") as f:
        f.create_dataset("images", data=np.zeros((8, 3, 32, 7), np.uint8))
    add(Case("sizes beyond memory", "--data of 32x7 images",
             ["train", "vae", "--data", str(thin), "--fid-samples", "0", "--run-dir", str(root / "t")],
             ("32x7, not square",)))

    # 4. small sample sets
    for n, metrics, words in ((1, "fid", "fid needs at least 2"), (2, "all", "pr needs at least 4")):
        np.savez(root / f"n{n}.npz", images=np.zeros((n, 8, 8, 3), np.uint8))
        add(Case("sample sets too small", f"genlab fid --metrics {metrics} on {n} image(s) a side",
                 ["fid", str(root / f"n{n}.npz"), str(root / f"n{n}.npz"), "--metrics", metrics],
                 (words,)))

    # 5. output paths checked up front
    taken = root / "taken"
    taken.write_bytes(b"a file")
    add(Case("unwritable outputs", "report -o an existing file",
             ["report", str(run), "-o", str(taken)], ("is a file, not a folder",),
             unchanged(taken, b"a file")))
    add(Case("unwritable outputs", "sweep --out an existing file",
             ["sweep", "vae", *tiny, "--steps", "2", "--out", str(taken)],
             ("is a file, not a folder",), unchanged(taken, b"a file")))
    add(Case("unwritable outputs", "report -o in a read-only folder",
             ["report", str(run), "-o", str(root / "ro-report")], ("Read-only file system",),
             absent(root / "ro-report"), preamble=READ_ONLY))
    images = root / "images"
    images.mkdir()
    Image.new("RGB", (16, 16)).save(images / "a.png")
    add(Case("unwritable outputs", "prepare -o in a read-only folder",
             ["prepare", str(images), "-o", str(root / "ro.h5")], ("Read-only file system",),
             absent(root / "ro.h5"), preamble=READ_ONLY))
    add(Case("unwritable outputs", "a fresh train on a full disk (the lock's PID)",
             ["train", "vae", *tiny, "--steps", "2", "--run-dir", str(root / "full")],
             ("the disk is full",), absent(root / "full"), preamble=FULL_AT_LOCK))
    add(Case("unwritable outputs", "TensorBoard's writer thread on a full disk",
             ["train", "vae", *tiny, "--steps", "4", "--run-dir", str(root / "tb")],
             ("the disk is full",), preamble=FULL_UNDER_TENSORBOARD))

    # 6. the server
    x = (np.arange(6300) % 256).astype(np.uint8)  # a 6300x6300 RGB PNG, written here
    pixels = np.empty((6300, 6300, 3), np.uint8)
    pixels[:, :, 0], pixels[:, :, 1], pixels[:, :, 2] = x[None], x[:, None], 128
    Image.fromarray(pixels).save(root / "upload.png", compress_level=9)
    del pixels
    client = (f"UPLOAD = {str(root / 'upload.png')!r}\n"
              f"from genlab.serve import create_app, load_runs\n"
              f"c = create_app(load_runs([{str(run)!r}], print)).test_client()\n")
    for name, query in (("/api/sample?seed= with 5,000 digits", "seed=" + "9" * 5000),
                        ("/api/sample?seed= with a non-ASCII digit", "seed=\\u00b2")):
        add(Case("server queries and uploads", name, None, ("400", "must be"), script=client + (
            f"r = c.get('/api/sample?{query}')\n"
            "print(r.status_code, r.get_json()['error'])\n"
            "import sys; sys.exit(0 if r.status_code == 400 else 1)\n")))
    add(Case("server queries and uploads",
             "near-limit uploads (6300x6300 PNG): one, then 20 in a row", None,
             ("peak rise", "kept"), script=client + UPLOADS))

    # 7. damaged logs
    damaged = copy("damaged")
    with open(damaged / "scalars.jsonl", "ab") as f:
        f.write(b'{"step": 3, "train/loss": \xff}\n[1]\n')
    add(Case("damaged logs", "resuming over damaged scalars.jsonl lines",
             ["train", "vae", *tiny, "--steps", "6", "--saving-steps", "2", "--run-dir", str(damaged)],
             ("2 damaged lines dropped",)))
    return out


UPLOADS = """
import io, resource, sys
import numpy as np
from PIL import Image
def rss():
    return int(open('/proc/self/statm').read().split()[1]) * 4096 / 2**20
data = open(UPLOAD, 'rb').read()
before = rss()
peak0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
codes = [c.post('/api/reconstruct?run=0', data={'image': (io.BytesIO(data), 'u.png')}).status_code]
first = rss()
peak1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
for _ in range(19):
    codes.append(c.post('/api/reconstruct?run=0', data={'image': (io.BytesIO(data), 'u.png')}).status_code)
last = rss()
rise = peak1 - max(peak0, before)
print(f'peak rise {rise:.0f} MB for one upload; kept after 1: {first - before:.0f} MB, after 20: {last - before:.0f} MB')
sys.exit(0 if codes == [200] * 20 and rise < 400 and last - first < 50 else 1)
"""

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="cases run at once (default: 2)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run = root / "run"
        subprocess.run([sys.executable, "-m", "genlab", "train", "vae", "--dataset", "digits",
                        "--latent-dim", "4", "--steps", "4", "--saving-steps", "2", "--logging-steps",
                        "2", "--fid-samples", "0", "--run-dir", str(run)], cwd=REPO, check=True,
                       capture_output=True)
        todo = cases(root, run)
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            done = list(pool.map(run_case, todo))
    kinds: dict[str, list[int]] = {}
    for case in done:
        print(f"{case.kind:<36} {case.name:<56} {case.outcome}")
        tally = kinds.setdefault(case.kind, [0, 0])
        tally[0] += 1
        tally[1] += case.outcome.startswith("clean")
    print()
    print("| kind | trials | clean |")
    print("|---|---|---|")
    for kind, (n, clean) in kinds.items():
        print(f"| {kind} | {n} | {clean} |")
    total, clean = len(done), sum(c.outcome.startswith("clean") for c in done)
    print(f"| all | {total} | {clean} |")
    return 0 if clean == total else 1


if __name__ == "__main__":
    sys.exit(main())
