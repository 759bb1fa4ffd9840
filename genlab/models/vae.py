"""The homework's convolutional VAE (and two variants for its architecture question).

Encoder and decoder of `--arch conv` follow the homework's table exactly, for 1 x 32 x 32 inputs:

    Enc-1 Conv 3/1/1 + ReLU   16 x 32 x 32      Dec-1 FC + ReLU            latent
    Enc-2 Conv 3/2/1 + ReLU   32 x 16 x 16      Dec-2 FC                   16 x 8 x 8
    Enc-3 Conv 3/1/1 + ReLU   32 x 16 x 16      Dec-3 ConvT 3/2/1/1 + ReLU 32 x 16 x 16
    Enc-4 Conv 3/2/1 + ReLU   16 x 8 x 8        Dec-4 ConvT 3/1/1/0 + ReLU 32 x 16 x 16
    Enc-5 FC + ReLU           2 x latent        Dec-5 ConvT 3/2/1/1 + ReLU 16 x 32 x 32
    Enc-6 FC                  2 x latent        Dec-6 ConvT 3/1/1/0 + Sigmoid  1 x 32 x 32
                              -> (mu, log sigma)

The decoder's last layer returns logits; the Sigmoid is applied by `decode`, and the loss uses
the logits directly (binary cross entropy from logits stays finite for saturated pixels).
"""

from __future__ import annotations

from collections import OrderedDict
import torch
from torch import nn

from genlab.config import TrainConfig
from genlab.errors import GenlabError
from genlab.losses import bernoulli_nll, gaussian_kl
from genlab.models.base import GenerativeModel, Phase, Step, Update
from genlab.models.larsen import larsen64_arch
from genlab.models.noise import Shard
from genlab.models.posterior import LOG_SIGMA_MAX, POSTERIOR_HEADS, gaussian_posterior
from genlab.models.specs import LARSEN_SIZE, SPECS, VAE_ARCHS, VAEConfig

__all__ = ["VAE", "VAEConfig", "LOG_SIGMA_MAX", "POSTERIOR_HEADS", "gaussian_posterior"]


def conv_arch(latent_dim: int, image_shape: tuple[int, int, int]) -> tuple[nn.Module, nn.Module]:
    """The homework's table (for any C x H x W with H, W divisible by 4)."""
    c, h, w = image_shape
    h4, w4 = h // 4, w // 4
    encoder = nn.Sequential(OrderedDict([
        ("enc1", nn.Sequential(nn.Conv2d(c, 16, 3, 1, 1), nn.ReLU())),    # 16 x H x W
        ("enc2", nn.Sequential(nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU())),   # 32 x H/2 x W/2
        ("enc3", nn.Sequential(nn.Conv2d(32, 32, 3, 1, 1), nn.ReLU())),   # 32 x H/2 x W/2
        ("enc4", nn.Sequential(nn.Conv2d(32, 16, 3, 2, 1), nn.ReLU())),   # 16 x H/4 x W/4
        ("flatten", nn.Flatten()),                                        # (B, 16 * H/4 * W/4)
        ("enc5", nn.Sequential(nn.Linear(16 * h4 * w4, 2 * latent_dim), nn.ReLU())),
        ("enc6", nn.Linear(2 * latent_dim, 2 * latent_dim)),              # (B, 2 * latent)
    ]))
    decoder = nn.Sequential(OrderedDict([
        ("dec1", nn.Sequential(nn.Linear(latent_dim, latent_dim), nn.ReLU())),
        ("dec2", nn.Linear(latent_dim, 16 * h4 * w4)),
        ("unflatten", nn.Unflatten(1, (16, h4, w4))),                     # (B, 16, H/4, W/4)
        ("dec3", nn.Sequential(nn.ConvTranspose2d(16, 32, 3, 2, 1, output_padding=1), nn.ReLU())),
        ("dec4", nn.Sequential(nn.ConvTranspose2d(32, 32, 3, 1, 1), nn.ReLU())),
        ("dec5", nn.Sequential(nn.ConvTranspose2d(32, 16, 3, 2, 1, output_padding=1), nn.ReLU())),
        ("dec6", nn.ConvTranspose2d(16, c, 3, 1, 1)),                     # logits, C x H x W
    ]))
    return encoder, decoder


def conv_shallow_arch(latent_dim: int,
                      image_shape: tuple[int, int, int]) -> tuple[nn.Module, nn.Module]:
    """Two strided convolutions each way and one FC layer: half the depth of the table."""
    c, h, w = image_shape
    h4, w4 = h // 4, w // 4
    encoder = nn.Sequential(OrderedDict([
        ("enc1", nn.Sequential(nn.Conv2d(c, 32, 4, 2, 1), nn.ReLU())),    # 32 x H/2 x W/2
        ("enc2", nn.Sequential(nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU())),   # 64 x H/4 x W/4
        ("flatten", nn.Flatten()),
        ("enc3", nn.Linear(64 * h4 * w4, 2 * latent_dim)),
    ]))
    decoder = nn.Sequential(OrderedDict([
        ("dec1", nn.Sequential(nn.Linear(latent_dim, 64 * h4 * w4), nn.ReLU())),
        ("unflatten", nn.Unflatten(1, (64, h4, w4))),
        ("dec2", nn.Sequential(nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU())),  # 32 x H/2
        ("dec3", nn.ConvTranspose2d(32, c, 4, 2, 1)),                             # logits
    ]))
    return encoder, decoder


