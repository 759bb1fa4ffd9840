"""The homework's FID protocol for a trained run (FID, KID, precision/recall: genlab.metrics.registry),
and the same metrics between any two image sets.

Protocol (the homework's): N images generated from N(0, I) latents (seeded) against N real images
from the run's training split (a seeded random choice), N = 3000 by default (`--fid-reference
val` or `both`: the same generated images against the validation split's, held out); both sides
are uint8 images (the generated ones rounded as a PNG would be) through the same preprocessing. The real
side's features are cached (genlab.metrics.cache). Every score is appended, with its settings, as a
JSON line to `checkpoints/step-XXXXXXXX-metrics.jsonl` beside the checkpoint it measured, and
logged to TensorBoard as `metrics/<name>` at that step (genlab.metrics.records).
"""

from __future__ import annotations

import functools
import hashlib
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

import torch

from genlab import __version__
from genlab.config import DataConfig, EvalConfig, RunConfig
from genlab.data.transforms import to_uint8, to_unit_range
from genlab.errors import GenlabError
from genlab.metrics import cache, registry
from genlab.metrics.records import append_record, log_tensorboard, read_records, utc_now
from genlab.metrics.inception import (DEFAULT_RESIZE, NUM_FEATURES, InceptionFeatures, check_precision,
                                      check_resize, find_weights, verify_weights)
from genlab.metrics.stats import FULL_RANK_SAMPLES, FeatureStats
from genlab.models.base import evaluating
from genlab.distributed import SINGLE, Processes, gather_to_main

REFERENCE_SEED = 0       # which real images are chosen: randperm(seed 0)[:N]
# The value of a setting that a stored score or cache key lacks: every score and key without a
# resize was made with the pytorch-fid one.
UNSTATED_SETTINGS = {"resize": DEFAULT_RESIZE}
GENERATE_BATCH = 250
Log = Callable[[str], None]


def check_ready(eval_cfg: EvalConfig, device: torch.device) -> None:
    """Fail now, not after hours of training, when FID could not be computed at the end."""
    names = registry.parse_metrics(eval_cfg.metrics)
    if eval_cfg.fid_samples:
        check_fid_samples(names, eval_cfg.fid_samples)
        check_precision(eval_cfg.fid_precision, device)
        check_resize(eval_cfg.fid_resize)
        _verify_once(find_weights(eval_cfg.inception_weights))


