"""Run folders: naming, creating, resuming, and rebuilding a trained model from one."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from genlab.config import DataConfig, RunConfig, TrainConfig
from genlab.options import flag_name
from genlab.data import SplitSummary
from genlab.data.memory import ImageSet
from genlab.errors import GenlabError
from genlab.fsutil import (TMP_SUFFIX, atomic_write_json, cannot_write, remove_stale_temporaries,
                           read_regular, special_kind)
from genlab.models import MODELS, SPECS, GenerativeModel
from genlab.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint, restore

CONFIG_FILE = "config.json"
RUNS_ROOT = Path("runs")
MODEL_CONFIGS = {name: spec.config_class for name, spec in SPECS.items()}


MAX_CONFIG_BYTES = 1 << 20  # a config.json is a few KB


def load_config(path: Path) -> RunConfig:
    """A run folder's config.json, every value checked (GenlabError naming the file); read only
    when it is a regular file of at most MAX_CONFIG_BYTES."""
    return RunConfig.from_dict(_read_config_json(path), MODEL_CONFIGS, source=str(path))


def _read_config_json(path: Path) -> Any:
    try:
        return json.loads(read_regular(path, MAX_CONFIG_BYTES, "run configuration"))
    except (OSError, ValueError) as exc:  # ValueError: not JSON, or not even UTF-8
        raise GenlabError(f"cannot read {path} ({exc}); it should be the JSON config that "
                          "`genlab train` writes into every run folder") from None


def config_from_dict(stored: dict, source: str = "config") -> RunConfig:
    return RunConfig.from_dict(stored, MODEL_CONFIGS, source)


def new_config(model_name: str, settings: dict[str, Any]) -> RunConfig:
    """A fresh run's config: the model's defaults, then the user's settings (flat field names)."""
    spec = SPECS[model_name]
    config = RunConfig(model=model_name, model_config=spec.config_class(),
                       data=DataConfig(**spec.data_defaults),
                       train=TrainConfig(**spec.train_defaults), image_shape=(0, 0, 0))
    _apply(config, settings)
    spec.fill_defaults(config.model_config)
    return config


def _apply(config: RunConfig, settings: dict[str, Any]) -> None:
    """The user's settings (flat field names) over a config: a new run's defaults or a branch's
    parent."""
    for name, value in settings.items():
        setattr(_section_of(config, name), name, value)
    _steps_or_epochs(config, settings)
    _data_source(config, settings)


def _data_source(config: RunConfig, settings: dict[str, Any]) -> None:
    """--data and --dataset name one data source between them (a branch's flag replaces its
    parent's source); a run on a file or folder is named after it."""
    if "dataset" in settings:
        if "data_path" in settings:
            raise GenlabError(f"--dataset {settings['dataset']} and --data "
                              f"{settings['data_path']} name two data sources; pass one of them")
        config.data.data_path = None
    if config.data.data_path is not None:
        # Named after the file or folder: run folders and FID records say what was trained on.
        config.data.dataset = Path(config.data.data_path.rstrip("/")).stem or "data"


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
    parts += SPECS[config.model].run_tags(config.model_config)
    length = (f"e{config.train.epochs:g}" if config.train.epochs is not None
              else f"s{config.train.num_training_steps}")
    parts += [f"b{config.train.batch_size}", length]
    if config.train.seed != 0:
        parts.append(f"seed{config.train.seed}")
    return RUNS_ROOT / "-".join(parts)


def _tag(config: RunConfig) -> str:
    arch = getattr(config.model_config, "arch", None)
    default_arch = getattr(SPECS[config.model].config_class(), "arch", None)
    return config.model if arch == default_arch else f"{config.model}-{arch}"


# Where a setting's value comes from. A new run: each field's default, then the model's default
# (genlab.models.specs), then the flag. A resumed run: its folder's config.json, then the flags
# that may change on resuming (the others must equal the stored value).
DEFAULT, MODEL_DEFAULT, FLAG, RUN_FOLDER = "default", "model default", "flag", "run folder"
PARENT = "parent checkpoint"  # a new run's settings taken from its --branch-from checkpoint
# Settings of the process that trained the parent, not of its training: a branch is a new run,
# so it starts from their defaults (the parent's --max-time would otherwise cut it short).
NOT_INHERITED = ("max_time",)
# Settings that act only when a run starts, and what a branch starts from instead.
START_ONLY = {"seed": "continues the random draws of", "init": "starts from the weights of"}


