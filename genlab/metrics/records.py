"""Scores stored beside the checkpoint they measured: `checkpoints/step-XXXXXXXX-metrics.jsonl`,
one JSON object per evaluation (its named values, the metrics that made them and every setting
that makes two scores comparable), appended and fsynced; and the same values in TensorBoard as
`metrics/<name>` at the checkpoint's step."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
from pathlib import Path

from genlab.errors import GenlabError


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def metrics_path(checkpoint: Path) -> Path:
    return checkpoint.with_name(f"{checkpoint.stem}-metrics.jsonl")


def read_records(checkpoint: Path) -> list[dict]:
    """The scores stored for a checkpoint; a torn or damaged line (a killed process, a bad byte)
    is skipped."""
    path = metrics_path(checkpoint)
    records = []
    if path.is_file():
        for line in path.read_bytes().splitlines():
            with contextlib.suppress(ValueError):  # not JSON, or not UTF-8
                record = json.loads(line)
                if isinstance(record, dict):
                    records.append(record)
    return records


def append_record(checkpoint: Path, record: dict) -> Path:
    path = metrics_path(checkpoint)
    try:
        with open(path, "a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        values = ", ".join(f"{k} {v:.6g}" for k, v in record.items()
                           if isinstance(v, float) and k != "seconds")
        raise GenlabError(f"cannot write {path} ({exc.strerror}); the scores were {values}; "
                          "make the run folder writable and run the command again") from None
    return path


def store_record(checkpoint: Path, record: dict, step: int) -> None:
    """A record appended beside its checkpoint and its values (as the metric registry names
    them) in TensorBoard."""
    from genlab.metrics.registry import values_of

    append_record(checkpoint, record)
    log_tensorboard(checkpoint.parent.parent, step, values_of(record))


def log_tensorboard(run_dir: Path, step: int, values: dict[str, float]) -> None:
    """values as `metrics/<name>` at `step`, in an events file of their own."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(run_dir), filename_suffix=".metrics")
    try:
        for name, value in values.items():
            writer.add_scalar(f"metrics/{name}", value, step)
    finally:
        writer.close()