def mlp_arch(latent_dim: int, image_shape: tuple[int, int, int]) -> tuple[nn.Module, nn.Module]:
    """Fully connected encoder and decoder (pixels -> 512 -> 256 -> latent and back)."""
    c, h, w = image_shape
    pixels = c * h * w
    encoder = nn.Sequential(OrderedDict([
        ("flatten", nn.Flatten()),
        ("enc1", nn.Sequential(nn.Linear(pixels, 512), nn.ReLU())),
        ("enc2", nn.Sequential(nn.Linear(512, 256), nn.ReLU())),
        ("enc3", nn.Linear(256, 2 * latent_dim)),
    ]))
    decoder = nn.Sequential(OrderedDict([
        ("dec1", nn.Sequential(nn.Linear(latent_dim, 256), nn.ReLU())),
        ("dec2", nn.Sequential(nn.Linear(256, 512), nn.ReLU())),
        ("dec3", nn.Linear(512, pixels)),
        ("unflatten", nn.Unflatten(1, (c, h, w))),                        # logits
    ]))
    return encoder, decoder


ARCHITECTURES = dict(zip(VAE_ARCHS, (conv_arch, conv_shallow_arch, mlp_arch, larsen64_arch)))


def kaiming_init(module: nn.Module) -> None:
    """He et al.'s initialisation for ReLU networks: weights N(0, 2 / fan_in), biases 0. With
    PyTorch's default (uniform, std 1 / sqrt(3 fan_in)) activations shrink layer by layer, and in
    the homework's table Enc-5's pre-activations are then almost their biases: a third of its
    units start dead (docs/results/vae-mnist.md)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class VAE(GenerativeModel):
    """Gaussian encoder q(z|x) = N(mu, sigma^2), prior N(0, I), Bernoulli decoder p(x|z)."""

    spec = SPECS["vae"]
    data_range = (0.0, 1.0)

    def __init__(self, config: VAEConfig, image_shape: tuple[int, int, int]):
        super().__init__(config, image_shape)
        c, h, w = image_shape
        if config.arch == "larsen64" and (h, w) != (LARSEN_SIZE, LARSEN_SIZE):
            raise GenlabError(f"--arch larsen64 needs 64x64 images, got {h}x{w}; use "
                              "--image-size 64")
        if config.arch != "mlp" and h != w and (h % 4 or w % 4):
            # Not square: --image-size (which makes square images) is no remedy.
            raise GenlabError(f"--arch {config.arch} needs sides divisible by 4, but the data's "
                              f"images are {h}x{w}, not square, so --image-size cannot resize "
                              "them; use --arch mlp, or write them square from their folder with `genlab prepare`")
        if config.arch != "mlp" and (h % 4 or w % 4):
            raise GenlabError(f"--arch {config.arch} needs an --image-size divisible by 4, got {h}; "
                              "use a multiple of 4 or --arch mlp")
        self.encoder, self.decoder = ARCHITECTURES[config.arch](config.latent_dim, image_shape)
        if config.init == "kaiming":
            self.apply(kaiming_init)

    collapse_hint = "try another --seed or --init kaiming"

    def layer_title(self, name: str) -> str:
        """encoder.enc5 -> Enc-5, as the homework's table names it (other archs: the path)."""
        part, _, layer = name.partition(".")
        if self.config.arch == "conv" and layer[:3] in ("enc", "dec") and layer[3:].isdigit():
            return f"{layer[:3].title()}-{layer[3:]}"
        return name

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, C, H, W) in [0, 1] -> mu, log sigma, each (B, latent)."""
        return gaussian_posterior(self.encoder(x))

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(z))

    def losses(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Negative ELBO = rec + kl for z = mu + sigma * eps (eps: fresh N(0, I) draws when not
        given), each averaged over the batch (summed over pixels/dims)."""
        mu, log_sigma = self.encode(x)
        if eps is None:
            eps = torch.randn(mu.shape, device=mu.device)
        z = mu + torch.exp(log_sigma) * eps  # reparameterisation: gradients flow to mu, sigma
        rec = bernoulli_nll(self.decode_logits(z), x).mean()
        kl = gaussian_kl(mu, log_sigma).mean()
        return {"loss": rec + kl, "rec": rec, "kl": kl}

    def draw_step(self, n: int, shard: Shard, device: torch.device) -> dict[str, torch.Tensor]:
        return {"eps": shard.rows(lambda m: torch.randn(m, self.latent_dim, device=device), n)}

    def training_losses(self, x: torch.Tensor, step: Step) -> dict[str, torch.Tensor]:
        return self.losses(x, step.draws["eps"])

    def optimizers(self, train: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        return {"vae": torch.optim.Adam(self.parameters(), lr=train.learning_rate)}

    def phases(self) -> list[Phase]:
        return [Phase("vae", self.training_losses, (Update("vae", minimise="loss"),))]

    def validation_losses(self, batch, generator):
        eps = torch.randn(len(batch), self.latent_dim, generator=generator, device=batch.device)
        return self.losses(batch, eps)

