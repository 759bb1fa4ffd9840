"""The VAE/GAN's training step: three phases that each run their own forward pass (genlab
before one-pass steps) against Algorithm 1's one forward pass (genlab's step now), in one process.

What is compared
----------------
Both sides train the same VAE/GAN (the lab's defaults: latent 2048, conv4, gamma 5, RMSprop,
batch 64, 3 x 64 x 64 images; same seed, same initial weights) on the same batches:

* three-phase -- the step as genlab ran it before: an encoder phase (encode x, decode [z, z_p],
  the similarity pass over [x, x~] up to conv4, backward, step), a decoder phase (decode the
  detached [z, z_p] again, the similarity pass again, the discriminator over [x, x~, x_p],
  backward, step) and a discriminator phase (the discriminator over the detached [x, x~, x_p]
  again, backward, step); each phase lets only its own network take gradients. Per step the
  decoder sees 4B latents and the discriminator 10B images. Written out here from the model's
  own networks and loss terms, so both sides compute the same losses and gradients.
* one-pass -- genlab's real `Trainer.train_step()`: encoder once on x, decoder once on
  [z, z_p], discriminator once on [x, x~, x_p] plus [x, x~] up to conv4 (2B latents, 5B
  images), then each network's own loss backpropagated into it alone; and the same with
  `--similarity-pass joint`, Dis_l taken from the [x, x~, x_p] pass (3B images).

Both sides run fp32 NHWC (channels_last) first; then the one-pass step under bf16 autocast
(`--precision bf16`), the fast path on a CPU with AVX-512 BF16 or a GPU. The sides alternate for
--repeats rounds; the best of each is reported, with FLOPs per image (FlopCounterMode, forward
and backward) and the fraction of the fastest dense kernel measured on the device in that precision
(benchmarks/roofline.py's fraction).

Usage:  .venv/bin/python benchmarks/vaegan_step.py [--batch-size 64] [--steps 3] [--warmup 1]
        [--repeats 2] [--latent-dim 2048] [--device auto]
"""

from __future__ import annotations

import argparse
import tempfile

import torch

from genlab.data.memory import ImageSet
from genlab.losses import discriminator_fake_loss, discriminator_real_loss, generator_loss
from genlab.models.base import frozen_batchnorm_stats
from genlab.models.noise import WHOLE
from genlab.run import build_model, new_config, resolve_device
from genlab.train.trainer import Trainer

from precision_throughput import synthetic_images
from roofline import count_flops, device_name, fraction, measure_peak, print_peak, timed_steps


def make_trainer(batch_size: int, latent_dim: int, precision: str, images: torch.Tensor,
                 device: torch.device, folder: str, similarity: str = "separate") -> Trainer:
    config = new_config("vaegan", {"batch_size": batch_size, "latent_dim": latent_dim,
                                   "precision": precision, "device": str(device),
                                   "similarity_pass": similarity})
    config.image_shape = tuple(images.shape[1:])
    data = ImageSet(images, None, "synthetic", "train", "synthetic")
    return Trainer(config, folder, build_model(config), data, data, device)