def _verify_once(path: Path) -> None:
    """verify_weights, once a process for the file as it stands (path, size, modification
    time): a sweep checks every run before its first; the network is verified again when it is
    loaded to score."""
    try:
        stat = path.stat()
    except OSError:
        verify_weights(path)  # raises, naming the file and why
        return
    _verified(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _verified(path: str, size: int, mtime_ns: int) -> None:
    verify_weights(Path(path))  # a failure raises, and is not cached


def check_fid_samples(names: tuple[str, ...], n: int) -> None:
    """--fid-samples against what every metric asked for needs (Metric.min_samples), before
    anything is generated."""
    metric = registry.needing_more(names, n)
    if metric:
        raise GenlabError(f"--fid-samples {n} is too few; {metric.name} needs at least "
                          f"{metric.min_samples} images a side (the homework's protocol uses "
                          "3000)")


class _Progress:
    """A tqdm bar on a terminal; otherwise a plain line every 30 s (FID takes minutes on a CPU)."""

    EVERY = 30.0

    def __init__(self, total: int, what: str):
        from tqdm import tqdm

        self.total, self.what, self.done = total, what, 0
        self.start = self.last = time.monotonic()
        self.bar = (tqdm(total=total, desc=what, unit="img", leave=False, file=sys.stderr,
                         dynamic_ncols=True) if sys.stderr.isatty() else None)

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif time.monotonic() - self.last >= self.EVERY and self.done < self.total:
            self.last = time.monotonic()
            rate = self.done / (self.last - self.start)
            print(f"FID: {self.done}/{self.total} {self.what} images ({rate:.1f} images/s)",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def extract(extractor: InceptionFeatures, batches: Iterable[torch.Tensor], total: int,
            what: str) -> FeatureStats:
    stats = FeatureStats(NUM_FEATURES)
    progress = _Progress(total, what)
    try:
        for features in extractor.stream(batches, progress.update):
            stats.update(features)
    finally:
        progress.close()
    return stats


def generated_images(model, n: int, seed: int, device: torch.device,
                     processes: Processes = SINGLE) -> Iterator[torch.Tensor]:
    """n samples as uint8 batches; latents drawn on the CPU, so the same on any device. With
    several processes, each decodes batches rank, rank + N, ... of the same sequence."""
    generator = torch.Generator().manual_seed(seed)
    for index, start in enumerate(range(0, n, GENERATE_BATCH)):
        count = min(GENERATE_BATCH, n - start)
        latents = model.sample_latents(count, generator)  # drawn by all: the sequence stays one
        if index % processes.world_size != processes.rank:
            continue
        with evaluating(model):
            images = to_unit_range(model.decode(latents.to(device)), model.data_range)
        yield to_uint8(images)  # rounded as a PNG would be: the same path as the real images


def generated_stats(extractor: InceptionFeatures, model, n: int, seed: int, device: torch.device,
                    processes: Processes = SINGLE) -> FeatureStats | None:
    """Features of the n generated images; with several processes each computes its share and
    rank 0 gets them all, in the one-process order (None on the others)."""
    if not processes.parallel:
        return extract(extractor, generated_images(model, n, seed, device), n, "generated")
    # This process's batches' features, one tensor per batch (no progress bar: N processes).
    mine = [f.cpu() for f in extractor.stream(generated_images(model, n, seed, device, processes))]
    shares = gather_to_main(mine, processes)
    if shares is None:
        return None
    # Batch i was made by rank i % N, as its (i // N)-th: back into batch order.
    world = processes.world_size
    batches = sum(len(share) for share in shares)
    return FeatureStats.of(torch.cat([shares[i % world][i // world] for i in range(batches)]))


def check_sample_count(n: int, available: int, images_of: str) -> None:
    """The one check of --fid-samples against the real images there are to compare with: at the
    start of training (the training split), before `genlab eval` generates anything, and where
    the real images are drawn."""
    if n > available:
        raise GenlabError(f"--fid-samples {n} is more than the {available} images of "
                          f"{images_of}; use at most {available} (or 0 to skip FID)")


def check_reference_count(data: DataConfig, split: str, n: int) -> None:
    from genlab.data import describe_split

    check_sample_count(n, describe_split(data, split).count, f"{data.dataset}/{split}")


def device_that_matters(precision: str, device: torch.device | str) -> str | None:
    """The device type features depend on: for bf16 its kernels (oneDNN on a CPU, cuDNN on a GPU)
    round differently, so a CPU's bf16 features must not stand in for a GPU's (one type, not one
    model of chip); fp32 ones (TF32 off) differ only in summation order, so any device serves."""
    return torch.device(device).type if precision == "bf16" else None


def reference_cache_fields(reference: dict, extractor: InceptionFeatures) -> dict:
    """What keys the cached features of a reference: its images and the extractor's settings."""
    fields = {**reference, **extractor.settings}
    if fields["resize"] == UNSTATED_SETTINGS["resize"]:
        # The default's key leaves the field out, so features cached without it stay valid; the
        # preprocessing text in the key tells the resizes apart.
        del fields["resize"]
    device = device_that_matters(extractor.precision, extractor.device)
    if device is not None:
        fields["device"] = device
    return fields


def reference_stats(data: DataConfig, split: str, n: int, extractor: InceptionFeatures,
                    log: Log, warn: Log) -> tuple[FeatureStats, dict]:
    """Features of n real images of `split` (cached), and what defines them."""
    from genlab.data import load_split

    images = load_split(data, split, log=log).images
    check_sample_count(n, len(images), f"{data.dataset}/{split}")
    chosen = images[torch.randperm(len(images), generator=torch.Generator().manual_seed(
        REFERENCE_SEED))[:n]].contiguous()
    reference = {"dataset": data.dataset, "split": split, "samples": n,
                 "selection": f"randperm(seed={REFERENCE_SEED})[:{n}]",
                 "image_shape": list(chosen.shape[1:]),
                 "images_sha256": hashlib.sha256(chosen.numpy().tobytes()).hexdigest()}
    key_fields = reference_cache_fields(reference, extractor)
    resize = "" if extractor.resize == DEFAULT_RESIZE else f"-{extractor.resize}"
    label = f"{data.dataset}-{split}-n{n}-{extractor.precision}{resize}"
    features = cache.load_cached(key_fields, label, warn)
    if features is None:
        log(f"FID: computing the features of {n} real {data.dataset}/{split} images (cached for "
            "next time)")
        features = extract(extractor, chosen.split(extractor.batch_size), n, "real").features
        cache.save_cached(key_fields, label, features, warn)
    else:
        log(f"FID: using the cached features of {n} real {data.dataset}/{split} images")
    return FeatureStats.of(features), reference


def scores(real: FeatureStats, fake: FeatureStats, names: tuple[str, ...], warn: Log) -> dict:
    """The named values of the metrics `names` (and which they are), generated against real."""
    n = min(real.count, fake.count)
    if n < FULL_RANK_SAMPLES and "fid" in names:
        warn(f"FID from {n} samples (fewer than the {FULL_RANK_SAMPLES} feature dimensions) is "
             "biased upwards: compare it only with FIDs from the same sample counts")
    return {**registry.compute(names, real, fake), "metrics": list(names)}


def reference_splits(config: RunConfig, eval_cfg: EvalConfig) -> list[str]:
    """The splits whose real images the generated ones are scored against, first the one the
    run's headline score uses: --fid-reference train (the run's training split, as the homework's
    starter scores), val (its validation split: held-out images) or both. A source with one
    split (a --data file or folder) has one reference whatever is asked."""
    from genlab.data import describe_split

    asked = {"train": [config.data.train_split], "val": [config.data.val_split],
             "both": [config.data.train_split, config.data.val_split]}[eval_cfg.fid_reference]
    if config.data.data_path is None:  # a named data set: its splits differ by name
        return list(dict.fromkeys(asked))
    splits: dict[str, str] = {}  # what a split loads as -> the split asked for
    for split in asked:
        splits.setdefault(describe_split(config.data, split).split, split)
    return list(splits.values())


def run_settings(config: RunConfig, eval_cfg: EvalConfig, seed: int, split: str) -> dict:
    """The settings that make two scores of one checkpoint comparable (before the network is
    loaded: its hash is added by `evaluate_run`)."""
    n = eval_cfg.fid_samples
    which = ("the homework's FID protocol" if split == config.data.train_split
             else "held-out images")
    return {"protocol": f"{n} generated vs {n} real images of {config.data.dataset}/{split} "
                        f"({which})",
            "generated_samples": n, "real_samples": n, "generator_seed": seed,
            "reference_split": split, "precision": eval_cfg.fid_precision,
            "resize": eval_cfg.fid_resize}


def _setting(record: dict, name: str):
    settings = record.get("settings")
    settings = settings if isinstance(settings, dict) else {}
    return settings.get(name, UNSTATED_SETTINGS.get(name))


def stored_records(checkpoint: Path, config: RunConfig, eval_cfg: EvalConfig, seed: int,
                   device: torch.device | None = None) -> dict[str, dict | None]:
    """Each reference split's stored score of this checkpoint under the same settings, with
    every metric asked for (None where there is none), in reference_splits' order. A setting a
    stored score lacks counts as its UNSTATED_SETTINGS value. A bf16 score counts only from the
    same device type as `device` (bf16 features differ between a CPU and a GPU)."""
    names = set(registry.parse_metrics(eval_cfg.metrics))
    records = read_records(checkpoint)
    needed = device_that_matters(eval_cfg.fid_precision, device) if device is not None else None

    def same_device(record: dict) -> bool:
        stored = _setting(record, "device")
        return needed is None or (isinstance(stored, str) and stored.split(":")[0] == needed)

    found = {}
    for split in reference_splits(config, eval_cfg):
        wanted = run_settings(config, eval_cfg, seed, split)
        found[split] = next((r for r in reversed(records)
                             if all(_setting(r, k) == v for k, v in wanted.items())
                             and names <= set(registry.metrics_of(r)) and same_device(r)), None)
    return found


def evaluate_run(config: RunConfig, model, step: int, checkpoint: Path, eval_cfg: EvalConfig,
                 device: torch.device, log: Log, warn: Log, seed: int = 0,
                 processes: Processes = SINGLE,
                 splits: list[str] | None = None) -> list[dict] | None:
    """FID, KID and precision/recall of a run's model under the protocol, against each
    reference split (`splits`, default all of --fid-reference's; the same generated images for
    all); each stored beside `checkpoint`, the first also logged. With several processes, all
    generate and extract; rank 0 scores (the others get None)."""
    started = time.perf_counter()
    names = registry.parse_metrics(eval_cfg.metrics)
    n = eval_cfg.fid_samples
    check_fid_samples(names, n)
    asked = reference_splits(config, eval_cfg)  # the first is the headline score's
    splits = splits or asked
    for split in splits:
        check_reference_count(config.data, split, n)  # before any generating
    extractor = InceptionFeatures(eval_cfg.inception_weights, device, eval_cfg.fid_precision,
                                  resize=eval_cfg.fid_resize)
    log(f"FID: computing the features of {n} generated images")
    fake = generated_stats(extractor, model, n, seed, device, processes)
    if fake is None:
        return None
    records = []
    for split in splits:
        real, reference = reference_stats(config.data, split, n, extractor, log, warn)
        record = {
            "step": step, "checkpoint": checkpoint.name, "model": config.model,
            **scores(real, fake, names, warn),
            "settings": {**run_settings(config, eval_cfg, seed, split), "reference": reference,
                         **extractor.settings, "device": str(device),
                         "genlab_version": __version__},
            "time": utc_now(), "seconds": round(time.perf_counter() - started, 1),
        }
        append_record(checkpoint, record)
        records.append(record)
    # TensorBoard's metrics/* curves: the headline reference's (its tags carry no split), so
    # not when only another split was missing and is scored now.
    if splits[0] == asked[0]:
        log_tensorboard(checkpoint.parent.parent, step, registry.values_of(records[0]))
    return records


def compare_sources(source_a, source_b, extractor: InceptionFeatures, names: tuple[str, ...],
                    warn: Log) -> dict:
    """The metrics `names` between two genlab.data.folder.ImageSource (A is the 'real' side)."""
    started = time.perf_counter()
    stats = [extract(extractor, src.batches(extractor.batch_size), len(src), name)
             for src, name in ((source_a, "A"), (source_b, "B"))]
    return {**scores(stats[0], stats[1], names, warn),
            "settings": {"protocol": f"{stats[0].count} images of A vs {stats[1].count} of B",
                         "a": str(source_a.path), "b": str(source_b.path),
                         "a_samples": stats[0].count, "b_samples": stats[1].count,
                         **extractor.settings, "device": str(extractor.device),
                         "genlab_version": __version__},
            "time": utc_now(), "seconds": round(time.perf_counter() - started, 1)}
