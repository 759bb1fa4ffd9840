"""Where a training step's time goes: torch.profiler over genlab's real `Trainer.train_step()`,
the top operators by their own time (convolutions forward and backward, matrix products, BatchNorm,
the optimiser's elementwise work, ...), each with its share of the step.

Usage:  .venv/bin/python benchmarks/profile_step.py [--model vaegan] [--batch-size 64]
        [--precision fp32] [--steps 2] [--top 15]
Models as in benchmarks/precision_throughput.py (vaegan, vae-larsen64, dcgan64, vae, dcgan).
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from torch.profiler import ProfilerActivity, profile

from precision_throughput import MODELS, make_trainer, synthetic_images
from roofline import count_flops, device_name


def breakdown(model: str, batch_size: int, precision: str, steps: int, top: int) -> str:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    images = synthetic_images(512, MODELS[model][2], device)
    with tempfile.TemporaryDirectory() as folder:
        trainer = make_trainer(model, batch_size, precision, images, device, folder)
        trainer.model.train()
        trainer.train_step()  # warm-up: kernel selection, allocation
        flops = count_flops(trainer.train_step)
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with profile(activities=activities) as prof:
            for _ in range(steps):
                trainer.train_step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    rows = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    lines = [f"{model}, batch {batch_size}, {precision}, {device_name(device)}: "
             f"{total / steps / 1e6:.2f} s a step, {flops / 1e9:.1f} GFLOP a step "
             f"({flops / (total / steps / 1e6) / 1e9:.0f} GFLOP/s)",
             "| operator | calls a step | share of the step |", "|---|---|---|"]
    for e in rows:
        lines.append(f"| {e.key} | {e.count / steps:.0f} | {100 * e.self_cpu_time_total / total:.1f}% |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=list(MODELS), default="vaegan")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    batch = args.batch_size or (32 if args.model == "vae" else 64)
    print(breakdown(args.model, batch, args.precision, args.steps, args.top))


if __name__ == "__main__":
    main()