def three_phase_step(trainer: Trainer) -> None:
    """One step of the former three-phase VAE/GAN, on the trainer's model and optimisers."""
    model, optimizers = trainer.model, trainer.optimizers
    x = trainer._batch(trainer.batches.next())
    draws = model.draw_step(len(x), WHOLE, trainer.device)
    networks = {"encoder": model.encoder, "decoder": model.decoder,
                "discriminator": model.discriminator}

    def only(name: str) -> None:
        for other, net in networks.items():
            net.requires_grad_(other == name)
        optimizers[name].zero_grad(set_to_none=True)

    # Encoder phase: beta * L_prior + L_llike, the decoder's and discriminator's statistics frozen.
    only("encoder")
    mu, log_sigma = model.encode(x)
    z = mu + torch.exp(log_sigma) * draws["eps"]
    with frozen_batchnorm_stats(model.decoder), frozen_batchnorm_stats(model.discriminator):
        llike = model.llike(x, model.decode_with_prior(z, draws["z_prior"])[0])
    (model.prior_weight(trainer.step) * model.prior_term(mu, log_sigma) + llike).backward()
    optimizers["encoder"].step()
    # Decoder phase: gamma * L_llike + the generator loss, from the same (detached) latents.
    only("decoder")
    x_tilde, x_prior = model.decode_with_prior(z.detach(), draws["z_prior"])
    with frozen_batchnorm_stats(model.discriminator):
        llike = model.llike(x, x_tilde)
        logits = model.discriminator_logits(torch.cat([x, x_tilde, x_prior]))
    _, tilde, prior = logits.chunk(3)
    kind = model.config.generator_loss
    gan = generator_loss(tilde, kind).mean() + generator_loss(prior, kind).mean()
    (model.config.gamma * llike + gan).backward()
    optimizers["decoder"].step()
    # Discriminator phase: -L_GAN on the decoder phase's (detached) images.
    only("discriminator")
    logits = model.discriminator_logits(torch.cat([x, x_tilde.detach(), x_prior.detach()]))
    real, tilde, prior = logits.chunk(3)
    (discriminator_real_loss(real).mean() + discriminator_fake_loss(tilde).mean()
     + discriminator_fake_loss(prior).mean()).backward()
    optimizers["discriminator"].step()
    trainer.step += 1


def one_pass_step(trainer: Trainer) -> None:
    trainer.train_step()


def images_per_second(step, trainer: Trainer, steps: int, warmup: int) -> float:
    trainer.model.train()
    return timed_steps(lambda: step(trainer), steps, warmup, trainer.config.train.batch_size,
                       trainer.device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--latent-dim", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    device = resolve_device(args.device)
    print(f"device: {device_name(device)}, torch {torch.__version__}")
    peak = measure_peak(device)
    print_peak(peak)
    images = synthetic_images(512, (3, 64, 64), device)
    # name: (step, precision, --similarity-pass)
    sides = {"three-phase fp32": (three_phase_step, "fp32", "separate"),
             "one-pass fp32": (one_pass_step, "fp32", "separate"),
             "one-pass fp32, joint Dis_l": (one_pass_step, "fp32", "joint"),
             "one-pass bf16": (one_pass_step, "bf16", "separate"),
             "one-pass bf16, joint Dis_l": (one_pass_step, "bf16", "joint")}
    best = dict.fromkeys(sides, 0.0)
    flops = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, (step, precision, similarity) in sides.items():  # FLOPs a step, per image
            trainer = make_trainer(args.batch_size, args.latent_dim, precision, images, device,
                                   folder, similarity)
            trainer.model.train()
            flops[name] = count_flops(lambda: step(trainer)) / args.batch_size
        for round_ in range(args.repeats):
            for name, (step, precision, similarity) in sides.items():
                torch.manual_seed(0)
                trainer = make_trainer(args.batch_size, args.latent_dim, precision, images,
                                       device, folder, similarity)
                rate = images_per_second(step, trainer, args.steps, args.warmup)
                best[name] = max(best[name], rate)
                print(f"round {round_ + 1}: {name}: {rate:.2f} images/s")
                del trainer
    print(f"\nVAE/GAN step, batch {args.batch_size}, latent {args.latent_dim}, 3x64x64, "
          f"best of {args.repeats} x {args.steps} steps after {args.warmup} warm-up")
    print("| step | GFLOP/image | images/s | GFLOP/s | of peak |")
    print("|---|---|---|---|---|")
    for name, (_, precision, _) in sides.items():
        achieved = best[name] * flops[name] / 1e9
        print(f"| {name} | {flops[name] / 1e9:.2f} | {best[name]:.2f} | {achieved:.0f} | "
              f"{fraction(achieved, peak, precision)} |")
    base = best["three-phase fp32"]
    for name in list(sides)[1:]:
        print(f"ratio {name} / three-phase fp32: {best[name] / base:.2f}x")


if __name__ == "__main__":
    main()
