"""The lab's full protocol on one GPU in at most --budget seconds (10 minutes by default): the
VAE/GAN and its two baselines trained on the 14,283 CelebA training faces, then every kept
checkpoint scored, written as one trajectory table.

1. Train, one run at a time, with genlab's own training (genlab.train.api.train, what `genlab
   train` calls), at batch 64 on ../shared/data/celeba/celeba64.h5:
   - `genlab train vaegan` (the lab's defaults);
   - `genlab train vae --arch larsen64 --latent-dim 2048 --learning-rate 3e-4`;
   - `genlab train dcgan --arch dcgan64`;
   for the lab's 100 epochs, or for what the estimate below says fits, with --checkpoints
   checkpoints kept (`--saving-steps`: every 20 epochs by default), no FID during training, and
   each run under `--max-time`, its share of the budget, so no run can overrun it: at the
   deadline it checkpoints and stops.
2. Score each kept checkpoint with `genlab eval`'s protocol (genlab.metrics.evaluate: FID, KID,
   precision and recall, 3,000 generated against 3,000 training faces, fp32, stored beside the
   checkpoint), and the posterior-mean reconstructions Dec(mu(x)) of the 660 held-out test faces
   with experiments/vaegan_comparison.py's measures: pixel error, edge contrast, detail error.
3. Write OUT/gpu_lab.json and OUT/gpu_lab.md: the plan, each run, and the trajectory table (a row
   per model per kept checkpoint), and each run's log as OUT/gpu_lab-MODEL.log.

The size, from FLOPs. Each model's training FLOPs per image are counted on the device with
FlopCounterMode over one genlab step (benchmarks/roofline.py's count: convolutions and matrix
products, forward and backward): 24.17 GFLOP for the VAE/GAN (docs/benchmarks.md), 3.88 for the
VAE, 2.27 for the DCGAN. 100 epochs are 22,318 steps of 64 images per model. The time model, per
model, is

    steps x max(64 x FLOP per image / R, T_step) + checkpoints x T_save + T_run

with these assumptions (none of them measured for genlab on a GPU yet):
- R = 200 TFLOP/s (--assume-tflops), the sustained bf16 training rate: a quarter of the
  790 TFLOP/s of an 8192^3 bf16 matrix product measured on an H200 (the datasheet's dense bf16
  is 989). A quarter because at batch 64 the convolutions are small (64x64 faces, 32-256
  channels) and a fifth of the VAE/GAN's step is elementwise BatchNorm and ReLU work
  (benchmarks/profile_step.py on a CPU: 22%).
- T_step = 3 ms (--assume-step-ms): the floor of an eager step, a few hundred kernel launches
  and the trainer's Python; it, not R, bounds the two baselines.
- T_save = 2 s a kept checkpoint (0.7-0.8 GB written and hashed for the VAE/GAN and the VAE);
  T_run = 20 s a run (loading the data, the first steps, the last checkpoint).
- Scoring a checkpoint: 5 s (loading it and the Inception network, reading the training split
  for the reference's hash) plus 3,000 Inception forwards of 11.42 GFLOP at 20 TFLOP/s (fp32
  with TF32 off, 30% of the datasheet's 67), so 6.7 s; the real side's features once more.
So 100 epochs with 5 checkpoints are estimated at 306 s of training steps (the VAE/GAN 173 s at
R; the VAE and the DCGAN 67 s each at T_step), 90 s of runs' and checkpoints' overhead and 103 s
of scoring: 499 s, within 90% of the 600 s budget. 10 checkpoints (every 10 epochs) add 100 s of
scoring and 30 s of saving; then 100 epochs do not fit and the script trains fewer. Whenever the
lab's 100 epochs do not fit, it says so and trains the largest whole number of epochs that does.
Each run then gets the time left for training in proportion to its estimate, less T_run, as
--max-time; scoring skips (and records) the checkpoints the budget has no time left for.

Parts that cannot run are recorded with the reason: no Inception weights (the scores are then
the reconstructions' only), a run that fails. Without the CelebA file it stops with one sentence.
Existing run folders in --runs are resumed, as `genlab train` resumes them.

--smoke runs all of it on any CPU in under a minute: a synthetic HDF5 file in the lab's layout
(`images` and CelebA `ids`: 8 training, 2 validation and 8 test faces), narrow models (the VAE
baseline as --arch conv: larsen64's encoder heads hold 67 M weights at any latent size), 2 epochs
at batch 4, 2 checkpoints, FID on 4 images a side. --dry-run prints the plan and trains nothing.

Usage:  python benchmarks/gpu_lab.py [--out gpu-lab] [--budget 600] [--checkpoints 5]
        [--data FILE.h5] [--runs DIR] [--inception-weights FILE] [--smoke] [--dry-run]
On the lent GPU machine (nothing can be installed there; see benchmarks/gpu_check.py):
        PYTHONPATH=. python3 benchmarks/gpu_lab.py --out $OUT
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))

from precision_throughput import synthetic_images  # noqa: E402
from roofline import count_flops, device_name  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CELEBA = REPO.parent / "shared" / "data" / "celeba" / "celeba64.h5"
LAB_EPOCHS = 100
LAB_BATCH = 64
LAB_FID_SAMPLES = 3000
# Each model of the lab's comparison: genlab's model name and its settings beyond the defaults
# (experiments/celeba_long.sh's; the VAE at the VAE/GAN's latent size and learning rate).
LAB_MODELS = {
    "vaegan": ("vaegan", {}),
    "vae-larsen64": ("vae", {"arch": "larsen64", "latent_dim": 2048, "learning_rate": 3e-4}),
    "dcgan64": ("dcgan", {"arch": "dcgan64"}),
}
SMOKE_MODELS = {
    "vaegan": ("vaegan", {"latent_dim": 16, "encoder_hidden_dim": 32,
                          "discriminator_hidden_dim": 32}),
    "vae-conv": ("vae", {"arch": "conv", "latent_dim": 16, "learning_rate": 3e-4}),
    "dcgan64": ("dcgan", {"arch": "dcgan64", "generator_hidden_dim": 16,
                          "discriminator_hidden_dim": 16}),
}
# CelebA's official partition by file number (genlab/data/celeba.py): the first id of each split.
SMOKE_SPLITS = {"train": (1, 8), "valid": (162_771, 2), "test": (182_638, 8)}


@dataclass(frozen=True)
class Assumptions:
    """The time model's numbers (the docstring says where each comes from)."""

    train_tflops: float = 200.0    # sustained bf16 training rate R
    step_floor_ms: float = 3.0     # an eager step's floor T_step
    save_s: float = 2.0            # one kept checkpoint T_save
    run_s: float = 20.0            # one run's start and end T_run
    score_fixed_s: float = 5.0     # one checkpoint's scoring, the Inception forwards aside
    fid_tflops: float = 20.0       # the fp32 Inception's rate
    inception_gflop: float = 11.42  # one Inception forward at 299x299 (docs/benchmarks.md)
    margin: float = 0.9            # the plan fills this fraction of the budget


