"""VAE/GAN of Larsen et al. 2015, "Autoencoding beyond pixels using a learned similarity metric".

A VAE whose pixel-wise reconstruction loss is replaced by a feature-wise one, measured in layer l
of a GAN discriminator trained jointly with it (networks: genlab.models.larsen). Algorithm 1 of
the paper, with x~ = Dec(z), z = mu + sigma * eps ~ q(z|x), and x_p = Dec(z_p), z_p ~ N(0, I):

    L_prior = KL(q(z|x) || N(0, I))
    L_llike = ||Dis_l(x) - Dis_l(x~)||^2
    L_GAN   = log D(x) + log(1 - D(x~)) + log(1 - D(x_p))

    encoder       minimises beta * L_prior + L_llike                (no GAN term)
    decoder       minimises gamma * L_llike + generator loss on x~ and on x_p
    discriminator minimises -L_GAN: cross entropy with x as 1 and x~, x_p as 0

How L_prior and L_llike reduce over their elements decides what gamma means (--llike-reduction):
`mean` (the default, public reimplementations' reading: `nn.MSELoss()` over the layer's features, the
KL averaged over the latent dimensions) weighs gamma against the GAN's batch-mean cross
entropies per feature; `sum` is the paper's Gaussian log-likelihood (the lab's N(Dis_l(x) |
Dis_l(x~), I)), 1/2 the sum of squared differences and the KL summed over dimensions. The
decoder's balance is the same under `sum` with gamma = 2 * gamma_mean / features (5 at conv4's
16,384 features: 6.1e-4); the encoder's is not: `mean` weighs its KL features / (2 * latent) =
4 times heavier against L_llike at latent 2048. Every term is a mean over the batch.

One forward pass a step, as Algorithm 1 computes its three gradients: the encoder runs once on
x, the decoder once on [z, z_p] and the discriminator once on [x, x~, x_p] (its BatchNorm
normalising real and generated images alike, as in the authors' code), plus one pass over
[x, x~] up to layer l for the similarity (the authors' code measures it on that batch too);
`--similarity-pass joint` takes Dis_l from the [x, x~, x_p] pass instead (3B images, no second
pass). Then the trainer differentiates each network's own loss with respect to that network's
parameters alone, all at the step's starting parameters, so no loss reaches a network that
Algorithm 1 keeps it from (the GAN term never reaches the encoder; L_llike never trains the
discriminator).
BatchNorm running statistics are counted once a step: the similarity pass runs with the
discriminator's frozen. The decoder decodes [z, z_p] as one batch (see `decode_with_prior`).
"""

from __future__ import annotations

import torch
from torch import nn

from genlab.config import TrainConfig
from genlab.errors import GenlabError
from genlab.losses import (discriminator_fake_loss, discriminator_real_loss, feature_llike,
                           gaussian_kl, generator_loss)
from genlab.models.base import Phase, Step, Update, WithDiscriminator, frozen_batchnorm_stats
from genlab.models.larsen import IMAGE_SIZE, LarsenEncoder, larsen_decoder, larsen_discriminator
from genlab.models.noise import Shard
from genlab.models.posterior import LOG_SIGMA_MAX, gaussian_posterior
from genlab.models.specs import SPECS, VAEGANConfig

__all__ = ["VAEGAN", "VAEGANConfig"]

def rmsprop(params, lr: float) -> torch.optim.RMSprop:
    """RMSprop as Torch7's optim.rmsprop and PyTorch's: decay 0.99, mean square from 0."""
    return torch.optim.RMSprop(params, lr=lr, alpha=0.99)


