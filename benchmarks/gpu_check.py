"""One script for a machine with a GPU (and, with --smoke, any CPU in a minute): what genlab's
CUDA paths do, measured, in at most --budget seconds (8 minutes by default).

1. The device and its measured dense peak (benchmarks/roofline.py: matmul and 3x3/5x5
   convolutions, fp32 and bf16).
2. Each model's training step in fp32 eager (NCHW, TF32 off: benchmarks/precision_throughput.py's
   baseline) and in genlab's fast path (bf16 autocast, channels_last, TF32, torch.compile), with
   FLOPs per image (FlopCounterMode) and the fraction of the matmul peak.
3. FID feature extraction images/s in fp32 and bf16, and the FID between two halves of the real
   images measured both ways (their difference is what bf16 costs).
4. The VAE/GAN with the lab's defaults trained for --train-seconds on --data (CelebA 64x64:
   ../shared/data/celeba/celeba64.h5), then its FID (1,000 a side), and from its images/s how long
   the lab's 100 epochs of the full CelebA (202,599 images) would take.
5. A 2-process torchrun run with NCCL, if the machine has 2 GPUs.

Writes OUT/gpu_check.json and OUT/gpu_check.md (a table naming the device). Parts that cannot run
(no Inception weights, no data, one GPU) are recorded as skipped with the reason.

Usage:  python benchmarks/gpu_check.py [--out gpu-check] [--budget 480] [--data FILE.h5]
        [--inception-weights FILE] [--smoke]
On the lent GPU machine (nothing can be installed there; its python3 holds torch, numpy, h5py,
PIL, tensorboard, tqdm, scikit-learn, matplotlib), from a clone of the repository:
        PYTHONPATH=. python3 benchmarks/gpu_check.py --out $OUT
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from precision_throughput import MODELS, make_trainer, set_tf32, synthetic_images, time_eager  # noqa: E402
from roofline import count_flops, device_name, measure_peak, synchronize, timed_steps  # noqa: E402
from genlab.hardware import has_bf16  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CELEBA = REPO.parent / "shared" / "data" / "celeba" / "celeba64.h5"
FULL_CELEBA_IMAGES = 202_599
LAB_EPOCHS = 100
# --smoke's VAE/GAN: the lab's convolutions, narrow FC layers (63 MB checkpoints, not 0.72 GB).
SMOKE_VAEGAN = {"latent_dim": 16, "encoder_hidden_dim": 32, "discriminator_hidden_dim": 32}


class Budget:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def model_rows(device: torch.device, peak: dict, smoke: bool, budget: Budget) -> list[dict]:
    rows = []
    names = ("vae", "dcgan", "vaegan") if smoke else ("vae", "dcgan", "vae-larsen64", "dcgan64",
                                                       "vaegan")
    for name in names:
        if budget.left() < 60:
            rows.append({"model": name, "skipped": "out of time"})
            continue
        model, settings, shape = MODELS[name]
        batch = 4 if smoke else (64 if "vae" != name else 32)
        steps, warmup = (1, 1) if smoke else (20, 5)
        if smoke and name == "vaegan":  # narrow FC layers: a second, not a minute
            MODELS[name] = (model, {**settings, **SMOKE_VAEGAN}, shape)
        images = synthetic_images(64 if smoke else 1024, shape, device)
        row = {"model": name, "batch": batch, "image": "x".join(map(str, shape))}
        with tempfile.TemporaryDirectory() as folder:
            eager = time_eager(name, batch, images, device, steps, warmup)
            fast = {} if has_bf16(device) else {"fp32": eager}
            for label, precision, compile_ in (("bf16", "bf16", False), ("bf16+compile", "bf16", True)):
                if not has_bf16(device) or compile_ and (smoke or device.type != "cuda"):
                    continue  # emulated bf16 is many times slower; compiling takes minutes on a CPU
                set_tf32(device.type == "cuda")
                trainer = make_trainer(name, batch, precision, images, device, folder, compile_)
                fast[label] = timed_steps(trainer.train_step, steps, warmup + (10 if compile_ else 0),
                                          batch, device)
            trainer = make_trainer(name, batch, "fp32", images, device, folder)
            flops = count_flops(trainer.train_step) / batch
        best = max(fast, key=fast.get)
        row.update({"gflop_per_image": flops / 1e9, "fp32_eager_images_s": eager,
                    "fast_path": best, "fast_images_s": fast[best],
                    "fp32_eager_fraction_of_fp32_peak": eager * flops / 1e9 / peak["matmul fp32"],
                    "fast_fraction_of_peak": fast[best] * flops / 1e9 / peak[f"matmul {best[:4]}"],
                    "speedup": fast[best] / eager, "all_fast": fast})
        rows.append(row)
        print(f"{name}: fp32 eager {eager:.1f} images/s, {best} {fast[best]:.1f} images/s "
              f"({flops / 1e9:.2f} GFLOP/image)", flush=True)
    return rows


def fid_row(device: torch.device, weights: str | None, data: Path | None, smoke: bool) -> dict:
    from genlab.errors import GenlabError
    from genlab.metrics.fid import fid
    from genlab.metrics.inception import InceptionFeatures
    from genlab.metrics.stats import FeatureStats

    n = 32 if smoke else 2000
    images = (_real_images(data, n) if data else synthetic_images(n, (3, 64, 64), torch.device("cpu")))
    out = {"images": n}
    try:
        for precision in ("fp32", "bf16") if has_bf16(device) else ("fp32",):
            extractor = InceptionFeatures(weights, device, precision)
            extractor(images[:8])  # warm-up
            synchronize(device)
            start = time.perf_counter()
            features = extractor(images)
            synchronize(device)
            out[f"{precision}_images_s"] = n / (time.perf_counter() - start)
            half = n // 2
            out[f"{precision}_fid_half_vs_half"] = fid(FeatureStats.of(features[:half]),
                                                       FeatureStats.of(features[half:]))
    except GenlabError as exc:
        return {"skipped": str(exc)}
    if "bf16_fid_half_vs_half" in out:
        out["bf16_fid_difference"] = out["bf16_fid_half_vs_half"] - out["fp32_fid_half_vs_half"]
    else:
        out["bf16_skipped"] = f"this {device.type} has no bfloat16 in hardware"
    return out


def synthetic_hdf5(path: Path) -> Path:
    import h5py

    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=synthetic_images(64, (3, 64, 64), torch.device("cpu")).numpy())
    return path


def _real_images(path: Path, n: int) -> torch.Tensor:
    from genlab.data.hdf5 import read_hdf5

    from genlab.data.hdf5 import open_hdf5

    return read_hdf5(path, rows=(0, min(n, len(open_hdf5(path)))))


def vaegan_row(device: torch.device, data: Path | None, weights: str | None, seconds: float,
               smoke: bool, out_dir: Path) -> dict:
    """The lab's VAE/GAN trained for `seconds` (genlab train, --precision auto), then scored."""
    from genlab.console import Console
    from genlab.train.api import train

    if data is None:
        return {"skipped": f"no CelebA file (looked for {CELEBA}; pass --data)"}
    run = out_dir / "vaegan-run"
    settings = {"data_path": str(data), "num_training_steps": 10**6, "saving_steps": 10**6,
                "logging_steps": 10, "fid_samples": 0, "device": str(device)}
    if smoke:
        settings.update(SMOKE_VAEGAN, batch_size=4, num_training_steps=2, val_images=16)
    from genlab.train import trainer as trainer_module

    started = time.monotonic()
    original = trainer_module.Trainer.train_step

    def stop_in_time(self):  # the run ends at the first step after `seconds` (checkpointed)
        if time.monotonic() - started > seconds:
            os.kill(os.getpid(), __import__("signal").SIGINT)
        return original(self)
    trainer_module.Trainer.train_step = stop_in_time
    try:
        outcome = train("vaegan", settings, run, Console())
    finally:
        trainer_module.Trainer.train_step = original
    rate = outcome.result.images_per_second
    row = {"steps": outcome.result.step, "images_s": rate, "seconds": time.monotonic() - started,
           "lab_100_epochs_full_celeba_hours": LAB_EPOCHS * FULL_CELEBA_IMAGES / rate / 3600
           if rate else None}
    if weights is not None or not smoke:
        from genlab.config import EvalConfig
        from genlab.metrics.evaluate import evaluate_run
        from genlab.run import load_run

        try:
            trained = load_run(run, device, print)
            config, model, step, path = trained.config, trained.model, trained.step, trained.checkpoint
            [record] = evaluate_run(config, model, step, path, EvalConfig(
                fid_samples=16 if smoke else 1000, fid_precision="bf16" if has_bf16(device)
                else "fp32", inception_weights=weights), device, print, print)
            row.update(fid=record.get("fid"), kid=record.get("kid"), fid_protocol=record["settings"]["protocol"])
        except Exception as exc:  # a benchmark records what failed and carries on
            row["fid_skipped"] = f"{type(exc).__name__}: {exc}"
    return row


