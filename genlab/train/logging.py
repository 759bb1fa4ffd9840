"""Run logs: TensorBoard event files and the same scalars as JSON lines in the run folder."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from genlab.fsutil import atomic_write_bytes
from genlab.viz.grid import make_grid

SCALARS_FILE = "scalars.jsonl"


def read_scalars(run_dir: Path) -> list[dict]:
    """The run's scalar records, one dict per logging event; a torn last line is skipped."""
    path = Path(run_dir) / SCALARS_FILE
    records = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


class RunLogger:
    """Writes scalars and image grids for one run, resuming cleanly after step `start_step`.

    On resume, records after `start_step` (logged by a process that died before its next
    checkpoint) are dropped from both the JSON lines and TensorBoard (purge_step), so the curves
    show each step once.
    """

    def __init__(self, run_dir: Path, start_step: int = 0):
        from torch.utils.tensorboard import SummaryWriter  # slow import; only when training

        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / SCALARS_FILE
        if start_step and path.exists():
            kept = [r for r in read_scalars(self.run_dir) if r.get("step", 0) <= start_step]
            atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in kept).encode())
        self._jsonl = path.open("a")
        self.writer = SummaryWriter(str(self.run_dir),
                                    purge_step=start_step + 1 if start_step else None)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)
        self._jsonl.write(json.dumps({"step": step, "time": round(time.time(), 3), **values}) + "\n")
        self._jsonl.flush()

    def images(self, step: int, grids: dict[str, torch.Tensor]) -> None:
        """grids: name -> images (N, C, H, W) in [0, 1], logged as `images/<name>`."""
        for name, images in grids.items():
            self.writer.add_image(f"images/{name}", make_grid(images), step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
        self._jsonl.close()
