"""Larsen et al.'s networks for 64x64 images: the lab's tables, and the VAE baseline built on them."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import layer_output_shapes, run_cli
from genlab.models.larsen import LarsenEncoder, larsen_decoder, larsen_discriminator
from genlab.models.vae import VAE, VAEConfig


@pytest.mark.parametrize("channels", [1, 3])
def test_encoder_decoder_and_discriminator_follow_the_lab_tables(channels):
    torch.manual_seed(0)
    x = torch.randn(4, channels, 64, 64)
    encoder = LarsenEncoder(2048, channels)
    assert layer_output_shapes(encoder.features, x) == {
        "conv1": (64, 32, 32), "conv2": (128, 16, 16), "conv3": (256, 8, 8), "flatten": (16384,)}
    for head in (encoder.mean, encoder.log_sigma):  # two separate heads
        assert [type(m).__name__ for m in head] == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
        assert (head[0].in_features, head[0].out_features, head[3].out_features) == (16384, 2048, 2048)
    assert encoder.mean[0].weight.data_ptr() != encoder.log_sigma[0].weight.data_ptr()
    assert encoder(x).shape == (4, 4096)
    for conv in (encoder.features.conv1[0], encoder.features.conv3[0]):
        assert (conv.kernel_size, conv.stride, conv.padding) == ((5, 5), (2, 2), (2, 2))

    decoder = larsen_decoder(2048, channels, nn.Tanh())
    assert layer_output_shapes(decoder, torch.randn(4, 2048)) == {
        "fc": (16384,), "unflatten": (256, 8, 8), "deconv1": (256, 16, 16),
        "deconv2": (128, 32, 32), "deconv3": (32, 64, 64), "deconv4": (channels, 64, 64),
        "out": (channels, 64, 64)}
    deconv = decoder.deconv2[0]
    assert (deconv.kernel_size, deconv.stride, deconv.padding, deconv.output_padding) == (
        (5, 5), (2, 2), (2, 2), (1, 1))
    assert (decoder.deconv4.stride, decoder.deconv4.padding) == ((1, 1), (2, 2))

    d = larsen_discriminator(channels)
    assert layer_output_shapes(d, x) == {
        "conv1": (32, 64, 64), "conv2": (128, 32, 32), "conv3": (256, 16, 16),
        "conv4": (256, 8, 8), "flatten": (16384,), "fc": (1024,), "logit": (1,), "sigmoid": (1,)}
    assert [type(m).__name__ for m in d.conv1] == ["Conv2d", "ReLU"]  # no BatchNorm on conv1
    assert all([type(m).__name__ for m in getattr(d, n)] == ["Conv2d", "BatchNorm2d", "ReLU"]
               for n in ("conv2", "conv3", "conv4"))
    assert isinstance(d.fc[1], nn.ELU) and d.conv1[0].stride == (1, 1)


def test_vae_larsen64_baseline_trains_a_step_and_refuses_other_sizes(tmp_path):
    torch.manual_seed(0)
    model = VAE(VAEConfig(arch="larsen64", latent_dim=16), (3, 64, 64))
    x = torch.rand(4, 3, 64, 64)
    losses = model.losses(x)
    losses["loss"].backward()
    assert torch.isfinite(losses["loss"]) and model.decode(torch.randn(2, 16)).shape == (2, 3, 64, 64)
    assert all(p.grad is not None for p in model.parameters())
    result = run_cli("train", "vae", "--arch", "larsen64", "--dataset", "digits",
                     "--run-dir", tmp_path / "run", "--fid-samples", "0")
    assert result.returncode == 2 and "--image-size 64" in result.stderr
    assert not (tmp_path / "run").exists()
