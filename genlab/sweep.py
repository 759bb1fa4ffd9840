"""`genlab sweep`: one `genlab train` run per combination of flag values, and a table of results.

Every run is a separate `genlab train MODEL ... --run-dir OUT/<name>` process, so a sweep is
resumable for free: a finished run resumes instantly (its stored FID is reused) and an interrupted
one continues from its latest checkpoint. Runs go one after another or `parallel` at a time; each
one's output goes to `OUT/<name>.log`. The folder name says the values that vary, e.g.
`latent-dim-10` or `latent-dim-3_learning-rate-0.0001`.
"""

from __future__ import annotations

import concurrent.futures
import copy
import csv
import io
import itertools
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from genlab.checkpoint import list_checkpoints
from genlab.options import flag_name
from genlab.errors import GenlabError
from genlab.metrics.registry import format_value, shown_values
from genlab.metrics.stats import mean_and_std, over_seeds_text
from genlab.run import load_config

RESULTS_MD = "results.md"
RESULTS_CSV = "results.csv"


@dataclass(frozen=True)
class SweepRun:
    name: str
    settings: dict[str, Any]   # field name -> one value
    varied: dict[str, Any]     # the settings that differ between the sweep's runs


def _text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def combinations(settings: dict[str, list[Any]]) -> list[SweepRun]:
    """The cartesian product of the values given; fields given one value are shared."""
    varied_fields = [name for name, values in settings.items() if len(values) > 1]
    for name, values in settings.items():
        if len(set(map(str, values))) != len(values):
            raise GenlabError(f"{flag_name(name)} lists a value twice ({' '.join(map(_text, values))}); "
                              "give each value once")
    runs = []
    for chosen in itertools.product(*settings.values()):
        one = dict(zip(settings, chosen))
        varied = {name: one[name] for name in varied_fields}
        label = "_".join(f"{flag_name(n)[2:]}-{_text(v)}" for n, v in varied.items()) or "run"
        runs.append(SweepRun(label.replace("/", "-"), one, varied))
    return runs


def plan(model: str, settings: dict[str, list[Any]], out: Path) -> list[tuple[SweepRun, Any]]:
    """The sweep's runs, each with the plan `genlab train` makes of its flags (a
    `genlab.run.RunPlan`), checked as each run would check it before training
    (`genlab.run.check_before_training`: its data's files and splits, headers only, what the
    data make of its settings, and its end-of-training scores). Nothing is written, and a bad
    combination stops the sweep before its first run."""
    from genlab.run import check_before_training, plan_run

    planned = []
    for run in combinations(settings):
        run_plan = plan_run(model, run.settings, out / run.name)
        # On a copy: the plan stays as `genlab train` makes it, for the dry run to print.
        check_before_training(copy.deepcopy(run_plan.config), run_plan.given, run_plan.resuming,
                              run_plan.folder, lambda message: None)
        planned.append((run, run_plan))
    return planned


def train_argv(model: str, run: SweepRun, run_dir: Path) -> list[str]:
    argv = [sys.executable, "-m", "genlab", "train", model]
    for name, value in run.settings.items():
        if isinstance(value, bool):
            argv.append(flag_name(name) if value else "--no-" + flag_name(name)[2:])
        else:
            argv += [flag_name(name), _text(value)]
    return argv + ["--run-dir", str(run_dir)]


def run_all(model: str, runs: list[SweepRun], out: Path, parallel: int,
            say: Callable[[str], None]) -> dict[str, int]:
    """Train every run (resuming what exists); the exit code of each, by name."""
    out.mkdir(parents=True, exist_ok=True)

    def train(run: SweepRun) -> int:
        log = out / f"{run.name}.log"
        started = time.monotonic()
        say(f"sweep: {run.name} started (log: {log})")
        with open(log, "a") as handle:
            code = subprocess.run(train_argv(model, run, out / run.name), stdout=handle,
                                  stderr=subprocess.STDOUT).returncode
        minutes = (time.monotonic() - started) / 60
        say(f"sweep: {run.name} {'finished' if code == 0 else f'FAILED (exit {code})'} "
            f"in {minutes:.1f} min")
        return code

    with concurrent.futures.ThreadPoolExecutor(max_workers=parallel) as pool:
        codes = dict(zip((r.name for r in runs), pool.map(train, runs)))
    return codes


def _latest_score(run_dir: Path, train_split: str | None = None) -> dict | None:
    """The newest sample-quality record of the run's latest scored checkpoint; of several
    references (--fid-reference both), the training split's, the homework's protocol."""
    from genlab.metrics.records import read_records
    from genlab.metrics.registry import metrics_of

    records = [record
               for path in (run_dir / "checkpoints").glob("step-*-metrics.jsonl")
               for record in read_records(path.with_name(path.name.replace("-metrics.jsonl", ".pt")))
               if metrics_of(record) and "step" in record]
    # reversed: of equal keys max() keeps the first, which is then the last appended (a later
    # `genlab eval`).
    return max(reversed(records), key=lambda r: (r["step"], r.get("settings", {}).get(
        "reference_split", train_split) == train_split), default=None)


