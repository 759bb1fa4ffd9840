"""The tables of docs/results/vae-mnist.md and dcgan-mnist.md, printed as Markdown from the runs
of experiments/homework_mnist.sh (every number in them comes from the runs' stored records and
scalars.jsonl; nothing is typed in by hand).

Usage:  .venv/bin/python experiments/homework_tables.py OUT [--figures DIR]

Prints, for what exists under OUT, each score against the training images (the homework's
protocol) and against the held-out test images:
  the VAE table: each latent size over its seeds, mean +- sample std (n) of FID, KID,
    precision and recall at step 25,000, each seed's FID, and which seeds collapsed (no active
    latent dimension at the last validation), and each run's last validation (KL, reconstruction
    error, active dimensions, dead Enc-4 and Enc-5 units);
  the DCGAN's FID at steps 5,000 ... 25,000 over its seeds (and, with --figures, the curve),
    and its logged losses and D outputs per 5,000-step window;
  the latent-3 collapse table (--init default and kaiming, seeds 0-9, 5,000 steps);
  the architecture bonus at latent 64 (conv, conv-shallow, mlp);
  the latent-walk scores.
A run still training, or not scored yet, shows as a missing value and is left out of the n.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

from genlab.metrics.records import read_records
from genlab.metrics.registry import metrics_of, values_of

LATENTS = (3, 10, 64, 100)
SEEDS = (0, 1, 2)
DCGAN_STEPS = (5000, 10000, 15000, 20000, 25000)


def checkpoint(run: Path, step: int) -> Path:
    return run / "checkpoints" / f"step-{step:08d}.pt"


REFERENCE = {"train": "3,000 training images (the homework's protocol)",
             "test": "3,000 test images (held out)"}


def scores(run: Path, step: int, split: str = "train") -> dict[str, float] | None:
    """The newest sample-quality record of the run's checkpoint at `step` against `split`'s real
    images, or None."""
    records = [r for r in read_records(checkpoint(run, step))
               if values_of(r) and r.get("settings", {}).get("reference_split") == split]
    return values_of(records[-1]) if records else None


def walk_scores(run: Path, step: int) -> dict | None:
    records = [r for r in read_records(checkpoint(run, step)) if metrics_of(r, needs="generator")]
    return records[-1] if records else None


def last_validation(run: Path) -> dict[str, float]:
    """The last validation record of the run's scalars.jsonl (val/* keys)."""
    last: dict[str, float] = {}
    path = run / "scalars.jsonl"
    if not path.is_file():
        return last
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if any(key.startswith("val/") for key in record):
            last = record
    return last


def spread(values: list[float], digits: int = 1, scale: float = 1.0) -> str:
    values = [v * scale for v in values]
    if not values:
        return ""
    if len(values) == 1:
        return f"{values[0]:.{digits}f} (n = 1)"
    return (f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f} "
            f"(n = {len(values)})")


def vae_table(out: Path, split: str) -> list[str]:
    lines = ["| latent | FID seeds 0 / 1 / 2 | FID mean ± std | KID (x 1e-3) | precision | recall "
             "| collapsed (active dims 0) |", "|---|---|---|---|---|---|---|"]
    for latent in LATENTS:
        per_seed, collapsed, found, trained = [], [], [], 0
        for seed in SEEDS:
            run = out / "vae" / f"latent-dim-{latent}_seed-{seed}"
            values = scores(run, 25000, split)
            last = last_validation(run)
            # Collapse is counted over every trained run, scored or not.
            is_collapsed = last.get("step") == 25000 and last.get("val/active_dims", 1) == 0
            trained += last.get("step") == 25000
            if is_collapsed:
                collapsed.append(str(seed))
            per_seed.append(f"{values['fid']:.1f}" if values else
                            "collapsed, not scored" if is_collapsed else "-")
            if values:
                found.append(values)
        if not found:
            continue
        column = lambda key: [v[key] for v in found if key in v]  # noqa: E731
        lines.append(f"| {latent} | {' / '.join(per_seed)} | {spread(column('fid'))} | "
                     f"{spread(column('kid'), 1, 1e3)} | {spread(column('precision'), 3)} | "
                     f"{spread(column('recall'), 3)} | "
                     f"{len(collapsed)} of {trained}"
                     f"{' (seed ' + ', '.join(collapsed) + ')' if collapsed else ''} |")
    return lines


