"""Run logs: TensorBoard event files and the same scalars as JSON lines in the run folder."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Callable

import torch

from genlab.errors import GenlabError
from genlab.fsutil import atomic_write_bytes, cannot_write, read_lines
from genlab.grid import make_grid

SCALARS_FILE = "scalars.jsonl"


def read_scalars(run_dir: Path) -> list[dict]:
    """The run's scalar records, one dict per logging event with an integer step; a torn or
    damaged line (a killed process, a bad byte) is skipped."""
    return scan_scalars(run_dir)[0]


def scan_scalars(run_dir: Path) -> tuple[list[dict], int]:
    """(the run's scalar records, the number of damaged lines skipped), read line by line: a
    line longer than MAX_LINE bytes (zero bytes of a damaged or sparse file) is skipped unread."""
    path = Path(run_dir) / SCALARS_FILE
    records, damaged = [], 0
    if path.is_file():
        for line in read_lines(path, MAX_LINE, "scalar log"):
            try:
                record = json.loads(line) if line is not None else None
            except ValueError:  # not JSON, or not UTF-8
                record = None
            if isinstance(record, dict) and isinstance(record.get("step"), int):
                records.append(record)
            elif line is None or line.strip():
                damaged += 1
    return records, damaged


MAX_LINE = 1 << 20  # a record is a few hundred bytes


def _quiet_event_writer_errors() -> None:
    """TensorBoard writes events from a thread that re-raises a failed write (a full disk),
    which prints a traceback; the writer raises the same error again at its next call from the
    training thread, where RunLogger turns it into one sentence. So that thread's OSError is
    left to that call (every other thread's exception is printed as before)."""
    import threading

    previous = threading.excepthook
    if getattr(previous, "genlab_quiet", False):
        return

    def hook(args):
        if (type(args.thread).__name__ == "_AsyncWriterThread"
                and isinstance(args.exc_value, OSError)):
            return
        previous(args)
    hook.genlab_quiet = True
    threading.excepthook = hook


class RunLogger:
    """Writes scalars and image grids for one run, resuming cleanly after step `start_step`.

    On resume, records after `start_step` (logged by a process that died before its next
    checkpoint) are dropped from both the JSON lines and TensorBoard (purge_step), so the curves
    show each step once.
    """

    def __init__(self, run_dir: Path, start_step: int = 0,
                 warn: Callable[[str], None] | None = None):
        from torch.utils.tensorboard import SummaryWriter  # slow import; only when training

        _quiet_event_writer_errors()

        self.run_dir = Path(run_dir)
        path = self.run_dir / SCALARS_FILE
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if start_step == 0:
                # A start from step 0 keeps nothing an earlier try logged before it died
                # (there was no checkpoint to resume): one set of records, one events file.
                for old in self.run_dir.glob("events.out.tfevents.*"):
                    old.unlink()
                path.unlink(missing_ok=True)
            elif path.exists():
                records, damaged = scan_scalars(self.run_dir)
                if damaged and warn:
                    warn(f"{path}: {damaged} damaged line{'s' if damaged > 1 else ''} dropped "
                         f"(not a JSON record with a step); the records up to step {start_step} "
                         "are kept")
                kept = [r for r in records if r["step"] <= start_step]
                atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in kept).encode())
            self._jsonl = path.open("a")
            # purge_step: TensorBoard hides what an earlier process logged after the checkpoint.
            self.writer = SummaryWriter(str(self.run_dir),
                                        purge_step=start_step + 1 if start_step else None)
        except OSError as exc:
            raise GenlabError(cannot_write(path, exc)) from None

    def _writing(self, what: Callable[[], None], file: Path | None = None) -> None:
        """A log write to `file` (default: the TensorBoard events file); a full disk or a
        read-only folder becomes one sentence (the last checkpoint is intact), as for
        checkpoints."""
        try:
            what()
        except OSError as exc:
            file = file or self.run_dir / "events.out.tfevents.*"
            raise GenlabError(f"{cannot_write(file, exc)}; the last checkpoint is intact") from None

    def scalars(self, step: int, values: dict[str, float]) -> None:
        def write_jsonl():
            self._jsonl.write(json.dumps({"step": step, "time": round(time.time(), 3), **values})
                              + "\n")
            self._jsonl.flush()
        self._writing(lambda: [self.writer.add_scalar(tag, value, step)
                               for tag, value in values.items()])
        self._writing(write_jsonl, self.run_dir / SCALARS_FILE)

    def images(self, step: int, grids: dict[str, torch.Tensor]) -> None:
        """grids: name -> images (N, C, H, W) in [0, 1], logged as `images/<name>`."""
        self._writing(lambda: [self.writer.add_image(f"images/{name}", make_grid(images), step)
                               for name, images in grids.items()])

    def histograms(self, step: int, values: dict[str, torch.Tensor]) -> None:
        """Distributions (TensorBoard only): the VAE's KL per latent dimension."""
        self._writing(lambda: [self.writer.add_histogram(tag, tensor.detach().cpu(), step)
                               for tag, tensor in values.items()])

    def flush(self) -> None:
        self._writing(self.writer.flush)

    def close(self) -> None:
        try:
            self._writing(self.writer.close)
        finally:
            with contextlib.suppress(OSError):
                self._jsonl.close()
