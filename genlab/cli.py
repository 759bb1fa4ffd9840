"""The `genlab` command: train, eval, fid, sample, prepare, datasets, demo.

Every flag of `genlab train MODEL` comes from a config dataclass field (genlab.config and the
model's own config). Bad input ends with one sentence on stderr and exit code 2, never a
traceback, and nothing is written before every flag and the data have been checked.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import typing
from pathlib import Path
from typing import Any, Sequence

from genlab import __version__
from genlab.config import DataConfig, EvalConfig, TrainConfig, flag_name
from genlab.errors import GenlabError

EXIT_INTERRUPTED = 130
DEMO_FID_SAMPLES = 1000


class _Parser(argparse.ArgumentParser):
    """argparse, with errors as one line (no usage dump) and exit code 2."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _int_at_least(minimum: int, wording: str):
    """An argparse type: an integer >= minimum; `wording` names the range in messages."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wording}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {wording}, got {value}")
        return value
    return parse


_positive_int = _int_at_least(1, "a positive integer")
_non_negative_int = _int_at_least(0, "an integer >= 0")


def _float_at_least(bound: float | None, strict: bool, wording: str):
    """A float flag's parser: finite, and above (strict) or at least `bound` unless it is None."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wording}, got {text!r}") from None
        below = bound is not None and (value <= bound if strict else value < bound)
        if not math.isfinite(value) or below:
            raise argparse.ArgumentTypeError(f"must be {wording}, got {text}")
        return value
    return parse


_positive_float = _float_at_least(0.0, True, "a positive finite number")
_non_negative_float = _float_at_least(0.0, False, "a finite number >= 0")
_finite_float = _float_at_least(None, False, "a finite number")


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _add_config_flags(parser: argparse.ArgumentParser, cls: type, defaults: dict[str, Any],
                      choices: dict[str, Sequence[str]], only: Sequence[str] | None = None,
                      several: bool = False) -> None:
    """One flag per dataclass field (or per field named in `only`). Defaults are SUPPRESSed so
    the parsed namespace holds only what the user typed: a resumed run must tell 'not given'
    from 'given the default'. `several`: each flag but a switch takes one or more values (a
    sweep)."""
    group = parser.add_argument_group(cls.__name__.removesuffix("Config").lower() + " settings")
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if only is not None and field.name not in only:
            continue
        meta, kind = field.metadata, hints[field.name]
        default = defaults.get(field.name, field.default)
        shown = "" if default is None else f" (default: {default})"  # None: the help says
        kwargs: dict[str, Any] = dict(dest=field.name, default=argparse.SUPPRESS,
                                      help=f"{meta['help']}{shown}")
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            if kind in (int, int | None):
                kwargs["type"] = (_positive_int if meta.get("positive") else
                                  _non_negative_int if meta.get("non_negative") else _int)
            elif kind in (float, float | None):
                kwargs["type"] = (_positive_float if meta.get("positive") else
                                  _non_negative_float if meta.get("non_negative") else
                                  _finite_float)
            kwargs["metavar"] = field.name.split("_")[-1].upper()
            options = choices.get(field.name) or meta.get("choices")
            if options:
                kwargs["choices"] = list(options)
                kwargs["metavar"] = "{" + ",".join(map(str, options)) + "}"
            if several:
                kwargs["nargs"] = "+"
        group.add_argument(flag_name(field.name), *meta.get("aliases", ()), **kwargs)


# Under torchrun only rank 0 talks (every process would say the same); errors come from all.
_quiet = False


def _say(message: str) -> None:
    if not _quiet:
        print(message, file=sys.stderr, flush=True)


def _warn(message: str) -> None:
    if not _quiet:
        print(f"warning: {message}", file=sys.stderr, flush=True)


# --- commands ---------------------------------------------------------------------------------

def _config_settings(args: argparse.Namespace, model_name: str) -> dict[str, Any]:
    from genlab.models import MODELS

    names = {f.name for cls in (DataConfig, TrainConfig, EvalConfig,
                                MODELS[model_name].config_class)
             for f in dataclasses.fields(cls)}
    return {k: v for k, v in vars(args).items() if k in names}


