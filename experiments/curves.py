"""Curves of several runs in one figure: one panel per logged scalar, one line per run, read from
each run's scalars.jsonl (what TensorBoard shows, without TensorBoard).

Usage:  .venv/bin/python experiments/curves.py RUN [RUN ...] -o curves.png
        [--tags train/loss,train/rec,...] [--labels z3,z10,...] [--smooth 20]
Without --tags, every scalar the first run logged is drawn.

        .venv/bin/python experiments/curves.py RUN [RUN ...] --summary 0-50 [--tags ...]
prints, instead of drawing, each tag's mean and peak over the records with steps in [0, 50].
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)], skipping torn lines as genlab's own readers do."""
    series: dict[str, list[tuple[int, float]]] = {}
    for line in (run / "scalars.jsonl").read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        for tag, value in record.items():
            if tag not in ("step", "time") and isinstance(value, (int, float)):
                series.setdefault(tag, []).append((int(record["step"]), float(value)))
    return series


def smoothed(values: list[float], window: int) -> list[float]:
    """A trailing mean over `window` records (1: none)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("-o", "--out", type=Path, default=Path("curves.png"))
    parser.add_argument("--tags", default=None, help="comma-separated scalar tags")
    parser.add_argument("--labels", default=None, help="comma-separated, one per run")
    parser.add_argument("--smooth", type=int, default=20, help="trailing mean over N records")
    parser.add_argument("--summary", default=None, metavar="FIRST-LAST",
                        help="print each tag's mean and peak over steps FIRST..LAST; draw nothing")
    args = parser.parse_args()
    runs = [read_scalars(run) for run in args.runs]
    labels = args.labels.split(",") if args.labels else [run.name for run in args.runs]
    tags = args.tags.split(",") if args.tags else sorted(runs[0])
    if args.summary:
        first, last = (int(part) for part in args.summary.split("-"))
        for series, label in zip(runs, labels):
            for tag in tags:
                values = [v for step, v in series.get(tag, []) if first <= step <= last]
                if values:
                    print(f"{label}  {tag}  steps {first}-{last}: mean {sum(values) / len(values):.4g}, "
                          f"peak {max(values):.4g} ({len(values)} records)")
        return
    columns = min(3, len(tags))
    rows = math.ceil(len(tags) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.0 * rows), squeeze=False)
    for ax, tag in zip(axes.flat, tags):
        for series, label in zip(runs, labels):
            if tag not in series:
                continue
            steps, values = zip(*series[tag])
            window = args.smooth if tag.startswith("train/") else 1
            ax.plot(steps, smoothed(list(values), window), label=label, linewidth=1)
        ax.set_title(tag, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(tags):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(args.out, dpi=110)
    print(f"curves: {args.out}")


if __name__ == "__main__":
    main()
