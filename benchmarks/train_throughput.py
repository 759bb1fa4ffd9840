"""Training throughput of genlab's VAE or DCGAN against a pytorch/examples-style loop (CPU).

What is compared
----------------
Both sides train the *same* model (genlab's VAE or DCGAN with its default config, on
1 x 32 x 32 images), from the same seed, with the same Adam settings, batch size and number of
steps, on the same images, in one process, on the CPU:

* baseline -- the loop as pytorch/examples writes it (examples/vae/main.py, examples/mnist):
  a torch.utils.data.Dataset over the raw 28 x 28 uint8 images whose __getitem__ turns one item
  into a PIL image, resizes it to 32 x 32 with PIL's bilinear filter (what torchvision's
  ``Resize(32)`` does to a PIL image) and converts it to a float tensor / 255 (``ToTensor``); a
  ``DataLoader(batch_size=B, shuffle=True, num_workers=0)`` (the VAE example only uses workers
  with CUDA; see --workers), re-iterated every epoch; and the textbook step
  ``model.train(); optimizer.zero_grad(); loss.backward(); loss.item(); optimizer.step()``
  in the default NCHW layout. For the DCGAN (--model dcgan) the dataset adds ``Normalize(0.5,
  0.5)`` and the step is examples/dcgan/main.py's: D on the real batch with BCELoss on the
  Sigmoid output, backward; G(z) once, D on ``fake.detach()``, backward, D step; D on the same
  ``fake`` again for G's loss (real labels), backward, G step; ``.item()`` of D(x), D(G(z1)),
  D(G(z2)) and both losses each step. torchvision is not used (nor needed): its transforms are
  written out here with PIL and numpy, operation for operation.
* genlab -- genlab's real ``Trainer`` (genlab.train.trainer), built the way ``genlab train``
  builds it (genlab.run.new_config / build_model, genlab.data.load_split). Its hot path is
  ``Trainer.train_step()``: a seeded index batch gathered from the split held in memory as one
  uint8 tensor (resized once, at load time), one float conversion, channels_last layout, then the
  model's phase(s). genlab's DCGAN computes G(z) once a step, in the discriminator phase, and
  hands it to the generator phase, as the example does.

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

Usage:  .venv/bin/python benchmarks/train_throughput.py [--model vae|dcgan] [--steps 500]
        [--batch-size B (default: the model's, 32 or 64)] [--repeats 2] [--data-dir DIR]
        [--workers 0] [--threads T]
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

from genlab.console import Console
from genlab.data import load_split
from genlab.data.idx import read_idx_pair
from genlab.data.memory import ImageSet
from genlab.data.mnist import MNIST, find_split
from genlab.data.transforms import to_model_range
from genlab.models import MODELS
from genlab.models.dcgan import ADAM_BETAS
from genlab.run import build_model, new_config, resolve_device
from genlab.train.trainer import Trainer

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
WARMUP_STEPS = 20
IMAGE_SIZE = 32
# pytorch/examples' settings, which genlab's defaults match (checked in make_trainer).
LEARNING_RATES = {"vae": 1e-3, "dcgan": 2e-4}
SEED = 0


# --- the baseline: pytorch/examples style -----------------------------------------------------

class PILImageDataset(Dataset):
    """torchvision.datasets.MNIST + Compose([Resize(32), ToTensor()]), written out.

    __getitem__ does per item what torchvision does: Image.fromarray(mode "L"), a bilinear
    resize to 32 x 32 (torchvision's Resize on a PIL image calls PIL's resize with BILINEAR), and
    ToTensor (np.array -> view (H, W, C) -> permute to (C, H, W) -> float / 255).
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, size: int = IMAGE_SIZE,
                 normalize: bool = False):
        self.images, self.labels, self.size = images, labels, size
        self.normalize = normalize  # Normalize((0.5,), (0.5,)) after ToTensor: [-1, 1]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        img, target = self.images[index], int(self.labels[index])
        img = Image.fromarray(img, mode="L")
        img = img.resize((self.size, self.size), Image.BILINEAR)            # Resize(32)
        pixels = torch.from_numpy(np.array(img, np.uint8, copy=True))        # ToTensor
        pixels = pixels.view(img.size[1], img.size[0], 1).permute((2, 0, 1)).contiguous()
        tensor = pixels.to(dtype=torch.get_default_dtype()).div(255)
        if self.normalize:
            tensor = tensor.sub_(0.5).div_(0.5)                             # Normalize
        return tensor, target


