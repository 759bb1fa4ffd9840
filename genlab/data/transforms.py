"""Whole-tensor image transforms: run once when a data set is loaded, never per item."""

from __future__ import annotations

import torch
import torch.nn.functional as F

_CHUNK = 8192  # images resized at a time, to bound the float copy's memory
_CHUNK_BYTES = 256 * 1024**2


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize uint8 images (N, C, H, W) to (N, C, size, size) bilinearly and round back to uint8.

    This is what the homework's `transforms.Resize(32)` did to each 28x28 PIL image (bilinear,
    half-pixel centres, i.e. align_corners=False, then ToTensor's /255 on the uint8 result), done
    here on the whole tensor at once; results agree with PIL to within one grey level.
    """
    if images.shape[-2:] == (size, size):
        return images
    downsampling = size < min(images.shape[-2:])
    out = torch.empty((*images.shape[:2], size, size), dtype=torch.uint8, device=images.device)
    # Images per float copy: at most _CHUNK, and at most _CHUNK_BYTES of floats in or out.
    per_image = 4 * images.shape[1] * max(images.shape[-2] * images.shape[-1], size * size)
    step = max(1, min(_CHUNK, _CHUNK_BYTES // per_image))
    for start in range(0, len(images), step):
        chunk = images[start:start + step].float()
        # antialias only matters when shrinking (as PIL does); for upsampling it is plain bilinear.
        resized = F.interpolate(chunk, size=(size, size), mode="bilinear", align_corners=False,
                                antialias=downsampling)
        out[start:start + step] = resized.round_().clamp_(0, 255).to(torch.uint8)
    return out


def to_model_range(images: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float in `value_range`: [0, 1] for the VAE, [-1, 1] for GANs."""
    low, high = value_range
    return images.float().mul_((high - low) / 255.0).add_(low)


def to_unit_range(images: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
    """Float images in `value_range` -> [0, 1], for grids and PNG files."""
    low, high = value_range
    return ((images.float() - low) / (high - low)).clamp_(0.0, 1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats -> uint8 0..255, rounded to nearest as a PNG writer would."""
    return images.clamp(0.0, 1.0).mul(255).round_().to(torch.uint8)


# ITU-R 601-2 luma (0.299, 0.587, 0.114) in PIL's 16-bit fixed point, as its convert("L") does.
_LUMA = (19595, 38470, 7471)


def convert_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 (N, C, H, W) with C in {1, 3} -> (N, channels, H, W): grey repeated into RGB, or RGB
    to grey exactly as PIL's convert("L") computes it."""
    have = images.shape[1]
    if have == channels:
        return images
    if have == 1 and channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    if have == 3 and channels == 1:
        out = torch.empty((images.shape[0], 1, *images.shape[2:]), dtype=torch.uint8)
        for start in range(0, len(images), _CHUNK):
            chunk = images[start:start + _CHUNK].to(torch.int32)
            luma = sum(w * chunk[:, i:i + 1] for i, w in enumerate(_LUMA))
            out[start:start + _CHUNK] = ((luma + 0x8000) >> 16).to(torch.uint8)
        return out
    raise ValueError(f"cannot convert {have}-channel images to {channels} channels")