SMOKE_ASSUMPTIONS = Assumptions(run_s=5.0, save_s=0.5, score_fixed_s=2.0)


@dataclass
class Plan:
    epochs: float
    steps: int                 # per model
    saving_steps: int
    train_s: dict[str, float]  # each run's estimate
    score_s: float
    total_s: float
    lab_total_s: float         # the estimate for the lab's epochs
    fits: bool                 # the lab's epochs fit the budget
    note: str


def estimate(flops: dict[str, float], epochs: float, checkpoints: int, n_train: int, batch: int,
             fid_samples: int, a: Assumptions) -> dict:
    """Seconds for training `epochs` of every model and scoring their checkpoints."""
    steps = math.ceil(epochs * n_train / batch)
    train = {name: steps * max(batch * f / (a.train_tflops * 1e12), a.step_floor_ms / 1e3)
             + checkpoints * a.save_s + a.run_s for name, f in flops.items()}
    inception_s = fid_samples * a.inception_gflop * 1e9 / (a.fid_tflops * 1e12)
    score = len(flops) * checkpoints * (a.score_fixed_s + inception_s) + inception_s
    return {"steps": steps, "train_s": train, "score_s": score,
            "total_s": sum(train.values()) + score}


def make_plan(flops: dict[str, float], budget_s: float, checkpoints: int, n_train: int,
              batch: int, fid_samples: int, lab_epochs: float, a: Assumptions) -> Plan:
    """The lab's epochs if the estimate fits --budget (its `margin`), else the most whole
    epochs that fit (hundredths below one)."""
    usable = a.margin * budget_s
    lab = estimate(flops, lab_epochs, checkpoints, n_train, batch, fid_samples, a)
    epochs = lab_epochs
    if lab["total_s"] > usable:
        def total(epochs: float) -> float:
            return estimate(flops, epochs, checkpoints, n_train, batch, fid_samples, a)["total_s"]

        fixed, per_epoch = total(0), total(1) - total(0)  # linear in the epochs
        fitting = (usable - fixed) / per_epoch
        epochs = math.floor(fitting) if fitting >= 1 else math.floor(100 * fitting) / 100
        if epochs <= 0:
            raise SystemExit(f"a budget of {budget_s:.0f} s is too small: scoring and the runs' "
                             f"overhead alone are estimated at {fixed:.0f} s")
    chosen = estimate(flops, epochs, checkpoints, n_train, batch, fid_samples, a)
    fits = epochs == lab_epochs
    note = (f"{lab_epochs:g} epochs of all three are estimated at {lab['total_s']:.0f} s against "
            f"{usable:.0f} s ({a.margin:.0%} of the {budget_s:.0f} s left of the budget): "
            + ("they fit" if fits else f"they do not fit; training {epochs:g} epochs "
               f"(estimated {chosen['total_s']:.0f} s) instead"))
    return Plan(epochs, chosen["steps"], math.ceil(chosen["steps"] / checkpoints),
                chosen["train_s"], chosen["score_s"], chosen["total_s"], lab["total_s"], fits, note)


