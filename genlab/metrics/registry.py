"""Metrics by name, as stylegan2-ada's metric_main: each metric's module registers a function from
the real and generated images' Inception features to a dict of named floats. Records, TensorBoard
tags, `genlab eval`'s line, the sweep table and the report loop over what a record holds, so no
caller spells out a metric's name: adding a metric is its own file plus one import line in
genlab/metrics/__init__.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from genlab.errors import GenlabError
from genlab.metrics.stats import FeatureStats

Values = dict[str, float]


@dataclass(frozen=True)
class Metric:
    name: str
    compute: Callable[[FeatureStats, FeatureStats], Values]  # (real, generated) -> named floats
    keys: tuple[str, ...]                                    # the names it may return
    describe: Callable[[Values], str]                        # its values in a few words


METRICS: dict[str, Metric] = {}


def register(name: str, keys: tuple[str, ...], describe: Callable[[Values], str]):
    """Decorator: register `compute(real, generated) -> {key: value}` as metric `name`."""
    def decorate(compute):
        METRICS[name] = Metric(name, compute, keys, describe)
        return compute
    return decorate


ALL = "all"


def parse_metrics(text: str) -> tuple[str, ...]:
    """'fid,kid' -> ('fid', 'kid'), 'all' -> every registered metric; an unknown or repeated
    name is refused."""
    if text.strip() == ALL:
        return tuple(METRICS)
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in METRICS]
    if unknown or not names or len(set(names)) != len(names):
        raise GenlabError(f"--metrics {text} should be {ALL} or list some of "
                          f"{', '.join(METRICS)} once each, comma-separated")
    return names


def compute(names: tuple[str, ...], real: FeatureStats, generated: FeatureStats) -> Values:
    values: Values = {}
    for name in names:
        values.update(METRICS[name].compute(real, generated))
    return values


def metrics_of(record: dict) -> list[str]:
    """The metrics a stored record holds (a record from before the registry: fid and kid)."""
    if "metrics" in record:
        return [n for n in record["metrics"] if n in METRICS]
    return [n for n in ("fid", "kid") if n in record]


def values_of(record: dict) -> Values:
    """A record's named floats, metric by metric."""
    return {key: float(record[key]) for name in metrics_of(record)
            for key in METRICS[name].keys if key in record}


def describe(record: dict) -> str:
    """'FID 23.20  KID 0.0144 +- 0.0007  precision 0.712  recall 0.450'."""
    values = values_of(record)
    return "  ".join(METRICS[name].describe(values) for name in metrics_of(record))
