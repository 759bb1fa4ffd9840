"""Image grids as tensors (for TensorBoard) and PNG files, with torch and PIL only."""

from __future__ import annotations

import math
import os

import numpy as np
import torch
from PIL import Image

from genlab.data.transforms import to_uint8
from genlab.fsutil import atomic_save


def make_grid(images: torch.Tensor, nrow: int = 8, padding: int = 2,
              pad_value: float = 1.0) -> torch.Tensor:
    """Tile images (N, C, H, W) in [0, 1] into one (C, H', W') image, `nrow` images per row."""
    n, c, h, w = images.shape
    ncol = min(nrow, n)
    nrows = math.ceil(n / ncol)
    grid = torch.full((c, nrows * (h + padding) + padding, ncol * (w + padding) + padding),
                      pad_value, dtype=torch.float32)
    images = images.detach().float().cpu()
    for i in range(n):  # at most a few hundred tiles, once per saving step
        row, col = divmod(i, ncol)
        top, left = padding + row * (h + padding), padding + col * (w + padding)
        grid[:, top:top + h, left:left + w] = images[i]
    return grid


def grid_to_pil(grid: torch.Tensor) -> Image.Image:
    """(C, H, W) in [0, 1] -> 8-bit PIL image (greyscale for one channel, RGB for three)."""
    pixels = to_uint8(grid)                                     # (C, H, W)
    array = pixels.permute(1, 2, 0).numpy()                    # (H, W, C)
    if array.shape[2] == 1:
        return Image.fromarray(np.ascontiguousarray(array[:, :, 0]), mode="L")
    return Image.fromarray(np.ascontiguousarray(array), mode="RGB")


def save_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int = 8) -> None:
    """Write images (N, C, H, W) in [0, 1] as one PNG grid, atomically."""
    picture = grid_to_pil(make_grid(images, nrow=nrow))
    atomic_save(path, lambda handle: picture.save(handle, format="PNG"))
