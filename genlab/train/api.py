"""Training a run as one call, from Python or from `genlab train`:

    from genlab.console import Console
    from genlab.train.api import train
    outcome = train("vae", {"latent_dim": 10, "dataset": "digits"}, "runs/z10", Console())

Under torchrun every process calls it: the processes are read from the environment, each
trains its shard, only rank 0 writes and talks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genlab import distributed
from genlab.console import Console
from genlab.distributed import Processes
from genlab.options import format_duration
from genlab.run import RunPlan
from genlab.train.trainer import TrainResult


@dataclass
class TrainOutcome:
    folder: Path
    result: TrainResult
    records: list[dict] | None  # the last checkpoint's scores, one per reference split (rank 0)
    already_trained: bool  # the folder was trained to the asked step before this call
    reports: bool          # this process is the one that talks (rank 0 under torchrun)


def train(model_name: str, settings: dict[str, Any], run_dir: str | Path | None,
          console: Console, announce: str | None = None) -> TrainOutcome:
    """Train (or resume) one run to its step count, then score its last checkpoint (the
    metrics of --metrics, unless stored already under the same settings). `settings` are config
    fields by name, as the flags of `genlab train` give them."""
    from genlab.run import plan_run

    processes = distributed.from_environment()
    if not processes.is_main:
        console = Console(quiet=True, stream=console.stream)
    try:
        # Rank 0 holds the folder's lock from before it reads the folder: its one writer (rank 0
        # writes for all processes).
        with plan_run(model_name, settings, run_dir, lock=processes.is_main) as plan:
            return _train_locked(plan, console, announce, processes)
    finally:
        distributed.stop()  # leaves the process group, if this process joined one


def _train_locked(plan: RunPlan, console: Console, announce: str | None,
                  processes: Processes) -> TrainOutcome:
    from genlab.data import load_training_splits
    from genlab.metrics.evaluate import check_ready
    from genlab.run import build_model, finalise, resolve_device, write_config
    from genlab.train.trainer import Trainer

    config, folder, resuming = plan.config, plan.folder, plan.resuming
    device = distributed.start(processes, resolve_device(config.train.device))
    train_set, val_set = load_training_splits(config.data, log=console.say)
    check_ready(config.eval, device)  # no weights: say so now, not after training
    finalise(config, train_set, plan.given, resuming, folder, console.say)
    model = build_model(config)
    if announce:
        console.say(announce)
    trainer = Trainer(config, folder, model, train_set, val_set, device, processes=processes,
                      console=console)
    parent, plan.parent = plan.parent, None  # the trainer's alone from here: it can be a GB
    if trainer.resume(console.warn):
        console.say(f"resuming {folder} from step {trainer.step} ({trainer.last_checkpoint.name})")
    elif parent is not None:
        trainer.branch(*parent)
        console.say(f"branching {folder} from {parent[1]} at step {trainer.step}")
        del parent
    elif val_set is train_set:
        console.say(f"note: validating on the training split ({train_set.split})")
    if processes.is_main:  # once the start is sure: a refused resume or branch writes nothing
        folder.mkdir(parents=True, exist_ok=True)
        write_config(config, folder)
    console.say(f"training {config.model} on {config.data.dataset}/{config.data.train_split} "
                f"({len(train_set)} images from {train_set.source}) on "
                f"{_where(trainer, device, processes)} to step {config.train.num_training_steps}"
                f"{_deadline(config.train.max_time)}")
    result = trainer.fit()
    records = None
    scores = bool(config.eval.fid_samples) and result.checkpoint is not None
    if result.stop is not None and not result.interrupted and not scores:
        result.stop = None  # stopped at the last step, with nothing left to do: it is finished
    # A stop (a signal, --max-time) at the last step leaves the scores to the next run of the
    # command, which scores a trained run's last checkpoint without training.
    if scores and result.stop is None:
        records = final_scores(config, trainer.model, result.step, result.checkpoint, device,
                               processes, console)
    return TrainOutcome(folder, result, records, already_trained=not result.images_per_second,
                        reports=processes.is_main)


def _deadline(max_time: float | None) -> str:
    return "" if max_time is None else f" or for at most {format_duration(max_time)} (--max-time)"


def _where(trainer, device, processes: Processes) -> str:
    if not processes.parallel:
        return str(device)
    batchnorm = ", BatchNorm over the global batch" if trainer.config.train.sync_batchnorm else ""
    return (f"{processes.world_size} processes ({device.type}), global batch "
            f"{trainer.config.train.batch_size} = {processes.world_size} x "
            f"{trainer.local_batch_size}{batchnorm}")


def final_scores(config, model, step: int, checkpoint: Path, device, processes: Processes,
                 console: Console) -> list[dict] | None:
    """The scores of the finished run, one per reference split; only those this checkpoint does
    not have already (same settings) are computed. Every process takes part (rank 0 decides
    which are missing and gets the records)."""
    from genlab.metrics.evaluate import evaluate_run, stored_records

    stored = (stored_records(checkpoint, config, config.eval, seed=0, device=device)
              if processes.is_main else None)
    if processes.parallel:
        [stored] = distributed.broadcast_from_main(stored)
    missing = [split for split, record in stored.items() if record is None]
    if missing:
        new = evaluate_run(config, model, step, checkpoint, config.eval, device, console.say,
                           console.warn, processes=processes, splits=missing)
        if new is None:  # not rank 0
            return None
        stored.update(zip(missing, new))
    return list(stored.values()) if processes.is_main else None
