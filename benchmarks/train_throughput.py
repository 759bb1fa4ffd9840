"""Training throughput of genlab's VAE against a pytorch/examples-style training loop (CPU).

What is compared
----------------
Both sides train the *same* model (genlab.models.vae.VAE with its default VAEConfig, on
1 x 32 x 32 images), from the same seed, with the same Adam learning rate (1e-3), batch size and
number of steps, on the same images, in one process, on the CPU:

* baseline -- the loop as pytorch/examples writes it (examples/vae/main.py, examples/mnist):
  a torch.utils.data.Dataset over the raw 28 x 28 uint8 images whose __getitem__ turns one item
  into a PIL image, resizes it to 32 x 32 with PIL's bilinear filter (what torchvision's
  ``Resize(32)`` does to a PIL image) and converts it to a float tensor / 255 (``ToTensor``); a
  ``DataLoader(batch_size=B, shuffle=True, num_workers=0)`` (the VAE example only uses workers
  with CUDA; see --workers), re-iterated every epoch; and the textbook step
  ``model.train(); optimizer.zero_grad(); loss.backward(); loss.item(); optimizer.step()``
  in the default NCHW layout. torchvision is not used (nor needed): its two transforms are
  written out here with PIL and numpy, operation for operation.
* genlab -- genlab's real ``Trainer`` (genlab.train.trainer), built the way ``genlab train``
  builds it (genlab.run.new_config / build_model, genlab.data.load_split). Its hot path is
  ``Trainer.train_step()``: a seeded index batch gathered from the split held in memory as one
  uint8 tensor (resized once, at load time), one float conversion, channels_last layout, then the
  model's phase(s).

Why it is fair
--------------
* Only training steps are timed, on both sides: ``len(loader)``-style data set construction and
  reading the IDX files are not timed for either. genlab's ``fit()`` also validates over the
  whole validation split, draws image grids and writes one checkpoint at the end of a run, which
  the baseline loop does not do, so the headline number times ``trainer.train_step()`` called N
  times; the full ``fit()`` wall time of a second, fresh Trainer is reported separately so the
  end-of-run overhead is visible (TensorBoard's one-off import is done before that timing).
* Each measurement starts from a freshly initialised model (same seed) and runs 20 untimed
  warm-up steps first. Measurements alternate (baseline, genlab, baseline, genlab, ...) for
  --repeats rounds and the best of each is reported, so thermal and background noise hit both.
* Both sides see the same pixels: the script checks that the per-item PIL pipeline and genlab's
  whole-tensor resize agree to within one grey level on the first images, and prints the result.
* The baseline counts the images it actually processed (its DataLoader keeps the short last
  batch of an epoch, as the examples do); genlab's batches are always full.
* On the CPU there is no asynchronous execution, so the baseline's per-step ``loss.item()`` and
  genlab's unsynchronised ``train_step()`` both finish all their work inside the timed region.

Data: the real MNIST test split (10,000 images) from ../shared/data/mnist relative to the
repository root (--data-dir); when it is absent, scikit-learn's embedded 8 x 8 digits (genlab's
``digits`` data set, train split, upsampled to 32 x 32 the same way on both sides).

Usage:  .venv/bin/python benchmarks/train_throughput.py [--steps 500] [--batch-size 32]
        [--repeats 2] [--data-dir DIR] [--workers 0] [--threads T]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from genlab.data import load_split
from genlab.data.idx import read_idx_pair
from genlab.data.memory import ImageSet
from genlab.data.mnist import MNIST, find_split
from genlab.models.vae import VAE, VAEConfig
from genlab.run import build_model, new_config, resolve_device
from genlab.train.trainer import Trainer

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
WARMUP_STEPS = 20
IMAGE_SIZE = 32
LEARNING_RATE = 1e-3  # pytorch/examples' VAE and genlab's VAE default
SEED = 0


# --- the baseline: pytorch/examples style -----------------------------------------------------

class PILImageDataset(Dataset):
    """torchvision.datasets.MNIST + Compose([Resize(32), ToTensor()]), written out.

    __getitem__ does per item what torchvision does: Image.fromarray(mode "L"), a bilinear
    resize to 32 x 32 (torchvision's Resize on a PIL image calls PIL's resize with BILINEAR), and
    ToTensor (np.array -> view (H, W, C) -> permute to (C, H, W) -> float / 255).
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, size: int = IMAGE_SIZE):
        self.images, self.labels, self.size = images, labels, size

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        img, target = self.images[index], int(self.labels[index])
        img = Image.fromarray(img, mode="L")
        img = img.resize((self.size, self.size), Image.BILINEAR)            # Resize(32)
        pixels = torch.from_numpy(np.array(img, np.uint8, copy=True))        # ToTensor
        pixels = pixels.view(img.size[1], img.size[0], 1).permute((2, 0, 1)).contiguous()
        return pixels.to(dtype=torch.get_default_dtype()).div(255), target