def flops_per_image(model_name: str, settings: dict, device: torch.device, batch: int = 2) -> float:
    """Training FLOPs per image of one genlab step (FlopCounterMode, as the benchmarks count),
    at a small batch: convolutions and matrix products grow with it linearly."""
    from genlab.data.memory import ImageSet
    from genlab.run import build_model, new_config
    from genlab.train.trainer import Trainer

    config = new_config(model_name, {**settings, "batch_size": batch, "precision": "fp32",
                                     "device": str(device)})
    config.image_shape = (3, 64, 64)
    images = synthetic_images(4 * batch, config.image_shape, device)
    data = ImageSet(images, None, "synthetic", "train", "synthetic")
    with tempfile.TemporaryDirectory() as folder:
        trainer = Trainer(config, folder, build_model(config), data, data, device)
        trainer.train_step()  # warm-up: lazy initialisation is not the step's work
        return count_flops(trainer.train_step) / batch


def smoke_hdf5(path: Path) -> Path:
    """A tiny file in the lab's layout: uint8 `images` (N, 3, 64, 64) and CelebA `ids`."""
    import h5py
    import numpy as np

    ids = np.concatenate([np.arange(first, first + n) for first, n in SMOKE_SPLITS.values()])
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=synthetic_images(len(ids), (3, 64, 64),
                                                         torch.device("cpu")).numpy())
        f.create_dataset("ids", data=ids.astype(np.int32))
    return path


def train_runs(models: dict, plan: Plan, data: Path, batch: int, runs: Path, out: Path,
               device: torch.device, deadline: float, a: Assumptions) -> dict[str, dict]:
    """Each model trained (or resumed) by genlab, one at a time, each under --max-time: its
    share of the time left before `deadline`, in proportion to its estimate."""
    from genlab.console import Console
    from genlab.train.api import train

    results = {}
    names = list(models)
    for i, name in enumerate(names):
        model_name, settings = models[name]
        left = deadline - time.monotonic()
        share = left * plan.train_s[name] / sum(plan.train_s[n] for n in names[i:])
        max_time = share - a.run_s  # --max-time counts from the first step
        if max_time < 1:
            results[name] = {"skipped": f"out of time ({left:.0f} s left for training)"}
            continue
        settings = {**settings, "data_path": str(data), "epochs": plan.epochs,
                    "batch_size": batch, "saving_steps": plan.saving_steps, "logging_steps": 50,
                    "fid_samples": 0, "max_time": max_time, "device": str(device)}
        print(f"{name}: training {plan.epochs:g} epochs ({plan.steps} steps) for at most "
              f"{max_time:.0f} s", flush=True)
        started = time.monotonic()
        try:
            with open(out / f"gpu_lab-{name}.log", "w") as log:
                outcome = train(model_name, settings, runs / name, Console(stream=log))
            result = outcome.result
            results[name] = {"model": model_name, "settings": settings, "steps": result.step,
                             "images_s": result.images_per_second,
                             "stopped": result.stop or "finished", "max_time_s": max_time,
                             "seconds": time.monotonic() - started}
            del outcome
        except Exception as exc:  # a benchmark records what failed and carries on
            results[name] = {"error": f"{type(exc).__name__}: {exc}",
                             "seconds": time.monotonic() - started}
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        print(f"{name}: {json.dumps(results[name], default=str)}", flush=True)
    return results


