"""Latent walks: linear interpolation between two latents, and extrapolation beyond both ends.

Frame i of a path from z1 to z2 in K steps is z1 + (i / K) (z2 - z1): i = 0..K interpolates,
i = -a..-1 and K+1..K+a (`extend` a) extrapolate past z1 and z2. The end points are draws from
the prior, or, for a model with an encoder, the posterior means of two real images.
"""

from __future__ import annotations

import torch

from genlab.data.transforms import to_model_range, to_unit_range
from genlab.errors import GenlabError
from genlab.models.base import GenerativeModel


def path_positions(steps: int, extend: int = 0) -> torch.Tensor:
    """The frames' positions t = i / K for i = -extend .. steps + extend, (steps + 1 + 2 extend,)."""
    if steps < 1 or extend < 0:
        raise ValueError("a path needs steps >= 1 and extend >= 0")
    return torch.arange(-extend, steps + extend + 1, dtype=torch.float64) / steps


def walk(z1: torch.Tensor, z2: torch.Tensor, steps: int, extend: int = 0) -> torch.Tensor:
    """Latents along the straight lines z1 -> z2: (R, D) pairs -> (R, frames, D)."""
    t = path_positions(steps, extend).to(z1)                          # (frames,)
    return z1[:, None, :] + t[None, :, None] * (z2 - z1)[:, None, :]  # (R, frames, D)


@torch.no_grad()
def latent_means(model: GenerativeModel, images: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """uint8 images (N, C, H, W) -> posterior means (N, latent) on the CPU."""
    device = next(model.parameters()).device
    means = [model.encode(to_model_range(chunk.to(device), model.data_range))[0].float().cpu()
             for chunk in images.split(batch)]
    return torch.cat(means)


def prior_endpoints(model: GenerativeModel, rows: int,
                    generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    z = model.sample_latents(2 * rows, generator)  # drawn on the CPU: the same on any device
    return z[0::2], z[1::2]


@torch.no_grad()
def decode_paths(model: GenerativeModel, paths: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Latent paths (R, F, D) -> images (R * F, C, H, W) in [0, 1], row by row."""
    device = next(model.parameters()).device
    flat = paths.reshape(-1, paths.shape[-1])  # (R, F, D) -> (R * F, D)
    images = [to_unit_range(model.decode(z.to(device, torch.float32)), model.data_range).cpu()
              for z in flat.split(batch)]
    return torch.cat(images)


def endpoints(model: GenerativeModel, rows: int, generator: torch.Generator, source: str = "prior",
              images: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The ends of `rows` paths: prior draws (`source` "prior"), or the encodings of images:
    2 * rows uint8 images (2R, C, H, W), chosen at random from `images` when it holds more
    (`source` "data": a validation split; "images": the given files, in pairs)."""
    if source == "prior":
        return prior_endpoints(model, rows, generator)
    if not model.can("encoder"):
        raise GenlabError(f"a {model.name} has no encoder, so its paths cannot start at real "
                          "images; use --from prior")
    if source == "images":
        if len(images) % 2:
            raise GenlabError(f"--images takes pairs (each path's two ends), got {len(images)} "
                              "files; add or drop one")
    elif len(images) < 2 * rows:
        raise GenlabError(f"{rows} paths need {2 * rows} images but the data has {len(images)}; "
                          "use fewer paths")
    else:
        images = images[torch.randperm(len(images), generator=generator)[:2 * rows]]
    mu = latent_means(model, images)  # (2R, D) on the CPU, like prior draws
    return mu[0::2], mu[1::2]  # images 2r and 2r + 1 are path r's ends


def decode_walks(model: GenerativeModel, ends: tuple[torch.Tensor, torch.Tensor], steps: int,
                 extend: int = 0) -> tuple[torch.Tensor, int]:
    """The images of the straight paths between `ends`, row by row, (R * F, C, H, W) in [0, 1],
    and F, the frames a path."""
    paths = walk(*ends, steps, extend)  # (R, F, D)
    return decode_paths(model, paths), paths.shape[1]
