"""One figure for "which samples are blurry, which sharp": real images, then samples of each run
given, side by side at the same scale, with a 4x enlargement of the first few of each row, and
for each row a number for sharpness: the mean absolute horizontal plus vertical pixel difference
(the images' total variation per pixel, in grey levels), which blur lowers and sharp strokes
raise.

Usage:  .venv/bin/python experiments/blurry_sharp.py RUN [RUN ...] --labels "VAE-100,DCGAN"
            [--data-dir ../shared/data/mnist] [-n 16] [--seed 0] -o figure.png
Samples are drawn from each run's latest checkpoint with `genlab sample`'s code path (prior
latents drawn on the CPU from --seed), real images are the first of the test split; the total variation is measured on
--tv-images of each (1,000), the first -n shown.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def total_variation(images: torch.Tensor) -> float:
    """Mean |dx| + |dy| per pixel, in grey levels (0-255), of (N, C, H, W) images in [0, 1]."""
    pixels = images.float() * 255
    dx = (pixels[..., :, 1:] - pixels[..., :, :-1]).abs().mean()
    dy = (pixels[..., 1:, :] - pixels[..., :-1, :]).abs().mean()
    return float(dx + dy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--labels", help="comma-separated, one per run (default: folder names)")
    parser.add_argument("--data-dir", default="../shared/data/mnist")
    parser.add_argument("-n", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tv-images", type=int, default=1000,
                        help="images per row the total variation is measured on (the first -n shown)")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from genlab.config import DataConfig
    from genlab.data import load_split
    from genlab.data.transforms import to_unit_range
    from genlab.grid import make_grid
    from genlab.run import load_run

    labels = args.labels.split(",") if args.labels else [run.name for run in args.runs]
    device = torch.device("cpu")
    count = max(args.n, args.tv_images)
    rows = [("real (test images)",
             load_split(DataConfig(data_dir=args.data_dir), "test").images[:count].float() / 255)]
    for run, label in zip(args.runs, labels):
        trained = load_run(run, device, print)
        config, model, step = trained.config, trained.model, trained.step
        generator = torch.Generator().manual_seed(args.seed)
        with torch.no_grad():
            latents = model.sample_latents(count, generator)
            rows.append((f"{label} (step {step:,})",
                         to_unit_range(model.decode(latents), model.data_range).cpu()))

    figure, axes = plt.subplots(len(rows), 2, figsize=(11, 1.55 * len(rows)),
                                gridspec_kw={"width_ratios": [args.n, 4 * 4]})
    for (label, images), (whole, zoom) in zip(rows, axes):
        strip = make_grid(images[:args.n], nrow=args.n, padding=1)
        whole.imshow(strip.permute(1, 2, 0).squeeze(-1), cmap="gray", vmin=0, vmax=1,
                     interpolation="nearest")
        whole.set_title(f"{label}: total variation {total_variation(images):.1f} grey levels "
                        "per pixel", fontsize=8, loc="left")
        close = make_grid(images[:4], nrow=4, padding=1)
        zoom.imshow(close.permute(1, 2, 0).squeeze(-1), cmap="gray", vmin=0, vmax=1,
                    interpolation="nearest")
        zoom.set_title("first 4, enlarged", fontsize=8, loc="left")
        for axis in (whole, zoom):
            axis.set_axis_off()
    figure.tight_layout()
    figure.savefig(args.output, dpi=110)
    for label, images in rows:
        print(f"{label}: total variation {total_variation(images):.2f} grey levels per pixel "
              f"({len(images)} images)")
    print(f"{args.output}")


if __name__ == "__main__":
    main()
