"""What the device computes natively: one answer for training's `--precision auto`, FID's
`--fid-precision bf16` check and the benchmarks."""

from __future__ import annotations

import torch


def has_bf16(device: torch.device) -> bool:
    """bf16 in hardware: a GPU that reports it, or a CPU with AVX-512 BF16 or AMX (oneDNN's test).
    Without it PyTorch still runs bf16 on a CPU, emulated and many times slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return (device.type == "cpu" and torch.backends.mkldnn.is_available()
            and torch.ops.mkldnn._is_mkldnn_bf16_supported())