def train_run(model_name: str, settings: dict[str, Any], run_dir: str | None,
              announce: str | None = None) -> int:
    """Train (or resume) one run and print where its outputs are. Shared by train and demo.
    Under torchrun, every process runs this; only rank 0 talks."""
    from genlab.train import distributed

    global _quiet
    processes = distributed.from_environment()
    _quiet = not processes.is_main
    try:
        return _train(model_name, settings, run_dir, announce, processes)
    finally:
        distributed.stop()  # leaves the process group, if this process joined one


def _train(model_name: str, settings: dict[str, Any], run_dir: str | None,
           announce: str | None, processes) -> int:
    from genlab.data import load_split
    from genlab.metrics.evaluate import check_ready
    from genlab.run import build_model, prepare_run, resolve_device, write_config
    from genlab.train import distributed
    from genlab.train.trainer import Trainer

    config, folder, resuming = prepare_run(model_name, settings, run_dir)
    device = distributed.start(processes, resolve_device(config.train.device))
    train_set = load_split(config.data, config.data.train_split, log=_say)
    without_splits = train_set.split != config.data.train_split  # a --data source: one split
    val_set = (train_set if config.data.val_split == config.data.train_split or without_splits
               else load_split(config.data, config.data.val_split, log=_say))
    if resuming and tuple(train_set.image_shape) != tuple(config.image_shape):
        raise GenlabError(f"the data now loads as {train_set.image_shape} images but the run in "
                          f"{folder} was trained on {tuple(config.image_shape)}; check "
                          f"{'--data' if config.data.data_path else '--data-dir'}")
    config.image_shape = train_set.image_shape
    if config.train.epochs is not None:
        steps = math.ceil(config.train.epochs * len(train_set) / config.train.batch_size)
        _say(f"{config.train.epochs:g} epochs of {len(train_set)} images at batch "
             f"{config.train.batch_size} = {steps} steps")
        config.train.num_training_steps = steps
    _, h, w = train_set.image_shape
    if config.data.image_size is None and h == w:
        config.data.image_size = h  # stored concrete: the run reloads the same images
    if config.eval.fid_samples > len(train_set) and "fid_samples" in settings:
        raise GenlabError(f"--fid-samples {config.eval.fid_samples} is more than the "
                          f"{len(train_set)} images of the training split; use at most "
                          f"{len(train_set)} (or 0 to skip FID)")
    check_ready(config.eval, device)  # no weights: say so now, not after training
    if config.eval.fid_samples > len(train_set):
        _say(f"note: FID will use {len(train_set)} images a side, all the training split has "
             f"(the protocol's {config.eval.fid_samples} need a larger one)")
        config.eval.fid_samples = len(train_set)
    model = build_model(config)
    if announce:
        _say(announce)
    if processes.is_main:
        folder.mkdir(parents=True, exist_ok=True)
        write_config(config, folder)
    trainer = Trainer(config, folder, model, train_set, val_set, device, processes=processes)
    if trainer.resume(_warn):
        _say(f"resuming {folder} from step {trainer.step} ({trainer.last_checkpoint.name})")
    elif config.data.train_split == config.data.val_split or without_splits:
        _say(f"note: validating on the training split ({train_set.split})")
    where = str(device)
    if processes.parallel:
        where = (f"{processes.world_size} processes ({device.type}), global batch "
                 f"{config.train.batch_size} = {processes.world_size} x "
                 f"{trainer.local_batch_size}"
                 + (", BatchNorm over the global batch" if config.train.sync_batchnorm else ""))
    _say(f"training {model_name} on {config.data.dataset}/{config.data.train_split} "
         f"({len(train_set)} images from {train_set.source}) on {where} to step "
         f"{config.train.num_training_steps}")
    result = trainer.fit()
    if processes.is_main:
        _print_outputs(folder, result.checkpoint)
    if result.interrupted:
        _say(f"interrupted at step {result.step}: checkpoint saved; run the same command to resume")
        return EXIT_INTERRUPTED
    if result.images_per_second:
        _say(f"trained to step {result.step} ({result.images_per_second:.0f} images/s)")
    else:
        _say(f"{folder} is already trained to step {result.step}; pass --num-training-steps "
             "with a larger number to train further")
    if config.eval.fid_samples and result.checkpoint is not None:
        _final_scores(config, trainer.model, result.step, result.checkpoint, device, processes)
    return 0