def dcgan_table(out: Path, split: str) -> tuple[list[str], dict[int, list[float]]]:
    curve: dict[int, list[float]] = {}
    lines = ["| step | " + " | ".join(f"seed {s}" for s in SEEDS) + " | FID mean ± std |",
             "|---|" + "---|" * (len(SEEDS) + 1)]
    for step in DCGAN_STEPS:
        row = []
        for seed in SEEDS:
            values = scores(out / "dcgan" / f"seed-{seed}", step, split)
            row.append(f"{values['fid']:.1f}" if values else "-")
            if values:
                curve.setdefault(step, []).append(values["fid"])
        if step in curve:
            lines.append(f"| {step:,} | {' | '.join(row)} | {spread(curve[step])} |")
    return lines, curve


def diagnostics_table(out: Path) -> list[str]:
    """Each VAE run's last validation: KL and reconstruction error in nats over the 10,000 test
    images; active latent dimensions (Burda et al.: Cov_x(E_q[z_i]) > 0.01) and the fraction of
    Enc-4's and Enc-5's ReLU units never positive, on the first 500 of them
    (genlab/models/diagnostics.py, genlab.train.trainer.DIAGNOSTIC_IMAGES)."""
    lines = ["| latent | seed | step | val KL | val rec | active dims | Enc-4 dead | Enc-5 dead |",
             "|---|---|---|---|---|---|---|---|"]
    for latent in LATENTS:
        for seed in SEEDS:
            last = last_validation(out / "vae" / f"latent-dim-{latent}_seed-{seed}")
            if last:
                lines.append(
                    f"| {latent} | {seed} | {last['step']:,} | {last['val/kl']:.2f} | "
                    f"{last['val/rec']:.1f} | {last['val/active_dims']:.0f} of {latent} | "
                    f"{last.get('val/dead_fraction/encoder.enc4', math.nan):.2f} | "
                    f"{last.get('val/dead_fraction/encoder.enc5', math.nan):.2f} |")
    return lines


DCGAN_SCALARS = ("train/discriminator_loss", "train/generator_loss", "train/D(x)",
                 "train/D(G(z1))", "train/D(G(z2))")


def dcgan_losses_table(out: Path) -> list[str]:
    """The five logged DCGAN scalars averaged over each 5,000-step window of each seed, then mean
    +- std over the seeds: what the Nash-equilibrium answer is read from (log 4 = 1.386 and
    log 2 = 0.693 for the two losses, 1/2 for each D output, at the equilibrium)."""
    windows = [(start, start + 5000) for start in range(0, 25000, 5000)]
    per_seed: dict[tuple[str, int], list[float]] = {}
    for seed in SEEDS:
        path = out / "dcgan" / f"seed-{seed}" / "scalars.jsonl"
        if not path.is_file():
            continue
        sums: dict[tuple[str, int], list[float]] = {}
        for line in path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            for index, (start, end) in enumerate(windows):
                if start < record.get("step", -1) <= end:
                    for tag in DCGAN_SCALARS:
                        if tag in record:
                            sums.setdefault((tag, index), []).append(record[tag])
        for key, values in sums.items():
            per_seed.setdefault(key, []).append(statistics.mean(values))
    if not per_seed:
        return []
    lines = ["| steps | " + " | ".join(tag.removeprefix("train/") for tag in DCGAN_SCALARS) + " |",
             "|---|" + "---|" * len(DCGAN_SCALARS)]
    for index, (start, end) in enumerate(windows):
        cells = [spread(per_seed.get((tag, index), []), 3) for tag in DCGAN_SCALARS]
        lines.append(f"| {start:,}-{end:,} | {' | '.join(cells)} |")
    return lines


def collapse_table(out: Path) -> list[str]:
    lines = ["| `--init` | collapsed seeds (of those trained to 5,000) | val KL at 5,000 (nats), "
             "seeds 0-9 | active dims at 5,000 |", "|---|---|---|---|"]
    for init in ("default", "kaiming"):
        collapsed, kls, dims, done = [], [], [], 0
        for seed in range(10):
            last = last_validation(out / "collapse" / f"init-{init}_seed-{seed}")
            if last.get("step") != 5000:
                kls.append("-")
                dims.append("-")
                continue
            done += 1
            kls.append(f"{last['val/kl']:.2f}")
            dims.append(f"{last['val/active_dims']:.0f}")
            if last["val/active_dims"] == 0:
                collapsed.append(str(seed))
        if done:
            lines.append(f"| {init} | {len(collapsed)} of {done} ({', '.join(collapsed) or '-'}) "
                         f"| {' / '.join(kls)} | {' / '.join(dims)} |")
    return lines


