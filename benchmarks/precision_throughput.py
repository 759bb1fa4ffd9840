"""Training speed of genlab's step against the same model in plain fp32 eager mode, on whatever
device exists (a GPU when there is one, else the CPU).

What is compared
----------------
Both sides train the *same* model (same config, same seed, same initial weights), with the same
optimisers, batch size and number of steps, on the same batches, in one process:

* genlab -- genlab's real ``Trainer.train_step()``: batches gathered by index from one uint8
  tensor already on the device, channels_last layout, and ``--precision auto``: bf16 autocast and
  TF32 on a GPU that has bf16, bf16 on a CPU with bf16 instructions for the models measured
  faster there (the 64x64 ones), else fp32 (``--precision`` here overrides it); with
  ``--compile``, each network's forward through torch.compile (warm-up steps absorb compiling).
* baseline -- the same model in its default NCHW layout, fp32 with TF32 off, run by a plain loop
  over the model's phases (each phase: only its networks take gradients, one forward pass, each
  update's backward into its own network, then the steps), on batches gathered from the same
  uint8 tensor on the same device.

So the ratio is what the precision and layout choices buy; data loading is equal on both sides
(benchmarks/train_throughput.py compares genlab's data path with pytorch/examples' instead).

Timing: --warmup untimed steps, then --steps timed steps, synchronising the GPU before reading
the clock; the sides alternate for --repeats rounds and the best of each is reported.

Models: vaegan (Larsen et al.'s VAE/GAN, 64x64, the default), vae-larsen64, dcgan64 (64x64), and
the homework's vae and dcgan (32x32). Images are synthetic (smooth random uint8, fixed seed): speed
does not depend on what the pixels show.

Usage:  .venv/bin/python benchmarks/precision_throughput.py [--model vaegan] [--batch-size 64]
        [--steps 20] [--warmup 3] [--repeats 2] [--device auto] [--precision auto] [--compile]
        On a GPU, for the three 64x64 models:
        for m in vae dcgan vaegan; do python benchmarks/precision_throughput.py --model $m --compile; done
"""

from __future__ import annotations

import argparse
import tempfile

import torch

from genlab.data.memory import ImageSet
from genlab.data.transforms import to_model_range
from genlab.models.base import Step
from genlab.models.noise import WHOLE
from genlab.run import build_model, new_config, resolve_device
from genlab.train.trainer import Trainer

from roofline import count_flops, fraction, measure_peak, print_peak, timed_steps

# name -> (genlab model, its settings, image shape)
MODELS = {
    "vaegan": ("vaegan", {}, (3, 64, 64)),
    "vae-larsen64": ("vae", {"arch": "larsen64", "latent_dim": 2048}, (3, 64, 64)),
    "dcgan64": ("dcgan", {"arch": "dcgan64"}, (3, 64, 64)),
    "vae": ("vae", {}, (1, 32, 32)),
    "dcgan": ("dcgan", {}, (1, 32, 32)),
}