def results(runs: list[SweepRun], out: Path, codes: dict[str, int]) -> list[dict]:
    rows = []
    for run in runs:
        folder = out / run.name
        row: dict[str, Any] = {"run": run.name, **{flag_name(k)[2:]: _text(v)
                                                   for k, v in run.varied.items()}}
        train_split, steps = None, None
        if (folder / "config.json").is_file():
            config = load_config(folder / "config.json")
            row.update(model=config.model, latent_dim=config.model_config.latent_dim,
                       steps=config.train.num_training_steps)
            train_split, steps = config.data.train_split, config.train.num_training_steps
        record = _latest_score(folder, train_split)
        row.update(step="")
        if record:
            values = shown_values(record)
            row.update(step=record["step"], **{k: format_value(k, v) for k, v in values.items()},
                       protocol=record.get("settings", {}).get("protocol", ""), _values=values)
        checkpoints = list_checkpoints(folder)
        reached = checkpoints[-1][0] if checkpoints else 0
        if codes.get(run.name) != 0:
            row["status"] = f"failed ({codes.get(run.name)})"
        elif steps is not None and reached < steps:  # --max-time stopped it: exit 0, not done
            row["status"] = f"stopped at step {reached} of {steps}; run the sweep again to resume"
        else:
            row["status"] = "ok"
        rows.append(row)
    return rows


SEED = "seed"
SUMMARY_CSV = "summary.csv"
PLOT = "results.png"


def summarise(rows: list[dict], runs: list[SweepRun]) -> list[dict]:
    """One row per setting (the runs' varied values but the seed): each score's mean +- std
    (sample std over seeds) and n, the runs that were scored; in the runs' order."""
    metric_keys = [k for k in dict.fromkeys(k for row in rows for k in row.get("_values", {}))]
    groups: dict[tuple, list[dict]] = {}
    for run, row in zip(runs, rows):
        setting = tuple((flag_name(k)[2:], _text(v)) for k, v in run.varied.items() if k != SEED)
        groups.setdefault(setting, []).append(row)
    summary = []
    for setting, members in groups.items():
        out: dict[str, Any] = dict(setting)
        out["seeds"] = " ".join(r.get(SEED, "") for r in members) or "-"
        for key in metric_keys:
            values = [r["_values"][key] for r in members if key in r.get("_values", {})]
            if values:
                out[key] = over_seeds_text(values)
                out[f"_{key}"] = (*mean_and_std(values), len(values))
        summary.append(out)
    return summary


def _markdown(rows: list[dict]) -> list[str]:
    columns = [c for c in dict.fromkeys(k for row in rows for k in row) if not c.startswith("_")]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in rows]


def _csv(rows: list[dict]) -> bytes:
    columns = [c for c in dict.fromkeys(k for row in rows for k in row) if not c.startswith("_")]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


def plot_summary(summary: list[dict], runs: list[SweepRun], out: Path) -> Path | None:
    """The first score against the one swept setting (seeds aside), with the std over seeds as
    error bars; None when the sweep varies no numeric setting, or several."""
    varied = list(dict.fromkeys(k for r in runs for k in r.varied if k != SEED))
    keys = [k[1:] for k in dict.fromkeys(k for row in summary for k in row if k.startswith("_"))]
    if len(varied) != 1 or not keys:
        return None
    name = flag_name(varied[0])[2:]
    points = []
    for row in summary:
        try:
            x = float(row[name])
        except (KeyError, ValueError):
            return None
        if f"_{keys[0]}" in row:
            points.append((x, *row[f"_{keys[0]}"]))
    if not points:
        return None
    from genlab.viz.latent_plots import pyplot, save_figure

    plt = pyplot()
    figure, axis = plt.subplots(figsize=(5, 3.5))
    xs, means, stds, ns = zip(*sorted(points))
    axis.errorbar(xs, means, yerr=[0 if n < 2 else s for s, n in zip(stds, ns)], marker="o",
                  capsize=4)
    if min(xs) > 0 and max(xs) / min(xs) >= 10:
        axis.set_xscale("log")
    axis.set_xlabel(name)
    axis.set_ylabel(f"{keys[0]} (mean +- std over seeds)")
    axis.set_title(f"{keys[0]} by {name} (n = {', '.join(map(str, ns))})")
    save_figure(figure, out / PLOT)
    plt.close(figure)
    return out / PLOT


def write_table(rows: list[dict], out: Path, runs: list[SweepRun]) -> tuple[Path, Path]:
    """results.md (per setting over seeds, then per run), results.csv (per run), summary.csv
    (per setting) and, for a sweep of one numeric setting, results.png."""
    from genlab.fsutil import atomic_write_bytes

    md = []
    summary = summarise(rows, runs)
    if any(k != "seeds" for row in summary for k in row):
        md += ["Each setting over its seeds: mean +- sample std (n scored runs).", ""]
        md += _markdown(summary) + [""]
        atomic_write_bytes(out / SUMMARY_CSV, _csv(summary))
        plot = plot_summary(summary, runs, out)
        if plot is not None:
            md += [f"![{plot.name}]({plot.name})", ""]
    md += ["Each run:", ""] + _markdown(rows)
    atomic_write_bytes(out / RESULTS_MD, ("\n".join(md) + "\n").encode())
    atomic_write_bytes(out / RESULTS_CSV, _csv(rows))
    return out / RESULTS_MD, out / RESULTS_CSV