def _final_scores(config, model, step: int, checkpoint: Path, device, processes) -> None:
    """FID and KID of the finished run, unless this checkpoint already has them (same settings).
    Under torchrun every process takes part (rank 0 decides whether a score is stored)."""
    from genlab.metrics.evaluate import evaluate_run, find_record, metrics_path
    from genlab.train import distributed

    record = find_record(checkpoint, config, config.eval, seed=0) if processes.is_main else None
    if processes.parallel:
        [record] = distributed.broadcast_from_main(record)
    if record is None:
        record = evaluate_run(config, model, step, checkpoint, config.eval, device, _say, _warn,
                              processes=processes)
    if processes.is_main:
        _print_score(record, metrics=metrics_path(checkpoint))


def _print_score(record: dict, prefix: str = "", metrics: Path | None = None,
                 as_json: bool = False) -> None:
    """The score in a line (and where it is stored); with --json, the whole record last."""
    settings = record["settings"]
    print(f"{prefix}FID {record['fid']:.2f}  KID {record['kid']:.4f} +- {record['kid_std']:.4f}  "
          f"({settings['protocol']}; {settings['precision']})")
    if metrics is not None:
        print(f"{'metrics:':<12} {metrics}")
    if as_json:
        print(json.dumps(record, sort_keys=True))


def _print_outputs(folder: Path, checkpoint: Path | None) -> None:
    print(f"run folder:  {folder}")
    print(f"tensorboard: tensorboard --logdir {folder}")
    if checkpoint is not None:
        print(f"checkpoint:  {checkpoint}")
        for name in ("samples", "reconstructions"):
            png = checkpoint.with_name(f"{checkpoint.stem}-{name}.png")
            if png.exists():
                print(f"{name + ':':<12} {png}")


def cmd_train(args: argparse.Namespace) -> int:
    return train_run(args.model, _config_settings(args, args.model), args.run_dir)


def cmd_sweep(args: argparse.Namespace) -> int:
    from genlab import sweep

    given = _config_settings(args, args.model)
    settings = {k: (v if isinstance(v, list) else [v]) for k, v in given.items()}
    from genlab.run import prepare_run

    runs = sweep.combinations(settings)
    for run in runs:  # the checks `genlab train` makes before loading data; nothing is written
        prepare_run(args.model, run.settings, str(Path(args.out) / run.name))
    varied = ", ".join(sorted({k for r in runs for k in r.varied})) or "nothing"
    _say(f"sweep: {len(runs)} run(s) of {args.model} varying {varied} into {args.out}, "
         f"{args.parallel} at a time")
    codes = sweep.run_all(args.model, runs, Path(args.out), args.parallel, _say)
    rows = sweep.results(runs, Path(args.out), codes)
    md, csv_path = sweep.write_table(rows, Path(args.out))
    print(md.read_text(), end="")
    print(f"{'results:':<12} {md} (and {csv_path.name})")
    failed = [name for name, code in codes.items() if code != 0]
    if failed:
        raise GenlabError(f"{len(failed)} of {len(runs)} runs failed ({', '.join(failed)}); "
                          f"see their logs in {args.out} and run the same sweep again to resume")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    import torch

    from genlab.data.transforms import to_unit_range
    from genlab.run import load_run, resolve_device
    from genlab.viz.grid import save_grid

    device = resolve_device(args.device)
    config, model, step, path = load_run(args.run, device, _warn, step=args.step)
    generator = torch.Generator().manual_seed(args.seed)
    with torch.no_grad():
        latents = model.sample_latents(args.n, generator).to(device)  # drawn on the CPU: same on any device
        images = to_unit_range(model.decode(latents), model.data_range).cpu()
    save_grid(images, args.output, nrow=args.nrow)
    print(f"{args.output}: {args.n} samples of the {config.model} in {args.run} at step {step}")
    return 0