def synthetic_images(n: int, shape: tuple[int, int, int], device: torch.device) -> torch.Tensor:
    c, h, w = shape
    g = torch.Generator().manual_seed(0)
    small = torch.rand(n, c, h // 8, w // 8, generator=g)
    smooth = torch.nn.functional.interpolate(small, size=(h, w), mode="bilinear")
    return (smooth * 255).round().to(torch.uint8).to(device)


def set_tf32(enabled: bool) -> None:
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def make_trainer(name: str, batch_size: int, precision: str, images: torch.Tensor,
                 device: torch.device, folder: str, compile: bool = False) -> Trainer:
    model_name, settings, shape = MODELS[name]
    config = new_config(model_name, {**settings, "batch_size": batch_size, "compile": compile,
                                     "precision": precision, "device": str(device)})
    config.image_shape = shape
    data = ImageSet(images, None, "synthetic", "train", "synthetic")
    return Trainer(config, folder, build_model(config), data, data, device)


def time_genlab(trainer: Trainer, steps: int, warmup: int) -> float:
    device = trainer.device
    set_tf32(device.type == "cuda")
    return timed_steps(trainer.train_step, steps, warmup, trainer.config.train.batch_size, device)


def time_eager(name: str, batch_size: int, images: torch.Tensor, device: torch.device,
               steps: int, warmup: int) -> float:
    """The same model, fp32, NCHW, TF32 off, run by a plain loop over its phases."""
    model_name, settings, shape = MODELS[name]
    config = new_config(model_name, {**settings, "batch_size": batch_size})
    config.image_shape = shape
    model = build_model(config).to(device)
    optimizers = model.optimizers(config.train)
    phases = model.phases()
    params = {name: [p for group in opt.param_groups for p in group["params"]]
              for name, opt in optimizers.items()}
    owned = {phase.name: {id(p) for name in (*phase.optimizers, *phase.keeps) for p in params[name]}
             for phase in phases}
    set_tf32(False)
    generator = torch.Generator(device).manual_seed(0)

    def step() -> None:
        index = torch.randint(0, len(images), (batch_size,), device=device, generator=generator)
        batch = to_model_range(images[index], model.data_range)
        inputs = Step(0, WHOLE, model.draw_step(batch_size, WHOLE, device))
        for phase in phases:
            for p in model.parameters():
                p.requires_grad_(id(p) in owned[phase.name])
            out = phase.losses(batch, inputs)
            for i, update in enumerate(phase.updates):
                optimizers[update.optimizer].zero_grad(set_to_none=True)
                out[update.minimise].backward(inputs=params[update.optimizer],
                                              retain_graph=i < len(phase.updates) - 1)
            for update in phase.updates:
                optimizers[update.optimizer].step()

    model.train()
    return timed_steps(step, steps, warmup, batch_size, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=list(MODELS), default="vaegan")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    parser.add_argument("--compile", action="store_true", help="genlab side with --compile")
    args = parser.parse_args()

    device = resolve_device(args.device)
    what = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {device} ({what}), torch {torch.__version__}, {torch.get_num_threads()} "
          f"CPU threads")
    images = synthetic_images(2048, MODELS[args.model][2], device)
    with tempfile.TemporaryDirectory() as folder:
        counted = make_trainer(args.model, args.batch_size, args.precision, images, device, folder)
        bf16 = counted.bf16  # the precision the trainer itself chose
        counted.train_step()  # warm-up, then one counted step (FLOPs do not depend on precision)
        flops_per_image = count_flops(counted.train_step) / args.batch_size
        del counted
    print(f"model {args.model}, batch {args.batch_size}, {args.steps} timed steps after "
          f"{args.warmup} warm-up, best of {args.repeats}")
    print(f"genlab: {'bf16 autocast' if bf16 else 'fp32'}, channels_last"
          f"{', TF32' if device.type == 'cuda' else ''}{', torch.compile' if args.compile else ''}"
          "; baseline: fp32 eager, NCHW, TF32 off")
    peak = measure_peak(device)  # same process, right before the timing
    print_peak(peak)
    best = {"baseline": 0.0, "genlab": 0.0}
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(args.repeats):
            eager = time_eager(args.model, args.batch_size, images, device, args.steps,
                               args.warmup)
            trainer = make_trainer(args.model, args.batch_size, args.precision, images, device,
                                   folder, compile=args.compile)
            ours = time_genlab(trainer, args.steps, args.warmup)
            del trainer
            best["baseline"], best["genlab"] = max(best["baseline"], eager), max(best["genlab"], ours)
            print(f"round {round_ + 1}: baseline {eager:.1f} images/s, genlab {ours:.1f} images/s")
    print(f"training FLOPs per image (forward + backward): {flops_per_image / 1e9:.2f} GFLOP")
    for side, label, precision in (("baseline", "baseline (fp32 eager)", "fp32"),
                                   ("genlab", "genlab", "bf16" if bf16 else "fp32")):
        achieved = best[side] * flops_per_image / 1e9
        print(f"{label + ':':<22} {best[side]:.1f} images/s, {achieved:.0f} GFLOP/s, "
              f"{fraction(achieved, peak, precision)} peak")
    print(f"ratio genlab / baseline: {best['genlab'] / best['baseline']:.2f}x")


if __name__ == "__main__":
    main()
