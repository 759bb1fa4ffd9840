"""The generic training loop: it runs a model's phases, logs, validates and checkpoints.

It knows nothing about which model it trains: a model gives its optimisers, its phases and its
validation losses (genlab.models.base). One step draws one batch and runs every phase on it.
"""

from __future__ import annotations

import contextlib
import io
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from genlab.config import RunConfig
from genlab.console import Console
from genlab.data import Batches, ImageSet, batches
from genlab.data.transforms import to_model_range, to_unit_range
from genlab.errors import GenlabError
from genlab.models.base import GenerativeModel, Phase, Step, Update, evaluating
from genlab.models.diagnostics import ACTIVE_THRESHOLD, count_dead_units
from genlab.models.noise import Shard
from genlab import distributed
from genlab.checkpoint import (checkpoint_path, latest_checkpoint, prune_checkpoints, restore,
                                     save_checkpoint)
from genlab.distributed import SINGLE, Processes
from genlab.train.logging import RunLogger
from genlab.train.progress import Progress
from genlab.grid import save_grid
from genlab.metrics.records import metrics_path
from genlab.hardware import has_bf16

NUM_FIXED_LATENTS = 32   # the sample grid's latents, drawn once per run
NUM_GRID_IMAGES = 32     # validation originals and reconstructions shown per grid
VAL_BATCH_SIZE = 500
DIAGNOSTIC_IMAGES = 500  # the collapse diagnostics' validation images (Burda et al. used 500)
# A posterior with no active dimension means collapse only once the encoder has had time to
# learn: at initialisation PyTorch's default weights give latent means that vary by ~0.003 across
# images (docs/results/vae-mnist.md), so every default run would warn at its first validation.
# In the latent-3 study every run that survived had an active dimension by step 1,000.
POSTERIOR_WARMUP_STEPS = 1000
MAX_SKIPPED_IN_A_ROW = 100  # --nonfinite skip: a run this far gone has diverged; stop it


class NonFiniteLossError(GenlabError):
    """A training loss became NaN or infinite."""


@dataclass
class TrainResult:
    step: int
    checkpoint: Path | None
    interrupted: bool  # stopped before the last step
    images_per_second: float
    # Why training stopped early (STOP_REASONS), also when that came at the last step (the
    # final scores then wait for the next run of the command); None: it ran to its end.
    stop: str | None = None


class _NoLogger:
    """What processes other than rank 0 log: nothing (rank 0 writes the run's files)."""

    def scalars(self, step, values):
        pass

    def images(self, step, images):
        pass

    def histograms(self, step, values):
        pass

    def flush(self):
        pass

    def close(self):
        pass


# What stops a run at a step boundary, in rising precedence (every process of a run stops for the
# highest any of them saw): the --max-time deadline, then Ctrl-C, then a scheduler's SIGTERM.
STOP_REASONS = ("max-time", "SIGINT", "SIGTERM")
clock = time.monotonic  # seconds; what --max-time is measured with (tests replace it)