@dataclass
class RunPlan:
    """A run of `genlab train`, resolved before any data is read or anything written: what it
    trains, in which folder, whether it resumes, and where each setting came from."""

    config: RunConfig
    folder: Path
    resuming: bool
    sources: dict[str, str]    # config field -> DEFAULT, MODEL_DEFAULT, FLAG or RUN_FOLDER
    given: frozenset[str]      # the settings the user gave, as flags or a call's dict
    folder_given: bool         # --run-dir, not named from the settings
    lock: RunLock | None = None  # the folder's, held for the plan's `with` block (plan_run(lock=True))
    # A new run --branch-from starts from: the checkpoint's payload, already read and checked,
    # and its path (the trainer takes it, and drops it once loaded: weights can be a GB).
    parent: tuple[dict, Path] | None = None

    def __enter__(self) -> "RunPlan":
        return self

    def __exit__(self, *exc_info) -> None:
        if self.lock is not None:
            self.lock.__exit__(*exc_info)
            self.lock = None


def plan_run(model_name: str, settings: dict[str, Any], run_dir: str | Path | None,
             lock: bool = False) -> RunPlan:
    """The one place a run's settings are resolved: defaults, the model's defaults, flags and an
    existing run folder, in the order of precedence above.

    An existing run folder keeps its settings: flags that say how long or how often
    (num_training_steps, logging, saving, device, data_dir) may change; any other flag that
    differs from the stored run stops with an error naming it. Nothing is written here, unless
    `lock`: then the folder's lock (RunLock) is taken before the folder is read, and held until
    the plan's `with` block ends.
    """
    if settings.get("branch_from") is not None:
        # Resolved, so that the same parent given from another directory (or through a link)
        # is the same setting.
        settings = {**settings, "branch_from": str(Path(settings["branch_from"]).resolve())}
        if not run_dir:
            raise GenlabError("--branch-from needs --run-dir: the new run's own folder (a "
                              "default one could be the parent's)")
    fresh = new_config(model_name, settings)
    folder = run_folder(fresh, run_dir)
    parent = fresh.train.branch_from
    if parent is not None and Path(parent).parent.parent.resolve() == folder.resolve():
        raise GenlabError(f"--branch-from {parent} is a checkpoint of --run-dir {folder} itself; "
                          "a branch needs a folder of its own")
    held = RunLock(folder).__enter__() if lock else None
    try:
        plan = _plan_in(folder, fresh, model_name, settings, bool(run_dir))
    except BaseException as exc:
        if held is not None:
            held.__exit__(type(exc), exc, exc.__traceback__)
        raise
    plan.lock = held
    return plan


