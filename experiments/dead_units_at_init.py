"""Dead ReLU units of the homework's VAE before its first step, over many seeds.

For each latent size and initialisation (PyTorch's default, or --init kaiming), builds the VAE of
`genlab train vae --latent-dim Z --seed S` for seeds 0..N-1 exactly as a run would
(genlab.run.build_model), passes 1,000 real images through the encoder and as many prior draws
through the decoder, and counts the units of each ReLU layer that are never positive
(genlab.models.diagnostics). Prints, per setting, how many seeds had k dead units in Enc-5 (the
2 x latent FC + ReLU) and Dec-1 (the latent-wide FC + ReLU), the mean dead fraction of every
layer, and Enc-5's pre-activations (mean |bias| against their spread across images), which say
why they die.

Data: the MNIST test split from ../shared/data/mnist (the digits embedded in scikit-learn where it
is absent), at 32x32 as genlab trains on it.

Usage: .venv/bin/python experiments/dead_units_at_init.py [--seeds 100] [--latent-dims 3 10 64 100]
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import torch

from genlab.config import DataConfig
from genlab.data import load_split
from genlab.models.diagnostics import count_dead_units
from genlab.run import build_model, new_config

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def images(n: int) -> tuple[torch.Tensor, str]:
    if SHARED_MNIST.is_dir():
        data = load_split(DataConfig(dataset="mnist", data_dir=str(SHARED_MNIST), download=False),
                          "test")
    else:
        data = load_split(DataConfig(dataset="digits"), "train")
    return data.images[:n].float() / 255, data.source


def measure(latent_dim: int, init: str, seed: int, x: torch.Tensor) -> dict:
    config = new_config("vae", {"latent_dim": latent_dim, "init": init, "seed": seed})
    config.image_shape = tuple(x.shape[1:])
    model = build_model(config).eval()
    z = torch.randn(len(x), latent_dim, generator=torch.Generator().manual_seed(seed))
    dead = count_dead_units(model, lambda: (model.encode(x), model.decode(z)))
    with torch.no_grad():
        h = model.encoder[:5](x)   # through Enc-4 and the flatten: (N, 16 * 8 * 8)
        pre = model.encoder.enc5[0](h)  # Enc-5's pre-activations, (N, 2 * latent)
    return {"dead": dead, "enc4_mean": h.mean().item(),
            "bias": model.encoder.enc5[0].bias.abs().mean().item(),
            "spread": pre.std(0).mean().item()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--latent-dims", type=int, nargs="+", default=[3, 10, 64, 100])
    parser.add_argument("--images", type=int, default=1000)
    args = parser.parse_args()
    x, source = images(args.images)
    print(f"{len(x)} images from {source}; seeds 0..{args.seeds - 1}")
    for init in ("default", "kaiming"):
        for latent_dim in args.latent_dims:
            runs = [measure(latent_dim, init, seed, x) for seed in range(args.seeds)]
            print(f"\n--init {init}, --latent-dim {latent_dim}: Enc-5 has {2 * latent_dim} units, "
                  f"Dec-1 {latent_dim}")
            for layer in ("encoder.enc5", "decoder.dec1"):
                counts = Counter(r["dead"][layer][0] for r in runs)
                print(f"  {layer} dead units: " + ", ".join(
                    f"{k} in {counts[k]} seeds" for k in sorted(counts)))
            fractions = {layer: sum(r["dead"][layer][0] / r["dead"][layer][1] for r in runs) / len(runs)
                         for layer in runs[0]["dead"]}
            print("  mean dead fraction: " + ", ".join(f"{k} {v:.3f}" for k, v in fractions.items()))
            mean = {k: sum(r[k] for r in runs) / len(runs) for k in ("enc4_mean", "bias", "spread")}
            print(f"  Enc-4 output mean {mean['enc4_mean']:.4f}; Enc-5 pre-activation: mean |bias| "
                  f"{mean['bias']:.4f}, std across images {mean['spread']:.4f}")


if __name__ == "__main__":
    main()
