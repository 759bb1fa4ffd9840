"""Run folders: naming, creating, resuming, and rebuilding a trained model from one."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable

import torch

from genlab.config import DataConfig, RunConfig, TrainConfig, flag_name
from genlab.errors import GenlabError
from genlab.fsutil import atomic_write_json
from genlab.models import MODELS, GenerativeModel
from genlab.train.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint

CONFIG_FILE = "config.json"
RUNS_ROOT = Path("runs")


def new_config(model_name: str, settings: dict[str, Any]) -> RunConfig:
    """A fresh run's config: the model's defaults, then the user's settings (flat field names)."""
    model_cls = MODELS[model_name]
    config = RunConfig(model=model_name, model_config=model_cls.config_class(), data=DataConfig(),
                       train=TrainConfig(**model_cls.train_defaults), image_shape=(0, 0, 0))
    for name, value in settings.items():
        setattr(_section_of(config, name), name, value)
    _steps_or_epochs(config, settings)
    model_cls.fill_defaults(config.model_config)
    if config.data.data_path is not None:
        if "dataset" in settings:
            raise GenlabError(f"--dataset {settings['dataset']} and --data "
                              f"{config.data.data_path} name two data sources; pass one of them")
        # Named after the file or folder: run folders and FID records say what was trained on.
        config.data.dataset = Path(config.data.data_path.rstrip("/")).stem or "data"
    return config


def _steps_or_epochs(config: RunConfig, settings: dict[str, Any]) -> None:
    """--num-training-steps replaces a default (or stored) --epochs; both at once is a conflict."""
    if "num_training_steps" in settings:
        if "epochs" in settings:
            raise GenlabError(f"--num-training-steps {settings['num_training_steps']} and "
                              f"--epochs {settings['epochs']:g} both say how long to train; "
                              "pass one of them")
        config.train.epochs = None


def _section_of(config: RunConfig, name: str) -> Any:
    for section in (config.model_config, config.data, config.train, config.eval):
        if name in {f.name for f in dataclasses.fields(section)}:
            return section
    raise KeyError(name)


def _is_resumable(section: Any, name: str) -> bool:
    return next(f for f in dataclasses.fields(section) if f.name == name).metadata.get(
        "resumable", False)


def default_run_dir(config: RunConfig) -> Path:
    """`runs/vae-mnist-z64-b32-s25000`, with the split and seed added when not the defaults."""
    parts = [_tag(config), config.data.dataset]
    if config.data.train_split != "train":
        parts.append(config.data.train_split)
    parts += MODELS[config.model].run_tags(config.model_config)
    length = (f"e{config.train.epochs:g}" if config.train.epochs is not None
              else f"s{config.train.num_training_steps}")
    parts += [f"b{config.train.batch_size}", length]
    if config.train.seed != 0:
        parts.append(f"seed{config.train.seed}")
    return RUNS_ROOT / "-".join(parts)


def _tag(config: RunConfig) -> str:
    arch = getattr(config.model_config, "arch", None)
    default_arch = getattr(MODELS[config.model].config_class(), "arch", None)
    return config.model if arch == default_arch else f"{config.model}-{arch}"


def prepare_run(model_name: str, settings: dict[str, Any],
                run_dir: str | None) -> tuple[RunConfig, Path, bool]:
    """The config and folder of `genlab train`, and whether it resumes an existing run.

    Nothing is written here. An existing run folder keeps its settings: flags that say how long
    or how often (num_training_steps, logging, saving, device, data_dir) may change; any other
    flag that differs from the stored run stops with an error naming it.
    """
    fresh = new_config(model_name, settings)
    folder = Path(run_dir) if run_dir else default_run_dir(fresh)
    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise GenlabError(f"{folder} exists but is not a genlab run folder (no {CONFIG_FILE}); "
                              "choose another --run-dir")
        return fresh, folder, False
    stored_model = _stored_model_name(config_path)
    if stored_model != model_name:
        raise GenlabError(f"{folder} holds a {stored_model} run, not a {model_name} run; choose "
                          f"another --run-dir or run `genlab train {stored_model}`")
    stored = RunConfig.load(config_path)
    for name, value in settings.items():
        section = _section_of(stored, name)
        if _is_resumable(section, name):
            setattr(section, name, value)
        elif getattr(section, name) != value:
            raise GenlabError(f"{flag_name(name)} {value} differs from the run in {folder} "
                              f"({name} = {getattr(section, name)}); a run's settings are fixed "
                              "once it starts, so drop the flag or choose another --run-dir")
    _steps_or_epochs(stored, settings)
    return stored, folder, True


def _stored_model_name(config_path: Path) -> str:
    """The model a run folder holds, read before the rest (which needs that model's config)."""
    try:
        return str(json.loads(config_path.read_text())["model"])
    except (OSError, ValueError, KeyError, TypeError):
        raise GenlabError(f"{config_path} is not a readable genlab run configuration; choose "
                          "another --run-dir") from None


def write_config(config: RunConfig, folder: Path) -> None:
    atomic_write_json(folder / CONFIG_FILE, config.to_dict())


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise GenlabError(f"--device {name} is not a device; use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GenlabError(f"--device {name} asks for a GPU but PyTorch sees none here; use "
                          "--device cpu (or auto)")
    return device


def build_model(config: RunConfig) -> GenerativeModel:
    """The run's model, initialised from its seed."""
    torch.manual_seed(config.train.seed)
    return MODELS[config.model](config.model_config, config.image_shape)


def load_run(run_dir: str | Path, device: torch.device, warn: Callable[[str], None],
             step: int | None = None) -> tuple[RunConfig, GenerativeModel, int, Path]:
    """Rebuild a trained model from its run folder alone: (config, model in eval mode, step,
    checkpoint path). The latest valid checkpoint, or the one of `step`."""
    folder = Path(run_dir)
    if not (folder / CONFIG_FILE).is_file():
        raise GenlabError(f"{folder} is not a genlab run folder (no {CONFIG_FILE}); pass a folder "
                          "written by `genlab train`")
    config = RunConfig.load(folder / CONFIG_FILE)
    if step is None:
        found = latest_checkpoint(folder, warn)
    else:
        found = _checkpoint_of_step(folder, step)
    if found is None:
        raise GenlabError(f"{folder} has no checkpoint yet; train it first with `genlab train "
                          f"{config.model} --run-dir {folder}`")
    payload, path = found
    if payload.get("model_name") != config.model:
        raise GenlabError(f"checkpoint {path} is of a {payload.get('model_name')} model but "
                          f"{folder / CONFIG_FILE} says {config.model}; the folder is mixed up")
    model = build_model(config)
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError:
        raise GenlabError(f"checkpoint {path} does not fit the model in "
                          f"{folder / CONFIG_FILE}; the folder is mixed up") from None
    return config, model.to(device).eval(), int(payload["step"]), path


def _checkpoint_of_step(folder: Path, step: int) -> tuple[dict, Path]:
    steps = dict(list_checkpoints(folder))
    if step not in steps:
        listed = [str(s) for s in steps]
        if len(listed) > 8:  # a long run: its first and last few
            listed = [*listed[:3], "...", *listed[-3:]]
        have = ", ".join(listed) or "none"
        raise GenlabError(f"{folder} has no checkpoint of step {step} (it has: {have}); pass "
                          "one of those to --step")
    return load_checkpoint(steps[step]), steps[step]
