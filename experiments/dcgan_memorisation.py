"""Does the homework's DCGAN discriminator memorise a small training set?

Trains genlab's DCGAN (the homework's defaults, or --diff-augment POLICY) on images 0-4,999 of
the MNIST test split and, every 1,000 steps, prints D's mean output on those training images and
on images 5,000-9,999, which it never sees, and on 2,560 generated images. A discriminator that
rates its training images as more real than unseen real images has memorised them (the README's
"DCGAN results" quotes a run of this script: the gap was positive at all 12 checkpoints from
1,000 to 12,000 steps, mean +0.09).

D is measured as in training: BatchNorm in training mode over batches of 64 images of one kind,
with its running statistics left alone (they are not used in training anyway).

Usage:  .venv/bin/python experiments/dcgan_memorisation.py [--steps 12000] [--data-dir DIR]
        [--diff-augment translation,cutout]      (about 25 s per 1,000 steps on 2 CPU cores)
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from genlab.data import load_split
from genlab.data.memory import ImageSet
from genlab.models.augment import POLICIES
from genlab.models.base import frozen_batchnorm_stats
from genlab.run import build_model, new_config
from genlab.train.trainer import Trainer

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
TRAIN_IMAGES = 5000
BATCH = 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=12000)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--diff-augment", choices=POLICIES, default="none")
    args = parser.parse_args()

    config = new_config("dcgan", {"dataset": "mnist", "data_dir": str(args.data_dir),
                                  "train_split": "test", "download": False,
                                  "diff_augment": args.diff_augment})
    split = load_split(config.data, "test")
    config.image_shape = split.image_shape
    train = ImageSet(split.images[:TRAIN_IMAGES], None, "mnist", f"test[:{TRAIN_IMAGES}]", "")
    unseen = split.images[TRAIN_IMAGES:]
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(config, Path(run_dir), build_model(config), train, train,
                          torch.device("cpu"))
        model = trainer.model

        def mean_d(images: torch.Tensor) -> float:
            with torch.no_grad(), frozen_batchnorm_stats(model):
                scores = [model.discriminate(images[s:s + BATCH]) for s in range(0, len(images), BATCH)]
            return torch.cat(scores).mean().item()

        model.train()
        print("step  D(train)  D(unseen)  gap     D(G(z))", flush=True)
        for step in range(1, args.steps + 1):
            trainer.train_step()
            if step % 1000 == 0:
                latents = model.sample_latents(40 * BATCH, torch.Generator().manual_seed(0))
                with torch.no_grad(), frozen_batchnorm_stats(model):
                    fakes = torch.cat([model.decode(z) for z in latents.split(BATCH)])
                d_train = mean_d(trainer._batch(train.images))
                d_unseen = mean_d(trainer._batch(unseen))
                print(f"{step:5d}  {d_train:.3f}     {d_unseen:.3f}      {d_train - d_unseen:+.3f}  "
                      f"{mean_d(fakes):.3f}", flush=True)


if __name__ == "__main__":
    main()