def _plan_in(folder: Path, fresh: RunConfig, model_name: str, settings: dict[str, Any],
             folder_given: bool) -> RunPlan:
    given = frozenset(settings)

    def new() -> RunPlan:
        if fresh.train.branch_from is not None:
            return _branch_plan(folder, model_name, settings)
        needs = SPECS[model_name].needs_data
        if needs and "data_path" not in settings and "dataset" not in settings:
            raise GenlabError(needs)
        return RunPlan(fresh, folder, False, _new_sources(fresh, settings), given, folder_given)

    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        if folder.exists() and (not folder.is_dir() or any(
                f.name != LOCK_FILE and not f.name.endswith(TMP_SUFFIX) for f in folder.iterdir())):
            raise GenlabError(f"{folder} exists but is not a genlab run folder (no {CONFIG_FILE}); "
                              "choose another --run-dir")
        return new()
    stored_model = _stored_model_name(config_path)
    if stored_model != model_name:
        # Even before its first checkpoint, another model's folder is someone else's run.
        raise GenlabError(f"{folder} holds a {stored_model} run, not a {model_name} run; choose "
                          f"another --run-dir or run `genlab train {stored_model}`")
    if not list_checkpoints(folder):
        # A start of this model that failed before its first checkpoint (a bad setting, a
        # kill): nothing of it is worth keeping, so it does not fix the settings of the next try.
        return new()
    stored = load_config(config_path)
    held = stored.train.branch_from
    if "branch_from" in settings and settings["branch_from"] != held:
        raise GenlabError(f"{folder} holds " + (f"a branch from {held}" if held else
                          "a run of its own") + f", not a branch from {settings['branch_from']}; "
                          "choose another --run-dir for this branch")
    sources = {name: RUN_FOLDER for name in _field_names(stored)}
    for name, value in settings.items():
        section = _section_of(stored, name)
        if _is_resumable(section, name):
            setattr(section, name, value)
            sources[name] = FLAG
        elif getattr(section, name) != value:
            raise GenlabError(f"{flag_name(name)} {value} differs from the run in {folder} "
                              f"({name} = {getattr(section, name)}); a run's settings are fixed "
                              "once it starts, so drop the flag or choose another --run-dir")
    _steps_or_epochs(stored, settings)
    return RunPlan(stored, folder, True, sources, given, folder_given)


def _branch_plan(folder: Path, model_name: str, settings: dict[str, Any]) -> RunPlan:
    """A new run that starts from another run's checkpoint: the parent's settings, then the
    flags given. The networks must keep their shapes (the trainer checks, naming the layer)."""
    path = Path(settings["branch_from"])
    if path.is_dir():
        raise GenlabError(f"--branch-from {path} is a folder; pass one of its checkpoints "
                          "(checkpoints/step-*.pt)")
    try:
        payload = load_checkpoint(path)
    except GenlabError as exc:
        raise GenlabError(f"--branch-from: {exc}; pass a checkpoint `genlab train` wrote "
                          "(RUN/checkpoints/step-*.pt, with its .json beside it)") from None
    if payload.get("model_name") != model_name:
        raise GenlabError(f"--branch-from {path} is a checkpoint of a {payload.get('model_name')} "
                          f"run, not of a {model_name} run; run `genlab train "
                          f"{payload.get('model_name')}` or choose a {model_name} checkpoint")
    for name, instead in START_ONLY.items():
        if name in settings:
            raise GenlabError(f"{flag_name(name)} {settings[name]} has no effect on a branch, "
                              f"which {instead} --branch-from {path}; drop the flag")
    try:
        stored = json.loads(payload.get("config", ""))
    except (TypeError, ValueError):
        stored = None  # from_dict says what is wrong
    config = config_from_dict(stored, source=f"the configuration stored in {path}")
    for name in NOT_INHERITED:
        section = _section_of(config, name)
        setattr(section, name, next(f.default for f in dataclasses.fields(section)
                                    if f.name == name))
    _apply(config, settings)
    sources = {name: FLAG if name in settings else DEFAULT if name in NOT_INHERITED else PARENT
               for name in _field_names(config)}
    return RunPlan(config, folder, False, sources, frozenset(settings), True,
                   parent=(payload, path))


def _field_names(config: RunConfig) -> list[str]:
    return [f.name for section in (config.model_config, config.data, config.train, config.eval)
            for f in dataclasses.fields(section)]


def _new_sources(config: RunConfig, settings: dict[str, Any]) -> dict[str, str]:
    """A new run's settings: given, the model's (its specs' defaults, and the fields it fills
    from others), or the field's own default."""
    spec = SPECS[config.model]
    bare = spec.config_class()
    by_model = {*spec.train_defaults, *spec.data_defaults,
                *(f.name for f in dataclasses.fields(bare) if getattr(bare, f.name) is None)}
    given = set(settings) | ({"dataset"} if config.data.data_path is not None else set())
    return {name: FLAG if name in given else MODEL_DEFAULT if name in by_model else DEFAULT
            for name in _field_names(config)}


def run_folder(config: RunConfig, run_dir: str | Path | None) -> Path:
    return Path(run_dir) if run_dir else default_run_dir(config)


