"""Latent-space quality of a trained run, measured on straight latent paths.

"Which model learns the better latent representation?" is answered with two numbers:

* smoothness: the mean distance, in FID's Inception feature space (2048-d pool3), between
  consecutive frames of a path z1 + (i/K)(z2 - z1), i = 0..K; and the path-length ratio, the sum
  of those distances over the distance between the path's two ends (1 when the images change
  along a straight line in feature space, larger when they jump or detour);
* the FID (and KID) of the paths' midpoints (i = K/2) against real images of the training split
  (the FID protocol's reference side, cached): a latent space whose in-between points decode to
  realistic images scores close to the model's own FID, one with holes far above it.

Ends are prior draws (seeded), or for models with an encoder optionally the encodings of random
training images. Each result is appended as a JSON line (`"metric": "latent_paths"`) beside the
checkpoint it measured, like FID records.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import torch

from genlab import __version__
from genlab.config import EvalConfig, RunConfig
from genlab.data.transforms import to_uint8
from genlab.errors import GenlabError
from genlab.metrics.evaluate import reference_stats, scores
from genlab.metrics.records import store_record, utc_now
from genlab.metrics.inception import InceptionFeatures
from genlab.metrics.registry import Values, register
from genlab.metrics.stats import FeatureStats
from genlab.models.base import evaluating
from genlab.models import walks

Log = Callable[[str], None]
METRIC = "latent_paths"


def path_distances(features: torch.Tensor) -> tuple[float, float]:
    """Features of paths (R, F, 2048) -> (mean consecutive-frame distance, mean path-length
    ratio)."""
    steps = features.diff(dim=1).norm(dim=2)                   # (R, F - 1)
    ends = (features[:, -1] - features[:, 0]).norm(dim=1)      # (R,)
    ratio = steps.sum(1) / ends.clamp_min(1e-12)
    return steps.mean().item(), ratio.mean().item()


def check_scoring(steps: int, paths: int, midpoints: int, eval_cfg: EvalConfig,
                  device: torch.device) -> None:
    """Everything `--score` needs, checked before anything is decoded or written."""
    from genlab.metrics.evaluate import check_ready

    check_path_settings(steps, paths, midpoints)
    check_ready(eval_cfg, device)


def _describe(values: Values) -> str:
    return (f"smoothness {values['smoothness']:.3f} (mean Inception-feature distance between "
            f"consecutive frames), path-length ratio {values['path_length_ratio']:.3f}, "
            f"midpoint FID {values['midpoint_fid']:.2f}")


def check_path_settings(steps: int, paths: int, midpoints: int) -> None:
    if steps % 2:
        raise GenlabError(f"--steps {steps} has no midpoint frame for --score; use an even number")
    if midpoints < max(2, paths):
        raise GenlabError(f"--midpoints {midpoints} must be at least 2 and at least --paths {paths}")


@register(METRIC, keys=("midpoint_fid", "midpoint_kid", "smoothness", "path_length_ratio"),
          describe=_describe, shown=("midpoint_fid", "smoothness", "path_length_ratio"),
          needs="generator")
def evaluate_latent_paths(config: RunConfig, model, step: int, checkpoint: Path,
                          eval_cfg: EvalConfig, device: torch.device, log: Log, warn: Log, *,
                          paths: int = 50, midpoints: int = 1000, steps: int = 8,
                          source: str = "prior", seed: int = 0) -> dict:
    """Smoothness over `paths` paths of `steps` + 1 frames, and the FID of `midpoints`
    midpoints; stored beside `checkpoint`."""
    check_path_settings(steps, paths, midpoints)
    started = time.perf_counter()
    extractor = InceptionFeatures(eval_cfg.inception_weights, device, eval_cfg.fid_precision,
                                  resize=eval_cfg.fid_resize)
    generator = torch.Generator().manual_seed(seed)
    with evaluating(model):
        data = None
        if source == "data":
            from genlab.data import load_split

            data = load_split(config.data, config.data.train_split).images
        z1, z2 = walks.endpoints(model, midpoints, generator, source, data)
        # The first `paths` paths are decoded whole; the rest only at their midpoint.
        full = walks.walk(z1[:paths], z2[:paths], steps)             # (paths, F, D)
        frames = to_uint8(walks.decode_paths(model, full))            # (paths * F, C, H, W)
        middle = to_uint8(walks.decode_paths(model, ((z1 + z2) / 2)[:, None, :]))  # (M, C, H, W)
    log(f"latent paths: Inception features of {len(frames)} path frames and {len(middle)} "
        "midpoints")
    frame_features = extractor(frames).reshape(paths, steps + 1, -1)  # (paths, F, 2048)
    smoothness, ratio = path_distances(frame_features)
    real, reference = reference_stats(config.data, config.data.train_split, midpoints, extractor,
                                      log, warn)
    middle_scores = scores(real, FeatureStats.of(extractor(middle)), ("fid", "kid"), warn)
    record = {
        "metric": METRIC, "step": step, "checkpoint": checkpoint.name, "model": config.model,
        "smoothness": smoothness, "path_length_ratio": ratio,
        "midpoint_fid": middle_scores["fid"], "midpoint_kid": middle_scores["kid"],
        "settings": {"protocol": f"{paths} paths of {steps + 1} frames (smoothness); "
                                 f"{midpoints} path midpoints vs {midpoints} real images of "
                                 f"{config.data.dataset}/{config.data.train_split} (FID)",
                     "paths": paths, "frames": steps + 1, "midpoints": midpoints,
                     "ends": source, "seed": seed, "reference": reference,
                     **extractor.settings, "device": str(device), "genlab_version": __version__},
        "time": utc_now(), "seconds": round(time.perf_counter() - started, 1),
    }
    store_record(checkpoint, record, step)
    return record