def cmd_interpolate(args: argparse.Namespace) -> int:
    import torch

    from genlab.run import load_run, resolve_device
    from genlab.viz import interpolate as walks
    from genlab.viz.grid import save_grid

    device = resolve_device(args.device)
    config, model, step, checkpoint = load_run(args.run, device, _warn, step=args.step)
    if args.score:  # checked before anything is decoded or written
        from genlab.metrics.evaluate import check_ready
        from genlab.metrics.latent import check_path_settings

        check_path_settings(args.steps, args.paths, args.midpoints)
        check_ready(_eval_config(args), device)
    generator = torch.Generator().manual_seed(args.seed)
    if (args.images or args.source == "data") and not walks.encodes(model):
        raise GenlabError(f"a {config.model} has no encoder, so its paths cannot start at real "
                          "images; use --from prior")
    with torch.no_grad():
        if args.images:
            if len(args.images) % 2:
                raise GenlabError(f"--images takes pairs (each path's two ends), got "
                                  f"{len(args.images)} files; add or drop one")
            ends = walks.encoded_endpoints(model, _image_files_as_model_input(args.images, config))
            what = "between the encodings of the given images"
        elif args.source == "data":
            from genlab.data import load_split

            val = load_split(config.data, config.data.val_split, log=_say)
            if len(val) < 2 * args.rows:
                raise GenlabError(f"--rows {args.rows} needs {2 * args.rows} images but "
                                  f"{config.data.dataset}/{val.split} has {len(val)}")
            chosen = torch.randperm(len(val), generator=generator)[:2 * args.rows]
            ends = walks.encoded_endpoints(model, val.images[chosen])
            what = f"between the encodings of {2 * args.rows} random {val.split} images"
        else:
            ends = walks.prior_endpoints(model, args.rows, generator)
            what = "between prior draws"
        paths = walks.walk(*ends, args.steps, args.extend)        # (R, F, D)
        images = walks.decode_paths(model, paths)                 # (R * F, C, H, W)
    save_grid(images, args.output, nrow=paths.shape[1])
    extra = (f"; the first and last {args.extend} columns extrapolate beyond the ends"
             if args.extend else "")
    print(f"{args.output}: {paths.shape[0]} paths of {paths.shape[1]} frames {what}, "
          f"{config.model} in {args.run} at step {step}{extra}")
    if args.score:
        from genlab.metrics.evaluate import metrics_path
        from genlab.metrics.latent import evaluate_latent_paths

        record = evaluate_latent_paths(
            config, model, step, checkpoint, _eval_config(args), device, _say, _warn,
            paths=args.paths, midpoints=args.midpoints, steps=args.steps,
            source="data" if args.source == "data" else "prior", seed=args.seed)
        print(f"smoothness {record['smoothness']:.3f} (mean Inception-feature distance between "
              f"consecutive frames), path-length ratio {record['path_length_ratio']:.3f}, "
              f"midpoint FID {record['midpoint_fid']:.2f} ({record['settings']['protocol']})")
        print(f"{'metrics:':<12} {metrics_path(checkpoint)}")
    return 0


def _image_files_as_model_input(files: list[str], config) -> Any:
    """Image files -> uint8 (N, C, H, W) at the run's size and channels (centre-cropped)."""
    import numpy as np
    import torch

    from genlab.data.celeba import crop_and_resize
    from genlab.data.transforms import convert_channels

    c, h, _ = config.image_shape
    images = torch.from_numpy(np.stack([crop_and_resize(Path(f), h, None) for f in files]))
    return convert_channels(images, c)


