"""The trajectory of experiments/celeba_long.sh's runs: each model at each rung of the ladder.

For OUT/dcgan64, OUT/vae-larsen64, OUT/vaegan and its branches OUT/vaegan-NAME (whichever
exist), every checkpoint of the ladder (a multiple of --saving-steps, 558: not those a deadline
or a signal wrote) gets
`genlab eval`'s scores (FID, KID, precision, recall: 3,000 generated against 3,000 training
faces, fp32, stored beside the checkpoint; a score stored under the same protocol is read, not
redone) and, for the models with an encoder, the posterior-mean reconstructions of the 660
held-out test faces measured as experiments/vaegan_comparison.py measures them (pixel error,
edge contrast, detail error). benchmarks/gpu_lab.py's scoring and table, on the CPU and across
sessions:

    .venv/bin/python experiments/celeba_trajectory.py OUT [--figures docs/figures] [--until 02:30] \
        [--earlier docs/results/data/celeba64-trajectory-first-run.json]

writes OUT/trajectory.md and OUT/trajectory.json (a row per model per kept checkpoint, in order
of training, the models interleaved) and, with --figures, celeba64-fid-by-images.png and
celeba64-edge-contrast-by-images.png there (with --earlier, an earlier run of the ladder drawn
dashed beside this one). Each rung of a model with an encoder also gets
experiments/prior_gap.py's measures (how far its aggregate posterior is from the prior, and the
diversity of prior against fitted draws), kept in OUT/prior_gap.json and OUT/prior_gap.md. --until: no checkpoint is measured that the time
(a wall-clock time `date -d` reads) would cut; what is already known (stored scores, the
reconstructions' measures in OUT/trajectory.json) is shown whatever the time, what is missing
says "out of time", and the next call measures it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from gpu_lab import score_runs, trajectory_table  # noqa: E402
from prior_gap import measure as measure_prior_gap  # noqa: E402  (gpu_lab puts experiments/ on the path)

RUNS = ("dcgan64", "vae-larsen64", "vaegan")   # experiments/celeba_long.sh's folder names
PER_CHECKPOINT_S = 300  # an fp32 FID of 3,000 images and the reconstructions' measures: about
                        # 3 minutes on a 2-core CPU with no training beside it, with margin
PRIOR_GAP_S = 180       # a checkpoint loaded, 660 faces encoded, 192 images decoded
PRIOR_GAP_COLUMNS = (("kl_from_prior_nats", "KL of q(z)'s fit from N(0, I)", ".0f"),
                     ("cov_mu_participation_ratio", "directions carrying Cov(mu)", ".1f"),
                     ("cov_mu_share_of_10_largest", "share of its 10 largest", ".2f"),
                     ("diversity_fitted", "diversity, fitted draws", ".3f"),
                     ("diversity_prior", "diversity, prior draws", ".3f"))


def plot(rows: list[dict], key: str, label: str, path: Path, earlier: list[dict]) -> None:
    """`key` against images seen, a line per model; an earlier run of the same ladder (`earlier`,
    its trajectory.json) dashed in its model's colour; a branch (vaegan-NAME) drawn from its
    parent's last point before its own, where it left the parent."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(7.5, 3.6), dpi=120)
    names = dict.fromkeys(r["model"] for r in rows + earlier)  # in order of appearance
    for colour, name in enumerate(names):
        for which, style, suffix in ((rows, "-", ""), (earlier, "--", ", earlier run")):
            points = [(r["images"], r[key]) for r in which if r["model"] == name and key in r]
            if not points:
                continue
            if name.startswith("vaegan-"):
                before = [(r["images"], r[key]) for r in which if r["model"] == "vaegan"
                          and key in r and r["images"] < points[0][0]]
                points = before[-1:] + points
                suffix += " (branch of vaegan)"
            ax.plot(*zip(*points), style, marker="o", color=f"C{colour}", label=name + suffix)
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x / 1000:g}"))
    ax.set_xlabel("training images seen (thousands)")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside: no point hidden
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def prior_gaps(out: Path, rows: list[dict], deadline: float, log) -> list[dict]:
    """prior_gap.py's measures of every scored rung of a model with an encoder, each measured
    once and kept in OUT/prior_gap.json; rungs the deadline leaves no time for wait for the next
    call."""
    from genlab.fsutil import atomic_open

    path = out / "prior_gap.json"
    kept = {(r["model"], r["step"]): r for r in json.loads(path.read_text())} if path.is_file() else {}
    for row in rows:
        key = (row["model"], row["step"])
        if "pixel_mse" not in row or key in kept or deadline - time.monotonic() < PRIOR_GAP_S:
            continue
        result = measure_prior_gap(out / row["model"], row["step"], images=660, draws=64)
        diversity = result["diversity"]
        kept[key] = {"model": row["model"], "step": row["step"], "images": row["images"],
                     **{k: v for k, v in result.items()
                        if k not in ("sets", "diversity", "run", "model", "step")},
                     "diversity_real": diversity["real"],
                     "diversity_fitted": diversity["fitted draws"],
                     "diversity_prior": diversity["prior draws"]}
        log(f"prior gap {json.dumps(kept[key])}")
        with atomic_open(path, "w") as f:
            f.write(json.dumps(sorted(kept.values(), key=lambda r: (r["step"], r["model"])),
                               indent=2))
    return sorted(kept.values(), key=lambda r: (r["step"], r["model"]))


