"""Loss terms, each per image (shape (B,)); models average them over the batch.

Every term reduces in float32 whatever its inputs' dtype: under bf16 autocast (8 bits of
mantissa) a sum over 16,384 features or 4,096 pixels would lose the small differences that
training follows."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _full(x: torch.Tensor) -> torch.Tensor:
    """x in float32 if it is in a 16-bit float type (autocast's output), else as it is."""
    return x.float() if x.dtype in (torch.bfloat16, torch.float16) else x


def bernoulli_nll(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross entropy summed over each image's pixels, (B, C, H, W) -> (B,).

    Computed from logits (log-sum-exp form), so saturated pixels give finite values and
    gradients where BCE on sigmoid outputs would give log(0).
    """
    bce = F.binary_cross_entropy_with_logits(_full(logits), _full(target), reduction="none")
    return bce.flatten(1).sum(1)


def gaussian_kl_per_dimension(mu: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
    """KL(N(mu_i, sigma_i^2) || N(0, 1)) of each latent dimension in closed form, (B, D):
    1/2 (mu_i^2 + sigma_i^2 - 2 log sigma_i - 1)."""
    mu, log_sigma = _full(mu), _full(log_sigma)
    return 0.5 * (mu.square() + torch.exp(2.0 * log_sigma) - 2.0 * log_sigma - 1.0)


def gaussian_kl(mu: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)), summed over the latent dimensions, (B, D) -> (B,)."""
    return gaussian_kl_per_dimension(mu, log_sigma).sum(1)


def feature_llike(real: torch.Tensor, reconstructed: torch.Tensor) -> torch.Tensor:
    """-log N(Dis_l(x) | Dis_l(x~), I) up to its constant: 1/2 ||Dis_l(x) - Dis_l(x~)||^2, summed
    over each image's features, (B, ...) -> (B,). The VAE/GAN's feature-wise reconstruction loss
    (a Gaussian with identity covariance, as in Larsen et al. 2015, eq. 6)."""
    return 0.5 * (_full(real) - _full(reconstructed)).square().flatten(1).sum(1)


def clamp_with_gradient(x: torch.Tensor, max: float) -> torch.Tensor:
    """min(x, max) in the forward pass, identity in the backward pass.

    Keeps exp(2 log sigma) finite for a runaway log sigma while the KL term's gradient still
    pulls it back down (a plain clamp would give it zero gradient and leave it stuck).
    """
    return x + (x.clamp(max=max) - x).detach()


# --- GAN losses -------------------------------------------------------------------------------
# On the discriminator's logits l, one per image (B,), with D = sigmoid(l): log D = -softplus(-l)
# and log(1 - D) = -softplus(l) hold exactly and stay finite where D rounds to 0 or 1 in float32.

def discriminator_real_loss(real_logits: torch.Tensor) -> torch.Tensor:
    """-log D(x) per image: real images labelled 1."""
    return F.softplus(-_full(real_logits))


def discriminator_fake_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """-log(1 - D(G(z))) per image: generated images labelled 0."""
    return F.softplus(_full(fake_logits))


def generator_loss(fake_logits: torch.Tensor, kind: str) -> torch.Tensor:
    """The generator's loss per image.

    nonsaturating: -log D(G(z)), the log-D trick: its gradient -(1 - D) per unit logit is
        largest when the discriminator rejects the samples, which is early in training.
    saturating: log(1 - D(G(z))), the minimax game's own term: its gradient -D vanishes
        exactly when the discriminator confidently rejects the samples.
    """
    fake_logits = _full(fake_logits)
    if kind == "nonsaturating":
        return F.softplus(-fake_logits)
    if kind == "saturating":
        return -F.softplus(fake_logits)
    raise ValueError(f"unknown generator loss {kind!r}; expected nonsaturating or saturating")
