"""What the device computes natively: one answer for training's `--precision auto`, FID's
`--fid-precision bf16` check and the benchmarks."""

from __future__ import annotations

import platform

import torch


def has_bf16(device: torch.device) -> bool:
    """bf16 in hardware: an NVIDIA GPU of compute capability 8 or later (or a ROCm GPU that
    reports it), an x86 CPU with AVX-512 BF16 or AMX, or another CPU that oneDNN gives bf16
    instructions (ARM's). Elsewhere PyTorch still runs bf16, emulated and many times slower than
    fp32: oneDNN's own test passes on any AVX-512 x86 CPU, and torch.cuda.is_bf16_supported() on
    older GPUs, so neither is asked there."""
    if device.type == "cuda":
        if torch.version.hip:
            return torch.cuda.is_bf16_supported()
        return torch.cuda.get_device_capability(device)[0] >= 8
    if device.type != "cpu":
        return False
    if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86"):
        return bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
                    or getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())
    return (torch.backends.mkldnn.is_available()
            and torch.ops.mkldnn._is_mkldnn_bf16_supported())
