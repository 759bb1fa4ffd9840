"""--dry-run of `genlab train`, `sweep` and `eval`: what the command would do, from the same
resolved plan the command runs, printed; nothing is written and no image is read (only names,
counts and file headers)."""

from __future__ import annotations

import dataclasses
from typing import Any

from genlab.config import RunConfig

SECTIONS = ("model_config", "data", "train", "eval")


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _shape(image_shape: tuple[int, int, int]) -> str:
    c, h, w = image_shape
    return f"{h}x{w}x{c}"


def print_settings(config: RunConfig, sources: dict[str, str], changed: dict[str, str]) -> None:
    """Every setting, its value and where it came from (`changed`: what the data made of it)."""
    print("settings (value, then where it comes from):")
    for section_name in SECTIONS:
        section = getattr(config, section_name)
        for config_field in dataclasses.fields(section):
            name = config_field.name
            source = sources[name] + (f", {changed[name]}" if name in changed else "")
            print(f"  {section_name.removesuffix('_config'):<6} {name:<26} "
                  f"{_text(getattr(section, name)):<14} {source}")


def print_train_plan(plan, title: str) -> None:
    """A `genlab train` run as it would start: folder, data with counts, device, precision,
    steps, and every setting with its source. Raises what the run would raise before training
    (a missing data file or split, an impossible --fid-samples, an unknown --metrics, missing
    Inception weights)."""
    from genlab.models import SPECS
    from genlab.run import check_before_training
    from genlab.train.trainer import uses_bf16

    config = plan.config
    print(f"{title} (dry run: nothing is written)")
    state = "resumes the run there" if plan.resuming else "a new run"
    if plan.parent is not None:
        state += f" from step {plan.parent[0]['step']:,} of {plan.parent[1]}"
    named = "--run-dir" if plan.folder_given else "named from the settings"
    print(f"{'run folder:':<12} {plan.folder} ({state}; {named})")
    before = {name: getattr(getattr(config, s), name) for s in SECTIONS
              for name in (f.name for f in dataclasses.fields(getattr(config, s)))}
    notes: list[str] = []
    train, val, device = check_before_training(config, plan.given, plan.resuming, plan.folder,
                                               notes.append)
    changed = {name: "from the data" for s in SECTIONS
               for name in (f.name for f in dataclasses.fields(getattr(config, s)))
               if getattr(getattr(config, s), name) != before[name]}
    print(f"{'data:':<12} {train.count:,} training images of {_shape(train.image_shape)}, "
          f"{train.split} split: {train.source}")
    print(f"{'':<12} {val.count:,} validation images, {val.split} split")
    bf16 = uses_bf16(config.train.precision, device,
                     SPECS[config.model].bf16_on_cpu(config.model_config))
    print(f"{'device:':<12} {device}; precision {'bf16 autocast' if bf16 else 'fp32'} "
          f"(--precision {config.train.precision})")
    print(f"{'steps:':<12} {config.train.num_training_steps:,}; a checkpoint every "
          f"{config.train.saving_steps:,}")
    for note in notes:  # what the data made of --epochs and --fid-samples
        print(f"{'':<12} {note}")
    fid = config.eval.fid_samples
    print(f"{'scores:':<12} " + (f"{config.eval.metrics} on {fid:,} images a side at the end"
                                 if fid else "none at the end (--fid-samples 0)"))
    sources = dict(plan.sources)
    if config.train.epochs is not None:  # the steps are what --epochs makes of the data
        sources["num_training_steps"] = f"--epochs ({sources['epochs']})"
        changed["num_training_steps"] = "and the data"
    print_settings(config, sources, changed)


def print_sweep_plan(model: str, planned, out) -> None:
    """Each run of a sweep, new or resumed, then the first one in full; `planned` is
    `genlab.sweep.plan`'s (run, plan) pairs."""
    print(f"genlab sweep {model}: {len(planned)} run(s) into {out} (dry run: nothing is written)")
    for run, plan in planned:
        varied = ", ".join(f"{k} {_text(v)}" for k, v in run.varied.items()) or "one run"
        print(f"  {run.name}: {varied} ({'resumes' if plan.resuming else 'new'})")
    first_run, first_plan = planned[0]
    print_train_plan(first_plan, f"the first run, {first_run.name}")


def print_eval_plan(run_dir: str, step: int | None, device_name: str, eval_cfg,
                    given: set[str], seed: int) -> None:
    """What `genlab eval` would score: the checkpoint, the images a side and against which
    split (with its size), the device and the Inception's settings, each with its source."""
    from pathlib import Path

    from genlab.checkpoint import list_checkpoints
    from genlab.data import describe_split
    from genlab.metrics.evaluate import reference_splits
    from genlab.metrics.registry import parse_metrics
    from genlab.run import checkpoint_of_step, open_config, resolve_device

    folder = Path(run_dir)
    config = open_config(folder)
    if step is None:
        found = list_checkpoints(folder)
        path = found[-1][1] if found else None  # the latest committed (its bytes are checked then)
    else:
        path = checkpoint_of_step(folder, step)
    print(f"genlab eval {run_dir} (dry run: nothing is written)")
    print(f"{'run folder:':<12} {folder} (a {config.model} run of {_shape(config.image_shape)} "
          "images)")
    print(f"{'checkpoint:':<12} {path or 'none yet: train the run first'}")
    n = eval_cfg.fid_samples
    for split in reference_splits(config, eval_cfg):
        real = describe_split(config.data, split)
        print(f"{'scores:':<12} {', '.join(parse_metrics(eval_cfg.metrics))} of {n:,} generated "
              f"images (seed {seed}) against {n:,} of the {real.count:,} real images of "
              f"{config.data.dataset}/{split}")
    print(f"{'device:':<12} {resolve_device(device_name)}; Inception in "
          f"{eval_cfg.fid_precision}, {eval_cfg.fid_resize} resize")
    print("settings (value, then where it comes from):")
    for config_field in dataclasses.fields(eval_cfg):
        name = config_field.name
        print(f"  eval   {name:<26} {_text(getattr(eval_cfg, name)):<14} "
              f"{'flag' if name in given else 'default'}")
