"""Collapse diagnostics: dead ReLU units and active latent dimensions, measured on a batch.

A ReLU unit that is never positive on any image gets no gradient and never comes back; a VAE
whose encoder passes no information has no *active* latent dimension and decodes one image for
every input. Both are invisible in a loss curve until it is read closely, so the trainer logs
them at every validation (genlab.train.trainer) and warns when one is total.

* Dead units (per ReLU layer): a unit is a channel of a convolution's output or a feature of a
  fully connected layer's; it is dead on a batch when its ReLU output is 0 for every image (and
  every position). Only `nn.ReLU` layers count: LeakyReLU and ELU pass gradients below 0.
* Active dimensions (Burda, Grosse and Salakhutdinov 2016, "Importance Weighted Autoencoders",
  section 5.2): dimension i is active when Cov_x(E_q[z_i | x]) > 0.01, the variance over the
  images of the posterior mean; their code (yburda/iwae) measures it on 500 images.
"""

from __future__ import annotations

import torch
from torch import nn

ACTIVE_THRESHOLD = 0.01  # Burda et al.'s threshold on the posterior mean's variance


def relu_layers(model: nn.Module) -> dict[str, nn.ReLU]:
    """Each nn.ReLU by the name of the layer it ends (its parent's name: `encoder.enc5`)."""
    layers = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.ReLU):
            parent = name.rsplit(".", 1)[0] if "." in name else name
            layers[parent] = module
    return layers


def count_dead_units(model: nn.Module, run) -> dict[str, tuple[int, int]]:
    """{layer: (dead units, units)} for every ReLU layer the call `run()` passes through."""
    alive: dict[str, torch.Tensor] = {}

    def hook(name):
        def record(module, inputs, output):
            # (B, C, ...) -> (C,): positive anywhere, for any image
            positive = (output > 0).transpose(0, 1).flatten(1).any(1)
            alive[name] = positive if name not in alive else alive[name] | positive
        return record

    handles = [layer.register_forward_hook(hook(name)) for name, layer in relu_layers(model).items()]
    try:
        with torch.no_grad():
            run()
    finally:
        for handle in handles:
            handle.remove()
    return {name: (int((~a).sum()), a.numel()) for name, a in alive.items()}


def active_dimensions(mu: torch.Tensor, threshold: float = ACTIVE_THRESHOLD) -> int:
    """Latent dimensions whose posterior mean varies across the images: mu (N, latent)."""
    return int((mu.double().var(0, unbiased=False) > threshold).sum())
