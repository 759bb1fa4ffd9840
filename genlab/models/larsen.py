"""The networks of Larsen et al. 2015 ("Autoencoding beyond pixels using a learned similarity
metric") for C x 64 x 64 images, as the lab's tables give them, with the paper's BatchNorm and
ReLU after the convolutions, which the lab's tables list only after the FC layers.

Encoder (5x5 convolutions, stride 2, padding 2, each + BatchNorm + ReLU):
    Conv1 C->64  64 x 32 x 32;  Conv2 64->128  128 x 16 x 16;  Conv3 128->256  256 x 8 x 8
    flatten 16384; two heads, each FC 16384->2048 + BatchNorm + ReLU, FC 2048->latent:
    the mean and the posterior's spread. The lab's table names the second Log Var; the VAE/GAN
    reads it as log sigma^2 by default or as log sigma (its `--posterior-head`), the pixel-wise
    VAE baseline as log sigma, as the homework's VAE.
Decoder:
    FC latent->8*8*256 + BatchNorm + ReLU, reshape 256 x 8 x 8;
    Deconv1 256->256, Deconv2 256->128, Deconv3 128->32 (5x5, stride 2, padding 2, output
    padding 1, + BatchNorm + ReLU: 16, 32, 64 px); Deconv4 32->C, 5x5, stride 1, padding 2.
    The last activation is the caller's: Tanh for the GANs' [-1, 1] images; none (logits) for the
    VAE, whose `decode` applies the Sigmoid of its Bernoulli likelihood.
Discriminator (ReLU after each conv, BatchNorm on 2-4 as in the paper):
    Conv1 C->32 5x5 s1 p2  32 x 64 x 64;  Conv2 32->128 s2  128 x 32 x 32;
    Conv3 128->256 s2  256 x 16 x 16;  Conv4 256->256 s2  256 x 8 x 8;
    flatten 16384; FC 1024 + ELU; FC 1 (+ Sigmoid: one probability per image).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from genlab.models.specs import DISCRIMINATOR_HIDDEN, HIDDEN
from genlab.models.specs import LARSEN_SIZE as IMAGE_SIZE
FLAT = 256 * 8 * 8         # 16384: the encoder's and the discriminator's last feature map


def _conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 5, 2, 2), nn.BatchNorm2d(c_out), nn.ReLU())


def _head(latent_dim: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(FLAT, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                         nn.Linear(hidden, latent_dim))


class LarsenEncoder(nn.Module):
    """Images (B, C, 64, 64) -> (B, 2 * latent): the mean, then the spread head's output, which
    the model reads as log-variance or log sigma (see above). `hidden` is the heads'
    FC width (at the lab's 2048 the heads hold 67 M weights, half the VAE/GAN's 132 M)."""

    def __init__(self, latent_dim: int, channels: int, hidden: int = HIDDEN):
        super().__init__()
        self.features = nn.Sequential(OrderedDict([
            ("conv1", _conv_bn_relu(channels, 64)),      # (B, 64, 32, 32)
            ("conv2", _conv_bn_relu(64, 128)),           # (B, 128, 16, 16)
            ("conv3", _conv_bn_relu(128, 256)),          # (B, 256, 8, 8)
            ("flatten", nn.Flatten()),                   # (B, 16384)
        ]))
        self.mean = _head(latent_dim, hidden)
        # Named log_sigma whatever the reading: stored checkpoints' weights carry this name.
        self.log_sigma = _head(latent_dim, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        return torch.cat([self.mean(h), self.log_sigma(h)], dim=1)


def _deconv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 5, 2, 2, output_padding=1),
                         nn.BatchNorm2d(c_out), nn.ReLU())


def larsen_decoder(latent_dim: int, channels: int, last: nn.Module | None = None) -> nn.Sequential:
    """Latents (B, latent) -> images (B, C, 64, 64), through `last` (none: logits)."""
    layers = OrderedDict([
        ("fc", nn.Sequential(nn.Linear(latent_dim, FLAT), nn.BatchNorm1d(FLAT), nn.ReLU())),
        ("unflatten", nn.Unflatten(1, (256, 8, 8))),     # (B, 16384) -> (B, 256, 8, 8)
        ("deconv1", _deconv_bn_relu(256, 256)),          # (B, 256, 16, 16)
        ("deconv2", _deconv_bn_relu(256, 128)),          # (B, 128, 32, 32)
        ("deconv3", _deconv_bn_relu(128, 32)),           # (B, 32, 64, 64)
        ("deconv4", nn.ConvTranspose2d(32, channels, 5, 1, 2)),  # (B, C, 64, 64)
    ])
    if last is not None:
        layers["out"] = last
    return nn.Sequential(layers)


def larsen_discriminator(channels: int, hidden: int = DISCRIMINATOR_HIDDEN) -> nn.Sequential:
    """Images (B, C, 64, 64) -> (B, 1) probabilities; its children name the layers whose
    activations a feature-wise similarity can use (conv1..conv4, fc). The authors' code
    (andersbll/autoencoding_beyond_pixels, recon_depth=9 in celeba_aegan.py) measures the
    similarity on the 4th convolution's output before its BatchNorm: `conv4[0]` here."""
    def conv(c_in: int, c_out: int, stride: int, batchnorm: bool) -> nn.Sequential:
        layers = [nn.Conv2d(c_in, c_out, 5, stride, 2)]
        if batchnorm:
            layers.append(nn.BatchNorm2d(c_out))
        return nn.Sequential(*layers, nn.ReLU())

    return nn.Sequential(OrderedDict([
        ("conv1", conv(channels, 32, 1, batchnorm=False)),  # (B, 32, 64, 64)
        ("conv2", conv(32, 128, 2, batchnorm=True)),        # (B, 128, 32, 32)
        ("conv3", conv(128, 256, 2, batchnorm=True)),       # (B, 256, 16, 16)
        ("conv4", conv(256, 256, 2, batchnorm=True)),       # (B, 256, 8, 8)
        ("flatten", nn.Flatten()),                          # (B, 16384)
        ("fc", nn.Sequential(nn.Linear(FLAT, hidden), nn.ELU())),   # (B, hidden)
        ("logit", nn.Linear(hidden, 1)),                    # (B, 1)
        ("sigmoid", nn.Sigmoid()),
    ]))


def larsen64_arch(latent_dim: int, image_shape: tuple[int, int, int]) -> tuple[nn.Module, nn.Module]:
    """The VAE baseline of the lab's comparison: Larsen's encoder and decoder, pixel-wise loss."""
    channels = image_shape[0]
    return LarsenEncoder(latent_dim, channels), larsen_decoder(latent_dim, channels)
