"""The optimiser's share of a step: genlab's step with each model's Adam (or RMSprop) as
PyTorch runs it by default on a CPU (a Python loop over the parameters, `foreach=False`),
with `foreach=True` (one multi-tensor kernel per operation) and with `fused=True` (one kernel for
the whole update), in one process, alternating, best of --repeats.

Usage:  .venv/bin/python benchmarks/optimizer_step.py [--model vae] [--steps 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from precision_throughput import MODELS, make_trainer, synthetic_images
from roofline import device_name, synchronize

VARIANTS = {"for-loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def rebuild(trainer, options: dict) -> None:
    """The trainer's optimisers again, same class and settings, with `options`."""
    for name, optimizer in list(trainer.optimizers.items()):
        params = [p for group in optimizer.param_groups for p in group["params"]]
        defaults = {k: v for k, v in optimizer.defaults.items()
                    if k not in ("foreach", "fused", "differentiable", "capturable")}
        trainer.optimizers[name] = type(optimizer)(params, **defaults, **options)
        for group in trainer.optimizers[name].param_groups:
            group.setdefault("initial_lr", group["lr"])


def images_per_second(trainer, steps: int) -> float:
    for _ in range(5):
        trainer.train_step()
    synchronize(trainer.device)
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    synchronize(trainer.device)
    return steps * trainer.config.train.batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=list(MODELS), default="vae")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=None)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    batch = args.batch_size or (32 if args.model == "vae" else 64)
    images = synthetic_images(2048, MODELS[args.model][2], device)
    best = dict.fromkeys(VARIANTS, 0.0)
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.repeats):
            for name, options in VARIANTS.items():
                torch.manual_seed(0)
                trainer = make_trainer(args.model, batch, "auto", images, device, folder)
                rebuild(trainer, options)
                best[name] = max(best[name], images_per_second(trainer, args.steps))
    print(f"{args.model}, batch {batch}, {device_name(device)}, best of {args.repeats} x "
          f"{args.steps} steps")
    for name, rate in best.items():
        print(f"  {name:<9} {rate:8.1f} images/s  ({rate / best['for-loop']:.2f}x the for-loop)")


if __name__ == "__main__":
    main()
