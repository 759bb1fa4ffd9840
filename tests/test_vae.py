"""The homework's VAE: the table's shapes, the loss formulas, numerical stability, variants."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from genlab.config import TrainConfig
from genlab.losses import bernoulli_nll, gaussian_kl
from genlab.models import MODELS
from genlab.models.vae import VAE, VAEConfig

# (layer, output shape without the batch) straight from the homework's table, latent 64.
TABLE = [
    ("encoder.enc1", (16, 32, 32)), ("encoder.enc2", (32, 16, 16)),
    ("encoder.enc3", (32, 16, 16)), ("encoder.enc4", (16, 8, 8)),
    ("encoder.enc5", (128,)), ("encoder.enc6", (128,)),
    ("decoder.dec1", (64,)), ("decoder.dec2", (1024,)),
    ("decoder.dec3", (32, 16, 16)), ("decoder.dec4", (32, 16, 16)),
    ("decoder.dec5", (16, 32, 32)), ("decoder.dec6", (1, 32, 32)),
]


def test_conv_vae_layers_match_the_homework_table():
    model = VAE(VAEConfig(arch="conv", latent_dim=64), (1, 32, 32))
    modules = dict(model.named_modules())
    shapes = {}
    for name, _ in TABLE:
        modules[name].register_forward_hook(
            lambda m, i, out, name=name: shapes.__setitem__(name, tuple(out.shape[1:])))
    model.losses(torch.rand(2, 1, 32, 32))
    assert shapes == dict(TABLE)

    def layer(name):  # the conv or linear inside a (layer, ReLU) block
        module = modules[name]
        return module[0] if isinstance(module, torch.nn.Sequential) else module

    for name, stride in [("encoder.enc1", 1), ("encoder.enc2", 2), ("encoder.enc3", 1),
                         ("encoder.enc4", 2)]:
        conv = layer(name)
        assert (conv.kernel_size, conv.stride, conv.padding) == ((3, 3), (stride,) * 2, (1, 1))
    for name, stride, out_pad in [("decoder.dec3", 2, 1), ("decoder.dec4", 1, 0),
                                  ("decoder.dec5", 2, 1), ("decoder.dec6", 1, 0)]:
        conv = layer(name)
        assert (conv.kernel_size, conv.stride, conv.padding, conv.output_padding) == (
            (3, 3), (stride,) * 2, (1, 1), (out_pad,) * 2)
    # ReLU after every layer but Enc-6, Dec-2 and Dec-6 (logits; Sigmoid applied by decode).
    relu_after = {n for n, _ in TABLE if isinstance(modules[n], torch.nn.Sequential)
                  and isinstance(modules[n][-1], torch.nn.ReLU)}
    assert relu_after == {n for n, _ in TABLE} - {"encoder.enc6", "decoder.dec2", "decoder.dec6"}
    z = torch.randn(5, 64)
    assert torch.equal(model.decode(z), torch.sigmoid(model.decode_logits(z)))


def test_loss_terms_follow_their_formulas_on_a_hand_checked_case():
    # KL of N(1, e^0) per dim: 1/2 (1 + 1 - 0 - 1) = 0.5; of N(0, e^{-1}): 1/2 (e^-2 + 2 - 1).
    mu = torch.tensor([[1.0, 0.0]])
    log_sigma = torch.tensor([[0.0, -1.0]])
    assert gaussian_kl(mu, log_sigma).item() == pytest.approx(0.5 + 0.5 * (math.exp(-2) + 1))
    # BCE of logit 0 is log 2 whatever the target; summed over the 4 pixels of an image.
    assert bernoulli_nll(torch.zeros(3, 1, 2, 2), torch.rand(3, 1, 2, 2)).tolist() == \
        pytest.approx([4 * math.log(2)] * 3)


def test_vae_loss_is_batch_mean_of_per_image_sums():
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent_dim=10), (1, 32, 32))
    x = torch.rand(4, 1, 32, 32)
    eps = torch.randn(4, 10, generator=torch.Generator().manual_seed(1))
    losses = model.losses(x, eps)
    mu, log_sigma = model.encode(x)
    z = mu + log_sigma.exp() * eps
    logits = model.decode_logits(z)
    rec = F.binary_cross_entropy(torch.sigmoid(logits), x, reduction="sum") / 4
    kl = (0.5 * (mu**2 + (2 * log_sigma).exp() - 2 * log_sigma - 1)).sum() / 4
    assert losses["rec"].item() == pytest.approx(rec.item(), rel=1e-4)
    assert losses["kl"].item() == pytest.approx(kl.item(), rel=1e-5)
    assert losses["loss"].item() == pytest.approx((rec + kl).item(), rel=1e-4)


def test_saturated_pixels_and_huge_log_sigma_stay_finite():
    logits = torch.tensor([[[[200.0, -200.0]]]], requires_grad=True)
    target = torch.tensor([[[[0.0, 1.0]]]])  # the worst case: confidently wrong
    nll = bernoulli_nll(logits, target)
    nll.sum().backward()
    assert torch.isfinite(nll).all() and nll.item() == pytest.approx(400.0)
    assert torch.isfinite(logits.grad).all()

    model = VAE(VAEConfig(latent_dim=8), (1, 32, 32))
    with torch.no_grad():  # push Enc-6 to log sigma ~ 1000 and mu ~ 1e4
        model.encoder.enc6.weight.zero_()
        model.encoder.enc6.bias.copy_(torch.cat([torch.full((8,), 1e4), torch.full((8,), 1e3)]))
    losses = model.losses(torch.rand(3, 1, 32, 32))
    losses["loss"].backward()
    assert all(torch.isfinite(v) for v in losses.values())
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    # The clamp keeps the gradient: the KL still pushes the runaway log sigma down.
    assert (model.encoder.enc6.bias.grad[8:] > 0).all()


@pytest.mark.parametrize("arch", ["conv", "conv-shallow", "mlp"])
@pytest.mark.parametrize("latent_dim", [3, 10, 64, 100])
def test_every_arch_and_latent_size_trains(arch, latent_dim):
    torch.manual_seed(0)
    model = MODELS["vae"](VAEConfig(arch=arch, latent_dim=latent_dim), (1, 32, 32))
    optimizer = model.optimizers(TrainConfig(learning_rate=1e-3))["vae"]
    x = (torch.rand(16, 1, 32, 32) > 0.7).float()
    first = None
    for _ in range(15):
        optimizer.zero_grad()
        loss = model.losses(x)["loss"]
        loss.backward()
        optimizer.step()
        first = first if first is not None else loss.item()
    assert loss.item() < first
    assert model.decode(model.sample_latents(5)).shape == (5, 1, 32, 32)
    assert model.sample_latents(5).shape == (5, latent_dim)


def test_variants_differ_in_depth_from_the_table():
    def depth(arch):
        model = VAE(VAEConfig(arch=arch), (1, 32, 32))
        return sum(isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear))
                   for m in model.modules())
    assert depth("conv") == 12 and depth("conv-shallow") == 6 and depth("mlp") == 6
    assert not any(isinstance(m, torch.nn.Conv2d) for m in VAE(VAEConfig(arch="mlp"),
                                                                (1, 32, 32)).modules())
