"""The homework's DCGAN for 1 x 32 x 32 images (Radford et al. 2015, sized down for MNIST), and
pytorch/examples' 64x64 networks.

Generator (z of shape latent x 1 x 1, hidden size h = --generator-hidden-dim):

    G-1 ConvT 4/1/0 + BatchNorm + ReLU   4h x 4 x 4
    G-2 ConvT 4/2/1 + BatchNorm + ReLU   2h x 8 x 8
    G-3 ConvT 4/2/1 + BatchNorm + ReLU    h x 16 x 16
    G-4 ConvT 4/2/1 + Tanh                C x 32 x 32

Discriminator (h = --discriminator-hidden-dim), no biases, as the homework provides it:

    D-1 Conv 4/2/1 + LeakyReLU(0.2)               h x 16 x 16
    D-2 Conv 4/2/1 + BatchNorm + LeakyReLU(0.2)  2h x 8 x 8
    D-3 Conv 4/2/1 + BatchNorm + LeakyReLU(0.2)  4h x 4 x 4
    D-4 Conv 4/1/0 + Sigmoid                      1 x 1 x 1: one probability per image

The generator has no biases either (pytorch/examples' DCGAN, which the published homework
reports build on): before a BatchNorm a bias is cancelled by the mean subtraction anyway.

`--arch dcgan64` builds pytorch/examples' dcgan networks the same way, one layer deeper on each
side (h = 64 by default): G 8h x 4 x 4 -> 4h x 8 -> 2h x 16 -> h x 32 -> C x 64 (Tanh), the
DCGAN paper's Figure 1 at half its widths; D, its mirror, h x 32 -> 2h x 16 -> 4h x 8 -> 8h x 4
-> 1 (Sigmoid). It is the GAN baseline of the VAE/GAN comparison.

Losses are computed from the logits before D-4's Sigmoid (see genlab.losses); the Sigmoid stays
in the network, so `discriminate` returns the probabilities the table describes.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from genlab.config import TrainConfig
from genlab.errors import GenlabError
from genlab.losses import discriminator_fake_loss, discriminator_real_loss, generator_loss
from genlab.models.augment import diff_augment
from genlab.models.base import Phase, Step, Update, WithDiscriminator
from genlab.models.noise import Shard
from genlab.models.specs import DCGAN_ARCHS as ARCHS
from genlab.models.specs import DEFAULT_HIDDEN, SPECS, DCGANConfig

__all__ = ["DCGAN", "DCGANConfig", "ARCHS", "DEFAULT_HIDDEN"]

# The DCGAN paper's Adam momentum: beta1 = 0.9 made its training oscillate and unstable.
ADAM_BETAS = (0.5, 0.999)


# Channel multipliers of the hidden layers, by image size: the homework's 32x32 table and
# pytorch/examples' dcgan 64x64 networks (ngf = ndf = 64).
MULTIPLIERS = {32: (4, 2, 1), 64: (8, 4, 2, 1)}


def generator_net(latent_dim: int, hidden: int, channels: int, size: int = 32) -> nn.Sequential:
    def up(c_in: int, c_out: int, stride: int, padding: int) -> nn.Sequential:
        return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, stride, padding, bias=False),
                             nn.BatchNorm2d(c_out), nn.ReLU())

    widths = [m * hidden for m in MULTIPLIERS[size]]
    layers = OrderedDict(g1=up(latent_dim, widths[0], 1, 0))      # (B, w0, 4, 4)
    for i, (c_in, c_out) in enumerate(zip(widths, widths[1:]), start=2):
        layers[f"g{i}"] = up(c_in, c_out, 2, 1)                   # doubles the side
    layers[f"g{len(widths) + 1}"] = nn.Sequential(                 # (B, C, size, size)
        nn.ConvTranspose2d(hidden, channels, 4, 2, 1, bias=False), nn.Tanh())
    return nn.Sequential(layers)


def discriminator_net(hidden: int, channels: int, size: int = 32) -> nn.Sequential:
    def down(c_in: int, c_out: int, batchnorm: bool) -> nn.Sequential:
        layers = [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False)]
        if batchnorm:
            layers.append(nn.BatchNorm2d(c_out))
        return nn.Sequential(*layers, nn.LeakyReLU(0.2))

    widths = [m * hidden for m in reversed(MULTIPLIERS[size])]    # h, 2h, ... up to 4h or 8h
    layers = OrderedDict(d1=down(channels, widths[0], batchnorm=False))  # (B, h, size/2, size/2)
    for i, (c_in, c_out) in enumerate(zip(widths, widths[1:]), start=2):
        layers[f"d{i}"] = down(c_in, c_out, batchnorm=True)         # halves the side
    layers[f"d{len(widths) + 1}"] = nn.Conv2d(widths[-1], 1, 4, 1, 0, bias=False)  # (B,1,1,1)
    layers["sigmoid"] = nn.Sigmoid()
    return nn.Sequential(layers)


def dcgan_init(module: nn.Module) -> None:
    """The DCGAN paper's initialisation: conv weights N(0, 0.02), BatchNorm scale N(1, 0.02)
    and shift 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class DCGAN(WithDiscriminator):
    """Deep convolutional GAN: generator G(z), discriminator D(x), trained in alternating phases."""

    spec = SPECS["dcgan"]
    data_range = (-1.0, 1.0)

    def __init__(self, config: DCGANConfig, image_shape: tuple[int, int, int]):
        super().__init__(config, image_shape)
        c, h, w = image_shape
        size = ARCHS[config.arch]
        if (h, w) != (size, size):
            which = "the homework's DCGAN" if config.arch == "homework" else f"--arch {config.arch}"
            raise GenlabError(f"{which} makes {size}x{size} images, but the data is {h}x{w}; "
                              f"use --image-size {size}")
        self.fill_defaults(config)
        self.generator = generator_net(config.latent_dim, config.generator_hidden_dim, c, size)
        self.discriminator = discriminator_net(config.discriminator_hidden_dim, c, size)
        self.apply(dcgan_init)

    # --- the networks -------------------------------------------------------------------------
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """G(z): latents (B, latent) -> images (B, C, size, size) in [-1, 1]."""
        return self.generator(z[:, :, None, None])  # (B, latent) -> (B, latent, 1, 1)

    def _training_logits(self, x: torch.Tensor, shard: Shard) -> torch.Tensor:
        """D's logits in a training phase: on DiffAugment-ed images when a policy is set."""
        return self.discriminator_logits(diff_augment(x, self.config.diff_augment, shard))

    # --- the two phases of a step -------------------------------------------------------------
    def draw_step(self, n: int, shard: Shard, device: torch.device) -> dict[str, torch.Tensor]:
        return {"z": shard.rows(lambda m: self.sample_latents(m, device=device), n)}

    def discriminator_losses(self, x: torch.Tensor, step: Step) -> dict[str, torch.Tensor]:
        """-log D(x) - log(1 - D(G(z))), batch means. Real and generated images go through D as
        two batches (each normalised by its own BatchNorm statistics), as in the homework.

        G(z) is computed once a step, here, with its graph (the phase keeps the generator's
        parameters in it), and handed to the generator phase; D judges it detached, so this
        phase's loss cannot reach the generator."""
        fake = self.decode(step.draws["z"])
        step.handoff["fake"] = fake
        real_logits = self._training_logits(x, step.shard)
        fake_logits = self._training_logits(fake.detach(), step.shard)
        loss = (discriminator_real_loss(real_logits).mean()
                + discriminator_fake_loss(fake_logits).mean())
        return {"discriminator_loss": loss,
                "D(x)": torch.sigmoid(real_logits.detach()).mean(),
                "D(G(z1))": torch.sigmoid(fake_logits.detach()).mean()}

    def generator_losses(self, x: torch.Tensor, step: Step) -> dict[str, torch.Tensor]:
        """The generator's loss on the discriminator phase's G(z), judged by the discriminator
        just updated: D(G(z2)) is the same images' score after that step."""
        fake = step.handoff.pop("fake", None)
        if fake is None:
            raise RuntimeError("the DCGAN's generator phase needs the G(z) of its step's "
                               "discriminator phase, which runs first")
        fake_logits = self._training_logits(fake, step.shard)
        loss = generator_loss(fake_logits, self.config.generator_loss).mean()
        return {"generator_loss": loss, "D(G(z2))": torch.sigmoid(fake_logits.detach()).mean()}

    def optimizers(self, train: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        return {
            "discriminator": torch.optim.Adam(self.discriminator.parameters(),
                                              lr=train.learning_rate, betas=ADAM_BETAS),
            "generator": torch.optim.Adam(self.generator.parameters(), lr=train.learning_rate,
                                          betas=ADAM_BETAS),
        }

    def phases(self) -> list[Phase]:
        return [Phase("discriminator", self.discriminator_losses,
                      (Update("discriminator", minimise="discriminator_loss"),),
                      keeps=("generator",)),
                Phase("generator", self.generator_losses,
                      (Update("generator", minimise="generator_loss"),))]
