"""Where the VAE, the VAE/GAN and the DCGAN differ, pointed at: one figure of a checkpoint each.

The lab asks for the visual differences between the VAE (hw2), the GAN (hw3) and the VAE/GAN.
For the runs of experiments/celeba_long.sh that have a checkpoint of one step (any of
OUT/vae-larsen64, OUT/vaegan, OUT/dcgan64, and with --branch NAME its branch OUT/vaegan-NAME),
this draws

* (a) the first --columns test faces and their posterior-mean reconstructions by each model with
  an encoder, then each model's samples from the same fixed prior draws, one labelled row each;
  a box on each image marks the face's centre (eyes, nose, mouth), the region (b) enlarges;
* (b) that region of the first three faces, enlarged 4x without smoothing, real against each
  reconstruction: where blur takes the edges (a pixel-wise VAE) and what the learned similarity
  keeps or invents in their place;
* (c) the radially averaged power spectrum of the luminance, the real test faces against each
  model's reconstructions and samples, on a log scale: blur shows as power falling below the
  data's at high spatial frequencies, grain and up-convolution artefacts as power above it (the
  spectral reading of generated images, e.g. Durall et al. 2020, "Watch your up-convolution");

and prints each set's high-frequency power (the upper half of the frequencies, up to Nyquist)
relative to the real faces': below 1 is missing detail, above 1 is added texture.

    .venv/bin/python experiments/celeba_differences.py OUT --step 2232 -o docs/figures/x.png

The reconstructions and samples are those of experiments/vaegan_comparison.py (its `measure`:
the same test faces, the same prior draws, eval mode), so the figure and its numbers agree.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import torch

RUNS = (("vae-larsen64", "VAE"), ("vaegan", "VAE/GAN"), ("dcgan64", "DCGAN"))  # celeba_long.sh's
# The face's centre in CelebA's aligned 64x64 crops (the mean test face has its eyes at rows
# 30-35, its mouth at rows 48-54): rows and columns [TOP, TOP + SIZE), [LEFT, LEFT + SIZE).
TOP, LEFT, SIZE = 24, 16, 32
ZOOM = 4
LUMINANCE = torch.tensor([0.299, 0.587, 0.114])  # ITU-R BT.601, as PIL's "L" conversion


def _comparison():
    path = Path(__file__).resolve().with_name("vaegan_comparison.py")
    spec = importlib.util.spec_from_file_location("vaegan_comparison", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def radial_power_spectrum(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) in [0, 1], square -> (H // 2 + 1,): the mean power of the luminance at each
    integer spatial frequency radius, 0 (the mean, removed) to Nyquist, averaged over images."""
    n, c, h, w = images.shape
    if h != w:
        raise ValueError(f"square images only, got {h}x{w}")
    gray = images[:, 0] if c == 1 else torch.einsum("nchw,c->nhw", images, LUMINANCE.to(images))
    gray = gray - gray.mean(dim=(1, 2), keepdim=True)  # (N, H, W): the mean is not texture
    power = torch.fft.fft2(gray.double()).abs().square().mean(dim=0)  # (H, W)
    freq = torch.fft.fftfreq(h, d=1.0 / h).double()  # cycles per image, -H/2 .. H/2 - 1
    radius = torch.sqrt(freq[:, None] ** 2 + freq[None, :] ** 2).round().long()  # (H, W)
    keep = radius <= h // 2  # the corners beyond Nyquist along the diagonal have no full ring
    total = torch.zeros(h // 2 + 1, dtype=torch.float64).index_add_(0, radius[keep], power[keep])
    count = torch.zeros(h // 2 + 1, dtype=torch.float64).index_add_(
        0, radius[keep], torch.ones_like(power[keep]))
    return total / count


def high_frequency_ratio(spectrum: torch.Tensor, reference: torch.Tensor) -> float:
    """Power in the upper half of the frequencies (radius above Nyquist / 2) against the
    reference's: < 1 missing detail (blur), > 1 texture the reference does not have."""
    upper = slice(len(spectrum) // 2 + 1, None)
    return (spectrum[upper].sum() / reference[upper].sum()).item()


def crop(images: torch.Tensor) -> torch.Tensor:
    """(N, C, 64, 64) -> (N, C, SIZE * ZOOM, SIZE * ZOOM): the face's centre, enlarged by
    repeating pixels (no smoothing, so blur and grain are the model's own)."""
    centre = images[..., TOP:TOP + SIZE, LEFT:LEFT + SIZE]
    return centre.repeat_interleave(ZOOM, dim=-2).repeat_interleave(ZOOM, dim=-1)


def draw(rows: list[tuple[str, torch.Tensor]], zoom_rows: list[tuple[str, torch.Tensor]],
         spectra: list[tuple[str, torch.Tensor]], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    columns = rows[0][1].shape[0]
    zooms = zoom_rows[0][1].shape[0]
    fig = plt.figure(figsize=(columns * 0.9 + zooms * 1.3 + 0.5, max(len(rows), 4) * 0.95 + 3.2),
                     dpi=110)
    outer = fig.add_gridspec(2, 2, width_ratios=[columns * 0.9, zooms * 1.3],
                             height_ratios=[max(len(rows), len(zoom_rows)), 3.2], wspace=0.08)
    def image_axes(cell, image: torch.Tensor):
        ax = fig.add_subplot(cell)
        ax.imshow(image.permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        return ax

    grid = outer[0, 0].subgridspec(len(rows), columns, wspace=0.04, hspace=0.08)
    for i, (label, images) in enumerate(rows):
        for j, image in enumerate(images):
            ax = image_axes(grid[i, j], image)
            if j < zooms and not label.endswith("samples"):
                ax.add_patch(Rectangle((LEFT - 0.5, TOP - 0.5), SIZE, SIZE, fill=False,
                                       edgecolor="yellow", linewidth=0.8))
            if j == 0:
                ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
            if i == 0 and j == 0:
                ax.set_title("(a)", fontsize=8, loc="left")
    zoom_grid = outer[0, 1].subgridspec(len(zoom_rows), zooms, wspace=0.04, hspace=0.08)
    for i, (label, images) in enumerate(zoom_rows):
        for j, image in enumerate(images):
            ax = image_axes(zoom_grid[i, j], image)
            if i == 0 and j == 0:
                ax.set_title("(b) the boxed centres, 4x", fontsize=8, loc="left")
            if j == zooms - 1:
                ax.yaxis.set_label_position("right")
                ax.set_ylabel(label, rotation=0, ha="left", va="center", fontsize=8)
    ax = fig.add_subplot(outer[1, :])
    for label, spectrum in spectra:
        style = {"color": "black", "linewidth": 2} if label.startswith("real") else {}
        linestyle = "--" if label.endswith("samples") else "-"
        ax.semilogy(range(1, len(spectrum)), spectrum[1:].numpy(), linestyle=linestyle,
                    label=label, **style)
    ax.set_xlabel("spatial frequency (cycles per image; 32 is Nyquist)")
    ax.set_ylabel("mean power of the luminance")
    ax.set_title("(c) radially averaged power spectrum", fontsize=9, loc="left")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="experiments/celeba_long.sh's OUT")
    parser.add_argument("--step", type=int, required=True, help="the checkpoint of every run")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--images", type=int, default=256, help="test faces the spectra average")
    parser.add_argument("--columns", type=int, default=8)
    parser.add_argument("--branch", action="append", default=[], metavar="NAME",
                        help="add OUT/vaegan-NAME, a branch of celeba_long.sh's BRANCH, after the "
                        "VAE/GAN (repeatable)")
    args = parser.parse_args()
    runs = list(RUNS)
    after_parent = [name for name, _ in RUNS].index("vaegan") + 1
    runs[after_parent:after_parent] = [(f"vaegan-{n}", f"VAE/GAN {n}") for n in args.branch]

    from genlab.data import load_split
    from genlab.run import load_config

    comparison = _comparison()
    from genlab.checkpoint import list_checkpoints

    present = [(name, label) for name, label in runs
               if (args.out / name / "config.json").is_file()
               and args.step in dict(list_checkpoints(args.out / name))]
    if not present:
        raise SystemExit(f"no run folder of {', '.join(n for n, _ in runs)} in {args.out} has a "
                         f"checkpoint of step {args.step}")
    config = load_config(args.out / present[0][0] / "config.json")
    real_uint8 = load_split(config.data, config.data.val_split).images[:args.images]
    real = real_uint8.float() / 255  # (N, C, H, W) in [0, 1]
    results = [(label, comparison.measure(args.out / name, real_uint8, samples=args.images,
                                          step=args.step)) for name, label in present]

    k, z = args.columns, 3
    rows = [("real test faces", real[:k])]
    rows += [(f"{label} reconstructions", r["recon"][:k]) for label, r in results if "recon" in r]
    rows += [(f"{label} samples", r["samples"][:k]) for label, r in results]
    zoom_rows = [("real", crop(real[:z]))]
    zoom_rows += [(label, crop(r["recon"][:z])) for label, r in results if "recon" in r]
    real_spectrum = radial_power_spectrum(real)
    spectra = [("real test faces", real_spectrum)]
    for label, r in results:
        if "recon" in r:
            spectra.append((f"{label} reconstructions", radial_power_spectrum(r["recon"])))
        spectra.append((f"{label} samples", radial_power_spectrum(r["samples"])))

    print(f"step {args.step}, {len(real)} test faces; high-frequency power against the real faces':")
    for label, spectrum in spectra[1:]:
        print(f"  {label:<28} {high_frequency_ratio(spectrum, real_spectrum):.3f}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    images_seen = args.step * config.train.batch_size
    draw(rows, zoom_rows, spectra, f"step {args.step} ({images_seen:,} images seen)", args.output)
    print(f"figure: {args.output}")


if __name__ == "__main__":
    main()
