"""Loss terms, each per image (shape (B,)); models average them over the batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bernoulli_nll(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross entropy summed over each image's pixels, (B, C, H, W) -> (B,).

    Computed from logits (log-sum-exp form), so saturated pixels give finite values and
    gradients where BCE on sigmoid outputs would give log(0).
    """
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return bce.flatten(1).sum(1)


def gaussian_kl(mu: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)) in closed form, summed over latent dimensions, (B, D) -> (B,).

    1/2 * sum_i (mu_i^2 + sigma_i^2 - 2 log sigma_i - 1)
    """
    return 0.5 * (mu.square() + torch.exp(2.0 * log_sigma) - 2.0 * log_sigma - 1.0).sum(1)


def clamp_with_gradient(x: torch.Tensor, max: float) -> torch.Tensor:
    """min(x, max) in the forward pass, identity in the backward pass.

    Keeps exp(2 log sigma) finite for a runaway log sigma while the KL term's gradient still
    pulls it back down (a plain clamp would give it zero gradient and leave it stuck).
    """
    return x + (x.clamp(max=max) - x).detach()