def cmd_latents(args: argparse.Namespace) -> int:
    from genlab.data import load_split
    from genlab.run import load_run, resolve_device
    from genlab.viz import latent_plots
    from genlab.viz.interpolate import encodes, latent_means

    device = resolve_device(args.device)
    config, model, step, _ = load_run(args.run, device, _warn, step=args.step)
    if not encodes(model):
        raise GenlabError(f"a {config.model} has no encoder, so it has no latent means to plot; "
                          "use a vae or vaegan run")
    if config.model_config.latent_dim not in (2, 3):
        raise GenlabError(f"{args.run} has latent size {config.model_config.latent_dim}; the "
                          "scatter and manifold are for latent sizes 2 and 3 (train with "
                          "--latent-dim 2 or 3)")
    out = Path(args.output) if args.output else Path(args.run) / "figures"
    val = load_split(config.data, config.data.val_split, log=_say)
    images = val.images[:args.images]
    labels = None if val.labels is None else val.labels[:args.images].cpu()
    means = latent_means(model, images)
    scatter = out / f"latent-scatter-step-{step:08d}.png"
    latent_plots.scatter(means, labels, scatter,
                         f"{config.model} z{config.model_config.latent_dim}: posterior means of "
                         f"{len(images)} {config.data.dataset}/{val.split} images, step {step}")
    print(f"{'scatter:':<12} {scatter}")
    if config.model_config.latent_dim == 2:
        grid = out / f"latent-manifold-step-{step:08d}.png"
        latent_plots.manifold(model, grid, n=args.manifold)
        print(f"{'manifold:':<12} {grid}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from genlab.viz.report import build_report

    html_path, md_path = build_report([Path(r) for r in args.runs], Path(args.output),
                                      interpolation=not args.no_interpolation, log=_say)
    print(f"{'report:':<12} {html_path} (self-contained)")
    print(f"{'markdown:':<12} {md_path}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from genlab.serve import load_runs, serve

    serve(load_runs(args.runs, _warn), "127.0.0.1", args.port, _say)
    return 0


def _eval_config(args: argparse.Namespace) -> EvalConfig:
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(EvalConfig)
             if hasattr(args, f.name)}
    return EvalConfig(**given)


def cmd_eval(args: argparse.Namespace) -> int:
    from genlab.metrics.evaluate import evaluate_run, metrics_path
    from genlab.run import load_run, resolve_device

    device = resolve_device(args.device)
    eval_cfg = _eval_config(args)
    config, model, step, path = load_run(args.run, device, _warn, step=args.step)
    record = evaluate_run(config, model, step, path, eval_cfg, device, _say, _warn, seed=args.seed)
    _print_score(record, f"{args.run} at step {step}: ", metrics_path(path), as_json=args.json)
    return 0


def cmd_fid(args: argparse.Namespace) -> int:
    from genlab.data.folder import ImageSource
    from genlab.metrics.evaluate import compare_sources
    from genlab.metrics.inception import InceptionFeatures
    from genlab.run import resolve_device

    device = resolve_device(args.device)
    eval_cfg = _eval_config(args)
    sources = ImageSource(args.a), ImageSource(args.b)
    extractor = InceptionFeatures(eval_cfg.inception_weights, device, eval_cfg.fid_precision,
                                  batch_size=args.batch_size)
    _say(f"FID: {len(sources[0])} images in {args.a} against {len(sources[1])} in {args.b}")
    _print_score(compare_sources(*sources, extractor, _warn), as_json=args.json)
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from genlab.data.celeba import (folder_batches, folder_crop, folder_files, is_aligned_celeba,
                                    write_hdf5)

    source, output = Path(args.source), Path(args.output)
    if output.suffix.lower() not in (".h5", ".hdf5"):
        raise GenlabError(f"-o {output} should end in .h5 or .hdf5")
    if output.exists() and not args.overwrite:
        raise GenlabError(f"{output} exists; pass --overwrite to replace it")
    if not output.parent.is_dir():
        raise GenlabError(f"the folder of -o {output} does not exist; create it first")
    crop = folder_crop(source, args.crop)
    files = folder_files(source, args.split)
    what = "images"
    if is_aligned_celeba(source):
        what = f"aligned CelebA, split {args.split}" if args.split else "aligned CelebA"
    _say(f"preparing {len(files)} {what} from {source}: centre crop "
         f"{crop if crop else 'to the shorter side'}, resized to {args.size}x{args.size}")
    bar = tqdm(total=len(files), unit="img", file=sys.stderr, desc="prepare",
               mininterval=0.5 if sys.stderr.isatty() else 30.0)

    def counted():
        for batch in folder_batches(files, args.size, crop):
            bar.update(len(batch))
            yield batch

    try:
        write_hdf5(output, counted(), len(files), (3, args.size, args.size))
    finally:
        bar.close()
    print(f"{output}: {len(files)} images, uint8 {len(files)} x 3 x {args.size} x {args.size}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from genlab.data import DATASETS, check_data_dir

    cfg = DataConfig(data_dir=args.data_dir)
    check_data_dir(cfg)
    for entry in DATASETS.values():
        print(f"{entry.name}: {entry.title}")
        for split, count in entry.counts.items():
            print(f"  {split:<6} {count:>6} images  {entry.locate(cfg, split)}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from genlab.data import load_split
    from genlab.errors import DataError, DownloadError

    dataset, announce = "mnist", None
    try:
        load_split(DataConfig(dataset="mnist", download=not args.no_download), "train", log=_say)
    except DataError as exc:
        why = exc.reason if isinstance(exc, DownloadError) else "downloads are off"
        dataset = "digits"
        announce = (f"MNIST is neither here nor downloadable ({why}); the demo runs on the 1,797 "
                    "real 8x8 handwritten digits embedded in scikit-learn, resized to 32x32 "
                    "(`genlab datasets` shows where MNIST is looked for)")
    settings = {"dataset": dataset, "num_training_steps": args.steps,
                "saving_steps": max(1, args.steps // 4), "download": not args.no_download,
                "fid_samples": args.fid_samples}
    run_dir = args.run_dir or str(Path("runs") / f"demo-vae-{dataset}")
    return train_run("vae", settings, run_dir, announce=announce)


# --- parser -----------------------------------------------------------------------------------

def _add_device_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """RUN, --step and --device: what every command that loads a run folder takes."""
    parser.add_argument("run", metavar="RUN", help="run folder written by `genlab train`")
    parser.add_argument("--step", type=_non_negative_int, default=None,
                        help="use the checkpoint of this step (default: the latest)")
    _add_device_flag(parser)


def _add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="also print the score and its settings as one JSON object, last")


def build_parser() -> argparse.ArgumentParser:
    from genlab.data import DATASETS
    from genlab.models import MODELS

    parser = _Parser(prog="genlab", description="Train, evaluate and explain image generative "
                     "models: the homework's VAE and DCGAN.")
    parser.add_argument("--version", action="version", version=f"genlab {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    train = commands.add_parser("train", help="train a model (resumes an existing run folder)",
                                description="Train a model; on an existing run folder, resume "
                                "from its latest checkpoint.")
    models = train.add_subparsers(dest="model", metavar="MODEL", parser_class=_Parser)
    for name, model_cls in MODELS.items():
        sub = models.add_parser(name, help=(model_cls.__doc__ or "").strip().splitlines()[0],
                                description=(model_cls.__doc__ or "").strip().splitlines()[0])
        sub.add_argument("--run-dir", help="run folder (default: runs/<model>-<dataset>-z<latent>"
                         "-b<batch>-s<steps>); an existing one is resumed")
        _add_config_flags(sub, model_cls.config_class, {}, {})
        _add_config_flags(sub, DataConfig, {}, {"dataset": tuple(DATASETS)})
        _add_config_flags(sub, TrainConfig, model_cls.train_defaults, {})
        _add_config_flags(sub, EvalConfig, {}, {})
        sub.set_defaults(handler=cmd_train)

    latents = commands.add_parser(
        "latents", help="scatter of a 2-d or 3-d latent space (and the 2-d decoded manifold)",
        description="For a run with latent size 2 or 3: the posterior means of validation "
        "images as a scatter coloured by label (pairwise planes for 3), and for size 2 the "
        "images decoded over a grid of prior quantiles.")
    _add_run_arguments(latents)
    latents.add_argument("-o", "--output", help="folder for the PNGs (default: RUN/figures)")
    latents.add_argument("--images", type=_positive_int, default=5000,
                         help="validation images in the scatter (default: 5000)")
    latents.add_argument("--manifold", type=_positive_int, default=20,
                         help="the manifold grid's side, in images (default: 20)")
    latents.set_defaults(handler=cmd_latents)

    report = commands.add_parser(
        "report", help="one HTML page (and a Markdown twin) about one or more runs",
        description="Write DIR/report.html (self-contained: images embedded, no network "
        "reference) and DIR/report.md: each run's settings, every curve it logged, GAN "
        "equilibrium diagnostics, its last grids, an interpolation, its figures and scores; "
        "then a comparison table and the runs' samples side by side.")
    report.add_argument("runs", nargs="+", metavar="RUN", help="run folders")
    report.add_argument("-o", "--output", default="report", help="folder (default: report)")
    report.add_argument("--no-interpolation", action="store_true",
                        help="skip decoding an interpolation grid per run")
    report.set_defaults(handler=cmd_report)

    serve = commands.add_parser(
        "serve", help="a local web page to sample, reconstruct and interpolate (live demo)",
        description="Serve a page on http://127.0.0.1:PORT/ to draw samples from the runs, "
        "reconstruct an uploaded image and slide along an interpolation; Ctrl-C stops it.")
    serve.add_argument("runs", nargs="+", metavar="RUN", help="run folders")
    serve.add_argument("--port", type=_non_negative_int, default=8000,
                       help="port on localhost (default: 8000; 0 picks a free one)")
    serve.set_defaults(handler=cmd_serve)

    sweep = commands.add_parser(
        "sweep", help="train one run per combination of flag values, then tabulate them",
        description="Train one run per combination of the values given (any `genlab train` "
        "flag takes several, e.g. --latent-dim 3 10 100) into --out DIR, one folder per run; "
        "resumable (finished runs are reused, interrupted ones resume); then write "
        "DIR/results.md and results.csv with each run's FID.")
    sweep_models = sweep.add_subparsers(dest="model", metavar="MODEL", parser_class=_Parser)
    for name, model_cls in MODELS.items():
        sub = sweep_models.add_parser(name, help=f"sweep {name} runs")
        sub.add_argument("--out", required=True, help="folder for the runs and the results table")
        sub.add_argument("--parallel", type=_positive_int, default=1,
                         help="runs trained at the same time (default: 1)")
        _add_config_flags(sub, model_cls.config_class, {}, {}, several=True)
        _add_config_flags(sub, DataConfig, {}, {"dataset": tuple(DATASETS)}, several=True)
        _add_config_flags(sub, TrainConfig, model_cls.train_defaults, {}, several=True)
        _add_config_flags(sub, EvalConfig, {}, {}, several=True)
        sub.set_defaults(handler=cmd_sweep)

    evaluate = commands.add_parser("eval", help="FID and KID of a run's latest checkpoint",
                                   description="Compute FID and KID of a run's latest checkpoint "
                                   "(or --step's) under the homework's protocol (N generated "
                                   "images against N "
                                   "real ones of the run's training split) and store them beside "
                                   "the checkpoint.")
    _add_run_arguments(evaluate)
    _add_config_flags(evaluate, EvalConfig, {}, {})
    evaluate.add_argument("--seed", type=_int, default=0,
                          help="seed of the generated images' latents (default: 0)")
    _add_json_flag(evaluate)
    evaluate.set_defaults(handler=cmd_eval)

    fid = commands.add_parser("fid", help="FID and KID between two image folders or .npz files",
                              description="FID and KID between any two image sets: folders of "
                              "image files (searched recursively) or .npz arrays of uint8 images "
                              "(N,H,W[,C] or N,C,H,W) or floats in [0, 1].")
    fid.add_argument("a", metavar="A", help="folder or .npz (KID's reference side)")
    fid.add_argument("b", metavar="B", help="folder or .npz")
    _add_config_flags(fid, EvalConfig, {}, {}, only=("fid_precision", "inception_weights"))
    fid.add_argument("--batch-size", type=_positive_int, default=None,
                     help="images per Inception batch (default: 8 on a CPU, 64 on a GPU)")
    _add_device_flag(fid)
    _add_json_flag(fid)
    fid.set_defaults(handler=cmd_fid)

    sample = commands.add_parser("sample", help="decode samples from a run's latest checkpoint",
                                 description="Draw samples from the prior of a trained run and "
                                 "save them as a PNG grid.")
    _add_run_arguments(sample)
    sample.add_argument("-n", type=_positive_int, default=64, help="number of samples (default: 64)")
    sample.add_argument("-o", "--output", default="samples.png", help="PNG file (default: samples.png)")
    sample.add_argument("--nrow", type=_positive_int, default=8, help="images per row (default: 8)")
    sample.add_argument("--seed", type=_int, default=0, help="seed of the latents (default: 0)")
    sample.set_defaults(handler=cmd_sample)

    walk = commands.add_parser(
        "interpolate", help="latent walks between two latents, with extrapolation",
        description="Decode straight lines z1 + (i/K)(z2 - z1), i = 0..K (and -a..-1, K+1..K+a "
        "with --extend a), one path per row, into a PNG grid. The ends are prior draws, or for "
        "a model with an encoder the encodings of real images (--from data, or --images).")
    _add_run_arguments(walk)
    walk.add_argument("-o", "--output", default="interpolation.png",
                      help="PNG file (default: interpolation.png)")
    walk.add_argument("--rows", type=_positive_int, default=4,
                      help="paths, one per row (default: 4)")
    walk.add_argument("--steps", type=_positive_int, default=8,
                      help="K: frames from z1 to z2 are i/K for i = 0..K (default: 8)")
    walk.add_argument("--extend", type=_non_negative_int, default=0,
                      help="a: also decode i = -a..-1 and K+1..K+a, beyond both ends (default: 0)")
    walk.add_argument("--from", dest="source", choices=("prior", "data"), default="prior",
                      help="prior: ends drawn from N(0, I); data: the encodings of random "
                      "validation images (models with an encoder) (default: prior)")
    walk.add_argument("--images", nargs="+", metavar="FILE",
                      help="image files whose encodings are the ends, in pairs (one pair a path)")
    walk.add_argument("--seed", type=_int, default=0, help="seed of the ends (default: 0)")
    scoring = walk.add_argument_group("latent-space quality (--score)")
    scoring.add_argument("--score", action="store_true",
                         help="also measure the latent space on new paths (ends as --from): "
                         "smoothness in Inception features over --paths paths and the FID of "
                         "--midpoints path midpoints; stored beside the checkpoint")
    scoring.add_argument("--paths", type=_positive_int, default=50,
                         help="paths decoded whole for the smoothness (default: 50)")
    scoring.add_argument("--midpoints", type=_positive_int, default=1000,
                         help="path midpoints for the FID against real images (default: 1000)")
    _add_config_flags(walk, EvalConfig, {}, {}, only=("fid_precision", "inception_weights"))
    walk.set_defaults(handler=cmd_interpolate)

    prepare = commands.add_parser("prepare", help="convert a folder of images (or aligned "
                                  "CelebA) to one HDF5 file", description="Centre-crop and resize "
                                  "every image of a folder (searched recursively; for an aligned "
                                  "CelebA folder, the JPEGs of img_align_celeba/) and write them "
                                  "as one uint8 N x 3 x S x S dataset 'images' in an HDF5 file, "
                                  "so training starts without decoding JPEGs.")
    prepare.add_argument("source", metavar="SRC", help="folder of images or aligned CelebA")
    prepare.add_argument("-o", "--output", required=True, help="HDF5 file to write (.h5)")
    prepare.add_argument("--size", type=_positive_int, default=64,
                         help="output images are SIZE x SIZE (default: 64)")
    prepare.add_argument("--crop", type=_positive_int, default=None,
                         help="centre crop side before resizing (default: 148 for aligned "
                         "CelebA, the shorter side otherwise)")
    prepare.add_argument("--split", choices=["train", "val", "test"], default=None,
                         help="aligned CelebA only: one split of list_eval_partition.txt "
                         "(default: every image)")
    prepare.add_argument("--overwrite", action="store_true", help="replace an existing output")
    prepare.set_defaults(handler=cmd_prepare)

    datasets = commands.add_parser("datasets", help="which data sets are found where",
                                   description="List the data sets genlab knows, their splits "
                                   "and where their files are found.")
    datasets.add_argument("--data-dir", help="also look in this folder, as `genlab train` would")
    datasets.set_defaults(handler=cmd_datasets)

    demo = commands.add_parser("demo", help="train a small VAE on MNIST, or on the embedded "
                               "digits when MNIST is not available",
                               description="Train the homework's VAE for a few minutes and show "
                               "where its samples, curves and checkpoint are.")
    demo.add_argument("--steps", type=_positive_int, default=2000,
                      help="training steps (default: 2000)")
    demo.add_argument("--run-dir", help="run folder (default: runs/demo-vae-<dataset>)")
    demo.add_argument("--no-download", action="store_true",
                      help="do not try to download MNIST")
    # 1000 images a side, not the protocol's 3000: a few minutes of CPU, not ten.
    demo.add_argument("--fid-samples", type=_non_negative_int, default=DEMO_FID_SAMPLES,
                      help=f"images a side for the final FID (default: {DEMO_FID_SAMPLES}; 0 "
                      "skips it)")
    demo.set_defaults(handler=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return args.handler(args)
    except GenlabError as exc:
        print(f"genlab: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("genlab: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
