"""What a model gives the generic trainer: its optimisers, the phases of one training step, and
how to validate, decode and show itself. The trainer never asks which model it is running."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterator

import torch
from torch import nn

from genlab.config import TrainConfig
from genlab.losses import gaussian_kl_per_dimension
from genlab.models.diagnostics import active_dimensions
from genlab.models.noise import Shard
from genlab.models.specs import ModelSpec


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
class Update:
    """One optimiser's share of a phase: backpropagate the phase's loss `minimise` into the
    parameters of `optimizer` alone, then step it."""

    optimizer: str
    minimise: str
    # Optional rule deciding, from the phase's losses (averaged over the processes), whether
    # this step updates the optimiser's network at all (the VAE/GAN's equilibrium rule). An
    # update with a rule logs `train/<optimizer>_updated` (1 or 0; its window mean is the
    # updated share).
    update_if: Callable[[dict[str, torch.Tensor]], bool] | None = None


@dataclass
class Step:
    """What a training step hands each of its phases, as an argument: nothing of a step is kept
    on the model, so a phase's inputs are all in its signature."""

    index: int                       # the step being trained, from 0 (for losses on a schedule)
    shard: Shard                     # this process's rows of the global batch's random draws
    draws: dict[str, torch.Tensor]   # the step's random inputs, drawn once (`draw_step`)
    # What a phase leaves for the later phases of the same step (the DCGAN's G(z), graph and
    # all); empty at the start of every step.
    handoff: dict[str, torch.Tensor] = field(default_factory=dict)


StepLosses = Callable[[torch.Tensor, Step], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class Phase:
    """One forward pass of a training step and the updates computed from it.

    `losses(batch, step)` runs the forward pass and returns named losses, each logged as
    `train/<key>`. Then each update backpropagates its own loss into its own optimiser's
    parameters only (`backward(inputs=...)`), so however the networks are chained in the pass, a
    network gets the gradient of its loss and of no other. Every update's gradient is
    computed before any optimiser steps: all of them at the parameters the phase started with,
    as Algorithm 1 of the VAE/GAN computes its three from one forward pass.

    Only the parameters of the phase's optimisers take part in the pass's graph, so a GAN's
    generator phase computes no gradient for the discriminator's weights.
    """

    name: str
    losses: StepLosses
    updates: tuple[Update, ...]
    # Optimisers whose parameters the pass also records in its graph without updating them,
    # for a later phase that backpropagates through an output handed off to it (the DCGAN's
    # discriminator phase computes G(z) once, for its own loss and the generator phase's).
    keeps: tuple[str, ...] = ()

    @property
    def optimizers(self) -> tuple[str, ...]:
        return tuple(update.optimizer for update in self.updates)


class GenerativeModel(nn.Module):
    """Base class of genlab's models. Subclasses set the class attributes and implement the
    methods below; `__init__(config, image_shape)` builds the networks."""

    spec: ClassVar[ModelSpec]  # the model without its networks (genlab.models.specs)
    data_range: ClassVar[tuple[float, float]]      # pixel range the model reads and writes
    # Read from the spec, under the names the model classes have always had.
    name: ClassVar[str]
    config_class: ClassVar[type]
    train_defaults: ClassVar[dict[str, Any]] = {}  # TrainConfig defaults this model changes

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "spec" in cls.__dict__:
            cls.name, cls.config_class = cls.spec.name, cls.spec.config_class
            cls.train_defaults = cls.spec.train_defaults

    @property
    def bf16_on_cpu(self) -> bool:
        """Whether --precision auto trains this model under bf16 autocast on a CPU that has
        bf16 instructions (ModelSpec.bf16_on_cpu)."""
        return self.spec.bf16_on_cpu(self.config)

    def __init__(self, config: Any, image_shape: tuple[int, int, int]):
        super().__init__()
        self.config = config
        self.image_shape = tuple(image_shape)

    # --- training -----------------------------------------------------------------------------
    def optimizers(self, train: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def phases(self) -> list[Phase]:
        raise NotImplementedError

    def draw_step(self, n: int, shard: Shard, device: torch.device) -> dict[str, torch.Tensor]:
        """The step's random inputs for this process's n images (latents, noise), drawn once
        with `shard.rows` so that N processes use the numbers one process would; {} for none."""
        return {}

    def validation_losses(self, batch: torch.Tensor,
                          generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        """Batch-mean losses on validation data, logged as `val/<key>`; {} for none."""
        return {}

    @classmethod
    def can(cls, capability: str) -> bool:
        """Whether the model has `capability` (an encoder, a discriminator, a prior), as its spec
        declares (genlab.models.specs.CAPABILITIES)."""
        return capability in cls.spec.capabilities

    @classmethod
    def fill_defaults(cls, config: Any) -> None:
        cls.spec.fill_defaults(config)

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

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Dec(mu(x)), for a model with an encoder: the deterministic reconstruction grids show."""
        return self.decode(self.encode(x)[0])

    def logging_images(self, val_batch: torch.Tensor,
                       fixed_latents: torch.Tensor) -> dict[str, torch.Tensor]:
        """Image grids logged at every saving step as `images/<key>`, in `data_range`: held-out
        images and their reconstructions where the model encodes, and fixed-latent samples."""
        if not self.can("encoder"):
            return {"samples": self.decode(fixed_latents)}
        return {"val": val_batch, "reconstructions": self.reconstruct(val_batch),
                "samples": self.decode(fixed_latents)}

    # --- collapse diagnostics (genlab.models.diagnostics), at every validation ---------------
    # What to try when a layer's units all die or the posterior passes nothing.
    collapse_hint: ClassVar[str] = "try another --seed"

    def diagnostic_pass(self, val_batch: torch.Tensor, fixed_latents: torch.Tensor) -> None:
        """One pass through every network, for counting dead ReLU units: the grids' networks,
        and the discriminator's on real images where there is one."""
        self.logging_images(val_batch, fixed_latents)
        if self.can("discriminator"):
            self.discriminate(val_batch)

    def layer_title(self, name: str) -> str:
        """A layer's name for people (the homework's tables say Enc-5 for encoder.enc5)."""
        return name

    def latent_diagnostics(self, val_batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """For a model with an encoder: the posterior's active dimensions (Burda et al.) and its
        KL per dimension on validation images; {} for a GAN."""
        if not self.can("encoder"):
            return {}
        mu, log_sigma = self.encode(val_batch)
        mu, log_sigma = mu.double(), log_sigma.double()
        return {"active_dims": torch.tensor(float(active_dimensions(mu))),
                "kl_per_dimension": gaussian_kl_per_dimension(mu, log_sigma).mean(0)}  # (D,)


class WithDiscriminator(GenerativeModel):
    """A model that can("discriminator"): its `discriminator` is an nn.Sequential whose last
    layer is the Sigmoid. (Only such a model has these methods: tests/test_contract.py.)"""

    def discriminator_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> logit of D(x), (B,): the discriminator short of its Sigmoid."""
        return self.discriminator[:-1](x).flatten()  # (B, 1, 1, 1) or (B, 1) -> (B,)

    def discriminate(self, x: torch.Tensor) -> torch.Tensor:
        """D(x): the probability that each image is real, (B,)."""
        return self.discriminator(x).flatten()