def torchrun_row(smoke: bool) -> dict:
    if torch.cuda.device_count() < 2:
        return {"skipped": f"{torch.cuda.device_count()} GPU(s): the NCCL run needs 2"}
    with tempfile.TemporaryDirectory() as folder:
        result = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
             "-m", "genlab", "train", "dcgan", "--dataset", "digits", "--steps", "50",
             "--fid-samples", "0", "--run-dir", folder], capture_output=True, text=True,
            cwd=REPO, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    return {"returncode": result.returncode, "tail": result.stderr.strip().splitlines()[-3:]}


def markdown(report: dict) -> str:
    lines = [f"# genlab GPU check: {report['device']}", "",
             f"torch {report['torch']}, {report['date']}, {report['seconds']:.0f} s"
             + (" (--smoke)" if report["smoke"] else ""), "",
             "measured peak (GFLOP/s): " + ", ".join(f"{k} {v:.0f}" for k, v in report["peak"].items()),
             "", "| model | GFLOP/image | fp32 eager images/s | fast path | images/s | speedup | "
             "fraction of peak (fp32 eager; fast path vs its precision's) |", "|---|---|---|---|---|---|---|"]
    for r in report["models"]:
        if "skipped" in r:
            lines.append(f"| {r['model']} | skipped: {r['skipped']} | | | | | |")
            continue
        lines.append(f"| {r['model']} | {r['gflop_per_image']:.2f} | {r['fp32_eager_images_s']:.1f} | "
                     f"{r['fast_path']} | {r['fast_images_s']:.1f} | {r['speedup']:.2f}x | "
                     f"{100 * r['fp32_eager_fraction_of_fp32_peak']:.0f}%; "
                     f"{100 * r['fast_fraction_of_peak']:.0f}% |")
    lines += ["", f"FID extraction: {json.dumps(report['fid'])}",
              f"VAE/GAN, lab defaults: {json.dumps(report['vaegan'])}",
              f"torchrun (2 GPUs, NCCL): {json.dumps(report['torchrun'])}", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("gpu-check"))
    parser.add_argument("--budget", type=float, default=480.0, help="seconds for everything")
    parser.add_argument("--data", type=Path, default=None,
                        help=f"CelebA HDF5 (default: {CELEBA} where it exists; with --smoke, 64 "
                        "synthetic images)")
    parser.add_argument("--inception-weights", default=None)
    parser.add_argument("--train-seconds", type=float, default=180.0)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: any CPU, a minute")
    args = parser.parse_args()
    started = time.monotonic()
    budget = Budget(args.budget)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.data is None:
        args.data = (synthetic_hdf5(args.out / "synthetic.h5") if args.smoke else
                     CELEBA if CELEBA.is_file() else None)
    if args.smoke:  # a small product, so the smoke run stays short
        from roofline import matmul_peak

        peak = {"matmul fp32": matmul_peak(device, torch.float32, 256) / 1e9,
                "matmul bf16": matmul_peak(device, torch.bfloat16, 256) / 1e9}
    else:
        peak = measure_peak(device)
    print(f"device: {device_name(device)}; peak {peak}", flush=True)
    report = {"device": device_name(device), "torch": torch.__version__, "smoke": args.smoke,
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "peak": peak}
    report["models"] = model_rows(device, peak, args.smoke, budget)
    report["fid"] = fid_row(device, args.inception_weights, args.data, args.smoke)
    train_seconds = 5 if args.smoke else min(args.train_seconds, max(30.0, budget.left() - 90))
    report["vaegan"] = vaegan_row(device, args.data, args.inception_weights, train_seconds,
                                  args.smoke, args.out)
    report["torchrun"] = torchrun_row(args.smoke)
    report["seconds"] = time.monotonic() - started
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str))
    (args.out / "gpu_check.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
