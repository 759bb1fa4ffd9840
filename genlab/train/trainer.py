"""The generic training loop: it runs a model's phases, logs, validates and checkpoints.

It knows nothing about which model it trains: a model gives its optimisers, its phases and its
validation losses (genlab.models.base). One step draws one batch and runs every phase on it.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from genlab.config import RunConfig
from genlab.data.memory import ImageSet, IndexedBatches
from genlab.data.stream import ChunkedBatches, HDF5Images, chunk_images
from genlab.data.transforms import to_model_range, to_unit_range
from genlab.errors import GenlabError
from genlab.models.base import GenerativeModel, Phase, evaluating
from genlab.train.checkpoint import latest_checkpoint, prune_checkpoints, save_checkpoint
from genlab.train.logging import RunLogger
from genlab.train.progress import Progress
from genlab.viz.grid import save_grid

NUM_FIXED_LATENTS = 32   # the sample grid's latents, drawn once per run
NUM_GRID_IMAGES = 32     # validation originals and reconstructions shown per grid
VAL_BATCH_SIZE = 500


class NonFiniteLossError(GenlabError):
    """A training loss became NaN or infinite."""


@dataclass
class TrainResult:
    step: int
    checkpoint: Path | None
    interrupted: bool
    images_per_second: float


class _StopRequest:
    """Turns the first Ctrl-C (or SIGTERM) into a request to checkpoint and stop after the
    current step; a second Ctrl-C interrupts at once (the last checkpoint stays intact)."""

    def __init__(self):
        self.requested = False

    def _handler(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

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


def uses_bf16(precision: str, device: torch.device) -> bool:
    """Whether training runs under bf16 autocast: asked for, or `auto` on a GPU that has bf16."""
    if precision == "auto":
        return device.type == "cuda" and torch.cuda.is_bf16_supported()
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
                 progress_stream=None):
        self.config, self.run_dir, self.device = config, Path(run_dir), device
        # channels_last: mkldnn's convolutions run ~1.4x faster on CPU in NHWC (measured on the
        # homework VAE, batch 32); it only changes the layout of 4-d weights, never the maths.
        self.model = model.to(device, memory_format=torch.channels_last)
        self.train_set, self.val_set = train_set.to(device), val_set.to(device)
        self.progress_stream = progress_stream
        cfg = config.train
        self.bf16 = uses_bf16(cfg.precision, device)
        if device.type == "cuda":
            # TF32 tensor cores for the fp32 matrix products left outside autocast (and all of
            # them with --precision fp32): 10 mantissa bits, as cuDNN's convolutions use by default.
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.optimizers = self.model.optimizers(cfg)
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])  # saved with the optimiser's state
        self.phases = self.model.phases()
        self._minimised = {phase.minimise for phase in self.phases}  # shown by the progress bar
        # Worked out once, not every step: with several phases, parameters outside a phase's
        # optimizer get no gradient (and cost none) during that phase.
        self._phase_trainable = ({phase.name: self._trainable_flags(phase) for phase in self.phases}
                                 if len(self.phases) > 1 else {})
        self.batches = self._batch_source()
        # Drawn on the CPU so the grid shows the same latents whatever the device.
        generator = torch.Generator().manual_seed(cfg.seed + 1)
        self.fixed_latents = self.model.sample_latents(NUM_FIXED_LATENTS, generator).to(device)
        self.step = 0
        self.last_checkpoint: Path | None = None

    def _batch_source(self) -> IndexedBatches | ChunkedBatches:
        """In-memory data: batches gathered by index. An HDF5 file over --memory-budget: batches
        from contiguous chunks read ahead in a background thread."""
        cfg, images = self.config.train, self.train_set.images
        if isinstance(images, HDF5Images):
            chunk = chunk_images(images, self.config.data.memory_budget)
            return ChunkedBatches(images, cfg.batch_size, cfg.seed, chunk, self.device)
        return IndexedBatches(images, cfg.batch_size, cfg.seed, self.device)

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
        }

    def resume(self, warn) -> bool:
        """Load the run's latest valid checkpoint, if any; True when resumed."""
        found = latest_checkpoint(self.run_dir, warn)
        if found is None:
            return False
        payload, path = found
        if payload.get("model_name") != self.config.model:
            raise GenlabError(f"checkpoint {path} is of a {payload.get('model_name')} model, not "
                              f"a {self.config.model}; choose another --run-dir")
        self.model.load_state_dict(payload["model"])
        for name, opt in self.optimizers.items():
            opt.load_state_dict(payload["optimizers"][name])
        try:
            self.batches.load_state_dict(payload["data_order"])
        except (ValueError, KeyError) as exc:
            raise GenlabError(f"checkpoint {path} does not fit the data as it loads now ({exc}); "
                              "the data changed since the run started: train on the same data "
                              "or choose another --run-dir") from None
        self.fixed_latents = payload["fixed_latents"].to(self.device)
        set_rng_state(payload["rng"], self.device)
        self.step, self.last_checkpoint = int(payload["step"]), path
        return True

    # --- one step -----------------------------------------------------------------------------
    def _batch(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images gathered from the data set -> the model's float range, NHWC layout."""
        batch = to_model_range(images.to(self.device, non_blocking=True), self.model.data_range)
        return batch.contiguous(memory_format=torch.channels_last)

    def _trainable_flags(self, phase: Phase) -> list[tuple[torch.nn.Parameter, bool]]:
        optimizer = self.optimizers[phase.optimizer]
        owned = {id(p) for group in optimizer.param_groups for p in group["params"]}
        return [(p, id(p) in owned) for p in self.model.parameters()]

    def _only_train(self, phase_name: str) -> None:
        for parameter, trainable in self._phase_trainable[phase_name]:
            parameter.requires_grad_(trainable)

    def train_step(self) -> dict[str, torch.Tensor]:
        """One batch through every phase; returns the detached losses of all phases."""
        if self.config.train.lr_half_life:
            self._decay_learning_rate()
        batch = self._batch(self.batches.next())
        losses: dict[str, torch.Tensor] = {}
        for phase in self.phases:
            losses.update(self.run_phase(phase, batch))
        self.step += 1
        return losses

    def _decay_learning_rate(self) -> None:
        """lr = initial lr * 0.5 ** (step / half life): a function of the step alone, so a resumed
        run continues the schedule exactly."""
        factor = 0.5 ** (self.step / self.config.train.lr_half_life)
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * factor

    def run_phase(self, phase: Phase, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """One phase on one batch: loss, backward, one optimiser step; its detached losses."""
        optimizer = self.optimizers[phase.optimizer]
        if self._phase_trainable:
            self._only_train(phase.name)
        optimizer.zero_grad(set_to_none=True)
        # bf16 autocast for the forward pass; the losses reduce in fp32 (genlab.losses) and the
        # backward pass follows the forward's dtypes, so no gradient scaling is needed.
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            out = phase.loss(batch)
        out[phase.minimise].backward()
        optimizer.step()
        return {name: value.detach() for name, value in out.items()}

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

    def save(self, logger: RunLogger) -> Path:
        val, grids = self.validate(), self.grids()
        if val:
            logger.scalars(self.step, val)
        logger.images(self.step, grids)
        stem = f"step-{self.step:08d}"
        for name, images in grids.items():
            save_grid(images, self.run_dir / "checkpoints" / f"{stem}-{name}.png")
        path = save_checkpoint(self.run_dir, self.step, self._payload())
        prune_checkpoints(self.run_dir, self.config.train.keep_checkpoints)
        logger.flush()
        self.last_checkpoint = path
        return path

    # --- the loop -----------------------------------------------------------------------------
    def _check_finite(self, window: list[torch.Tensor], names: list[str]) -> torch.Tensor:
        """Stack the window's losses, (steps, losses), and stop on the first non-finite one."""
        values = torch.stack(window).double().cpu()  # one device sync per logging step
        bad = ~torch.isfinite(values)
        if bad.any():
            row, col = (int(i) for i in bad.nonzero()[0])
            step = self.step - len(window) + 1 + row
            kept = (f"the last good checkpoint {self.last_checkpoint} is kept"
                    if self.last_checkpoint else "no checkpoint had been written yet")
            raise NonFiniteLossError(
                f"training stopped at step {step}: loss train/{names[col]} is "
                f"{values[row, col].item()}; {kept}; try a lower --learning-rate")
        return values

    def fit(self) -> TrainResult:
        cfg = self.config.train
        total = cfg.num_training_steps
        if self.step >= total:
            return TrainResult(self.step, self.last_checkpoint, False, 0.0)
        logger = RunLogger(self.run_dir, start_step=self.step)
        progress = Progress(self.step, total, cfg.batch_size, stream=self.progress_stream)
        window: list[torch.Tensor] = []
        names: list[str] = []
        stop = _StopRequest()
        self.model.train()
        try:
            with stop.installed():
                if self.step == 0:
                    # Grids from the first step on, so progress is visible from the start.
                    logger.images(0, self.grids())
                while self.step < total and not stop.requested:
                    losses = self.train_step()
                    names = list(losses)
                    window.append(torch.stack(list(losses.values())))
                    progress.advance()
                    last = self.step == total or stop.requested
                    if self.step % cfg.logging_steps == 0 or last:
                        means = self._check_finite(window, names).mean(0)
                        logger.scalars(self.step, {f"train/{n}": float(v)
                                                   for n, v in zip(names, means)})
                        progress.loss({n: float(v) for n, v in zip(names, means)
                                       if n in self._minimised})
                        window.clear()
                    if self.step % cfg.saving_steps == 0 or last:
                        if window:
                            self._check_finite(window, names)
                        self.save(logger)
        finally:
            progress.close()
            logger.close()
            self.batches.close()
        return TrainResult(self.step, self.last_checkpoint, stop.requested and self.step < total,
                           progress.images_per_second())
