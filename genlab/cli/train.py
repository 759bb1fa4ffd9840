"""`genlab train MODEL`, `genlab sweep MODEL` and `genlab demo`."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from genlab.cli.flags import (EXIT_INTERRUPTED, EXIT_TERMINATED, add_dry_run_flag,
                              add_model_flags, config_settings, count, print_score)
from genlab.console import Console
from genlab.errors import GenlabError

DEMO_FID_SAMPLES = 1000
# A training stopped at a step boundary, with a checkpoint: why, in words, and its exit code.
STOPPED_BY = {"max-time": "--max-time", "SIGINT": "SIGINT (Ctrl-C)", "SIGTERM": "SIGTERM"}
STOP_EXIT_CODES = {"max-time": 0, "SIGINT": EXIT_INTERRUPTED, "SIGTERM": EXIT_TERMINATED}


def register(commands, console: Console) -> None:
    from genlab.models.specs import SPECS

    train = commands.add_parser("train", help="train a model (resumes an existing run folder)",
                                description="Train a model; on an existing run folder, resume "
                                "from its latest checkpoint.")
    models = train.add_subparsers(dest="model", metavar="MODEL", parser_class=train.__class__)
    for name, spec in SPECS.items():
        sub = models.add_parser(name, help=spec.title, description=spec.title)
        sub.add_argument("--run-dir", help="run folder (default: runs/ and a name made of the "
                         "model, data, settings that tell runs apart, batch and length, e.g. "
                         "runs/vae-mnist-z64-b32-s25000); an existing one is resumed")
        add_dry_run_flag(sub)
        add_model_flags(sub, spec)
        sub.set_defaults(handler=lambda args: train_command(args, console))

    sweep = commands.add_parser(
        "sweep", help="train one run per combination of flag values, then tabulate them",
        description="Train one run per combination of the values given (any `genlab train` "
        "flag takes several, e.g. --latent-dim 3 10 100 --seed 0 1 2) into --out DIR, one folder "
        "per run; resumable (finished runs are reused, interrupted ones resume); then write "
        "DIR/results.md and results.csv with each run's scores and, over seeds, each setting's "
        "mean +- std.")
    sweep_models = sweep.add_subparsers(dest="model", metavar="MODEL", parser_class=sweep.__class__)
    for name, spec in SPECS.items():
        sub = sweep_models.add_parser(name, help=f"sweep {name} runs")
        sub.add_argument("--out", required=True, help="folder for the runs and the results table")
        sub.add_argument("--parallel", type=count(1, 64), default=1,
                         help="runs trained at the same time (default: 1)")
        add_dry_run_flag(sub, "list the runs, new or resumed, and print the first one as `genlab "
                         "train --dry-run` does")
        add_model_flags(sub, spec, several=True)
        sub.set_defaults(handler=lambda args: sweep_command(args, console))

    demo = commands.add_parser("demo", help="train a small VAE on MNIST, or on the embedded "
                               "digits when MNIST is not available",
                               description="Train the homework's VAE for about a minute, score it on "
                               "1,000 images a side, and show where its samples, curves and "
                               "checkpoint are.")
    demo.add_argument("--steps", type=count(1, 10**9), default=2000,
                      help="training steps (default: 2000)")
    demo.add_argument("--run-dir", help="run folder (default: runs/demo-vae-<dataset>)")
    demo.add_argument("--no-download", action="store_true", help="do not try to download MNIST")
    # 1000 images a side, not the protocol's 3000: a few minutes of CPU, not ten.
    demo.add_argument("--fid-samples", type=count(0), default=DEMO_FID_SAMPLES,
                      help=f"images a side for the final FID (default: {DEMO_FID_SAMPLES}; 0 "
                      "skips it)")
    demo.set_defaults(handler=lambda args: demo_command(args, console))


def train_command(args: argparse.Namespace, console: Console) -> int:
    if args.dry_run:
        from genlab.cli.dry_run import print_train_plan
        from genlab.run import plan_run

        plan = plan_run(args.model, config_settings(args, args.model), args.run_dir)
        print_train_plan(plan, f"genlab train {args.model}")
        return 0
    return train_and_report(args.model, config_settings(args, args.model), args.run_dir, console,
                            resume=resume_command(args))


def resume_command(args: argparse.Namespace) -> str | None:
    """The command line that resumes a stopped run: the same one, shell-quoted."""
    argv = getattr(args, "command_line", None)  # set by genlab.cli.main
    return None if argv is None else shlex.join(["genlab", *argv])


def train_and_report(model_name: str, settings: dict, run_dir: str | None, console: Console,
                     announce: str | None = None, resume: str | None = None) -> int:
    """Train one run, then print where its outputs are (rank 0 under torchrun). A stop at a
    step boundary (--max-time, a first SIGINT or SIGTERM) prints the command line `resume` and
    exits 0, 130 or 143; a second signal stops at once (130, 143), and prints it too."""
    from genlab import distributed
    from genlab.metrics.records import metrics_path
    from genlab.train.api import train
    from genlab.train.trainer import StopNow

    try:
        outcome = train(model_name, settings, run_dir, console, announce)
    except StopNow as stop:
        if distributed.from_environment().is_main:
            console.say(f"stopped at once by a second {stop} (the checkpoints written so far "
                        "are intact)")
            print_resume(resume)
        return 128 + stop.signum
    result = outcome.result
    if not outcome.reports:
        return STOP_EXIT_CODES.get(result.stop, 0)
    print_outputs(outcome.folder, result.checkpoint)
    if result.stop is not None:
        by = STOPPED_BY[result.stop]
        if result.checkpoint is None:  # a signal while the step-0 grids were drawn
            console.say(f"stopped by {by} before the first step: nothing was trained or saved")
        elif result.interrupted:
            console.say(f"stopped at step {result.step} by {by}: checkpoint saved")
        else:
            console.say(f"trained to step {result.step}; stopped by {by} before the final scores")
        print_resume(resume)
        return STOP_EXIT_CODES[result.stop]
    if outcome.already_trained:
        # The default folder's name holds the run's length, so a larger --steps alone would
        # start a new run: name this folder too.
        console.say(f"{outcome.folder} is already trained to step {result.step}; to train it "
                    f"further, pass a larger --steps with --run-dir {outcome.folder}")
    else:
        console.say(f"trained to step {result.step} ({result.images_per_second:.0f} images/s)")
    records = outcome.records or []
    for i, record in enumerate(records):  # where they are stored, once
        print_score(record, metrics=metrics_path(result.checkpoint) if i == len(records) - 1 else None)
    return 0


def print_resume(command: str | None) -> None:
    print(f"{'resume:':<12} {command or 'the same command'}", flush=True)


def print_outputs(folder: Path, checkpoint: Path | None) -> None:
    print(f"run folder:  {folder}")
    print(f"tensorboard: tensorboard --logdir {folder}")
    if checkpoint is not None:
        print(f"checkpoint:  {checkpoint}")
        for name in ("samples", "reconstructions"):
            png = checkpoint.with_name(f"{checkpoint.stem}-{name}.png")
            if png.exists():
                print(f"{name + ':':<12} {png}")


def sweep_command(args: argparse.Namespace, console: Console) -> int:
    from genlab import sweep
    from genlab.fsutil import check_output_folder

    settings = {k: (v if isinstance(v, list) else [v])
                for k, v in config_settings(args, args.model).items()}
    planned = sweep.plan(args.model, settings, Path(args.out))
    if args.dry_run:
        from genlab.cli.dry_run import print_sweep_plan

        print_sweep_plan(args.model, planned, Path(args.out))
        return 0
    check_output_folder(args.out, "--out")
    runs = [run for run, _ in planned]
    varied = ", ".join(sorted({k for r in runs for k in r.varied})) or "nothing"
    console.say(f"sweep: {len(runs)} run(s) of {args.model} varying {varied} into {args.out}, "
                f"{args.parallel} at a time")
    codes = sweep.run_all(args.model, runs, Path(args.out), args.parallel, console.say)
    md, csv_path = sweep.write_table(sweep.results(runs, Path(args.out), codes), Path(args.out),
                                     runs)
    print(md.read_text(), end="")
    print(f"{'results:':<12} {md} (and {csv_path.name})")
    failed = [name for name, code in codes.items() if code != 0]
    if failed:
        raise GenlabError(f"{len(failed)} of {len(runs)} runs failed ({', '.join(failed)}); "
                          f"see their logs in {args.out} and run the same sweep again to resume")
    return 0


def demo_command(args: argparse.Namespace, console: Console) -> int:
    from genlab.data import demo_dataset

    dataset, announce = demo_dataset(download=not args.no_download, log=console.say)
    settings = {"dataset": dataset, "num_training_steps": args.steps,
                "saving_steps": max(1, args.steps // 4), "download": not args.no_download,
                "fid_samples": args.fid_samples}
    run_dir = args.run_dir or str(Path("runs") / f"demo-vae-{dataset}")
    return train_and_report("vae", settings, run_dir, console, announce=announce,
                            resume=resume_command(args))
