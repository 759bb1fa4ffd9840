"""The lab's comparison, measured: reconstructions and samples of a VAE, a VAE/GAN and a GAN.

For each run folder given (any mix of `genlab train vae --arch larsen64`, `vaegan`, `dcgan --arch
dcgan64` runs on the same data), on the first --images validation images:

* pixel error: mean squared error of the posterior-mean reconstruction Dec(mu(x)), per pixel, in
  [0, 1] units (models with an encoder only);
* sharpness: the variance of the Laplacian (the standard focus measure: blur removes the high
  frequencies it responds to) of the reconstructions and of 256 samples, each divided by the same
  measure on the real images: 1 is as sharp as the data, below 1 blurrier (but noise or grain
  also raises it, so it cannot tell crisp edges from grain);
* detail error: ||Lap(Dec(mu(x))) - Lap(x)||^2 / ||Lap(x)||^2, the reconstruction's error in the
  Laplacian's band relative to the real images' energy there: a blurred reconstruction, which
  has no detail, scores about 1; grain that is not in the input scores above 1; only edges in the
  right places bring it below 1;
* edge contrast: on each real image's strongest edges (the 10% of pixels with the largest
  gradient), the reconstruction's gradient projected on the real one, sum(grad r . grad x) /
  sum(|grad x|^2): 1 for edges as steep as the data's and in the same places, less for blur
  (0.45 for a 5x5 box blur of Fashion-MNIST at 64x64, 0.08 for the mean image); grain, whose
  gradients point every way, barely moves it (0.99 for +0.05 noise), so it answers "sharper?"
  where detail error cannot;

and writes one PNG: a row of real images, then each model's reconstructions, then each model's
samples from the same fixed prior draws (the first rows of `genlab sample`'s grid).

Usage:  .venv/bin/python experiments/vaegan_comparison.py RUN [RUN ...] -o comparison.png
        [--images 256] [--columns 12] [--step N] [--bootstrap 2000]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from genlab.data import load_split
from genlab.data.transforms import to_model_range, to_unit_range
from genlab.run import load_run
from genlab.grid import save_grid

LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def laplacian(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, H-2, W-2): the discrete Laplacian of each channel."""
    c = images.shape[1]
    kernel = LAPLACIAN.to(images)[None, None].repeat(c, 1, 1, 1)  # (C, 1, 3, 3), per channel
    return F.conv2d(images, kernel, groups=c)


def detail_error(reconstructions: torch.Tensor, real: torch.Tensor) -> float:
    """Error of the reconstructions in the Laplacian's band, relative to the real images' energy
    in it (summed over the set): ~1 for blur, > 1 for grain, < 1 for the right edges."""
    real_detail = laplacian(real)
    return ((laplacian(reconstructions) - real_detail).square().sum()
            / real_detail.square().sum()).item()


def image_gradient(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, 2, H-1, W-1): forward differences along x and along y."""
    dx = images[..., :-1, 1:] - images[..., :-1, :-1]
    dy = images[..., 1:, :-1] - images[..., :-1, :-1]
    return torch.stack([dx, dy], dim=2)


def edge_parts(reconstructions: torch.Tensor, real: torch.Tensor,
               edge_fraction: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image, over its strongest edges: sum(grad r . grad x) and sum(|grad x|^2), each (N,)."""
    real_grad = image_gradient(real)
    recon_grad = image_gradient(reconstructions)
    strength = real_grad.square().sum(dim=2).flatten(1)  # (N, C*(H-1)*(W-1)): |grad x|^2
    k = max(1, int(edge_fraction * strength.shape[1]))
    threshold = strength.topk(k, dim=1).values[:, -1:]  # (N, 1): each image's k-th largest
    edges = strength >= threshold
    projected = (recon_grad * real_grad).sum(dim=2).flatten(1)  # (N, ...): grad r . grad x
    return (projected * edges).sum(1), (strength * edges).sum(1)


def edge_contrast(reconstructions: torch.Tensor, real: torch.Tensor,
                  edge_fraction: float = 0.1) -> float:
    """How steep the reconstructions' edges are where the real images have their strongest
    edges, along the real gradient: 1 = as the data, < 1 blurred; unbiased by grain."""
    projected, strength = edge_parts(reconstructions, real, edge_fraction)
    return (projected.sum() / strength.sum()).item()