@torch.no_grad()
def reconstruction_scores(model, real_uint8: torch.Tensor, device: torch.device) -> dict:
    """experiments/vaegan_comparison.py's measures of Dec(mu(x)) against x, images in [0, 1]."""
    from genlab.data.transforms import to_model_range, to_unit_range
    from vaegan_comparison import detail_error, edge_contrast

    real = real_uint8.float() / 255  # (N, C, H, W)
    recon = torch.cat([
        to_unit_range(model.reconstruct(to_model_range(b.to(device), model.data_range)),
                      model.data_range).float().cpu()
        for b in real_uint8.split(64)])  # (N, C, H, W)
    return {"pixel_mse": (recon - real).square().mean().item(),
            "edge_contrast": edge_contrast(recon, real), "detail_error": detail_error(recon, real)}


def score_runs(names: list[str], runs: Path, n_train: int, batch: int, eval_cfg, scoring_skipped:
               str | None, device: torch.device, deadline: float, per_checkpoint_s: float,
               log, every: int = 1, known: dict | None = None) -> list[dict]:
    """A row per model per kept checkpoint of a step that is a multiple of `every`: genlab
    eval's scores (unless `scoring_skipped`) and the reconstructions' measures; checkpoints in
    order of training, the models interleaved, so that running out of time costs every model
    its last checkpoints alike. What is already known is read whatever the time: scores stored
    beside a checkpoint under the same protocol, and `known[(name, step)]`, a row's
    reconstruction measures from an earlier call; only measuring anew waits for time, and a
    row that had to go without says "out of time"."""
    from genlab.checkpoint import list_checkpoints
    from genlab.data import load_split
    from genlab.metrics import registry
    from genlab.metrics.evaluate import evaluate_run, stored_records
    from genlab.models import MODELS
    from genlab.run import load_run, open_config

    kept = {name: [(step, path) for step, path in list_checkpoints(runs / name)
                   if step % every == 0] for name in names}
    configs = {name: open_config(runs / name) for name in names}
    held_out = {}
    rows = []
    for index in range(max(map(len, kept.values()), default=0)):
        for name in names:
            if index >= len(kept[name]):
                continue
            step, checkpoint = kept[name][index]
            config = configs[name]
            row = {"model": name, "step": step, "images": step * batch,
                   "epoch": step * batch / n_train}
            rows.append(row)
            try:
                record = None
                if scoring_skipped is None:
                    # a score stored under the same protocol (an earlier call) is read, not redone
                    record = next(iter(stored_records(checkpoint, config, eval_cfg, seed=0,
                                                      device=device).values()))
                    if record is not None:
                        row.update(registry.shown_values(record))
                row.update({key: value for key, value in (known or {}).get((name, step), {}).items()
                            if key in RECONSTRUCTION_FORMATS})
                to_score = scoring_skipped is None and record is None
                to_reconstruct = (MODELS[config.model].can("encoder")
                                  and not RECONSTRUCTION_FORMATS.keys() <= row.keys())
                if not (to_score or to_reconstruct):
                    continue
                if deadline - time.monotonic() < per_checkpoint_s:
                    row["skipped"] = "out of time"
                    continue
                trained = load_run(runs / name, device, log, step=step)
                if to_score:
                    [record] = evaluate_run(trained.config, trained.model, trained.step,
                                            trained.checkpoint, eval_cfg, device, log, log)
                    row.update(registry.shown_values(record))
                if to_reconstruct:
                    data = trained.config.data
                    if data.val_split not in held_out:
                        held_out[data.val_split] = load_split(data, data.val_split).images
                    row.update(reconstruction_scores(trained.model, held_out[data.val_split],
                                                     device))
                del trained
            except Exception as exc:  # a benchmark records what failed and carries on
                row["error"] = f"{type(exc).__name__}: {exc}"
            finally:
                print(f"scored {json.dumps(row)}", flush=True)
    return rows


