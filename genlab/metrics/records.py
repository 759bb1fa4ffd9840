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
from genlab.fsutil import cannot_write, read_lines, refuse_special

MAX_RECORD_BYTES = 1 << 20  # a record is a few kB: a longer line is damage


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def metrics_path(checkpoint: Path) -> Path:
    return checkpoint.with_name(f"{checkpoint.stem}-metrics.jsonl")


def _well_formed(record) -> bool:
    """Whether a parsed line has the shape every reader relies on: a step; settings, if any, a
    dict; lists of metrics that are lists of names; values of registered metrics that are
    numbers; and the values each metric it names always holds (a hand-edited
    `{"metrics": null}`, `"fid": "low"` or a deleted value would otherwise stop train, sweep or
    report with a traceback)."""
    from genlab.metrics.registry import METRICS

    if not (isinstance(record, dict) and type(record.get("step")) is int and record["step"] >= 0
            and isinstance(record.get("settings", {}), dict)
            and isinstance(record.get("metric", ""), str)):
        return False
    if "metrics" in record and not (isinstance(record["metrics"], list)
                                    and all(isinstance(n, str) for n in record["metrics"])):
        return False
    keys = {key for metric in METRICS.values() for key in metric.keys}
    if not all(type(record[key]) in (int, float) for key in keys & record.keys()):
        return False
    named = [*record.get("metrics", []), record.get("metric")]
    return all(key in record for name in named if name in METRICS
               for key in METRICS[name].required)


def read_records(checkpoint: Path) -> list[dict]:
    """The scores stored for a checkpoint; a torn or damaged line (a killed process, a bad byte,
    a line longer than any record, a record of the wrong shape) is skipped. Read a line at a
    time, from a regular file only (a FIFO or a device in its place is refused in one
    sentence)."""
    path = metrics_path(checkpoint)
    records = []
    if not os.path.lexists(path):
        return records
    try:
        for line in read_lines(path, max_line=MAX_RECORD_BYTES, what="scores file"):
            with contextlib.suppress(ValueError, TypeError):  # None (too long), not JSON, not UTF-8
                record = json.loads(line)
                if _well_formed(record):
                    records.append(record)
    except OSError as exc:  # unreadable, or a link to nothing
        raise GenlabError(f"cannot read the scores file {path} ({exc.strerror or exc}); make it "
                          "readable, or delete it to score the checkpoint again") from None
    return records


def _scores(record: dict) -> str:
    """A record's scores in words, for an error that must not lose them."""
    return ", ".join(f"{k} {v:.6g}" for k, v in record.items()
                     if isinstance(v, float) and k != "seconds")


def append_record(checkpoint: Path, record: dict) -> Path:
    path = metrics_path(checkpoint)
    try:
        # appending to a FIFO would block, to a device would vanish, a folder cannot be opened
        refuse_special(path)
    except GenlabError as exc:
        raise GenlabError(f"cannot write {path} ({exc}); the scores were {_scores(record)}") from None
    try:
        with open(path, "a+b") as f:
            line = json.dumps(record, sort_keys=True).encode() + b"\n"
            if f.seek(0, os.SEEK_END) > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":  # a line torn by a full disk or a kill: end it first,
                    line = b"\n" + line  # or this record would be glued to it and lost
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise GenlabError(f"{cannot_write(path, exc)}; the scores were {_scores(record)}") from None
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
