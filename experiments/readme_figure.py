"""The README's picture: what `genlab train vae` and `genlab train dcgan` make at their defaults on
the 60,000 MNIST training images (seed 0, 25,000 steps), from the grids each run saves beside its
last checkpoint: the validation inputs, the VAE's reconstructions of them, the VAE's samples and
the DCGAN's samples, side by side.

    python experiments/readme_figure.py RUNS -o docs/figures/readme-mnist-defaults.png

RUNS is the folder of experiments/homework_mnist.sh (RUNS/vae/latent-dim-64_seed-0, RUNS/dcgan/seed-0).
"""

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

STEP = 25_000
GAP = 12        # pixels between panels
TITLE = 18      # pixels above each panel for its title


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path)
    parser.add_argument("-o", "--out", type=Path, required=True)
    args = parser.parse_args()
    vae = args.runs / "vae/latent-dim-64_seed-0/checkpoints"
    dcgan = args.runs / "dcgan/seed-0/checkpoints"
    panels = [
        ("real test digits", vae / f"step-{STEP:08d}-val.png"),
        ("VAE reconstructions", vae / f"step-{STEP:08d}-reconstructions.png"),
        ("VAE samples", vae / f"step-{STEP:08d}-samples.png"),
        ("DCGAN samples", dcgan / f"step-{STEP:08d}-samples.png"),
    ]
    images = [(title, Image.open(path).convert("L")) for title, path in panels]
    width = sum(image.width for _, image in images) + GAP * (len(images) - 1)
    height = TITLE + max(image.height for _, image in images)
    canvas = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(canvas)
    x = 0
    for title, image in images:
        draw.text((x + 2, 3), title, fill=0)
        canvas.paste(image, (x, TITLE))
        x += image.width + GAP
    canvas.save(args.out)
    print(f"wrote {args.out} ({width}x{height})")


if __name__ == "__main__":
    main()
