"""The parameter counts and checkpoint sizes docs/models.md quotes, from the models genlab builds.

    python experiments/model_sizes.py

Prints, for the VAE/GAN at the lab's widths (latent 2048, one channel: the count docs/models.md
gives), each network's parameters and the encoder heads' FC share; for `dcgan --arch dcgan64` with
3 channels, G's and D's; and the bytes of the weights, buffers and RMSprop's averages (what a
checkpoint stores, before its small metadata) of the VAE/GAN at latent 8 at the lab's widths and
at width 32, as the tests build it.
"""

import torch

from genlab.config import TrainConfig
from genlab.models import MODELS


def build(name: str, image_shape: tuple[int, int, int], **settings):
    model_class = MODELS[name]
    config = model_class.config_class(**settings)
    model_class.fill_defaults(config)
    return model_class(config, image_shape)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def checkpoint_bytes(model) -> int:
    """Weights, buffers and each optimiser's state after one step (RMSprop: one average per weight)."""
    optimizers = model.optimizers(TrainConfig(learning_rate=3e-4))
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    for optimizer in optimizers.values():
        optimizer.step()
    tensors = list(model.state_dict().values())
    for optimizer in optimizers.values():
        for state in optimizer.state_dict()["state"].values():
            tensors += [v for v in state.values() if torch.is_tensor(v) and v.dim() > 0]
    return sum(t.numel() * t.element_size() for t in tensors)


def main() -> None:
    torch.manual_seed(0)
    vaegan = build("vaegan", (1, 64, 64), latent_dim=2048)
    heads = sum(count(head[0]) for head in (vaegan.encoder.mean, vaegan.encoder.log_sigma))
    print(f"VAE/GAN, latent 2048, 1 channel: encoder {count(vaegan.encoder) / 1e6:.1f}M, decoder "
          f"{count(vaegan.decoder) / 1e6:.1f}M, discriminator {count(vaegan.discriminator) / 1e6:.1f}M "
          f"parameters; the heads' FC 2048 layers {heads / 1e6:.1f}M")
    del vaegan
    dcgan = build("dcgan", (3, 64, 64), arch="dcgan64")
    print(f"dcgan --arch dcgan64, 3 channels: G {count(dcgan.generator):,}, D "
          f"{count(dcgan.discriminator):,} parameters")
    for width in (None, 32):
        widths = {} if width is None else {"encoder_hidden_dim": width, "discriminator_hidden_dim": width}
        model = build("vaegan", (1, 64, 64), latent_dim=8, **widths)
        label = "the lab's widths" if width is None else f"width {width}"
        print(f"VAE/GAN, latent 8, {label}: checkpoint tensors {checkpoint_bytes(model) / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