def endless(loader: DataLoader, model: torch.nn.Module) -> Iterator[torch.Tensor]:
    """Epoch after epoch, as the examples' `for epoch ...: train(epoch)` does."""
    while True:
        model.train()  # the examples' train(epoch) starts with model.train()
        for data, _ in loader:
            yield data


def vae_step(model, batches, learning_rate: float):
    """examples/vae/main.py's train step."""
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    train_loss = 0.0

    def step() -> int:
        nonlocal train_loss
        data = next(batches)
        optimizer.zero_grad()
        loss = model.losses(data)["loss"]
        loss.backward()
        train_loss += loss.item()
        optimizer.step()
        return len(data)
    return step


def dcgan_step(model, batches, learning_rate: float):
    """examples/dcgan/main.py's train step on genlab's networks."""
    net_g, net_d = model.generator, model.discriminator
    criterion = torch.nn.BCELoss()
    optimizer_d = torch.optim.Adam(net_d.parameters(), lr=learning_rate, betas=ADAM_BETAS)
    optimizer_g = torch.optim.Adam(net_g.parameters(), lr=learning_rate, betas=ADAM_BETAS)
    real_label, fake_label = 1.0, 0.0

    def step() -> int:
        real = next(batches)
        b = real.size(0)
        # (1) Update D: maximise log(D(x)) + log(1 - D(G(z)))
        net_d.zero_grad()
        label = torch.full((b,), real_label, dtype=real.dtype)
        output = net_d(real).view(-1)
        err_d_real = criterion(output, label)
        err_d_real.backward()
        d_x = output.mean().item()
        noise = torch.randn(b, model.latent_dim, 1, 1)
        fake = net_g(noise)
        label.fill_(fake_label)
        output = net_d(fake.detach()).view(-1)
        err_d_fake = criterion(output, label)
        err_d_fake.backward()
        d_g_z1 = output.mean().item()
        err_d = err_d_real + err_d_fake
        optimizer_d.step()
        # (2) Update G: maximise log(D(G(z)))
        net_g.zero_grad()
        label.fill_(real_label)
        output = net_d(fake).view(-1)
        err_g = criterion(output, label)
        err_g.backward()
        d_g_z2 = output.mean().item()
        optimizer_g.step()
        _ = (err_d.item(), err_g.item(), d_x, d_g_z1, d_g_z2)  # the example prints these
        return b
    return step


BASELINE_STEPS = {"vae": vae_step, "dcgan": dcgan_step}


def baseline_run(model_name: str, dataset: PILImageDataset, steps: int, batch_size: int,
                 workers: int, seed: int) -> tuple[float, int]:
    """(seconds, images) for `steps` timed steps of the textbook loop, after the warm-up."""
    model_cls = MODELS[model_name]
    torch.manual_seed(seed)  # as genlab.run.build_model does before building the model
    model = model_cls(model_cls.config_class(), (1, IMAGE_SIZE, IMAGE_SIZE))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers)
    batches = endless(loader, model)
    step = BASELINE_STEPS[model_name](model, batches, LEARNING_RATES[model_name])

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

