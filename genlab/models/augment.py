"""Differentiable augmentation of everything a GAN's discriminator sees (DiffAugment).

Zhao, Liu, Lin, Zhu and Han, "Differentiable Augmentation for Data-Efficient GAN Training"
(NeurIPS 2020): on small data sets the discriminator memorises the real images and the
generator's samples degrade; augmenting real *and* generated images with the same random,
differentiable transforms, in the discriminator's step and in the generator's, keeps D from
memorising without the augmentations leaking into G's images (G's gradient flows back through
the transform). The policies here are the paper's two geometric ones, with its settings:

  translation  shift each image by up to 1/8 of its size in x and y, zero padding
  cutout       zero one square of half the image's size at a random place in each image

(The paper's third, colour, changes brightness, saturation and contrast: meant for RGB.)
Random draws come from torch's global generator, whose state every checkpoint keeps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from genlab.models.noise import WHOLE, Shard
from genlab.models.specs import POLICIES  # the --diff-augment choices, named beside their transforms

TRANSLATION_RATIO = 1 / 8
CUTOUT_RATIO = 1 / 2


def translate(x: torch.Tensor, ratio: float = TRANSLATION_RATIO,
              shard: Shard = WHOLE) -> torch.Tensor:
    """Shift each image (B, C, H, W) by its own integer offset in [-ratio*size, ratio*size]."""
    b, _, h, w = x.shape
    max_y, max_x = int(h * ratio + 0.5), int(w * ratio + 0.5)
    shift_y = shard.rows(lambda n: torch.randint(-max_y, max_y + 1, (n, 1), device=x.device), b)
    shift_x = shard.rows(lambda n: torch.randint(-max_x, max_x + 1, (n, 1), device=x.device), b)
    # Output pixel (i, j) reads input pixel (i - shift_y, j - shift_x): index the zero-padded
    # image at (i - shift_y + max_y, j - shift_x + max_x).
    rows = torch.arange(h, device=x.device)[None, :] - shift_y + max_y      # (B, H)
    cols = torch.arange(w, device=x.device)[None, :] - shift_x + max_x      # (B, W)
    padded = F.pad(x, [max_x, max_x, max_y, max_y])                         # (B, C, H+2my, W+2mx)
    batch = torch.arange(b, device=x.device)[:, None, None]
    # Advanced indexing on dims 0, 2, 3 puts them first: (B, H, W, C) -> back to (B, C, H, W).
    return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, ratio: float = CUTOUT_RATIO, shard: Shard = WHOLE) -> torch.Tensor:
    """Zero a (ratio*H) x (ratio*W) square per image, centred anywhere in the image (so it may
    be cut by the border, as in the paper)."""
    b, _, h, w = x.shape
    size_y, size_x = int(h * ratio + 0.5), int(w * ratio + 0.5)
    centre_y = shard.rows(lambda n: torch.randint(0, h + (1 - size_y % 2), (n, 1),
                                                  device=x.device), b)
    centre_x = shard.rows(lambda n: torch.randint(0, w + (1 - size_x % 2), (n, 1),
                                                  device=x.device), b)
    top, left = centre_y - size_y // 2, centre_x - size_x // 2
    ys = torch.arange(h, device=x.device)[None, :]
    xs = torch.arange(w, device=x.device)[None, :]
    inside_y = (ys >= top) & (ys < top + size_y)                            # (B, H)
    inside_x = (xs >= left) & (xs < left + size_x)                          # (B, W)
    keep = ~(inside_y[:, :, None] & inside_x[:, None, :])                   # (B, H, W)
    return x * keep[:, None].to(x.dtype)


TRANSFORMS = {"translation": translate, "cutout": cutout}


def diff_augment(x: torch.Tensor, policy: str, shard: Shard = WHOLE) -> torch.Tensor:
    """Apply the policy's transforms in order, each image's draws its rows of the global batch's
    (`shard`); "none" returns x itself."""
    if policy == "none":
        return x
    for name in policy.split(","):
        x = TRANSFORMS[name](x, shard=shard)
    return x
