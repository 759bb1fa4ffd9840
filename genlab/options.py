"""Config fields that are also command-line flags: their metadata, and the one check every value
passes, typed on the command line or read back from a run folder's config.json.

Import-free within genlab: the configs (genlab.config) and the models' own config dataclasses both
use it, and neither needs the other.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from dataclasses import field
from typing import Any

_NO_LEGACY = object()


def option(default: Any, help: str, *, positive: bool = False, non_negative: bool = False,
           maximum: float | None = None, choices: tuple | None = None,
           aliases: tuple[str, ...] = (), resumable: bool = False, tag: str | None = None,
           duration: bool = False, metavar: str | None = None, legacy: Any = _NO_LEGACY) -> Any:
    """A config field that is also a CLI flag.

    positive / non_negative: the value must be > 0 / >= 0; maximum: at most this (a bound that
    keeps a typo from allocating the machine's memory). resumable: the flag may change when a run
    resumes (how long or how often; never what is trained or how). tag: the prefix of its part of
    a default run folder's name when it differs from the default (default: none for a choice,
    whose value names itself; the field's name without underscores otherwise). legacy: the value
    a stored config that lacks the field had (it was written before the field existed, or before
    its default changed), so an old run resumes with the maths it started with. duration: a float
    field of seconds whose flag also takes units (parse_duration: 2h20m, 90m, 45s). metavar: the
    value's name in --help (default: the field name's last word, in capitals).
    """
    metadata = dict(help=help, positive=positive, non_negative=non_negative, maximum=maximum,
                    choices=choices, aliases=aliases, resumable=resumable, tag=tag,
                    duration=duration, metavar=metavar)
    if legacy is not _NO_LEGACY:
        metadata["legacy"] = legacy
    return field(default=default, metadata=metadata)


DURATION_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}  # seconds in each
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_DURATION = re.compile("".join(f"(?:({_NUMBER}){unit})?" for unit in DURATION_UNITS))


def parse_duration(text: str) -> float:
    """The seconds in `2h20m`, `90m`, `45s`, `1d12h` (units in that order, each at most once)
    or a plain number of seconds; ValueError for anything else (a sign included)."""
    if re.fullmatch(_NUMBER, text):
        return float(text)
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(amount) * DURATION_UNITS[unit]
               for amount, unit in zip(match.groups(), DURATION_UNITS) if amount)


def format_duration(seconds: float) -> str:
    """Seconds as parse_duration reads them back: 8400 -> `2h20m`, 45 -> `45s`."""
    parts, rest = [], float(seconds)
    for unit, size in DURATION_UNITS.items():
        if size > 1 and rest >= size:
            whole, rest = divmod(rest, size)
            parts.append(f"{whole:.0f}{unit}")
    if rest or not parts:
        parts.append(f"{rest:g}s")
    return "".join(parts)


def flag_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def run_tag(config_field: dataclasses.Field, value: Any) -> str:
    """A setting's part of a default run folder's name: `gamma0.02`, `saturating`, `aug-cutout`."""
    text = f"{value:g}" if isinstance(value, float) else str(value).replace(",", "-")
    prefix = config_field.metadata.get("tag")
    if prefix is None:
        prefix = "" if config_field.metadata.get("choices") else config_field.name.replace("_", "")
    return prefix + text


def field_kind(cls: type, config_field: dataclasses.Field) -> type:
    """The field's value type without None: int, float, str or bool."""
    kind = typing.get_type_hints(cls)[config_field.name]
    options = [k for k in typing.get_args(kind) if k is not type(None)]
    return options[0] if options else kind


def wording(cls: type, config_field: dataclasses.Field) -> str:
    """What the field's values are, in words: 'a positive integer', 'a finite number >= 0'."""
    meta, kind = config_field.metadata, field_kind(cls, config_field)
    if meta.get("duration"):
        return "a positive duration (e.g. 2h20m, 90m, 45s, or seconds)"
    if kind is int:
        return ("a positive integer" if meta.get("positive") else
                "an integer >= 0" if meta.get("non_negative") else "an integer")
    if kind is float:
        return ("a positive finite number" if meta.get("positive") else
                "a finite number >= 0" if meta.get("non_negative") else "a finite number")
    return "true or false" if kind is bool else "text"


def check_value(cls: type, config_field: dataclasses.Field, value: Any) -> Any:
    """The value if it fits the field (type, sign, maximum, choices), else ValueError with the
    reason in words ("must be a positive integer, got -3")."""
    meta, kind = config_field.metadata, field_kind(cls, config_field)
    if value is None:
        if config_field.default is None:
            return value
        raise ValueError(f"must be {wording(cls, config_field)}, got nothing")
    fits = {bool: lambda v: isinstance(v, bool),
            str: lambda v: isinstance(v, str),
            int: lambda v: isinstance(v, int) and not isinstance(v, bool),
            float: lambda v: (isinstance(v, (int, float)) and not isinstance(v, bool)
                              and math.isfinite(v))}[kind]
    if not fits(value):
        raise ValueError(f"must be {wording(cls, config_field)}, got {value!r}")
    if kind is float:
        value = float(value)
    if kind in (int, float):
        if (meta.get("positive") and value <= 0) or (meta.get("non_negative") and value < 0):
            raise ValueError(f"must be {wording(cls, config_field)}, got {value:g}")
        if meta.get("maximum") is not None and value > meta["maximum"]:
            raise ValueError(f"must be at most {meta['maximum']:,}, got {value:,}")
    choices = meta.get("choices")
    if choices and value not in choices:
        raise ValueError(f"must be one of {', '.join(map(str, choices))}, got {value!r}")
    return value