LOCK_FILE = ".genlab-lock"


class RunLock:
    """One writer per run folder: an exclusive advisory lock (flock) on RUN/.genlab-lock, held
    for the life of a training process. The kernel drops it when the process ends, kill -9
    included, so it never goes stale; a second trainer stops at once naming the holder's PID,
    while readers (sample, eval, report, serve) never take it. The folder is made if needed, and
    removed again if the run leaves nothing else in it (a start that failed); a lock file this
    process made is removed again when its start fails before the first checkpoint."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._fd: int | None = None
        self._made: list[Path] = []  # the folders this start created, the run folder first
        self._created_lock = False

    def __enter__(self) -> "RunLock":
        import fcntl

        path = self.folder / LOCK_FILE
        try:
            self._made = [p for p in (self.folder, *self.folder.parents) if not p.exists()]
            self.folder.mkdir(parents=True, exist_ok=True)
            self._created_lock = not os.path.lexists(path)
            # O_NOFOLLOW: a lock that is a symbolic link is refused, never followed (the PID
            # written below would overwrite whatever file it points at).
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
        except OSError as exc:
            self._undo_failed_start()
            if exc.errno == errno.ELOOP:
                raise GenlabError(f"{path} is a symbolic link; genlab's lock must be a regular "
                                  "file in the run folder, so remove the link and run the same "
                                  "command again") from None
            raise GenlabError(cannot_write(path, exc)) from None
        kind = special_kind(os.fstat(fd).st_mode)
        if kind is not None:
            os.close(fd)
            raise GenlabError(f"{path} is {kind}; genlab's lock must be a regular file in the run "
                              "folder, so remove it and run the same command again")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise GenlabError(f"{self.folder} is being trained by another genlab process (PID "
                              f"{holder}); wait for it to finish or stop it, or choose another "
                              "--run-dir") from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as exc:  # a full disk: nothing of this start is left behind
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            self._undo_failed_start()
            raise GenlabError(cannot_write(path, exc)) from None
        self._fd = fd
        remove_stale_temporaries(self.folder)  # the one writer: no write of another is under way
        return self

    def _undo_failed_start(self) -> None:
        """Remove the lock file and folders this start made, where it made them."""
        with contextlib.suppress(OSError):
            if self._created_lock:
                (self.folder / LOCK_FILE).unlink(missing_ok=True)
        self._remove_made_folders()

    def _remove_made_folders(self) -> None:
        """The run folder and the parents this start created (a default `runs/`), innermost
        first, each only while empty."""
        for folder in self._made:
            try:
                folder.rmdir()
            except OSError:
                return

    def __exit__(self, exc_type, *exc_info) -> None:
        import fcntl

        if self._fd is None:
            return
        if exc_type is not None and self._created_lock and not list_checkpoints(self.folder):
            # A refused start in an existing folder (another model's, another's notes) leaves
            # the folder as it found it.
            (self.folder / LOCK_FILE).unlink(missing_ok=True)
        if self._made and {f.name for f in self.folder.iterdir()} <= {LOCK_FILE}:
            (self.folder / LOCK_FILE).unlink(missing_ok=True)  # a failed start leaves no trace
            self._remove_made_folders()
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None


def _stored_model_name(config_path: Path) -> str:
    """The model a run folder holds, read before the rest (which needs that model's config)."""
    try:
        return str(json.loads(read_regular(config_path, MAX_CONFIG_BYTES,
                                           "run configuration"))["model"])
    except (OSError, ValueError, KeyError, TypeError):
        raise GenlabError(f"{config_path} is not a readable genlab run configuration; choose "
                          "another --run-dir") from None


def finalise(config: RunConfig, train_set: ImageSet, given: set[str], resuming: bool,
             folder: Path, say: Callable[[str], None]) -> None:
    """Make what depends on the loaded data concrete, so the stored config says what was
    trained: the image shape (a resumed run's data must still load as it did), --epochs as steps,
    the image size, and the FID sample count (at most the training split's size; `given`: the
    flags the user typed, where an impossible count is an error rather than a note)."""
    if resuming and tuple(train_set.image_shape) != tuple(config.image_shape):
        raise GenlabError(f"the data now loads as {train_set.image_shape} images but the run in "
                          f"{folder} was trained on {tuple(config.image_shape)}; check "
                          f"{'--data' if config.data.data_path else '--data-dir'}")
    config.image_shape = train_set.image_shape
    if config.train.epochs is not None:
        steps = math.ceil(config.train.epochs * len(train_set) / config.train.batch_size)
        say(f"{config.train.epochs:g} epochs of {len(train_set)} images at batch "
            f"{config.train.batch_size} = {steps} steps")
        config.train.num_training_steps = steps
    _, h, w = train_set.image_shape
    if config.data.image_size is None and h == w:
        config.data.image_size = h  # stored concrete: the run reloads the same images
    if config.eval.fid_samples > len(train_set):
        if "fid_samples" in given:
            from genlab.metrics.evaluate import check_sample_count

            check_sample_count(config.eval.fid_samples, len(train_set), "the training split")
        say(f"note: FID will use {len(train_set)} images a side, all the training split has "
            f"(the protocol's {config.eval.fid_samples} need a larger one)")
        config.eval.fid_samples = len(train_set)


def check_before_training(config: RunConfig, given: set[str], resuming: bool, folder: Path,
                          say: Callable[[str], None]
                          ) -> tuple[SplitSummary, SplitSummary, torch.device]:
    """What a run checks before it trains, from its data's headers alone (nothing is loaded or
    written): the files and splits, what the data make of the settings (`finalise`, which
    changes `config` as the run would), the device, and that the end-of-training scores can be
    computed. Returns the training and validation splits' descriptions and the device; raises
    what the run would raise before training."""
    from genlab.data import describe_training_splits
    from genlab.metrics.evaluate import check_ready

    train, val = describe_training_splits(config.data)
    finalise(config, train, given, resuming, folder, say)
    device = resolve_device(config.train.device)
    check_ready(config.eval, device)
    return train, val, device


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


def open_config(folder: Path) -> RunConfig:
    """The config of a run folder that a command reads (eval, sample, report, ...)."""
    if not (folder / CONFIG_FILE).is_file():
        raise GenlabError(f"{folder} is not a genlab run folder (no {CONFIG_FILE}); pass a folder "
                          "written by `genlab train`")
    return load_config(folder / CONFIG_FILE)


@dataclass
class TrainedRun:
    """A run rebuilt from its folder: its config and its model at one checkpoint."""

    config: RunConfig
    model: GenerativeModel   # in eval mode, on `device`
    step: int
    checkpoint: Path
    device: torch.device


def load_run(run_dir: str | Path, device: torch.device, warn: Callable[[str], None],
             step: int | None = None) -> TrainedRun:
    """Rebuild a trained model from its run folder alone, at the latest valid checkpoint or the
    one of `step`."""
    folder = Path(run_dir)
    config = open_config(folder)
    if step is None:
        found = latest_checkpoint(folder, warn)
    else:
        path = checkpoint_of_step(folder, step)
        found = load_checkpoint(path), path
    if found is None:
        raise GenlabError(f"{folder} has no checkpoint yet; train it first with `genlab train "
                          f"{config.model} --run-dir {folder}`")
    payload, path = found
    model = build_model(config)
    restore(payload, path, config.model, model)
    return TrainedRun(config, model.to(device).eval(), int(payload["step"]), path, device)


def checkpoint_of_step(folder: Path, step: int) -> Path:
    """The committed checkpoint of `step` in a run folder, not read; GenlabError listing the
    steps there are when it has none."""
    steps = dict(list_checkpoints(folder))
    if step not in steps:
        listed = [str(s) for s in steps]
        if len(listed) > 8:  # a long run: its first and last few
            listed = [*listed[:3], "...", *listed[-3:]]
        have = ", ".join(listed) or "none"
        raise GenlabError(f"{folder} has no checkpoint of step {step} (it has: {have}); pass "
                          "one of those to --step")
    return steps[step]
