"""`genlab sweep`: one `genlab train` run per combination of flag values, and a table of results.

Every run is a separate `genlab train MODEL ... --run-dir OUT/<name>` process, so a sweep is
resumable for free: a finished run resumes instantly (its stored FID is reused) and an interrupted
one continues from its latest checkpoint. Runs go one after another or `parallel` at a time; each
one's output goes to `OUT/<name>.log`. The folder name says the values that vary, e.g.
`latent-dim-10` or `latent-dim-3_learning-rate-0.0001`.
"""

from __future__ import annotations

import concurrent.futures
import csv
import io
import itertools
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from genlab.config import RunConfig, flag_name
from genlab.errors import GenlabError

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


def _latest_fid(run_dir: Path) -> dict | None:
    """The newest FID record of the run's latest scored checkpoint."""
    from genlab.metrics.evaluate import read_records

    records = [record
               for path in (run_dir / "checkpoints").glob("step-*-metrics.jsonl")
               for record in read_records(path.with_name(path.name.replace("-metrics.jsonl", ".pt")))
               if "fid" in record]
    return max(records, key=lambda r: r["step"]) if records else None


def results(runs: list[SweepRun], out: Path, codes: dict[str, int]) -> list[dict]:
    rows = []
    for run in runs:
        folder = out / run.name
        row: dict[str, Any] = {"run": run.name, **{flag_name(k)[2:]: _text(v)
                                                   for k, v in run.varied.items()}}
        if (folder / "config.json").is_file():
            config = RunConfig.load(folder / "config.json")
            row.update(model=config.model, latent_dim=config.model_config.latent_dim,
                       steps=config.train.num_training_steps)
        record = _latest_fid(folder)
        row.update(step="", fid="", kid="", protocol="")  # the columns, scored or not
        if record:
            row.update(step=record["step"], fid=f"{record['fid']:.2f}", kid=f"{record['kid']:.4f}",
                       protocol=record["settings"]["protocol"])
        row["status"] = "ok" if codes.get(run.name) == 0 else f"failed ({codes.get(run.name)})"
        rows.append(row)
    return rows


def write_table(rows: list[dict], out: Path) -> tuple[Path, Path]:
    from genlab.fsutil import atomic_write_bytes

    columns = list(dict.fromkeys(k for row in rows for k in row))
    md = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    md += ["| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in rows]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(out / RESULTS_MD, ("\n".join(md) + "\n").encode())
    atomic_write_bytes(out / RESULTS_CSV, buffer.getvalue().encode())
    return out / RESULTS_MD, out / RESULTS_CSV
