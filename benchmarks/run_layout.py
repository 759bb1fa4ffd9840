"""How to lay out the homework's MNIST runs on a small CPU: one run on every core, one run with
--compile, or several runs side by side on one core each.

Each layout trains real `genlab train` runs on the MNIST training split (--steps each, validation
and checkpoints every 1,000 steps as in a full run, no FID), one layout after another on an
otherwise idle machine, and reports each run's wall time (process start to exit: data loading,
compiling and checkpoints included) and the layout's throughput in training images per second
of wall time, against the baseline layout (one eager run on all cores):

  eager        one run, torch's default threads (all cores);
  compile      one run with --compile (torch.compile of each network's forward);
  side-by-side N runs at once (N = cores), OMP_NUM_THREADS=1 each, different seeds.

A sweep gets the side-by-side layout with `OMP_NUM_THREADS=1 genlab sweep ... --parallel N`.
The 32x32 homework networks do 0.02-0.05 GFLOP per image (docs/benchmarks.md): at batch 32-64
a step is many small kernels, too small for a second thread to halve, so cores are better spent
on separate runs.

Usage:  .venv/bin/python benchmarks/run_layout.py [--models vae dcgan] [--steps 3000]
            [--data-dir ../shared/data/mnist] [--out /tmp/run-layout]
About 15 minutes on 2 cores at the default 3,000 steps.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

BATCH = {"vae": 32, "dcgan": 64}  # the homework's defaults


def train(model: str, run_dir: Path, steps: int, data_dir: str, seed: int, extra: list[str],
          threads: int | None) -> subprocess.Popen:
    env = dict(os.environ)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    argv = [sys.executable, "-m", "genlab", "train", model, "--data-dir", data_dir,
            "--steps", str(steps), "--fid-samples", "0", "--seed", str(seed),
            "--run-dir", str(run_dir), *extra]
    shutil.rmtree(run_dir, ignore_errors=True)
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def layout(model: str, name: str, out: Path, steps: int, data_dir: str) -> tuple[float, list]:
    """Runs the layout; (its throughput in images/s of wall time, each run's (wall, in-loop
    images/s))."""
    cores = os.cpu_count() or 1
    if name == "side-by-side":
        specs = [(seed, [], 1) for seed in range(cores)]
    else:
        specs = [(0, ["--compile"] if name == "compile" else [], None)]
    started = time.monotonic()
    procs = [(train(model, out / f"{model}-{name}-{seed}", steps, data_dir, seed, extra, threads),
              time.monotonic()) for seed, extra, threads in specs]
    runs = []
    for proc, start in procs:
        text, _ = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"{model} {name}: genlab train exited {proc.returncode}:\n{text}")
        loop = re.search(r"trained to step \d+ \(([\d.]+) images/s\)", text)
        runs.append((time.monotonic() - start, float(loop.group(1)) if loop else float("nan")))
    wall = time.monotonic() - started
    return len(specs) * steps * BATCH[model] / wall, runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["vae", "dcgan"], choices=sorted(BATCH))
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--data-dir", default="../shared/data/mnist")
    parser.add_argument("--out", type=Path, default=Path("/tmp/run-layout"))
    args = parser.parse_args()
    import torch

    print(f"torch {torch.__version__}, {os.cpu_count()} cores; {args.steps} steps per run, "
          "MNIST train split, validation + checkpoint every 1,000 steps, no FID")
    for model in args.models:
        baseline = None
        for name in ("eager", "compile", "side-by-side"):
            rate, runs = layout(model, name, args.out, args.steps, args.data_dir)
            baseline = baseline or rate
            each = ", ".join(f"{wall:.1f} s wall, {loop:.0f} img/s in the loop"
                             for wall, loop in runs)
            print(f"{model:<6} {name:<13} {rate:7.0f} images/s of wall time  "
                  f"{rate / baseline:.2f}x eager   ({len(runs)} run(s): {each})")
    shutil.rmtree(args.out, ignore_errors=True)


if __name__ == "__main__":
    main()
