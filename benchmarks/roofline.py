"""The device's measured dense peak and a step's FLOP count: what every benchmark here prints
beside its images/s, so a throughput says how far it is from what the hardware can do.

* Peak: the best of a few timed rounds of a large matrix product (fp32 and bf16) and of a large
  3x3 and 5x5 convolution (fp32 and bf16, channels_last, the layout genlab trains in), in the
  same process as the benchmark and right before it. A matrix product of this size is as close
  to the cores' arithmetic limit as PyTorch gets; convolutions show what oneDNN (or cuDNN)
  reaches on the shapes that dominate these models.
* FLOPs: torch.utils.flop_counter.FlopCounterMode over one call, which counts matrix products
  and convolutions (forward and backward) as 2 FLOPs per multiply-add; elementwise work, norms
  and the optimiser are not counted, so achieved FLOP/s is a floor on the arithmetic done.

Run alone, it prints the peak table: `.venv/bin/python benchmarks/roofline.py [--device auto]`.
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_steps(step: Callable[[], None], steps: int, warmup: int, batch: int,
                device: torch.device) -> float:
    """Images/s of `step` (one training step of `batch` images): `warmup` untimed calls, then
    `steps` timed ones, synchronised with the device at both ends."""
    for _ in range(warmup):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return steps * batch / (time.perf_counter() - start)


def best_rate(fn: Callable[[], None], flops: float, device: torch.device, seconds: float = 1.0,
              rounds: int = 3) -> float:
    """FLOP/s of fn (which does `flops` FLOPs a call): best of `rounds` rounds of ~`seconds`."""
    fn()  # warm-up (kernel selection, allocation)
    synchronize(device)
    best = 0.0
    for _ in range(rounds):
        calls, start = 0, time.perf_counter()
        while True:
            fn()
            calls += 1
            synchronize(device)
            elapsed = time.perf_counter() - start
            if elapsed >= seconds / rounds:
                break
        best = max(best, calls * flops / elapsed)
    return best


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int) -> float:
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    return best_rate(lambda: torch.mm(a, b), 2.0 * n ** 3, device)


def conv_peak(device: torch.device, dtype: torch.dtype, kernel: int, batch: int,
              channels: int, size: int) -> float:
    """A stride-1 same-padding convolution of `channels` in and out at size x size."""
    conv = torch.nn.Conv2d(channels, channels, kernel, padding=kernel // 2, bias=False)
    conv = conv.to(device, dtype=dtype, memory_format=torch.channels_last)
    x = torch.randn(batch, channels, size, size, device=device).to(dtype)
    x = x.contiguous(memory_format=torch.channels_last)
    flops = 2.0 * batch * channels * channels * kernel * kernel * size * size
    with torch.no_grad():
        return best_rate(lambda: conv(x), flops, device)


def measure_peak(device: torch.device) -> dict[str, float]:
    """GFLOP/s of each dense kernel, by name; 'matmul fp32' is the reference peak."""
    gpu = device.type == "cuda"
    n, batch, channels, size = (8192, 64, 256, 32) if gpu else (2048, 16, 128, 32)
    peak = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        peak[f"matmul {name}"] = matmul_peak(device, dtype, n) / 1e9
        for kernel in (3, 5):
            peak[f"conv{kernel}x{kernel} {name}"] = conv_peak(device, dtype, kernel, batch,
                                                             channels, size) / 1e9
    return peak


def count_flops(fn: Callable[[], None]) -> float:
    """FLOPs of one call of fn (matrix products and convolutions, forward and backward)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU, {torch.get_num_threads()} threads"


def print_peak(peak: dict[str, float]) -> None:
    print("measured peak (GFLOP/s): " + ", ".join(f"{k} {v:.0f}" for k, v in peak.items()))


def fraction(achieved_gflops: float, peak: dict[str, float], precision: str) -> str:
    """'23% of conv3x3 fp32': achieved against the fastest dense kernel measured in its
    precision. (On this 2-core CPU oneDNN's 3x3 convolution beats MKL's 2048^2 matrix product by
    2.4x, so the matrix product alone would understate how far a model is from the limit.)"""
    key = max((k for k in peak if k.endswith(f" {precision}")), key=peak.__getitem__)
    return f"{100 * achieved_gflops / peak[key]:.0f}% of {key}"


def main() -> None:
    from genlab.run import resolve_device

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(f"device: {device_name(device)}, torch {torch.__version__}")
    print_peak(measure_peak(device))


if __name__ == "__main__":
    main()
