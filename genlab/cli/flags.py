"""Command-line flags from the config dataclasses, and what every command shares.

Every field of a config dataclass is a flag (its name with dashes, genlab.options); its value is
parsed to the field's type and checked by genlab.options.check_value, the same check a loaded
config.json passes, so a flag and a stored setting have one set of rules.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
from pathlib import Path
from typing import Any, NoReturn, Sequence

from genlab.config import DATASET_NAMES, DataConfig, EvalConfig, TrainConfig
from genlab.models.specs import SPECS, ModelSpec
from genlab.options import check_value, field_kind, flag_name, parse_duration, wording

# A training run stopped by a signal exits as a shell reports a process the signal ended:
# 128 + its number (SIGINT, Ctrl-C: 130; SIGTERM, a scheduler's preemption or time limit: 143).
EXIT_INTERRUPTED = 128 + signal.SIGINT
EXIT_TERMINATED = 128 + signal.SIGTERM
# Output piped into a reader that stopped early (`genlab datasets | head -1`): a shell's code for
# a process SIGPIPE ended, and no traceback, as `yes | head -1` gives.
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE
MAX_COUNT = 10_000_000   # images a command may be asked to draw or decode (-n, --steps, ...)


class Parser(argparse.ArgumentParser):
    """argparse, with errors as one line (no usage dump) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def value_parser(cls: type, config_field: dataclasses.Field):
    """An argparse type for one config field: the text as the field's type, then its check."""
    kind = field_kind(cls, config_field)

    def parse(text: str) -> Any:
        try:
            if config_field.metadata.get("duration"):
                value = parse_duration(text)
            else:
                value = kind(text) if kind in (int, float) else text
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {wording(cls, config_field)}, got {text!r}") from None
        if config_field.metadata.get("choices"):
            return value  # argparse checks it against the choices, and says so
        try:
            return check_value(cls, config_field, value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return parse


def count(minimum: int = 1, maximum: int = MAX_COUNT):
    """An argparse type: an integer in [minimum, maximum]."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"must be from {minimum} to {maximum:,}, got {value}")
        return value
    return parse


SEED = count(0, 2**63 - 1)


def add_config_flags(parser: argparse.ArgumentParser, cls: type, defaults: dict[str, Any],
                     choices: dict[str, Sequence[str]], only: Sequence[str] | None = None,
                     several: bool = False) -> None:
    """One flag per dataclass field (or per field named in `only`). Defaults are SUPPRESSed so
    the parsed namespace holds only what the user typed: a resumed run must tell 'not given'
    from 'given the default'. `several`: each flag but a switch takes one or more values (a
    sweep)."""
    group = parser.add_argument_group(cls.__name__.removesuffix("Config").lower() + " settings")
    for config_field in dataclasses.fields(cls):
        if only is not None and config_field.name not in only:
            continue
        meta = config_field.metadata
        kwargs: dict[str, Any] = dict(dest=config_field.name, default=argparse.SUPPRESS,
                                      help=help_text(config_field, defaults))
        if field_kind(cls, config_field) is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = value_parser(cls, config_field)
            kwargs["metavar"] = meta.get("metavar") or ("DURATION" if meta.get("duration")
                                 else config_field.name.split("_")[-1].upper())
            options = choices.get(config_field.name) or meta.get("choices")
            if options:
                kwargs["choices"] = list(options)
                kwargs["metavar"] = "{" + ",".join(map(str, options)) + "}"
            if several:
                kwargs["nargs"] = "+"
        group.add_argument(flag_name(config_field.name), *meta.get("aliases", ()), **kwargs)


def help_text(config_field: dataclasses.Field, defaults: dict[str, Any]) -> str:
    """The field's help and its default: the one given in `defaults` (a model's) in place of
    the field's own, whose wording for a None default ends the help as "(default: ...)"."""
    text = config_field.metadata["help"]
    if config_field.name in defaults:
        default = defaults[config_field.name]
        own = text.rfind(" (default:")
        if own >= 0 and text.endswith(")"):
            text = text[:own]
    else:
        default = config_field.default
    if default is None:
        return text  # the help says what None means
    return f"{text} (default: {default:g})" if isinstance(default, float) else \
        f"{text} (default: {default})"


def add_model_flags(parser: argparse.ArgumentParser, spec: ModelSpec, several: bool = False) -> None:
    """Every flag of `genlab train MODEL`: the model's config, then data, training, evaluation,
    each shown with this model's default."""
    train_shown = dict(spec.train_defaults)
    if spec.train_defaults.get("epochs") is not None:
        train_shown["num_training_steps"] = "as many as --epochs makes of the training split"
    add_config_flags(parser, spec.config_class, {}, {}, several=several)
    add_config_flags(parser, DataConfig, spec.data_defaults, {"dataset": DATASET_NAMES},
                     several=several)
    add_config_flags(parser, TrainConfig, train_shown, {}, several=several)
    add_config_flags(parser, EvalConfig, {}, {}, several=several)


def config_settings(args: argparse.Namespace, model_name: str) -> dict[str, Any]:
    """The config fields the user gave, by name."""
    names = {f.name for cls in (DataConfig, TrainConfig, EvalConfig,
                                SPECS[model_name].config_class)
             for f in dataclasses.fields(cls)}
    return {k: v for k, v in vars(args).items() if k in names}


def eval_config(args: argparse.Namespace) -> EvalConfig:
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(EvalConfig)
             if hasattr(args, f.name)}
    return EvalConfig(**given)


TRAIN_DRY_RUN = ("print the resolved settings, each with where it comes from, the data it would "
                 "read with counts, the device, precision and steps")


def add_dry_run_flag(parser: argparse.ArgumentParser, what: str = TRAIN_DRY_RUN) -> None:
    parser.add_argument("--dry-run", action="store_true", help=f"{what}; then exit, writing nothing")


def add_device_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """RUN, --step and --device: what every command that loads a run folder takes."""
    parser.add_argument("run", metavar="RUN", help="run folder written by `genlab train`")
    parser.add_argument("--step", type=count(0, 10**12), default=None,
                        help="use the checkpoint of this step (default: the latest)")
    add_device_flag(parser)


def open_run(args: argparse.Namespace, warn):
    """The run of RUN, --step and --device (add_run_arguments), rebuilt: a genlab.run.TrainedRun."""
    from genlab.run import load_run, resolve_device

    return load_run(args.run, resolve_device(args.device), warn, step=args.step)


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="also print the score and its settings as one JSON object, last")


def print_score(record: dict, prefix: str = "", metrics: Path | None = None,
                as_json: bool = False) -> None:
    """The score in a line (and where it is stored); with --json, the whole record last."""
    from genlab.metrics.evaluate import UNSTATED_SETTINGS
    from genlab.metrics.registry import describe

    settings = record["settings"]
    resize = settings.get("resize", UNSTATED_SETTINGS["resize"])
    print(f"{prefix}{describe(record)}  ({settings['protocol']}; {settings['precision']}, "
          f"{resize} resize)")
    if metrics is not None:
        print(f"{'metrics:':<12} {metrics}")
    if as_json:
        print(json.dumps(record, sort_keys=True))