def arch_table(out: Path, split: str) -> list[str]:
    """Each architecture at latent 64 over seeds 0-2: FID where scored, and every run's last
    validation (step, negative ELBO, KL, active dimensions) whether scored or not."""
    lines = ["| `--arch` | FID seeds 0 / 1 / 2 | FID mean ± std | precision | recall | last val step "
             "| val loss | val KL | active dims |", "|---|---|---|---|---|---|---|---|---|"]
    for arch in ("conv", "conv-shallow", "mlp"):
        found, per_seed, validations = [], [], []
        for seed in SEEDS:
            run = (out / "vae" / f"latent-dim-64_seed-{seed}" if arch == "conv"
                   else out / "arch" / f"arch-{arch}_seed-{seed}")
            values = scores(run, 25000, split)
            per_seed.append(f"{values['fid']:.1f}" if values else "-")
            if values:
                found.append(values)
            validations.append(last_validation(run))
        if not any(validations):
            continue
        column = lambda key, digits: " / ".join(  # noqa: E731
            f"{v[key]:.{digits}f}" if key in v else "-" for v in validations)
        steps = " / ".join(f"{v['step']:,}" if v else "-" for v in validations)
        lines.append(f"| {arch} | {' / '.join(per_seed)} | {spread([v['fid'] for v in found])} "
                     f"| {spread([v['precision'] for v in found], 3)} | "
                     f"{spread([v['recall'] for v in found], 3)} | {steps} | "
                     f"{column('val/loss', 1)} | {column('val/kl', 1)} | "
                     f"{column('val/active_dims', 0)} |")
    return lines


def walks_table(out: Path) -> list[str]:
    lines = ["| run | smoothness | path-length ratio | midpoint FID |", "|---|---|---|---|"]
    for run in [f"vae/latent-dim-100_seed-{s}" for s in SEEDS] + [f"dcgan/seed-{s}" for s in SEEDS]:
        record = walk_scores(out / run, 25000)
        if record:
            lines.append(f"| {run} | {record['smoothness']:.2f} | "
                         f"{record['path_length_ratio']:.2f} | {record['midpoint_fid']:.1f} |")
    return lines


def plot_dcgan(curves: dict[str, dict[int, list[float]]], out: Path) -> None:
    """FID against step, mean +- std over seeds and each seed's point, one line per reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5.5, 3.6))
    for (split, curve), colour in zip(curves.items(), ("tab:blue", "tab:orange")):
        if not curve:
            continue
        steps = sorted(curve)
        means = [statistics.mean(curve[s]) for s in steps]
        stds = [statistics.stdev(curve[s]) if len(curve[s]) > 1 else 0 for s in steps]
        for s in steps:
            axis.scatter([s] * len(curve[s]), curve[s], color=colour, alpha=0.35, s=10)
        n = sorted({len(v) for v in curve.values()})
        axis.errorbar(steps, means, yerr=stds, marker="o", capsize=4, color=colour,
                      label=f"against {split} images: mean ± std (n = {'-'.join(map(str, n))})")
    axis.axhline(80, color="tab:red", linestyle="--", linewidth=1, label="the homework's FID < 80")
    axis.set_xlabel("training step (batch 64)")
    axis.set_ylabel("FID (3,000 generated vs 3,000 real)")
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(out, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--figures", type=Path, help="write dcgan-mnist-fid-by-step.png here")
    args = parser.parse_args()
    for split, against in REFERENCE.items():
        print(f"## VAE, step 25,000, against {against}\n", *vae_table(args.out, split), "",
              sep="\n")
    print("## VAE, last validation of each run\n", *diagnostics_table(args.out), "", sep="\n")
    curves = {}
    for split, against in REFERENCE.items():
        lines, curves[split] = dcgan_table(args.out, split)
        print(f"## DCGAN FID by step, against {against}\n", *lines, "", sep="\n")
    print("## DCGAN losses and D outputs, mean of each 5,000-step window over seeds\n",
          *dcgan_losses_table(args.out), "", sep="\n")
    if args.figures and any(curves.values()):
        plot_dcgan(curves, args.figures / "dcgan-mnist-fid-by-step.png")
    print("## latent-3 collapse, 5,000 steps\n", *collapse_table(args.out), "", sep="\n")
    for split, against in REFERENCE.items():
        print(f"## architecture bonus, latent 64, step 25,000, against {against}\n",
              *arch_table(args.out, split), "", sep="\n")
    print("\n## latent walks\n", *walks_table(args.out), sep="\n")


if __name__ == "__main__":
    main()
