"""What a model gives the generic trainer: its optimisers, the phases of one training step, and
how to validate, decode and show itself. The trainer never asks which model it is running."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterator

import torch
from torch import nn

from genlab.config import TrainConfig

LossFn = Callable[[torch.Tensor], dict[str, torch.Tensor]]


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """Eval mode and no gradients, then the mode the model had: validation, grids and FID
    never touch the training state (BatchNorm running statistics included), so where they
    happen cannot change a run."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


@contextlib.contextmanager
def frozen_batchnorm_stats(model: nn.Module) -> Iterator[None]:
    """BatchNorm layers still normalise with the batch's statistics (training mode) but leave
    their running statistics alone: a second forward pass over a batch already seen this step
    must not count it twice in the running averages that eval mode uses."""
    layers = [m for m in model.modules()
              if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    for layer in layers:
        layer.track_running_stats = False
    try:
        yield
    finally:
        for layer in layers:
            layer.track_running_stats = True


@dataclass(frozen=True)
class Phase:
    """One part of a training step: compute `loss(batch)`, backpropagate its `minimise` entry
    and step optimiser `optimizer`. Every entry of the returned dict is logged as `train/<key>`.

    Only the parameters of the phase's optimiser get gradients during the phase, so a GAN's
    generator phase never leaves gradients on the discriminator (and costs none).
    """

    name: str
    optimizer: str
    loss: LossFn
    minimise: str = "loss"
    # Optional rule deciding, from the phase's losses (averaged over the processes), whether
    # this step updates the phase's network at all (the VAE/GAN's equilibrium rule). A phase
    # with a rule logs `train/<name>_updated` (1 or 0; its window mean is the updated share).
    update_if: Callable[[dict[str, torch.Tensor]], bool] | None = None


class GenerativeModel(nn.Module):
    """Base class of genlab's models. Subclasses set the class attributes and implement the
    methods below; `__init__(config, image_shape)` builds the networks."""

    name: ClassVar[str]
    config_class: ClassVar[type]
    data_range: ClassVar[tuple[float, float]]      # pixel range the model reads and writes
    train_defaults: ClassVar[dict[str, Any]] = {}  # TrainConfig defaults this model changes

    def __init__(self, config: Any, image_shape: tuple[int, int, int]):
        super().__init__()
        self.config = config
        self.image_shape = tuple(image_shape)
        # The step being trained, which the trainer sets before each step: for losses whose
        # weights follow a schedule (the VAE/GAN's KL warm-up). Not state: a resumed run sets it.
        self.training_step = 0

    # --- training -----------------------------------------------------------------------------
    def optimizers(self, train: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def phases(self) -> list[Phase]:
        raise NotImplementedError

    def validation_losses(self, batch: torch.Tensor,
                          generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        """Batch-mean losses on validation data, logged as `val/<key>`; {} for none."""
        return {}

    @classmethod
    def fill_defaults(cls, config: Any) -> None:
        """Make settings whose default depends on others (None in the dataclass) concrete, so
        the stored config says what was built."""

    @classmethod
    def run_tags(cls, config: Any) -> list[str]:
        """Parts of the default run folder name that tell this model's runs apart."""
        return [f"z{config.latent_dim}"]

    # --- generation ---------------------------------------------------------------------------
    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def sample_latents(self, n: int, generator: torch.Generator | None = None,
                       device: torch.device | str = "cpu") -> torch.Tensor:
        """n draws from the prior, (n, latent_dim)."""
        return torch.randn(n, self.latent_dim, generator=generator, device=device)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (n, latent_dim) -> images (n, C, H, W) in `data_range`."""
        raise NotImplementedError

    def logging_images(self, val_batch: torch.Tensor,
                       fixed_latents: torch.Tensor) -> dict[str, torch.Tensor]:
        """Image grids logged at every saving step as `images/<key>`, in `data_range`."""
        return {"samples": self.decode(fixed_latents)}
