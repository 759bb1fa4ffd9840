"""`genlab eval RUN` and `genlab fid A B`: the registered metrics (genlab.metrics.registry)."""

from __future__ import annotations

import argparse

from genlab.cli.flags import (add_config_flags, add_device_flag, add_dry_run_flag, add_json_flag,
                              add_run_arguments, count, eval_config, open_run, print_score, SEED)
from genlab.config import EvalConfig
from genlab.console import Console


def register(commands, console: Console) -> None:
    evaluate = commands.add_parser(
        "eval", help="FID, KID, precision and recall of a run's latest checkpoint",
        description="Score a run's latest checkpoint (or --step's) under the homework's protocol "
        "(N generated images against N real ones of the run's training split) with the metrics "
        "of --metrics, and store the scores beside the checkpoint.")
    add_run_arguments(evaluate)
    add_config_flags(evaluate, EvalConfig, {}, {})
    evaluate.add_argument("--seed", type=SEED, default=0,
                          help="seed of the generated images' latents (default: 0)")
    add_json_flag(evaluate)
    add_dry_run_flag(evaluate, "print the checkpoint it would score, the images a side and the "
                     "reference split with its size, the device and the Inception's settings, each "
                     "with where it comes from")
    evaluate.set_defaults(handler=lambda args: eval_command(args, console))

    fid = commands.add_parser(
        "fid", help="FID, KID, precision and recall between two image folders or .npz files",
        description="Score any two image sets: folders of image files (searched recursively) "
        "or .npz arrays of uint8 images (N,H,W[,C] or N,C,H,W) or floats in [0, 1].")
    fid.add_argument("a", metavar="A", help="folder or .npz (the reference, 'real' side)")
    fid.add_argument("b", metavar="B", help="folder or .npz")
    add_config_flags(fid, EvalConfig, {}, {}, only=("metrics", "fid_precision", "fid_resize",
                                                   "inception_weights"))
    fid.add_argument("--batch-size", type=count(1, 4096), default=None,
                     help="images per Inception batch (default: 8 on a CPU, 64 on a GPU)")
    add_device_flag(fid)
    add_json_flag(fid)
    fid.set_defaults(handler=lambda args: fid_command(args, console))


def eval_command(args: argparse.Namespace, console: Console) -> int:
    from genlab.metrics.evaluate import check_ready, evaluate_run
    from genlab.metrics.records import metrics_path
    settings = eval_config(args)
    if args.dry_run:
        from genlab.cli.dry_run import print_eval_plan

        print_eval_plan(args.run, args.step, args.device, settings, set(vars(args)), args.seed)
        return 0
    run = open_run(args, console.warn)
    check_ready(settings, run.device)
    for record in evaluate_run(run.config, run.model, run.step, run.checkpoint, settings,
                               run.device, console.say, console.warn, seed=args.seed):
        print_score(record, f"{args.run} at step {run.step}: ", metrics_path(run.checkpoint),
                    as_json=args.json)
    return 0


def fid_command(args: argparse.Namespace, console: Console) -> int:
    from genlab.data.folder import ImageSource
    from genlab.metrics.evaluate import compare_sources
    from genlab.metrics.inception import InceptionFeatures
    from genlab.metrics.registry import check_sample_counts, parse_metrics
    from genlab.run import resolve_device

    device = resolve_device(args.device)
    settings = eval_config(args)
    names = parse_metrics(settings.metrics)
    sources = ImageSource(args.a), ImageSource(args.b)
    check_sample_counts(names, len(sources[0]), len(sources[1]))
    extractor = InceptionFeatures(settings.inception_weights, device, settings.fid_precision,
                                  batch_size=args.batch_size, resize=settings.fid_resize)
    console.say(f"scoring {len(sources[0])} images in {args.a} against {len(sources[1])} in "
                f"{args.b}")
    print_score(compare_sources(*sources, extractor, names, console.warn), as_json=args.json)
    return 0


