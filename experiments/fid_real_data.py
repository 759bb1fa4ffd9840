"""FID and KID between real image sets, as a calibration of genlab's scores: writes the .npz
files and runs `genlab fid` on each pair, then prints docs/fid.md's table.

The sets are the 32x32 uint8 images genlab trains on (genlab.data.load_split):
* the MNIST test split's images 1-N and 5,001-5,000+N (its two ordered halves, N = 5,000:
  NIST's training writers, then its test writers);
* a random half of the MNIST test split and the other half (numpy.random.default_rng(0)
  .permutation(10000), first and last 5,000), at most N each;
* MNIST test images 1-N and scikit-learn's 1,797 8x8 digits (`--dataset digits`: its train and
  test splits, upsampled to 32x32 as genlab trains on them), at most N.

    .venv/bin/python experiments/fid_real_data.py --data-dir ../shared/data/mnist --samples 5000
    .venv/bin/python experiments/fid_real_data.py --samples 200 --precision fp32 --fid-resize clean
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from genlab.config import FID_RESIZES, DataConfig
from genlab.data import load_split

# (A, B, the Inception precision each row was recorded with)
ROWS = [("mnist-test-first", "mnist-test-second", "fp32"),
        ("mnist-test-random-a", "mnist-test-random-b", "bf16"),
        ("mnist-test-first", "digits", "bf16")]
DESCRIPTIONS = {
    "mnist-test-first": "MNIST test images 1-{n}",
    "mnist-test-second": "MNIST test images 5,001-{end}",
    "mnist-test-random-a": "a random half of the MNIST test set ({n})",
    "mnist-test-random-b": "the other half ({n})",
    "digits": "scikit-learn's digits ({n}, 8x8 upsampled)",
}


def image_sets(data_dir: str | None, n: int) -> dict[str, torch.Tensor]:
    test = load_split(DataConfig(dataset="mnist", data_dir=data_dir), "test").images
    order = torch.from_numpy(np.random.default_rng(0).permutation(len(test)))
    half = len(test) // 2
    digits = torch.cat([load_split(DataConfig(dataset="digits"), split).images
                        for split in ("train", "test")])
    return {"mnist-test-first": test[:n], "mnist-test-second": test[half:half + n],
            "mnist-test-random-a": test[order[:half]][:n],
            "mnist-test-random-b": test[order[half:]][:n], "digits": digits[:n]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=5000, help="images a set, at most")
    parser.add_argument("--data-dir", default=None, help="the MNIST files (default: as genlab finds them)")
    parser.add_argument("--out", default="fid-real-data", help="folder for the .npz files")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default=None,
                        help="one precision for every row (default: each row's own)")
    parser.add_argument("--fid-resize", choices=FID_RESIZES, default=FID_RESIZES[0])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sets = image_sets(args.data_dir, args.samples)
    for name, images in sets.items():
        np.savez(out / f"{name}.npz", images=images.numpy())
    print("| A | B | precision | FID | KID (x 1e-3) |\n|---|---|---|---|---|")
    for a, b, precision in ROWS:
        precision = args.precision or precision
        command = [sys.executable, "-m", "genlab", "fid", str(out / f"{a}.npz"),
                   str(out / f"{b}.npz"), "--fid-precision", precision, "--fid-resize",
                   args.fid_resize, "--metrics", "fid,kid", "--device", args.device, "--json"]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode:  # genlab's one sentence (a CPU without bf16: --precision fp32)
            sys.exit(result.stderr.strip().splitlines()[-1])
        record = json.loads(result.stdout.strip().splitlines()[-1])
        names = [DESCRIPTIONS[s].format(n=f"{len(sets[s]):,}", end=f"{5000 + len(sets[s]):,}")
                 for s in (a, b)]
        # One KID subset (1,000 or fewer a side) is one estimate: it has no spread to give.
        spread = f" ± {1e3 * record['kid_std']:.1f}" if "kid_std" in record else ""
        print(f"| {names[0]} | {names[1]} | {precision} | {record['fid']:.2f} | "
              f"{1e3 * record['kid']:.1f}{spread} |", flush=True)


if __name__ == "__main__":
    main()