class StopNow(BaseException):
    """A second SIGINT or SIGTERM while a stop was pending: training ends at once, without a
    checkpoint (the last one stays valid: checkpoints are written to a temporary file and
    renamed). A BaseException, like KeyboardInterrupt, so no `except Exception` swallows it."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


class _StopRequest:
    """Why training stops before its last step. The first SIGINT (Ctrl-C) or SIGTERM (a
    cluster's preemption, or SLURM's `--signal` before the time limit), or the --max-time
    deadline (measured from this process's start of training), asks for a checkpoint and a stop
    at the next step boundary; a second signal raises StopNow at once."""

    def __init__(self, max_time: float | None = None):
        self.reason: str | None = None
        self.deadline = None if max_time is None else clock() + max_time

    @property
    def requested(self) -> bool:
        return self.reason is not None

    def _handler(self, signum, frame):
        if self.reason in ("SIGINT", "SIGTERM"):
            raise StopNow(signum)
        self.reason = signal.Signals(signum).name

    def check_deadline(self) -> None:
        """At a step boundary: past the deadline, ask to stop (a signal's request stands)."""
        if self.reason is None and self.deadline is not None and clock() >= self.deadline:
            self.reason = "max-time"

    def agree(self, processes: Processes, device: torch.device) -> None:
        """The reason every process stops for: the highest any process has (a signal reaches
        each process at its own time, and each reads its own clock)."""
        if not processes.parallel:
            return
        seen = torch.tensor([float(self.reason == r) for r in STOP_REASONS], device=device)
        seen = distributed.mean_over_processes(seen, processes.world_size).tolist()
        self.reason = next((r for r, v in zip(reversed(STOP_REASONS), reversed(seen)) if v > 0),
                           None)

    @contextlib.contextmanager
    def installed(self) -> Iterator["_StopRequest"]:
        if threading.current_thread() is not threading.main_thread():
            yield self  # signals can only be handled in the main thread
            return
        previous = {s: signal.signal(s, self._handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def uses_bf16(precision: str, device: torch.device, bf16_on_cpu: bool = False) -> bool:
    """Whether training runs under bf16 autocast: asked for, or `auto` on a GPU that has bf16,
    or on a CPU with bf16 instructions (AVX-512 BF16, AMX) for a model that is faster there in
    bf16 (`bf16_on_cpu`, ModelSpec.bf16_on_cpu: measured per model; small networks are slower)."""
    if precision == "auto":
        return has_bf16(device) and (device.type == "cuda" or bf16_on_cpu)
    return precision == "bf16"


def rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


class Trainer:
    def __init__(self, config: RunConfig, run_dir: Path, model: GenerativeModel,
                 train_set: ImageSet, val_set: ImageSet, device: torch.device,
                 processes: Processes = SINGLE, console: Console | None = None):
        self.config, self.run_dir, self.device = config, Path(run_dir), device
        self.processes = processes
        cfg = config.train
        if cfg.batch_size % processes.world_size:
            raise GenlabError(f"--batch-size {cfg.batch_size} (the global batch) does not split "
                              f"evenly over {processes.world_size} processes; use a multiple of "
                              f"{processes.world_size}")
        self.local_batch_size = cfg.batch_size // processes.world_size
        if processes.parallel and cfg.sync_batchnorm:
            distributed.synchronise_batchnorm(model, device)
        # channels_last: mkldnn's convolutions run ~1.4x faster on CPU in NHWC (measured on the
        # homework VAE, batch 32); it only changes the layout of 4-d weights, never the maths.
        self.model = model.to(device, memory_format=torch.channels_last)
        if cfg.compile:
            # Each network's forward replaced by its compiled version: parameter names, and so
            # checkpoints, stay those of the eager model. (nn.Module.compile() compiled nothing
            # with torch 2.13 here: dynamo's counters stayed empty.)
            for network in self.model.children():
                network.forward = torch.compile(network.forward)
        self.train_set, self.val_set = train_set.to(device), val_set.to(device)
        # The progress line and warnings; rank 0's only (the others' is quiet).
        self.console = console or Console(quiet=not processes.is_main)
        self.bf16 = uses_bf16(cfg.precision, device, model.bf16_on_cpu)
        if device.type == "cuda":
            # TF32 tensor cores for the fp32 matrix products left outside autocast (and all of
            # them with --precision fp32): 10 mantissa bits, as cuDNN's convolutions use by default.
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.optimizers = self.model.optimizers(cfg)
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])  # saved with the optimiser's state
        # Each optimiser's parameters, listed once (not every step).
        self._optimized = {name: [p for group in optimizer.param_groups for p in group["params"]]
                           for name, optimizer in self.optimizers.items()}
        self.phases = self.model.phases()
        # Shown by the progress bar: the losses the updates minimise.
        self._minimised = {update.minimise for phase in self.phases for update in phase.updates}
        # Worked out once, not every step: with several optimisers, parameters outside a
        # phase's optimisers stay out of its graph (no gradient, and none computed).
        self._phase_trainable = ({phase.name: self._trainable_flags(phase) for phase in self.phases}
                                 if len(self.optimizers) > 1 else {})
        self.shard = Shard(processes.rank, processes.world_size)
        self.batches = self._batch_source()
        # Drawn on the CPU so the grid shows the same latents whatever the device.
        generator = torch.Generator().manual_seed(cfg.seed + 1)
        self.fixed_latents = self.model.sample_latents(NUM_FIXED_LATENTS, generator).to(device)
        self.step = 0
        self.skipped_batches = 0  # --nonfinite skip: batches whose update was dropped
        self._skipped_in_a_row = 0
        self.last_checkpoint: Path | None = None
        self._progress = Progress(0, 1, 1, stream=io.StringIO())  # fit() replaces it
        # The losses of the steps since the last logging step (their means are logged next).
        self._window: list[torch.Tensor] = []
        self._window_names: list[str] = []

    def _batch_source(self) -> Batches:
        cfg = self.config.train
        return batches(self.train_set.images, cfg.batch_size, cfg.seed, self.device,
                       self.config.data.memory_budget)

    # --- state --------------------------------------------------------------------------------
    def _payload(self) -> dict:
        return {
            "model_name": self.config.model,
            "config": self.config.to_json(),
            "model": self.model.state_dict(),
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "rng": rng_state(self.device),
            "data_order": self.batches.state_dict(),
            "fixed_latents": self.fixed_latents.cpu(),
            "skipped_batches": self.skipped_batches,
            # The losses since the last logging step, so a resumed run logs the same means.
            "log_window": (torch.stack(self._window).cpu() if self._window
                           else torch.empty(0)),
            "log_window_names": list(self._window_names),
        }

    def resume(self, warn) -> bool:
        """Load the run's latest valid checkpoint, if any; True when resumed."""
        found = latest_checkpoint(self.run_dir, warn)
        if found is None:
            return False
        payload, path = found
        restore(payload, path, self.config.model, self.model, self.optimizers)
        self._continue_from(payload, f"checkpoint {path} does not fit the data as it loads now",
                            "the data changed since the run started: train on the same data "
                            "or choose another --run-dir")
        self.last_checkpoint = path
        return True

    def branch(self, payload: dict, path: Path) -> None:
        """Start this new run where another run's checkpoint stands (--branch-from): its
        weights, optimiser state, data order, random draws, fixed latents and step, so that a
        branch with no setting changed trains bit for bit as its parent goes on. The optimisers
        keep their state but take this run's hyperparameters (learning rate, betas, ...)."""
        configured = {name: [{k: v for k, v in group.items() if k != "params"}
                             for group in optimizer.param_groups]
                      for name, optimizer in self.optimizers.items()}
        restore(payload, path, self.config.model, self.model, self.optimizers,
                misfit=f"the settings given change the networks of --branch-from {path}",
                advice="a branch keeps its parent's networks: drop the flags that shape them")
        for name, optimizer in self.optimizers.items():
            for group, settings in zip(optimizer.param_groups, configured[name]):
                if set(group) - {"params"} != set(settings):
                    raise GenlabError(f"the settings given change the {name} optimiser of "
                                      f"--branch-from {path}; a branch keeps its parent's "
                                      "optimisers (their state goes on): drop the flag that "
                                      "chooses another")
                group.update(settings)
        self._continue_from(payload, f"--branch-from {path} does not fit the data as it loads "
                            "here", "give the parent's --data (or drop the flag)")
        if self.step >= self.config.train.num_training_steps:
            raise GenlabError(f"--branch-from {path} is at step {self.step}, so a branch to step "
                              f"{self.config.train.num_training_steps} has nothing to train; "
                              "pass a larger --num-training-steps (or --epochs)")

    def _continue_from(self, payload: dict, misfit: str, advice: str) -> None:
        """A checkpoint's place in training, the weights aside: data order, draws, step."""
        try:
            self.batches.load_state_dict(payload["data_order"])
        except (ValueError, KeyError, TypeError) as exc:
            raise GenlabError(f"{misfit} ({exc}); {advice}") from None
        self.fixed_latents = payload["fixed_latents"].to(self.device)
        set_rng_state(payload["rng"], self.device)
        self.step = int(payload["step"])
        self.skipped_batches = int(payload.get("skipped_batches", 0))
        window = payload.get("log_window", torch.empty(0))  # absent before genlab 0.5
        self._window = [row.to(self.device) for row in window]
        self._window_names = list(payload.get("log_window_names", []))

    # --- one step -----------------------------------------------------------------------------
    def _batch(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images gathered from the data set -> the model's float range, NHWC layout."""
        batch = to_model_range(images.to(self.device, non_blocking=True), self.model.data_range)
        return batch.contiguous(memory_format=torch.channels_last)

    def _trainable_flags(self, phase: Phase) -> list[tuple[torch.nn.Parameter, bool]]:
        owned = {id(p) for name in (*phase.optimizers, *phase.keeps) for p in self._optimized[name]}
        return [(p, id(p) in owned) for p in self.model.parameters()]

    def _only_train(self, phase_name: str) -> None:
        for parameter, trainable in self._phase_trainable[phase_name]:
            parameter.requires_grad_(trainable)

    def train_step(self) -> dict[str, torch.Tensor] | None:
        """One batch through every phase; the detached losses of all phases, or None when
        --nonfinite skip dropped the batch (from its first phase with a non-finite loss on)."""
        if self.config.train.lr_half_life or self.config.train.warmup_steps:
            self._schedule_learning_rate()
        images = self.batches.next()  # the global batch; this process trains on its rows
        rank, size = self.processes.rank, self.local_batch_size
        batch = self._batch(images[rank * size:(rank + 1) * size])
        step = self.new_step(size)
        losses: dict[str, torch.Tensor] | None = {}
        for phase in self.phases:
            out = self.run_phase(phase, batch, step)
            if out is None:
                losses = None
                break
            losses.update(out)
        self.step += 1
        self._count_skipped(losses is None)
        return losses

    def new_step(self, n: int) -> Step:
        """What the phases of the step about to run get: its index, this process's shard and
        the step's random draws for this process's n images."""
        return Step(self.step, self.shard, self.model.draw_step(n, self.shard, self.device))

    def _step_or_say_why(self) -> dict[str, torch.Tensor] | None:
        """train_step(), with running out of memory said in one sentence."""
        try:
            return self.train_step()
        except (RuntimeError, MemoryError) as exc:
            text = str(exc)
            if not isinstance(exc, MemoryError) and not any(
                    words in text for words in ("allocate", "out of memory", "Allocator")):
                raise
            raise GenlabError(f"training ran out of memory at step {self.step + 1} with "
                              f"--batch-size {self.config.train.batch_size} on {self.device}; "
                              f"use a smaller --batch-size; {self._kept()}") from None

    def _count_skipped(self, skipped: bool) -> None:
        """--nonfinite skip's bookkeeping; a run whose batches all go bad has diverged: stop it."""
        self._skipped_in_a_row = self._skipped_in_a_row + 1 if skipped else 0
        self.skipped_batches += skipped
        if self._skipped_in_a_row >= MAX_SKIPPED_IN_A_ROW:
            raise NonFiniteLossError(
                f"training stopped at step {self.step}: the last {self._skipped_in_a_row} "
                f"batches all had a non-finite loss or gradient; {self._kept()}; try a lower "
                "--learning-rate")

    def _schedule_learning_rate(self) -> None:
        """lr = initial lr * min(1, (step + 1) / warm-up) * 0.5 ** (step / half life): a function
        of the step alone, so a resumed run continues the schedule exactly. The warm-up tames
        RMSprop's first steps, which are up to 10 lr (its mean square starts far from the
        gradients' scale)."""
        cfg = self.config.train
        factor = 0.5 ** (self.step / cfg.lr_half_life) if cfg.lr_half_life else 1.0
        if cfg.warmup_steps:
            factor *= min(1.0, (self.step + 1) / cfg.warmup_steps)
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * factor

    def run_phase(self, phase: Phase, batch: torch.Tensor,
                  step: Step) -> dict[str, torch.Tensor] | None:
        """One phase on one batch: one forward pass, then each update's backward pass into its
        own optimiser's parameters (gradients averaged over the processes), then the optimiser
        steps; its detached losses, or None when --nonfinite skip dropped the phase's updates."""
        if self._phase_trainable:
            self._only_train(phase.name)
        # bf16 autocast for the forward pass; the losses reduce in fp32 (genlab.losses) and the
        # backward pass follows the forward's dtypes, so no gradient scaling is needed.
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            out = phase.losses(batch, step)
        updates = list(phase.updates)
        if any(update.update_if is not None for update in updates):
            agreed = self._agreed(out)
            chosen = [u for u in updates if u.update_if is None or u.update_if(agreed)]
            flags = {f"{u.optimizer}_updated": torch.tensor(float(u in chosen), device=self.device)
                     for u in updates if u.update_if is not None}
            out, updates = {**out, **flags}, chosen  # a resting network: no backward either
        if not self._backward(out, updates):
            return None
        for update in updates:  # only now: every gradient was taken at the same parameters
            self.optimizers[update.optimizer].step()
        return {name: value.detach() for name, value in out.items()}

    def _backward(self, out: dict[str, torch.Tensor], updates: list[Update]) -> bool:
        """Each update's gradient into its optimiser's parameters alone (averaged over the
        processes); False when --nonfinite skip drops the updates (a non-finite loss or
        gradient)."""
        for i, update in enumerate(updates):
            optimizer, parameters = self.optimizers[update.optimizer], self._optimized[update.optimizer]
            optimizer.zero_grad(set_to_none=True)
            # inputs=: this loss's gradient reaches this optimiser's parameters and no others,
            # whatever else its graph passes through; the graph is kept for the next update.
            out[update.minimise].backward(inputs=parameters, retain_graph=i < len(updates) - 1)
            if self.processes.parallel:
                distributed.average_gradients(parameters, self.processes.world_size)
            if self.config.train.nonfinite == "skip" and not self._finite(out[update.minimise],
                                                                          parameters):
                for dropped in updates:
                    self.optimizers[dropped.optimizer].zero_grad(set_to_none=True)
                return False
        return True

    def _agreed(self, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A phase's detached losses as every process sees them: averaged over the processes,
        so a rule that reads them decides the same everywhere."""
        values = {name: value.detach().float() for name, value in out.items()}
        if not self.processes.parallel:
            return values
        means = distributed.mean_over_processes(torch.stack(list(values.values())),
                                                self.processes.world_size)
        return dict(zip(values, means))

    def _finite(self, loss: torch.Tensor, parameters: list[torch.nn.Parameter]) -> bool:
        """Whether the loss and every (averaged) gradient are finite, on every process (a sync:
        paid only with --nonfinite skip)."""
        grads = [p.grad for p in parameters if p.grad is not None]
        finite = bool(torch.isfinite(loss).all()) and bool(
            torch.isfinite(torch.nn.utils.get_total_norm(grads)).all() if grads else True)
        if self.processes.parallel:
            finite = not distributed.any_process(not finite, self.device)
        return finite

    # --- validation, grids, checkpoints -------------------------------------------------------
    def validate(self) -> dict[str, float]:
        """Validation losses averaged over the whole validation split (fixed noise, so the
        curve moves only when the model does); {} at once for a model that has none (a GAN)."""
        generator = torch.Generator(self.device).manual_seed(self.config.train.seed)
        sums: dict[str, torch.Tensor] = {}
        images = self.val_set.images
        if self.config.train.val_images:
            images = images[:self.config.train.val_images]
        with evaluating(self.model):
            for start in range(0, len(images), VAL_BATCH_SIZE):
                batch = self._batch(images[start:start + VAL_BATCH_SIZE])
                losses = self.model.validation_losses(batch, generator)
                if not losses:
                    return {}
                for name, value in losses.items():
                    sums[name] = sums.get(name, 0.0) + value.double() * len(batch)
        return {f"val/{name}": (total / len(images)).item() for name, total in sums.items()}

    def grids(self) -> dict[str, torch.Tensor]:
        val_batch = self._batch(self.val_set.images[:NUM_GRID_IMAGES])
        with evaluating(self.model):
            images = self.model.logging_images(val_batch, self.fixed_latents)
        return {name: to_unit_range(value, self.model.data_range).cpu()
                for name, value in images.items()}

    def diagnose(self) -> tuple[dict[str, float], dict[str, torch.Tensor], list[str]]:
        """Collapse diagnostics on the first validation images: (scalars, histograms, warnings).
        Each ReLU layer's dead fraction, and for a model with an encoder its active latent
        dimensions and KL per dimension; a warning for an entirely dead layer (a dead ReLU gets
        no gradient, so at any step it stays dead) or, from POSTERIOR_WARMUP_STEPS on, a posterior
        with no active dimension."""
        batch = self._batch(self.val_set.images[:DIAGNOSTIC_IMAGES])
        with evaluating(self.model):
            dead = count_dead_units(
                self.model, lambda: self.model.diagnostic_pass(batch, self.fixed_latents))
            latent = self.model.latent_diagnostics(batch)
        scalars = {f"val/dead_fraction/{name}": d / n for name, (d, n) in dead.items()}
        warnings = [f"{self.model.layer_title(name)}: {d} of {n} ReLU units dead on the "
                    f"validation images; {self.model.collapse_hint}"
                    for name, (d, n) in dead.items() if d == n]
        histograms = {}
        if latent:
            scalars["val/active_dims"] = float(latent["active_dims"])
            kl = latent["kl_per_dimension"]
            scalars.update({"val/kl_per_dim_max": float(kl.max()),
                            "val/kl_per_dim_median": float(kl.median())})
            histograms["val/kl_per_dimension"] = kl
            if latent["active_dims"] == 0 and self.step >= POSTERIOR_WARMUP_STEPS:
                warnings.append(f"the posterior has no active dimension (no latent mean varies "
                                f"by more than {ACTIVE_THRESHOLD} across the validation images): "
                                f"the encoder passes no information; {self.model.collapse_hint}")
        return scalars, histograms, warnings

    def save(self, logger: RunLogger) -> Path:
        if not self.processes.is_main:  # rank 0 writes the checkpoint the others would
            self.last_checkpoint = checkpoint_path(self.run_dir, self.step)
            return self.last_checkpoint
        val, grids = self.validate(), self.grids()
        diagnostics, histograms, warnings = self.diagnose()
        val.update(diagnostics)
        logger.histograms(self.step, histograms)
        for warning in warnings:  # through the progress bar, which a plain print would break
            self._progress.write(f"warning: step {self.step}: {warning}")
        if val:
            logger.scalars(self.step, val)
        logger.images(self.step, grids)
        stem = f"step-{self.step:08d}"
        for name, images in grids.items():
            save_grid(images, self.run_dir / "checkpoints" / f"{stem}-{name}.png")
        # Scores stored for an earlier checkpoint of this step (one lost to damage, trained
        # again) measured other weights.
        metrics_path(checkpoint_path(self.run_dir, self.step)).unlink(missing_ok=True)
        path = save_checkpoint(self.run_dir, self.step, self._payload())
        prune_checkpoints(self.run_dir, self.config.train.keep_checkpoints)
        logger.flush()
        self.last_checkpoint = path
        return path

    # --- the loop -----------------------------------------------------------------------------
    def _check_finite(self) -> torch.Tensor:
        """Stack the window's losses, (steps, losses), and stop on the first non-finite one."""
        values = torch.stack(self._window)
        if self.processes.parallel:  # every process logs and decides on the same means
            values = distributed.mean_over_processes(values, self.processes.world_size)
        values = values.double().cpu()  # one device sync per logging step
        bad = ~torch.isfinite(values)
        if bad.any():
            row, col = (int(i) for i in bad.nonzero()[0])
            step = self.step - len(self._window) + 1 + row
            raise NonFiniteLossError(
                f"training stopped at step {step}: loss train/{self._window_names[col]} is "
                f"{values[row, col].item()}; {self._kept()}; try a lower --learning-rate or "
                "--nonfinite skip")
        return values

    def _log_window(self, logger: RunLogger, step: int | None = None) -> None:
        """Log the means of the window's losses (and the skipped-batch count) at `step` (default:
        this one), then empty it."""
        scalars = {}
        if self._window:
            means = self._check_finite().mean(0)
            names = self._window_names
            scalars = {f"train/{n}": float(v) for n, v in zip(names, means)}
            self._progress.loss({n: float(v) for n, v in zip(names, means)
                                 if n in self._minimised})
        if self.config.train.nonfinite == "skip":
            scalars["train/skipped_batches"] = float(self.skipped_batches)
        logger.scalars(self.step if step is None else step, scalars)
        self._window.clear()

    def _kept(self) -> str:
        return (f"the last good checkpoint {self.last_checkpoint} is kept" if self.last_checkpoint
                else "no checkpoint had been written yet")

    def fit(self) -> TrainResult:
        cfg = self.config.train
        total = cfg.num_training_steps
        if self.step >= total:
            return TrainResult(self.step, self.last_checkpoint, False, 0.0)
        main = self.processes.is_main
        logger = (RunLogger(self.run_dir, start_step=self.step, warn=self.console.warn) if main
                  else _NoLogger())
        self._progress = progress = Progress(self.step, total, cfg.batch_size,
                            stream=io.StringIO() if self.console.quiet else self.console.stream)
        stop = _StopRequest(cfg.max_time)
        self.model.train()
        distributed.barrier()  # every process has read the checkpoint before rank 0 writes one
        try:
            with stop.installed():
                if self.step == 0 and main:
                    # Grids from the first step on, so progress is visible from the start.
                    logger.images(0, self.grids())
                while self.step < total and not stop.requested:
                    losses = self._step_or_say_why()
                    if losses is not None:  # None: a batch --nonfinite skip dropped
                        logged = list(losses)
                        if self._window and logged != self._window_names:
                            # A branch whose flags change the logged losses (for example
                            # --equilibrium-margin): the parent's unlogged steps are logged
                            # under their own names, at the step it stopped.
                            self._log_window(logger, self.step - 1)
                        # The window and its names are kept in checkpoints.
                        self._window_names = logged
                        self._window.append(torch.stack(list(losses.values())))
                    progress.advance()
                    stop.check_deadline()
                    stop.agree(self.processes, self.device)
                    # A stop between logging steps keeps its window in the checkpoint instead:
                    # the resumed run logs the means an uninterrupted one would.
                    if self.step % cfg.logging_steps == 0 or self.step == total:
                        self._log_window(logger)
                    if self.step % cfg.saving_steps == 0 or self.step == total or stop.requested:
                        if self._window:
                            self._check_finite()
                        self.save(logger)
                stop.agree(self.processes, self.device)  # once more: a signal in the last save
                reason = stop.reason  # every process's; a signal after this one is too late
        finally:
            progress.close()
            logger.close()
            self.batches.close()
        return TrainResult(self.step, self.last_checkpoint,
                           reason is not None and self.step < total,
                           progress.images_per_second(), reason)