def prior_gap_table(gaps: list[dict]) -> list[str]:
    lines = ["| model | step | images seen | " + " | ".join(label for _, label, _ in PRIOR_GAP_COLUMNS)
             + " |", "|---" * (3 + len(PRIOR_GAP_COLUMNS)) + "|"]
    for gap in gaps:
        lines.append(f"| {gap['model']} | {gap['step']} | {gap['images']:,} | " + " | ".join(
            format(gap[key], fmt) for key, _, fmt in PRIOR_GAP_COLUMNS) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="experiments/celeba_long.sh's OUT")
    parser.add_argument("--figures", type=Path, help="write the two plots here")
    parser.add_argument("--earlier", type=Path,
                        help="an earlier run's trajectory.json, drawn dashed in the plots")
    parser.add_argument("--until", help="start no checkpoint this wall-clock time would cut")
    parser.add_argument("--fid-samples", type=int, default=3000, help="images a side")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from genlab.config import EvalConfig
    from genlab.data import describe_split
    from genlab.fsutil import atomic_open
    from genlab.run import load_config, resolve_device

    names = [name for name in RUNS if (args.out / name / "config.json").is_file()]
    names += sorted(path.parent.name for path in args.out.glob("vaegan-*/config.json"))  # BRANCH
    if not names:
        raise SystemExit(f"no run folder of {', '.join(RUNS)} in {args.out}")
    config = load_config(args.out / names[0] / "config.json")
    n_train = describe_split(config.data, "train").count
    batch = config.train.batch_size
    deadline = float("inf")
    if args.until:
        seconds = int(subprocess.check_output(["date", "-d", args.until, "+%s"], text=True))
        deadline = time.monotonic() + seconds - time.time()
    eval_cfg = EvalConfig(fid_samples=args.fid_samples, fid_precision="fp32")
    # The reconstructions' measures of an earlier call are kept in trajectory.json, not beside
    # the checkpoints as the scores are: read them back rather than measure them again.
    trajectory = args.out / "trajectory.json"
    known = {(row["model"], row["step"]): row
             for row in (json.loads(trajectory.read_text()) if trajectory.is_file() else [])}
    # The ladder's rungs only: a checkpoint a deadline or a signal wrote between them is for
    # resuming, not a point of the trajectory.
    rows = score_runs(names, args.out, n_train, batch, eval_cfg, None, resolve_device(args.device),
                      deadline, PER_CHECKPOINT_S, lambda message: print(message, flush=True),
                      every=config.train.saving_steps, known=known)
    with atomic_open(trajectory, "w") as f:
        f.write(json.dumps(rows, indent=2))
    table = "\n".join(trajectory_table(rows)) + "\n"
    (args.out / "trajectory.md").write_text(table)
    print(table)
    gaps = prior_gaps(args.out, rows, deadline, lambda message: print(message, flush=True))
    gap_table = "\n".join(prior_gap_table(gaps)) + "\n"
    (args.out / "prior_gap.md").write_text(gap_table)
    print(gap_table)
    if args.figures:
        args.figures.mkdir(parents=True, exist_ok=True)
        earlier = json.loads(args.earlier.read_text()) if args.earlier else []
        plot(rows, "fid", f"FID ({args.fid_samples:,} vs {args.fid_samples:,} training faces)",
             args.figures / "celeba64-fid-by-images.png", earlier)
        plot(rows, "edge_contrast", "edge contrast of test reconstructions",
             args.figures / "celeba64-edge-contrast-by-images.png", earlier)


if __name__ == "__main__":
    main()
