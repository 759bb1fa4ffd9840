"""Metrics by name, as stylegan2-ada's metric_main: each metric's module registers a function that
returns a dict of named floats. Records, TensorBoard tags, `genlab eval`'s line, the sweep table
and the report loop over what a record holds, so no caller spells out a metric's name: adding a
metric is its own file plus one import line in genlab/metrics/__init__.py.

Two kinds, by what they need (`Metric.needs`):
* "features": a function of the real and generated images' Inception features (FID, KID,
  precision/recall), computed by `genlab eval` and `genlab fid`, chosen with --metrics;
* "generator": one that runs the trained model itself (the latent-path metrics of
  `genlab interpolate --score`); its function is called by that command and returns the record
  it stored. Its records are read, shown and logged like the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from genlab.errors import GenlabError
from genlab.metrics.stats import FeatureStats

Values = dict[str, float]


@dataclass(frozen=True)
class Metric:
    """A metric as it describes itself: what it returns, which of that tables show and in what
    format, and how many images a side it needs."""

    name: str
    # needs "features": (real FeatureStats, generated FeatureStats) -> named floats;
    # needs "generator": (config, model, step, checkpoint, ...) -> the stored record.
    compute: Callable[..., Values]
    keys: tuple[str, ...]                                    # the names it may return
    describe: Callable[[Values], str]                        # its values in a few words
    shown: tuple[str, ...]       # the values tables show, in this order (the rest: records only)
    format: str = ".4g"          # how tables write a shown value
    min_samples: int = 2         # images a side it needs at least
    needs: str = "features"      # "features" or "generator" (see the module's docstring)
    required: tuple[str, ...] = ()  # the values every record of it holds (describe reads them)


METRICS: dict[str, Metric] = {}


NEEDS = ("features", "generator")


def register(name: str, keys: tuple[str, ...], describe: Callable[[Values], str],
             shown: tuple[str, ...] | None = None, min_samples: int = 2, needs: str = "features",
             required: tuple[str, ...] | None = None):
    """Decorator: register `compute` as metric `name` (for needs "features",
    `compute(real, generated) -> {key: value}`); `shown`: the keys tables show (default: all);
    `required`: those every result holds (default: the shown ones)."""
    assert needs in NEEDS, needs
    def decorate(compute):
        METRICS[name] = Metric(name, compute, keys, describe, shown or keys,
                               min_samples=min_samples, needs=needs,
                               required=required if required is not None else shown or keys)
        return compute
    return decorate


ALL = "all"


def feature_metrics() -> tuple[str, ...]:
    """The metrics --metrics chooses from: those computed from Inception features."""
    return tuple(n for n, m in METRICS.items() if m.needs == "features")


def parse_metrics(text: str) -> tuple[str, ...]:
    """'fid,kid' -> ('fid', 'kid'), 'all' -> every registered metric; an unknown or repeated
    name is refused."""
    choices = feature_metrics()
    if text.strip() == ALL:
        return choices
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in choices]
    if unknown or not names or len(set(names)) != len(names):
        raise GenlabError(f"--metrics {text} should be {ALL} or list some of "
                          f"{', '.join(choices)} once each, comma-separated")
    return names


def compute(names: tuple[str, ...], real: FeatureStats, generated: FeatureStats) -> Values:
    values: Values = {}
    for name in names:
        values.update(METRICS[name].compute(real, generated))
    return values


def metrics_of(record: dict, needs: str | None = "features") -> list[str]:
    """The metrics a stored record holds, of the kind `needs` (None: any kind). A sample-quality
    record lists them under "metrics" (one from before the registry: fid and kid); a generator
    metric's record names its metric under "metric"."""
    if "metrics" in record:
        names = [n for n in record["metrics"] if n in METRICS]
    elif record.get("metric") in METRICS:
        names = [record["metric"]]
    else:
        names = [n for n in ("fid", "kid") if n in record]
    return [n for n in names if needs is None or METRICS[n].needs == needs]


def values_of(record: dict) -> Values:
    """A record's named floats, metric by metric."""
    return {key: float(record[key]) for name in metrics_of(record, None)
            for key in METRICS[name].keys if key in record}


def shown_values(record: dict) -> Values:
    """The values of a record that tables show (report, sweep), metric by metric in the
    registry's order."""
    values = values_of(record)
    return {key: values[key] for name in metrics_of(record, None) for key in METRICS[name].shown
            if key in values}


def format_value(key: str, value: float) -> str:
    """A shown value as its metric formats it."""
    metric = next((m for m in METRICS.values() if key in m.keys), None)
    return format(value, metric.format if metric else ".4g")


def needing_more(names: tuple[str, ...], n: int) -> Metric | None:
    """Of the metrics `names`, the one needing the most images a side if `n` is too few for it
    (Metric.min_samples): FID's covariance and KID's unbiased estimate need 2 images a side,
    precision/recall's k-th nearest other image k + 1."""
    short = [METRICS[name] for name in names if n < METRICS[name].min_samples]
    return max(short, key=lambda m: m.min_samples) if short else None


def check_sample_counts(names: tuple[str, ...], a: int, b: int) -> None:
    """Refuse, before any image is read, sets too small for a metric."""
    metric = needing_more(names, min(a, b))
    if metric:
        raise GenlabError(f"{metric.name} needs at least {metric.min_samples} images a side, but "
                          f"A has {a} and B has {b}; add images, or leave {metric.name} out of "
                          "--metrics")


def describe(record: dict) -> str:
    """'FID 23.20  KID 0.0144 +- 0.0007  precision 0.712  recall 0.450'."""
    values = values_of(record)
    return "  ".join(METRICS[name].describe(values) for name in metrics_of(record, None))