def endless(loader: DataLoader, model: torch.nn.Module) -> Iterator[torch.Tensor]:
    """Epoch after epoch, as the examples' `for epoch ...: train(epoch)` does."""
    while True:
        model.train()  # the examples' train(epoch) starts with model.train()
        for data, _ in loader:
            yield data


def baseline_run(dataset: PILImageDataset, steps: int, batch_size: int, workers: int,
                 seed: int) -> tuple[float, int]:
    """(seconds, images) for `steps` timed steps of the textbook loop, after the warm-up."""
    device = torch.device("cpu")
    torch.manual_seed(seed)  # as genlab.run.build_model does before building the model
    model = VAE(VAEConfig(), (1, IMAGE_SIZE, IMAGE_SIZE)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers)
    batches = endless(loader, model)
    train_loss = 0.0

    def step() -> int:
        nonlocal train_loss
        data = next(batches).to(device)
        optimizer.zero_grad()
        loss = model.losses(data)["loss"]
        loss.backward()
        train_loss += loss.item()
        optimizer.step()
        return len(data)

    for _ in range(WARMUP_STEPS):
        step()
    images = 0
    start = time.perf_counter()
    for _ in range(steps):
        images += step()
    seconds = time.perf_counter() - start
    batches.close()
    return seconds, images


# --- genlab -------------------------------------------------------------------------------------

def make_trainer(dataset: str, data_dir: str | None, split: str, train_set: ImageSet,
                 steps: int, batch_size: int, seed: int, run_dir: Path) -> Trainer:
    """A fresh Trainer built as genlab.cli.train_run builds one (minus resuming and messages)."""
    config = new_config("vae", {
        "dataset": dataset, "data_dir": data_dir, "download": False,
        "train_split": split, "val_split": split,
        "num_training_steps": steps, "batch_size": batch_size,
        "logging_steps": 10, "saving_steps": steps,  # exactly one save, at the end
        "seed": seed, "device": "cpu",
    })
    if config.train.learning_rate != LEARNING_RATE:
        raise SystemExit(f"genlab's VAE learning rate is {config.train.learning_rate}, not "
                         f"{LEARNING_RATE}; the comparison would not be like for like")
    config.image_shape = train_set.image_shape
    model = build_model(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    return Trainer(config, run_dir, model, train_set, train_set,
                   resolve_device(config.train.device), progress_stream=open(os.devnull, "w"))


def genlab_run(trainer: Trainer, steps: int) -> float:
    """Seconds for `steps` timed trainer.train_step() calls, after the warm-up."""
    trainer.model.train()  # as fit() does
    for _ in range(WARMUP_STEPS):
        trainer.train_step()
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    return time.perf_counter() - start


# --- data ---------------------------------------------------------------------------------------

def load_data(data_dir: Path) -> tuple[str, str | None, str, np.ndarray, np.ndarray, str]:
    """(dataset, data_dir for genlab, split, raw uint8 images (N, H, W), labels, note)."""
    found = find_split(MNIST, "test", str(data_dir)) if data_dir.is_dir() else None
    if found:
        images, labels = read_idx_pair(*found, count=MNIST.counts["test"])
        return "mnist", str(data_dir), "test", images, labels, f"from {found[0].parent}"
    from sklearn.datasets import load_digits

    from genlab.data.digits import TRAIN_COUNT

    digits = load_digits()
    pixels = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)  # as genlab.data.digits
    note = (f"MNIST test split not found in {data_dir}; falling back to scikit-learn's embedded "
            "8x8 digits")
    return ("digits", None, "train", pixels[:TRAIN_COUNT],
            digits.target[:TRAIN_COUNT].astype(np.int64), note)


def pipeline_difference(dataset: PILImageDataset, train_set: ImageSet, count: int = 256) -> int:
    """Largest difference, in grey levels, between the two pipelines' first `count` images."""
    count = min(count, len(dataset))
    baseline = torch.stack([dataset[i][0] for i in range(count)])
    genlab = train_set.images[:count].float() / 255
    return int(round(float((baseline - genlab).abs().max()) * 255))


