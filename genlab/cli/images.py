"""`genlab sample`, `genlab interpolate` and `genlab latents`: images decoded from a trained run."""

from __future__ import annotations

import argparse
from pathlib import Path

from genlab.cli.flags import SEED, add_config_flags, add_run_arguments, count, eval_config, open_run
from genlab.config import EvalConfig
from genlab.console import Console


def register(commands, console: Console) -> None:
    sample = commands.add_parser("sample", help="decode samples from a run's latest checkpoint",
                                 description="Draw samples from the prior of a trained run and "
                                 "save them as a PNG grid.")
    add_run_arguments(sample)
    sample.add_argument("-n", type=count(1, 100_000), default=64,
                        help="number of samples (default: 64)")
    sample.add_argument("-o", "--output", default="samples.png",
                        help="PNG file (default: samples.png)")
    sample.add_argument("--nrow", type=count(1, 1000), default=8,
                        help="images per row (default: 8)")
    sample.add_argument("--seed", type=SEED, default=0, help="seed of the latents (default: 0)")
    sample.set_defaults(handler=lambda args: sample_command(args, console))

    walk = commands.add_parser(
        "interpolate", help="latent walks between two latents, with extrapolation",
        description="Decode straight lines z1 + (i/K)(z2 - z1), i = 0..K (and -a..-1, K+1..K+a "
        "with --extend a), one path per row, into a PNG grid. The ends are prior draws, or for "
        "a model with an encoder the encodings of real images (--from data, or --images).")
    add_run_arguments(walk)
    walk.add_argument("-o", "--output", default="interpolation.png",
                      help="PNG file (default: interpolation.png)")
    walk.add_argument("--rows", type=count(1, 1000), default=4, help="paths, one per row (default: 4)")
    walk.add_argument("--steps", type=count(1, 1000), default=8,
                      help="K: frames from z1 to z2 are i/K for i = 0..K (default: 8)")
    walk.add_argument("--extend", type=count(0, 1000), default=0,
                      help="a: also decode i = -a..-1 and K+1..K+a, beyond both ends (default: 0)")
    walk.add_argument("--from", dest="source", choices=("prior", "data"), default="prior",
                      help="prior: ends drawn from N(0, I); data: the encodings of random "
                      "validation images (models with an encoder) (default: prior)")
    walk.add_argument("--images", nargs="+", metavar="FILE",
                      help="image files whose encodings are the ends, in pairs (one pair a path)")
    walk.add_argument("--seed", type=SEED, default=0, help="seed of the ends (default: 0)")
    scoring = walk.add_argument_group("latent-space quality (--score)")
    scoring.add_argument("--score", action="store_true",
                         help="also measure the latent space on new paths (ends as --from): "
                         "smoothness in Inception features over --paths paths and the FID of "
                         "--midpoints path midpoints; stored beside the checkpoint")
    scoring.add_argument("--paths", type=count(1, 100_000), default=50,
                         help="paths decoded whole for the smoothness (default: 50)")
    scoring.add_argument("--midpoints", type=count(1, 100_000), default=1000,
                         help="path midpoints for the FID against real images (default: 1000)")
    add_config_flags(walk, EvalConfig, {}, {}, only=("fid_precision", "inception_weights"))
    walk.set_defaults(handler=lambda args: interpolate_command(args, console))

    latents = commands.add_parser(
        "latents", help="scatter of a 2-d or 3-d latent space (and the 2-d decoded manifold)",
        description="For a run with latent size 2 or 3: the posterior means of validation "
        "images as a scatter coloured by label (pairwise planes for 3), and for size 2 the "
        "images decoded over a grid of prior quantiles.")
    add_run_arguments(latents)
    latents.add_argument("-o", "--output", help="folder for the PNGs (default: RUN/figures)")
    latents.add_argument("--images", type=count(1, 1_000_000), default=5000,
                         help="validation images in the scatter (default: 5000)")
    latents.add_argument("--manifold", type=count(1, 200), default=20,
                         help="the manifold grid's side, in images (default: 20)")
    latents.set_defaults(handler=lambda args: latents_command(args, console))


def sample_command(args: argparse.Namespace, console: Console) -> int:
    import torch

    from genlab.data.transforms import to_unit_range
    from genlab.fsutil import check_output_file
    from genlab.grid import save_grid

    check_output_file(args.output)
    run = open_run(args, console.warn)
    config, model, step, device = run.config, run.model, run.step, run.device
    generator = torch.Generator().manual_seed(args.seed)
    with torch.no_grad():  # latents drawn on the CPU: the same on any device
        latents = model.sample_latents(args.n, generator).to(device)
        images = to_unit_range(model.decode(latents), model.data_range).cpu()
    save_grid(images, args.output, nrow=args.nrow)
    print(f"{args.output}: {args.n} samples of the {config.model} in {args.run} at step {step}")
    return 0


def interpolate_command(args: argparse.Namespace, console: Console) -> int:
    import torch

    from genlab.data import load_split
    from genlab.data.folder import files_as_images
    from genlab.fsutil import check_output_file
    from genlab.grid import save_grid
    from genlab.metrics import latent
    from genlab.metrics.records import metrics_path
    from genlab.metrics.registry import describe
    from genlab.models import walks

    check_output_file(args.output)
    run = open_run(args, console.warn)
    config, model, step, checkpoint, device = (run.config, run.model, run.step, run.checkpoint,
                                               run.device)
    if args.score:  # checked before anything is decoded or written
        latent.check_scoring(args.steps, args.paths, args.midpoints, eval_config(args), device)
    source = "images" if args.images else args.source
    images = (files_as_images(args.images, config.image_shape) if args.images else
              load_split(config.data, config.data.val_split, log=console.say).images
              if source == "data" else None)
    ends = walks.endpoints(model, args.rows, torch.Generator().manual_seed(args.seed), source, images)
    grid, frames = walks.decode_walks(model, ends, args.steps, args.extend)
    save_grid(grid, args.output, nrow=frames)
    extra = (f"; the first and last {args.extend} columns extrapolate beyond the ends"
             if args.extend else "")
    what = {"prior": "between prior draws",
            "data": f"between the encodings of {2 * args.rows} random {config.data.val_split} images",
            "images": "between the encodings of the given images"}[source]
    print(f"{args.output}: {len(ends[0])} paths of {frames} frames {what}, "
          f"{config.model} in {args.run} at step {step}{extra}")
    if args.score:
        record = latent.evaluate_latent_paths(
            config, model, step, checkpoint, eval_config(args), device, console.say, console.warn,
            paths=args.paths, midpoints=args.midpoints, steps=args.steps, source=args.source,
            seed=args.seed)
        print(f"{describe(record)} ({record['settings']['protocol']})")
        print(f"{'metrics:':<12} {metrics_path(checkpoint)}")
    return 0


def latents_command(args: argparse.Namespace, console: Console) -> int:
    from genlab.data import load_split
    from genlab.fsutil import check_output_folder
    from genlab.viz.latent_plots import latent_figures

    out = Path(args.output) if args.output else Path(args.run) / "figures"
    if args.output:
        check_output_folder(out, "-o")
    run = open_run(args, console.warn)
    config, model, step = run.config, run.model, run.step
    val = load_split(config.data, config.data.val_split, log=console.say)
    labels = None if val.labels is None else val.labels[:args.images].cpu()
    for name, path in latent_figures(model, config, step, val.images[:args.images], labels, out,
                                     args.manifold).items():
        print(f"{name + ':':<12} {path}")
    return 0