def make_trainer(model_name: str, dataset: str, data_dir: str | None, split: str,
                 train_set: ImageSet, steps: int, batch_size: int, seed: int,
                 run_dir: Path) -> Trainer:
    """A fresh Trainer built as genlab.cli.train_run builds one (minus resuming and messages)."""
    config = new_config(model_name, {
        "dataset": dataset, "data_dir": data_dir, "download": False,
        "train_split": split, "val_split": split,
        "num_training_steps": steps, "batch_size": batch_size,
        "logging_steps": 10, "saving_steps": steps,  # exactly one save, at the end
        "seed": seed, "device": "cpu",
    })
    if config.train.learning_rate != LEARNING_RATES[model_name]:
        raise SystemExit(f"genlab's {model_name} learning rate is {config.train.learning_rate}, "
                         f"not {LEARNING_RATES[model_name]}; the comparison would not be like "
                         "for like")
    config.image_shape = train_set.image_shape
    model = build_model(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    return Trainer(config, run_dir, model, train_set, train_set,
                   resolve_device(config.train.device),
                   console=Console(stream=open(os.devnull, "w")))


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


def pipeline_difference(dataset: PILImageDataset, train_set: ImageSet,
                        data_range: tuple[float, float], count: int = 256) -> int:
    """Largest difference, in grey levels, between the two pipelines' first `count` images."""
    count = min(count, len(dataset))
    baseline = torch.stack([dataset[i][0] for i in range(count)])
    genlab = to_model_range(train_set.images[:count], data_range)
    grey_level = (data_range[1] - data_range[0]) / 255
    return int(round(float((baseline - genlab).abs().max()) / grey_level))


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
    parser.add_argument("--model", choices=sorted(BASELINE_STEPS), default="vae",
                        help="which model both sides train (default: vae)")
    parser.add_argument("--steps", type=positive_int, default=500,
                        help="timed training steps per measurement (default: 500)")
    parser.add_argument("--batch-size", type=positive_int, default=None,
                        help="images per step, both sides (default: the model's, 32 for the "
                        "VAE, 64 for the DCGAN)")
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
    model_cls = MODELS[args.model]
    if args.batch_size is None:
        args.batch_size = model_cls.train_defaults["batch_size"]
    if args.threads:
        torch.set_num_threads(args.threads)

    dataset, data_dir, split, raw_images, raw_labels, note = load_data(args.data_dir)
    if dataset == "digits":
        print(f"note: {note}", flush=True)
    cfg = new_config(args.model, {"dataset": dataset, "data_dir": data_dir,
                                  "download": False}).data
    train_set = load_split(cfg, split)
    base_set = PILImageDataset(raw_images, raw_labels, normalize=model_cls.data_range[0] < 0)
    if train_set.image_shape != (1, IMAGE_SIZE, IMAGE_SIZE) or len(train_set) != len(base_set):
        raise SystemExit(f"genlab loaded {len(train_set)} images of {train_set.image_shape}, the "
                         f"baseline {len(base_set)}; they must be the same")
    source = note if dataset == "mnist" else train_set.source

    print(f"torch {torch.__version__}, device cpu, {torch.get_num_threads()} threads")
    print(f"data: {dataset}/{split}, {len(train_set)} images {source}, resized to "
          f"{IMAGE_SIZE}x{IMAGE_SIZE}; same pixels on both sides to within "
          f"{pipeline_difference(base_set, train_set, model_cls.data_range)}/255")
    print(f"model: genlab {model_cls.config_class()}, Adam lr {LEARNING_RATES[args.model]}, "
          f"batch {args.batch_size}, "
          f"{args.steps} timed steps after {WARMUP_STEPS} warm-up, best of {args.repeats}, "
          f"baseline workers {args.workers}", flush=True)

    base_rates, genlab_rates = [], []
    with tempfile.TemporaryDirectory(prefix="genlab-bench-") as tmp:
        for r in range(args.repeats):
            seconds, images = baseline_run(args.model, base_set, args.steps, args.batch_size,
                                           args.workers, SEED)
            base_rates.append(images / seconds)
            trainer = make_trainer(args.model, dataset, data_dir, split, train_set, args.steps,
                                   args.batch_size, SEED, Path(tmp) / f"steps-{r}")
            seconds = genlab_run(trainer, args.steps)
            trainer.console.stream.close()
            genlab_rates.append(args.steps * args.batch_size / seconds)
            print(f"  round {r + 1}: baseline {base_rates[-1]:.0f} images/s, "
                  f"genlab {genlab_rates[-1]:.0f} images/s", flush=True)

        # The full run: fit() of a fresh Trainer, including the end-of-run validation over the
        # whole split, image grids and one checkpoint. TensorBoard's one-off import (RunLogger)
        # is done first so the time is the run's, not the interpreter's.
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401

        trainer = make_trainer(args.model, dataset, data_dir, split, train_set, args.steps,
                               args.batch_size, SEED, Path(tmp) / "fit")
        start = time.perf_counter()
        result = trainer.fit()
        fit_seconds = time.perf_counter() - start
        trainer.console.stream.close()
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