class VAEGAN(WithDiscriminator):
    """VAE/GAN (Larsen et al. 2015): a VAE that reconstructs in a GAN discriminator's features."""

    spec = SPECS["vaegan"]
    data_range = (-1.0, 1.0)

    def __init__(self, config: VAEGANConfig, image_shape: tuple[int, int, int]):
        super().__init__(config, image_shape)
        c, h, w = image_shape
        if (h, w) != (IMAGE_SIZE, IMAGE_SIZE):
            raise GenlabError(f"the VAE/GAN's networks make 64x64 images, but the data is "
                              f"{h}x{w}; use --image-size 64")
        if config.max_log_sigma > LOG_SIGMA_MAX:
            raise GenlabError(f"--max-log-sigma {config.max_log_sigma:g} is above "
                              f"{LOG_SIGMA_MAX:g}, where the KL term's exp(2 log sigma) nears "
                              f"float32's limit; use at most {LOG_SIGMA_MAX:g}")
        self.encoder = LarsenEncoder(config.latent_dim, c, config.encoder_hidden_dim)
        self.decoder = larsen_decoder(config.latent_dim, c, last=nn.Tanh())
        self.discriminator = larsen_discriminator(c, config.discriminator_hidden_dim)

    # --- the networks -------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, C, 64, 64) in [-1, 1] -> mu, log sigma, each (B, latent)."""
        return gaussian_posterior(self.encoder(x), self.config.max_log_sigma,
                                  self.config.posterior_head)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Dec(z): latents (B, latent) -> images (B, C, 64, 64) in [-1, 1]."""
        return self.decoder(z)

    def decode_with_prior(self, z: torch.Tensor,
                          z_prior: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Dec(z) and Dec(z_p) decoded as one batch, (2B, latent) -> 2 x (B, C, 64, 64).

        Why one batch: the decoder's first BatchNorm (after its FC layer) normalises with the
        batch's statistics in training. Decoding posterior latents alone, it rescales them to
        unit variance whatever their spread (tested), so the encoder could shrink z towards 0 to
        lower the KL term at no cost in training-mode reconstruction, while eval mode, which
        normalises with running statistics, would not undo it. Beside prior draws the
        posterior's spread is measured against N(0, I)'s. The authors' code decodes z alone for
        its reconstruction loss and [z, z_p] as one batch only in its GAN pass with
        `discriminate_ae_recon=True` (model/aegan.py), which their CelebA script sets to False:
        one batch here is genlab's choice, for the reason above."""
        decoded = self.decode(torch.cat([z, z_prior.to(z.dtype)]))
        return decoded[:len(z)], decoded[len(z):]  # (2B, C, H, W) -> 2 x (B, C, H, W)

    def similarity_features(self, x: torch.Tensor) -> torch.Tensor:
        """Dis_l(x): the activations of --feature-layer, (B, ...)."""
        if self.config.feature_layer == "pixel":
            return x
        for name, layer in self.discriminator.named_children():
            if name == self.config.feature_layer:
                return layer[0](x)  # the convolution, before its BatchNorm and ReLU
            x = layer(x)
        raise AssertionError(f"no layer {self.config.feature_layer} in the discriminator")

    def logits_and_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One discriminator pass: the logits of D(x), (B,), and Dis_l(x), (B, ...)."""
        if self.config.feature_layer == "pixel":
            return self.discriminator_logits(x), x
        h, features = x, None
        for name, layer in list(self.discriminator.named_children())[:-1]:  # all but the Sigmoid
            if name == self.config.feature_layer:
                features = layer[0](h)  # the convolution, before its BatchNorm and ReLU
                h = layer[1:](features)
            else:
                h = layer(h)
        return h.flatten(), features  # (B, 1) -> (B,)

    def llike(self, x: torch.Tensor, x_tilde: torch.Tensor) -> torch.Tensor:
        """L_llike, batch mean, in --llike-reduction: x and x~ go through the discriminator as
        one batch (2B)."""
        features = self.similarity_features(torch.cat([x, x_tilde]))
        real, reconstructed = features.chunk(2)  # (2B, ...) -> 2 x (B, ...)
        return self.llike_of_features(real, reconstructed)

    def llike_of_features(self, real: torch.Tensor, reconstructed: torch.Tensor) -> torch.Tensor:
        """L_llike from Dis_l(x) and Dis_l(x~), each (B, ...)."""
        llike = feature_llike(real, reconstructed)  # 1/2 the summed squared error, (B,)
        if self.config.llike_reduction == "mean":
            llike = llike * (2.0 / real[0].numel())  # the mean squared error, as nn.MSELoss
        return llike.mean()

    def prior_term(self, mu: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
        """L_prior, batch mean, in --llike-reduction: the KL in nats, or per latent dimension."""
        kl = gaussian_kl(mu, log_sigma)  # summed over the dimensions, (B,)
        if self.config.llike_reduction == "mean":
            kl = kl / mu.shape[1]
        return kl.mean()

    # --- one step: one forward pass, three updates --------------------------------------------
    def draw_step(self, n: int, shard: Shard, device: torch.device) -> dict[str, torch.Tensor]:
        """The step's eps (of z = mu + sigma * eps) and prior latents z_p."""
        return {"eps": shard.rows(lambda m: torch.randn(m, self.latent_dim, device=device), n),
                "z_prior": shard.rows(lambda m: self.sample_latents(m, device=device), n)}

    def step_losses(self, x: torch.Tensor, step: Step) -> dict[str, torch.Tensor]:
        """Algorithm 1's forward pass: the three networks' losses and what the logs show."""
        mu, log_sigma = self.encode(x)
        z = mu + torch.exp(log_sigma) * step.draws["eps"]  # reparameterisation
        x_tilde, x_prior = self.decode_with_prior(z, step.draws["z_prior"])
        # One pass over [x, x~, x_p]: the GAN terms of the decoder and the discriminator, and
        # the step's count in the discriminator's running statistics.
        if self.config.similarity_pass == "joint":  # Dis_l of x and x~ from this same pass
            logits, features = self.logits_and_features(torch.cat([x, x_tilde, x_prior]))
            real_features, tilde_features, _ = features.chunk(3)  # (3B, ...) -> 3 x (B, ...)
            llike = self.llike_of_features(real_features, tilde_features)
        else:
            logits = self.discriminator_logits(torch.cat([x, x_tilde, x_prior]))
            with frozen_batchnorm_stats(self.discriminator):
                llike = self.llike(x, x_tilde)
        real, tilde, prior = logits.chunk(3)  # (3B,) -> 3 x (B,)
        prior_term = self.prior_term(mu, log_sigma)
        kind = self.config.generator_loss
        gan = generator_loss(tilde, kind).mean() + generator_loss(prior, kind).mean()
        real_cross_entropy = discriminator_real_loss(real).mean()
        fake_cross_entropy = discriminator_fake_loss(torch.cat([tilde, prior])).mean()
        discriminator_loss = (real_cross_entropy + discriminator_fake_loss(tilde).mean()
                              + discriminator_fake_loss(prior).mean())
        weight = self.prior_weight(step.index)
        losses = {
            "encoder_loss": weight * prior_term + llike,
            "decoder_loss": self.config.gamma * llike + gan,
            "discriminator_loss": discriminator_loss,
            "kl": gaussian_kl(mu.detach(), log_sigma.detach()).mean(),  # in nats, for the logs
            "llike": llike, "generator_loss": gan,
            # The discriminator's two cross entropies, which the equilibrium rule reads.
            "real_cross_entropy": real_cross_entropy.detach(),
            "fake_cross_entropy": fake_cross_entropy.detach(),
            "D(x)": torch.sigmoid(real.detach()).mean(),
            "D(x~)": torch.sigmoid(tilde.detach()).mean(),
            "D(x_p)": torch.sigmoid(prior.detach()).mean()}
        if self.config.llike_reduction == "mean":
            losses["prior"] = prior_term  # per dimension; "kl" is its sum
        if self.config.beta_warmup_steps:
            losses["prior_weight"] = torch.tensor(weight, device=x.device)
        return losses

    def prior_weight(self, step: int) -> float:
        """beta, or during --beta-warmup-steps N its linear ramp beta * (step + 1) / N."""
        warmup = self.config.beta_warmup_steps
        if not warmup:
            return self.config.beta
        return self.config.beta * min(1.0, (step + 1) / warmup)

    def optimizers(self, train: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        def make(net: nn.Module, lr: float) -> torch.optim.Optimizer:
            if self.config.optimizer == "adam":
                return torch.optim.Adam(net.parameters(), lr=lr)
            return rmsprop(net.parameters(), lr=lr)

        lr = train.learning_rate
        return {"encoder": make(self.encoder, lr), "decoder": make(self.decoder, lr),
                "discriminator": make(self.discriminator, lr * self.config.discriminator_lr_scale)}

    def equilibrium_updates(self, real_cross_entropy: float,
                            fake_cross_entropy: float) -> tuple[bool, bool]:
        """(update the decoder, update the discriminator) under the authors' equilibrium rule
        (their model/aegan.py, margin 0.35 around 0.68): a discriminator whose cross entropy on
        real or generated images is already low rests, and so does a decoder while either is
        high (the discriminator is losing); if both would rest, both train."""
        low = self.config.equilibrium - self.config.equilibrium_margin
        high = self.config.equilibrium + self.config.equilibrium_margin
        train_discriminator = not (real_cross_entropy < low or fake_cross_entropy < low)
        train_decoder = not (real_cross_entropy > high or fake_cross_entropy > high)
        if not (train_decoder or train_discriminator):
            return True, True
        return train_decoder, train_discriminator

    def _equilibrium(self, losses: dict[str, torch.Tensor]) -> tuple[bool, bool]:
        return self.equilibrium_updates(float(losses["real_cross_entropy"]),
                                        float(losses["fake_cross_entropy"]))

    def phases(self) -> list[Phase]:
        balanced = self.config.equilibrium_margin > 0
        return [Phase("vaegan", self.step_losses, (
            Update("encoder", minimise="encoder_loss"),
            Update("decoder", minimise="decoder_loss",
                   update_if=(lambda losses: self._equilibrium(losses)[0]) if balanced else None),
            Update("discriminator", minimise="discriminator_loss",
                   update_if=(lambda losses: self._equilibrium(losses)[1]) if balanced else None),
        ))]

    # --- validation ----------------------------------------------------------------------------
    def validation_losses(self, batch: torch.Tensor,
                          generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        """L_prior (as KL in nats) and L_llike on held-out images (eval mode), and the
        pixel-wise squared error of the posterior-mean reconstruction, which says how close x~
        is to x in pixels."""
        mu, log_sigma = self.encode(batch)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + torch.exp(log_sigma) * eps
        pixel_error = (self.decode(mu) - batch).square().flatten(1).sum(1).mean()
        return {"kl": gaussian_kl(mu, log_sigma).mean(), "llike": self.llike(batch, self.decode(z)),
                "pixel_squared_error": pixel_error}