def edge_contrast_difference(recon_a: torch.Tensor, recon_b: torch.Tensor, real: torch.Tensor,
                             resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """A's edge contrast minus B's on the same real images, and its 95% interval over images
    (a paired bootstrap: each resample draws images with replacement and scores both on them).
    It is the spread of the test images, not of training: one run each cannot give that."""
    a, strength = edge_parts(recon_a, real)
    b, _ = edge_parts(recon_b, real)
    g = torch.Generator().manual_seed(seed)
    picks = torch.randint(0, len(real), (resamples, len(real)), generator=g)  # (R, N)
    total = strength[picks].sum(1)
    differences = (a[picks].sum(1) - b[picks].sum(1)) / total
    low, high = torch.quantile(differences.double(), torch.tensor([0.025, 0.975],
                                                                 dtype=torch.float64)).tolist()
    return ((a.sum() - b.sum()) / strength.sum()).item(), low, high


def laplacian_variance(images: torch.Tensor) -> float:
    """Mean over images and channels of the variance of the Laplacian, images in [0, 1]."""
    return laplacian(images).flatten(2).var(dim=2).mean().item()


@torch.no_grad()
def measure(run: Path, real_uint8: torch.Tensor, samples: int, step: int | None) -> dict:
    trained = load_run(run, torch.device("cpu"), warn=print, step=step)
    config, model, step = trained.config, trained.model, trained.step
    out = {"run": run.name, "model": config.model, "step": step}
    real = real_uint8.float() / 255  # (N, C, H, W) in [0, 1]
    real_sharpness = laplacian_variance(real)
    if model.can("encoder"):
        recon = torch.cat([to_unit_range(model.reconstruct(to_model_range(b, model.data_range)),
                                         model.data_range) for b in real_uint8.split(64)])
        out["recon"] = recon
        out["pixel_mse"] = (recon - real).square().mean().item()
        out["recon_sharpness"] = laplacian_variance(recon) / real_sharpness
        out["detail_error"] = detail_error(recon, real)
        out["edge_contrast"] = edge_contrast(recon, real)
    latents = model.sample_latents(samples, torch.Generator().manual_seed(1))
    generated = torch.cat([to_unit_range(model.decode(z), model.data_range)
                           for z in latents.split(64)])
    out["samples"] = generated
    out["sample_sharpness"] = laplacian_variance(generated) / real_sharpness
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("-o", "--out", type=Path, default=Path("comparison.png"))
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--columns", type=int, default=12)
    parser.add_argument("--step", type=int, default=None,
                        help="the checkpoint of this step in every run (default: each run's latest)")
    parser.add_argument("--bootstrap", type=int, default=0, metavar="RESAMPLES",
                        help="also give each pair of encoders' edge contrast difference with its "
                        "95%% interval over the images (a paired bootstrap of this many resamples)")
    args = parser.parse_args()

    config = load_run(args.runs[0], torch.device("cpu"), warn=print).config
    val = load_split(config.data, config.data.val_split)
    real_uint8 = val.images[:args.images]
    results = [measure(run, real_uint8, samples=256, step=args.step) for run in args.runs]

    print(f"{'run':<40} {'model':<7} {'step':>6} {'pixel MSE':>10} {'recon sharp':>12} "
          f"{'detail error':>13} {'edge contrast':>14} {'sample sharp':>13}")
    for r in results:
        mse = f"{r['pixel_mse']:.4f}" if "pixel_mse" in r else "-"
        sharp = f"{r['recon_sharpness']:.3f}" if "recon_sharpness" in r else "-"
        detail = f"{r['detail_error']:.3f}" if "detail_error" in r else "-"
        edges = f"{r['edge_contrast']:.3f}" if "edge_contrast" in r else "-"
        print(f"{r['run']:<40} {r['model']:<7} {r['step']:>6} {mse:>10} {sharp:>12} "
              f"{detail:>13} {edges:>14} {r['sample_sharpness']:>13.3f}")
    encoders = [r for r in results if "recon" in r]
    real = real_uint8.float() / 255
    for i, a in enumerate(encoders if args.bootstrap else []):
        for b in encoders[i + 1:]:
            difference, low, high = edge_contrast_difference(a["recon"], b["recon"], real,
                                                             args.bootstrap)
            print(f"edge contrast, {a['run']} minus {b['run']}: {difference:+.4f} (95% interval "
                  f"over the {len(real)} images {low:+.4f} to {high:+.4f})")
    k = args.columns
    rows = [real_uint8[:k].float() / 255] + [r["recon"][:k] for r in results if "recon" in r]
    rows += [r["samples"][:k] for r in results]
    save_grid(torch.cat(rows), args.out, nrow=k)
    print(f"grid: {args.out} (rows: real, reconstructions of "
          f"{', '.join(r['model'] for r in results if 'recon' in r)}, samples of "
          f"{', '.join(r['model'] for r in results)})")


if __name__ == "__main__":
    main()
