"""The Gaussian posterior q(z|x) = N(mu, sigma^2) that both VAEs' encoders output."""

from __future__ import annotations

import torch

from genlab.losses import clamp_with_gradient
from genlab.models.specs import LOG_SIGMA_MAX, POSTERIOR_HEADS

__all__ = ["LOG_SIGMA_MAX", "POSTERIOR_HEADS", "gaussian_posterior"]


def gaussian_posterior(encoded: torch.Tensor, log_sigma_max: float = LOG_SIGMA_MAX,
                       head: str = "log-sigma") -> tuple[torch.Tensor, torch.Tensor]:
    """An encoder's output (B, 2 * latent) -> mu, log sigma, each (B, latent); log sigma clamped
    to log_sigma_max in the forward pass only (see LOG_SIGMA_MAX). `head` (POSTERIOR_HEADS):
    whether the second half is log sigma or log sigma^2."""
    mu, second = encoded.chunk(2, dim=1)
    log_sigma = 0.5 * second if head == "log-var" else second
    return mu, clamp_with_gradient(log_sigma, log_sigma_max)
