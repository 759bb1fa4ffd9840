"""VAE/GAN of Larsen et al. 2015, "Autoencoding beyond pixels using a learned similarity metric".

A VAE whose pixel-wise reconstruction loss is replaced by a feature-wise one, measured in layer l
of a GAN discriminator trained jointly with it (networks: genlab.models.larsen). Algorithm 1 of
the paper, with x~ = Dec(z), z = mu + sigma * eps ~ q(z|x), and x_p = Dec(z_p), z_p ~ N(0, I):

    L_prior = KL(q(z|x) || N(0, I))                         summed over latent dims
    L_llike = 1/2 ||Dis_l(x) - Dis_l(x~)||^2                summed over the features of layer l
    L_GAN   = log D(x) + log(1 - D(x~)) + log(1 - D(x_p))

    encoder       minimises beta * L_prior + L_llike                (no GAN term)
    decoder       minimises gamma * L_llike + generator loss on x~ and on x_p
    discriminator minimises -L_GAN: cross entropy with x as 1 and x~, x_p as 0

Every term is a mean over the batch. The paper computes the three gradients from one forward pass
and updates all networks at once. Here they are three phases of the generic trainer, run in that
order, and the later phases reuse the earlier ones' draws *detached*: the decoder phase decodes the
encoder phase's z (from the encoder before its update) and the discriminator phase judges the
decoder phase's images (from the decoder before its update). So every network's gradient is the
one Algorithm 1 computes, at the parameters the step started with, and no loss reaches a network
that Algorithm 1 keeps it from (the GAN term never reaches the encoder; the reconstruction term
never trains the discriminator).

The discriminator sees [x, x~] as one batch for the similarity and [x, x~, x_p] as one batch for
the GAN terms, as in the authors' code, so BatchNorm normalises real and generated images alike.
Its running statistics are updated once a step, in its own phase; the passes of the other phases
run with them frozen (the same batch must not be counted twice). Likewise the decoder decodes
[z, z_p] as one batch in both phases that decode (see `decode_with_prior` for why), its running
statistics counted in the decoder phase.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from genlab.config import TrainConfig, option
from genlab.errors import GenlabError
from genlab.losses import (GENERATOR_LOSSES, discriminator_fake_loss, discriminator_real_loss,
                           feature_llike, gaussian_kl, generator_loss)
from genlab.models.base import GenerativeModel, Phase, frozen_batchnorm_stats
from genlab.models.larsen import IMAGE_SIZE, LarsenEncoder, larsen_decoder, larsen_discriminator
from genlab.models.noise import per_sample
from genlab.models.vae import LOG_SIGMA_MAX, gaussian_posterior

# Dis_l: a convolution's output before its BatchNorm and ReLU. conv4 is the paper's choice (the
# authors' celeba_aegan.py: recon_depth=9, the 4th convolution of their discriminator). "pixel"
# measures the similarity on the images themselves: a Gaussian VAE plus a GAN (the paper's
# VAE + GAN ablation).
FEATURE_LAYERS = ("conv1", "conv2", "conv3", "conv4", "pixel")
OPTIMIZERS = ("rmsprop", "adam")


@dataclass
class VAEGANConfig:
    latent_dim: int = option(2048, "size of the latent code z", positive=True)
    feature_layer: str = option(
        "conv4", "discriminator layer l whose activations Dis_l(x) define the similarity "
        "(convN: the Nth convolution's output before its BatchNorm, conv4 as in the paper; "
        "pixel: the images themselves, a VAE plus a GAN)", choices=FEATURE_LAYERS)
    beta: float = option(1.0, "weight of the KL prior term in the encoder's loss (beta-VAE)",
                         positive=True)
    beta_warmup_steps: int = option(
        0, "KL warm-up: the prior term's weight rises linearly from 0 to --beta over this many "
        "steps, so the encoder can carry information before the decoder uses it (0: --beta "
        "from the first step)", non_negative=True)
    gamma: float = option(5.0, "weight of the feature-wise reconstruction term against the "
                          "GAN term in the decoder's loss", positive=True)
    generator_loss: str = option(
        "nonsaturating", "the decoder's GAN term on reconstructions and prior samples: "
        "nonsaturating -log D(G) or saturating log(1 - D(G))", choices=GENERATOR_LOSSES)
    optimizer: str = option("rmsprop", "optimiser of all three networks: rmsprop (the paper) "
                            "or adam", choices=OPTIMIZERS)
    equilibrium_margin: float = option(
        0.0, "the authors' equilibrium rule: skip the discriminator's update while its real or "
        "fake cross entropy is below --equilibrium minus this margin, the decoder's while one "
        "is above --equilibrium plus it (0: update both every step)", non_negative=True)
    equilibrium: float = option(
        0.68, "the cross entropy the equilibrium rule keeps the discriminator near (0.68 ~ "
        "-log 0.5)", positive=True)
    max_log_sigma: float = option(
        LOG_SIGMA_MAX, "upper bound on the posterior's log sigma in the forward pass (the "
        "gradient passes through it); 0 keeps q(z|x) no wider than the prior N(0, I), which "
        "stops the few huge latents a BatchNorm'd encoder head gives outlier images in the "
        "first steps")
    discriminator_lr_scale: float = option(
        1.0, "the discriminator's learning rate as a multiple of --learning-rate (below 1: a "
        "slower discriminator, whose features the encoder and decoder can follow)", positive=True)


def rmsprop(params, lr: float) -> torch.optim.RMSprop:
    """RMSprop whose running mean of squared gradients starts at 1, as in Torch7's and TensorFlow
    1's RMSProp of the paper's time, not at 0 as in PyTorch's: from 0 the first step moves every
    weight by lr / sqrt(1 - alpha) = 10 lr in the sign of its gradient, which took the VAE/GAN's
    KL term from 591 to 5e7 within 4 steps on Fashion-MNIST (see README)."""
    optimizer = torch.optim.RMSprop(params, lr=lr)
    for group in optimizer.param_groups:
        for p in group["params"]:
            # The state PyTorch would create on the first step, with square_avg 1 instead of 0.
            optimizer.state[p] = {"step": torch.tensor(0.0), "square_avg": torch.ones_like(p)}
    return optimizer


class VAEGAN(GenerativeModel):
    """VAE/GAN (Larsen et al. 2015): a VAE that reconstructs in a GAN discriminator's features."""

    name = "vaegan"
    config_class = VAEGANConfig
    data_range = (-1.0, 1.0)
    # The lab's settings: lr 3e-4, batch 64, 100 epochs (converted to steps for the data set).
    train_defaults = {"batch_size": 64, "learning_rate": 3e-4, "epochs": 100.0}

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
        self.encoder = LarsenEncoder(config.latent_dim, c)
        self.decoder = larsen_decoder(config.latent_dim, c, last=nn.Tanh())
        self.discriminator = larsen_discriminator(c)
        # What a step's later phases take from its earlier ones (all detached).
        self._step: dict[str, torch.Tensor] = {}
        self._train_discriminator = True  # the equilibrium rule's choice for this step

    @classmethod
    def run_tags(cls, config: VAEGANConfig) -> list[str]:
        default = VAEGANConfig()
        tags = [f"z{config.latent_dim}"]
        if config.feature_layer != default.feature_layer:
            tags.append(f"l{config.feature_layer}")
        if config.beta != default.beta:
            tags.append(f"beta{config.beta:g}")
        if config.beta_warmup_steps:
            tags.append(f"betawarmup{config.beta_warmup_steps}")
        if config.gamma != default.gamma:
            tags.append(f"gamma{config.gamma:g}")
        if config.generator_loss != default.generator_loss:
            tags.append(config.generator_loss)
        if config.optimizer != default.optimizer:
            tags.append(config.optimizer)
        if config.equilibrium_margin:
            tags.append(f"margin{config.equilibrium_margin:g}")
        if config.equilibrium != default.equilibrium:
            tags.append(f"eq{config.equilibrium:g}")
        if config.max_log_sigma != default.max_log_sigma:
            tags.append(f"maxls{config.max_log_sigma:g}")
        if config.discriminator_lr_scale != default.discriminator_lr_scale:
            tags.append(f"dlr{config.discriminator_lr_scale:g}")
        return tags

    # --- the networks -------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, C, 64, 64) in [-1, 1] -> mu, log sigma, each (B, latent)."""
        return gaussian_posterior(self.encoder(x), self.config.max_log_sigma)

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
        posterior's spread is measured against N(0, I)'s. The authors decode [z, z_p] as one
        batch for their GAN terms too."""
        decoded = self.decode(torch.cat([z, z_prior]))
        return decoded[:len(z)], decoded[len(z):]  # (2B, C, H, W) -> 2 x (B, C, H, W)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Dec(mu(x)): the deterministic reconstruction shown in grids."""
        return self.decode(self.encode(x)[0])

    def similarity_features(self, x: torch.Tensor) -> torch.Tensor:
        """Dis_l(x): the activations of --feature-layer, (B, ...)."""
        if self.config.feature_layer == "pixel":
            return x
        for name, layer in self.discriminator.named_children():
            if name == self.config.feature_layer:
                return layer[0](x)  # the convolution, before its BatchNorm and ReLU
            x = layer(x)
        raise AssertionError(f"no layer {self.config.feature_layer} in the discriminator")

    def discriminator_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, 64, 64) -> logit of D(x), (B,)."""
        return self.discriminator[:-1](x).flatten()  # (B, 1) -> (B,)

    def discriminate(self, x: torch.Tensor) -> torch.Tensor:
        """D(x): the probability that each image is real, (B,)."""
        return self.discriminator(x).flatten()

    def llike(self, x: torch.Tensor, x_tilde: torch.Tensor) -> torch.Tensor:
        """L_llike, batch mean: x and x~ go through the discriminator as one batch (2B)."""
        features = self.similarity_features(torch.cat([x, x_tilde]))
        real, reconstructed = features.chunk(2)  # (2B, ...) -> 2 x (B, ...)
        return feature_llike(real, reconstructed).mean()

    # --- the three phases of a step -----------------------------------------------------------
    def encoder_losses(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """beta * L_prior + L_llike, for the encoder. Draws the step's eps and z_p."""
        mu, log_sigma = self.encode(x)
        eps = per_sample(lambda n: torch.randn(n, *mu.shape[1:], device=mu.device,
                                               dtype=mu.dtype), len(mu))
        z = mu + torch.exp(log_sigma) * eps  # reparameterisation: gradients reach mu, sigma
        z_prior = per_sample(lambda n: self.sample_latents(n, device=x.device), len(x)).to(mu.dtype)
        # The decoder phase decodes the same latents with the same weights: its pass counts the
        # batch in the decoder's running statistics, this one must not (nor the discriminator's).
        with frozen_batchnorm_stats(self.decoder), frozen_batchnorm_stats(self.discriminator):
            llike = self.llike(x, self.decode_with_prior(z, z_prior)[0])
        prior = gaussian_kl(mu, log_sigma).mean()
        self._step = {"z": z.detach(), "z_prior": z_prior}
        weight = self.prior_weight()
        losses = {"encoder_loss": weight * prior + llike, "prior": prior, "llike": llike}
        if self.config.beta_warmup_steps:
            losses["prior_weight"] = torch.tensor(weight, device=prior.device)
        return losses

    def prior_weight(self) -> float:
        """beta, or during --beta-warmup-steps N its linear ramp beta * (step + 1) / N."""
        warmup = self.config.beta_warmup_steps
        if not warmup:
            return self.config.beta
        return self.config.beta * min(1.0, (self.training_step + 1) / warmup)

    def decoder_losses(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """gamma * L_llike + the generator loss on x~ and x_p, for the decoder."""
        if "z" not in self._step:
            raise RuntimeError("the VAE/GAN's decoder phase needs its step's encoder phase, "
                               "which runs first")
        z, z_prior = self._step.pop("z"), self._step.pop("z_prior")
        x_tilde, x_prior = self.decode_with_prior(z, z_prior)  # z detached: nothing reaches the encoder
        with frozen_batchnorm_stats(self.discriminator):
            llike = self.llike(x, x_tilde)
            logits = self.discriminator_logits(torch.cat([x, x_tilde, x_prior]))
        real_logits, tilde_logits, prior_logits = logits.chunk(3)  # (3B,) -> 3 x (B,)
        kind = self.config.generator_loss
        gan = generator_loss(tilde_logits, kind).mean() + generator_loss(prior_logits, kind).mean()
        self._step = {"x_tilde": x_tilde.detach(), "x_prior": x_prior.detach()}
        # The discriminator's two cross entropies at the step's starting weights (the same
        # logits its own phase computes next), which the equilibrium rule reads.
        fake_logits = torch.cat([tilde_logits, prior_logits]).detach()
        return {"decoder_loss": self.config.gamma * llike + gan, "generator_loss": gan,
                "real_cross_entropy": discriminator_real_loss(real_logits.detach()).mean(),
                "fake_cross_entropy": discriminator_fake_loss(fake_logits).mean()}

    def discriminator_losses(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """-L_GAN: cross entropy with x as real, x~ and x_p as generated, for the discriminator."""
        if "x_tilde" not in self._step:
            raise RuntimeError("the VAE/GAN's discriminator phase needs its step's decoder "
                               "phase, which runs first")
        x_tilde, x_prior = self._step.pop("x_tilde"), self._step.pop("x_prior")
        logits = self.discriminator_logits(torch.cat([x, x_tilde, x_prior]))
        real, tilde, prior = logits.chunk(3)  # (3B,) -> 3 x (B,)
        loss = (discriminator_real_loss(real).mean() + discriminator_fake_loss(tilde).mean()
                + discriminator_fake_loss(prior).mean())
        return {"discriminator_loss": loss,
                "D(x)": torch.sigmoid(real.detach()).mean(),
                "D(x~)": torch.sigmoid(tilde.detach()).mean(),
                "D(x_p)": torch.sigmoid(prior.detach()).mean()}

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

    def _decoder_update(self, losses: dict[str, torch.Tensor]) -> bool:
        train_decoder, self._train_discriminator = self.equilibrium_updates(
            float(losses["real_cross_entropy"]), float(losses["fake_cross_entropy"]))
        return train_decoder

    def _discriminator_update(self, losses: dict[str, torch.Tensor]) -> bool:
        return self._train_discriminator  # decided with the decoder's, from the same logits

    def phases(self) -> list[Phase]:
        balanced = self.config.equilibrium_margin > 0
        return [Phase("encoder", optimizer="encoder", loss=self.encoder_losses,
                      minimise="encoder_loss"),
                Phase("decoder", optimizer="decoder", loss=self.decoder_losses,
                      minimise="decoder_loss",
                      update_if=self._decoder_update if balanced else None),
                Phase("discriminator", optimizer="discriminator", loss=self.discriminator_losses,
                      minimise="discriminator_loss",
                      update_if=self._discriminator_update if balanced else None)]

    # --- validation and grids -----------------------------------------------------------------
    def validation_losses(self, batch: torch.Tensor,
                          generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        """L_prior and L_llike on held-out images (eval mode), and the pixel-wise squared error
        of the posterior-mean reconstruction, which says how close x~ is to x in pixels."""
        mu, log_sigma = self.encode(batch)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + torch.exp(log_sigma) * eps
        pixel_error = (self.decode(mu) - batch).square().flatten(1).sum(1).mean()
        return {"prior": gaussian_kl(mu, log_sigma).mean(), "llike": self.llike(batch, self.decode(z)),
                "pixel_squared_error": pixel_error}

    def logging_images(self, val_batch, fixed_latents):
        return {"val": val_batch, "reconstructions": self.reconstruct(val_batch),
                "samples": self.decode(fixed_latents)}
