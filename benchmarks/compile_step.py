"""`--compile` against eager for the 64x64 models' training step (the VAE/GAN, the VAE baseline
and the DCGAN baseline), compile time included, and whether compiling changes the training.

For each model, two of genlab's real Trainers from the same settings and the same initial
weights, on the same batches with the same random draws: one eager, one with `--compile` (each
network's forward through torch.compile). Both at `--precision` (auto: bf16 where the device has
it, else fp32), channels_last.

1. Same maths: after the first step (the same batch, the same weights, the same draws), each
   network's gradient of the compiled step against the eager one, as the relative L2 error
   ||g_c - g_e|| / ||g_e||. Compiled kernels add and multiply in another order, so the errors
   are rounding, not zero. What rounding alone does is measured beside it: the same eager step
   run again on one thread instead of all (other reduction splits in the same kernels), against
   the first. A compiled error of that size is rounding; much larger is a change. (Parameters are not compared after a step: Adam's and RMSprop's first
   updates are about lr * sign(g), so a gradient element that rounding moves across zero moves
   its parameter by 2 lr whatever the gradient's accuracy.)
2. Speed: the compiled first step's seconds (compiling), then --steps timed steps of each side
   after one more warm-up step, the sides alternating for --repeats rounds, the best of each.
3. A run of --run-steps steps (default 4,464: 20 epochs of the 14,283 CelebA training faces at
   batch 64) at those rates: eager steps x their time against compiling + compiled steps, and
   the step count where compiling starts to pay.

Usage:  .venv/bin/python benchmarks/compile_step.py [--models vaegan vae-larsen64 dcgan64]
        [--batch-size 64] [--steps 4] [--repeats 2] [--precision auto] [--device auto]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from genlab.run import resolve_device

from precision_throughput import make_trainer, synthetic_images, MODELS
from roofline import synchronize, timed_steps


def gradients(trainer) -> dict[str, list[torch.Tensor]]:
    """Each optimiser's parameters' gradients of the step just taken (the trainer zeroes them
    before each backward, not after the step)."""
    return {name: [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
                   for p in params] for name, params in trainer._optimized.items()}


def relative_error(ours: list[torch.Tensor], reference: list[torch.Tensor]) -> float:
    diff = sum(float((a.double() - b.double()).square().sum()) for a, b in zip(ours, reference))
    norm = sum(float(b.double().square().sum()) for b in reference)
    return (diff / norm) ** 0.5 if norm else float(diff > 0)


def same_draws(first, second) -> None:
    """A step of each trainer from the same global random state: the models draw their latents
    and noise from it (the batches come from each trainer's own seeded generator)."""
    state = torch.random.get_rng_state()
    first()
    torch.random.set_rng_state(state)
    second()


def measure(name: str, args, images: torch.Tensor, device: torch.device, folder: str) -> dict:
    eager = make_trainer(name, args.batch_size, args.precision, images, device, folder)
    compiled = make_trainer(name, args.batch_size, args.precision, images, device, folder,
                            compile=True)
    # The same initial weights and optimiser state (both trainers seed alike; made sure here).
    compiled.model.load_state_dict(eager.model.state_dict())  # copies the tensors
    timing = {}

    def first_compiled_step() -> None:  # compiles every network's forward (and backward)
        synchronize(device)
        started = time.perf_counter()
        compiled.train_step()
        synchronize(device)
        timing["first_step"] = time.perf_counter() - started

    again = make_trainer(name, args.batch_size, args.precision, images, device, folder)
    again.model.load_state_dict(eager.model.state_dict())
    threads = torch.get_num_threads()

    def one_thread_step() -> None:
        torch.set_num_threads(1)
        try:
            again.train_step()
        finally:
            torch.set_num_threads(threads)

    state = torch.random.get_rng_state()
    same_draws(eager.train_step, first_compiled_step)
    torch.random.set_rng_state(state)
    one_thread_step()
    first_step = timing["first_step"]
    reference = gradients(eager)
    errors = {net: relative_error(g, reference[net]) for net, g in gradients(compiled).items()}
    floor = {net: relative_error(g, reference[net]) for net, g in gradients(again).items()}
    del again
    best = {"eager": 0.0, "compiled": 0.0}
    for _ in range(args.repeats):
        for side, trainer in (("eager", eager), ("compiled", compiled)):
            rate = timed_steps(trainer.train_step, args.steps, 1, args.batch_size, device)
            best[side] = max(best[side], rate)
    step_eager, step_compiled = args.batch_size / best["eager"], args.batch_size / best["compiled"]
    compile_seconds = max(0.0, first_step - step_compiled)
    saved = step_eager - step_compiled
    return {"model": name, "precision": "bf16" if eager.bf16 else "fp32",
            "eager": best["eager"], "compiled": best["compiled"], "compile_s": compile_seconds,
            "grad_error": errors, "rounding": floor,
            "run_eager_h": args.run_steps * step_eager / 3600,
            "run_compiled_h": (compile_seconds + args.run_steps * step_compiled) / 3600,
            "break_even": compile_seconds / saved if saved > 0 else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS),
                        default=["vaegan", "vae-larsen64", "dcgan64"])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4, help="timed steps a side and round")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--run-steps", type=int, default=4464,
                        help="the run the times are projected to (default: 20 CelebA epochs)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    device = resolve_device(args.device)
    what = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {device} ({what}), torch {torch.__version__}, {torch.get_num_threads()} "
          f"CPU threads; batch {args.batch_size}, {args.steps} timed steps a side, best of "
          f"{args.repeats}; a run of {args.run_steps} steps projected")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            images = synthetic_images(1024, MODELS[name][2], device)
            row = measure(name, args, images, device, folder)
            rows.append(row)
            errors = ", ".join(f"{net} {e:.1e} (eager on 1 thread: {row['rounding'][net]:.1e})"
                               for net, e in row["grad_error"].items())
            print(f"{name}: {row['precision']}; eager {row['eager']:.2f} images/s, compiled "
                  f"{row['compiled']:.2f} images/s ({row['compiled'] / row['eager']:.2f}x), "
                  f"compiling {row['compile_s']:.0f} s; first-step gradient error {errors}",
                  flush=True)
    print(f"\n| model | precision | eager images/s | compiled images/s | ratio | compiling | "
          f"{args.run_steps} steps eager | compiled, compiling included | pays after | "
          "gradient error (first step, worst network) | eager on 1 thread against all |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        pays = f"{r['break_even']:.0f} steps" if r["break_even"] is not None else "never"
        worst = max(r["grad_error"], key=r["grad_error"].get)
        print(f"| {r['model']} | {r['precision']} | {r['eager']:.2f} | {r['compiled']:.2f} | "
              f"{r['compiled'] / r['eager']:.2f}x | {r['compile_s']:.0f} s | "
              f"{r['run_eager_h']:.2f} h | {r['run_compiled_h']:.2f} h | {pays} | "
              f"{r['grad_error'][worst]:.1e} ({worst}) | {r['rounding'][worst]:.1e} |")


if __name__ == "__main__":
    main()