# --- main ---------------------------------------------------------------------------------------

def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=positive_int, default=500,
                        help="timed training steps per measurement (default: 500)")
    parser.add_argument("--batch-size", type=positive_int, default=32,
                        help="images per step, both sides (default: 32)")
    parser.add_argument("--repeats", type=positive_int, default=2,
                        help="alternating rounds (baseline, genlab); best of each is reported "
                             "(default: 2)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help=f"folder holding MNIST's t10k IDX files (default: {DEFAULT_DATA_DIR})")
    parser.add_argument("--workers", type=non_negative_int, default=0,
                        help="baseline DataLoader num_workers (default: 0, as pytorch/examples' "
                             "VAE on the CPU)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch.set_num_threads (default: leave PyTorch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    dataset, data_dir, split, raw_images, raw_labels, note = load_data(args.data_dir)
    if dataset == "digits":
        print(f"note: {note}", flush=True)
    cfg = new_config("vae", {"dataset": dataset, "data_dir": data_dir, "download": False}).data
    train_set = load_split(cfg, split)
    base_set = PILImageDataset(raw_images, raw_labels)
    if train_set.image_shape != (1, IMAGE_SIZE, IMAGE_SIZE) or len(train_set) != len(base_set):
        raise SystemExit(f"genlab loaded {len(train_set)} images of {train_set.image_shape}, the "
                         f"baseline {len(base_set)}; they must be the same")
    source = note if dataset == "mnist" else train_set.source

    print(f"torch {torch.__version__}, device cpu, {torch.get_num_threads()} threads")
    print(f"data: {dataset}/{split}, {len(train_set)} images {source}, resized to "
          f"{IMAGE_SIZE}x{IMAGE_SIZE}; same pixels on both sides to within "
          f"{pipeline_difference(base_set, train_set)}/255")
    print(f"model: genlab VAE {VAEConfig()}, Adam lr {LEARNING_RATE}, batch {args.batch_size}, "
          f"{args.steps} timed steps after {WARMUP_STEPS} warm-up, best of {args.repeats}, "
          f"baseline workers {args.workers}", flush=True)

    base_rates, genlab_rates = [], []
    with tempfile.TemporaryDirectory(prefix="genlab-bench-") as tmp:
        for r in range(args.repeats):
            seconds, images = baseline_run(base_set, args.steps, args.batch_size, args.workers,
                                           SEED)
            base_rates.append(images / seconds)
            trainer = make_trainer(dataset, data_dir, split, train_set, args.steps,
                                   args.batch_size, SEED, Path(tmp) / f"steps-{r}")
            seconds = genlab_run(trainer, args.steps)
            trainer.progress_stream.close()
            genlab_rates.append(args.steps * args.batch_size / seconds)
            print(f"  round {r + 1}: baseline {base_rates[-1]:.0f} images/s, "
                  f"genlab {genlab_rates[-1]:.0f} images/s", flush=True)

        # The full run: fit() of a fresh Trainer, including the end-of-run validation over the
        # whole split, image grids and one checkpoint. TensorBoard's one-off import (RunLogger)
        # is done first so the time is the run's, not the interpreter's.
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401

        trainer = make_trainer(dataset, data_dir, split, train_set, args.steps, args.batch_size,
                               SEED, Path(tmp) / "fit")
        start = time.perf_counter()
        result = trainer.fit()
        fit_seconds = time.perf_counter() - start
        trainer.progress_stream.close()
        if result.step != args.steps or result.checkpoint is None:
            raise SystemExit(f"genlab fit() stopped at step {result.step} with checkpoint "
                             f"{result.checkpoint}; expected step {args.steps} and one checkpoint")

    base, gen = max(base_rates), max(genlab_rates)
    print(f"baseline (Dataset + per-item PIL transforms + DataLoader): {base:.0f} images/s")
    print(f"genlab   (in-memory uint8, index gather, channels_last):   {gen:.0f} images/s")
    print(f"ratio genlab/baseline: {gen / base:.2f}x")
    print(f"genlab fit() incl. final validation + checkpoint: {fit_seconds:.1f} s for "
          f"{args.steps} steps ({args.steps * args.batch_size / fit_seconds:.0f} images/s)")


if __name__ == "__main__":
    main()