def markdown(report: dict) -> str:
    plan = report["plan"]
    lines = [f"# genlab lab protocol on one device: {report['device']}", "",
             f"torch {report['torch']}, {report['date']}, {report['seconds']:.0f} s of a "
             f"{report['budget_s']:.0f} s budget" + (" (--smoke)" if report["smoke"] else ""), "",
             f"**Plan.** {plan['note']}. Assumed: {report['assumptions_text']}.", "",
             "| model | settings | GFLOP/image | epochs | steps | estimated s | steps reached | "
             "images/s | s | stopped |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, run in report["runs"].items():
        model_name, settings = report["models"][name]
        command = " ".join([model_name, *(f"--{k.replace('_', '-')} {v}"
                                          for k, v in settings.items())])
        head = (f"| {name} | `{command}` | {report['gflop_per_image'][name]:.2f} | "
                f"{plan['epochs']:g} | {plan['steps']} | {plan['train_s'][name]:.0f} |")
        if "steps" in run:
            lines.append(f"{head} {run['steps']} | {run['images_s']:.1f} | {run['seconds']:.0f} | "
                         f"{run['stopped']} |")
        else:
            lines.append(f"{head} | | | {run.get('skipped') or run.get('error')} |")
    lines += ["", "**Trajectory.** " + (
        f"FID, KID, precision and recall: {report['fid_samples']} generated against "
        f"{report['fid_samples']} training faces, fp32"
        if report["scoring_skipped"] is None else f"FID not scored: {report['scoring_skipped']}")
        + f"; reconstructions of the {report['held_out_images']} held-out test faces "
        "(experiments/vaegan_comparison.py's measures).", ""]
    return "\n".join(lines + trajectory_table(report["rows"])) + "\n"


# What a trajectory row is, as opposed to what it scored.
ROW_KEYS = ("model", "step", "images", "epoch", "skipped", "error")
# reconstruction_scores' values, as the table writes them (a metric formats its own).
RECONSTRUCTION_FORMATS = {"pixel_mse": ".4f", "edge_contrast": ".3f", "detail_error": ".2f"}


def trajectory_table(rows: list[dict]) -> list[str]:
    """The trajectory's Markdown table: a row per model per kept checkpoint, a column per value
    any row scored, in order of first appearance."""
    from genlab.metrics.registry import format_value

    keys = list(dict.fromkeys(k for row in rows for k in row if k not in ROW_KEYS)) or ["scores"]
    lines = ["| model | epoch | step | images seen | "
             + " | ".join(k.replace("_", " ") for k in keys) + " |", "|---" * (4 + len(keys)) + "|"]

    def cell(row: dict, key: str) -> str:
        if key not in row:
            return row.get("skipped", "-")  # a partial row: what it went without, and why
        fmt = RECONSTRUCTION_FORMATS.get(key)
        return format(row[key], fmt) if fmt else format_value(key, row[key])

    for row in rows:
        head = f"| {row['model']} | {row['epoch']:.1f} | {row['step']} | {row['images']:,} |"
        if "error" in row or row.keys() <= {*ROW_KEYS}:  # nothing scored
            lines.append(f"{head} {row.get('error') or row.get('skipped')} |" + " |" * (len(keys) - 1))
        else:
            lines.append(head + "".join(f" {cell(row, key)} |" for key in keys))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("gpu-lab"))
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds for everything (default: 600; with --smoke 120)")
    parser.add_argument("--checkpoints", type=int, default=None,
                        help="checkpoints kept per run, evenly spaced (default: 5; with --smoke 2)")
    parser.add_argument("--data", type=Path, default=None, help=f"CelebA HDF5 (default: {CELEBA})")
    parser.add_argument("--runs", type=Path, default=None,
                        help="folder of the run folders (default: a new temporary folder, kept; "
                        "with --smoke, removed)")
    parser.add_argument("--inception-weights", default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--assume-tflops", type=float, default=Assumptions.train_tflops,
                        help="the sustained bf16 training rate R of the estimate")
    parser.add_argument("--assume-step-ms", type=float, default=Assumptions.step_floor_ms,
                        help="the floor T_step of one eager step in the estimate")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: any CPU, under a minute")
    parser.add_argument("--dry-run", action="store_true", help="print the plan; train nothing")
    args = parser.parse_args()
    started = time.monotonic()

    from genlab.config import EvalConfig
    from genlab.data import describe_split
    from genlab.errors import GenlabError
    from genlab.metrics.inception import find_weights, verify_weights
    from genlab.run import new_config, resolve_device

    budget = args.budget or (120.0 if args.smoke else 600.0)
    checkpoints = args.checkpoints or (2 if args.smoke else 5)
    models = SMOKE_MODELS if args.smoke else LAB_MODELS
    batch, lab_epochs, fid_samples = (4, 2, 4) if args.smoke else (LAB_BATCH, LAB_EPOCHS,
                                                                    LAB_FID_SAMPLES)
    a = replace(SMOKE_ASSUMPTIONS if args.smoke else Assumptions(),
                train_tflops=args.assume_tflops, step_floor_ms=args.assume_step_ms)
    device = resolve_device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="genlab-lab-") as scratch:
        data = (smoke_hdf5(Path(scratch) / "celeba-smoke.h5") if args.smoke
                else args.data or CELEBA)
        if not Path(data).is_file():
            raise SystemExit(f"no CelebA file at {data}: pass --data FILE.h5 (`genlab prepare` "
                             "makes one from the aligned CelebA folder)")
        data_config = new_config("vaegan", {"data_path": str(data)}).data
        n_train = describe_split(data_config, "train").count
        n_held_out = describe_split(data_config, data_config.val_split).count
        print(f"device: {device_name(device)}; {n_train} training faces in {data}", flush=True)
        flops = {name: flops_per_image(model_name, settings, device)
                 for name, (model_name, settings) in models.items()}
        print("training GFLOP per image: "
              + ", ".join(f"{n} {f / 1e9:.2f}" for n, f in flops.items()), flush=True)
        try:
            verify_weights(find_weights(args.inception_weights))
            scoring_skipped = None
        except GenlabError as exc:
            scoring_skipped = str(exc)
        plan = make_plan(flops, budget - (time.monotonic() - started), checkpoints, n_train,
                         batch, 0 if scoring_skipped else fid_samples, lab_epochs, a)
        assumed = (f"R = {a.train_tflops:g} TFLOP/s sustained bf16 training, an eager step at "
                   f"least {a.step_floor_ms:g} ms, {a.save_s:g} s a kept checkpoint, {a.run_s:g} s "
                   f"a run, {a.score_fixed_s:g} s a scored checkpoint plus its Inception forwards "
                   f"at {a.fid_tflops:g} TFLOP/s")
        print(f"plan: {plan.note}; {checkpoints} checkpoints a run, every {plan.saving_steps} "
              f"steps ({plan.saving_steps * batch / n_train:.1f} epochs)\nassumed: {assumed}",
              flush=True)
        if args.dry_run:
            return
        runs = args.runs or (Path(scratch) / "runs" if args.smoke
                             else Path(tempfile.mkdtemp(prefix="genlab-lab-runs-")))
        print(f"run folders: {runs}", flush=True)
        end = started + budget - 10  # 10 s to write the tables
        training_deadline = end - plan.score_s
        run_results = train_runs(models, plan, data, batch, runs, args.out, device,
                                 training_deadline, a)
        eval_cfg = EvalConfig(fid_samples=fid_samples, fid_precision="fp32",
                              inception_weights=args.inception_weights)
        per_checkpoint = plan.score_s / max(1, len(models) * checkpoints)
        with open(args.out / "gpu_lab-scoring.log", "w") as log_file:
            def log(message: str) -> None:
                print(message, file=log_file, flush=True)

            rows = score_runs(list(models), runs, n_train, batch, eval_cfg, scoring_skipped,
                              device, end, per_checkpoint, log)
    report = {"device": device_name(device), "torch": torch.__version__, "smoke": args.smoke,
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "budget_s": budget,
              "data": str(data), "training_images": n_train, "held_out_images": n_held_out,
              "batch": batch, "checkpoints": checkpoints, "fid_samples": fid_samples,
              "models": models, "gflop_per_image": {n: f / 1e9 for n, f in flops.items()},
              "assumptions": asdict(a), "assumptions_text": assumed, "plan": asdict(plan),
              "scoring_skipped": scoring_skipped, "runs": run_results, "rows": rows,
              "run_folders": str(runs), "seconds": time.monotonic() - started}
    (args.out / "gpu_lab.json").write_text(json.dumps(report, indent=2, default=str))
    (args.out / "gpu_lab.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
