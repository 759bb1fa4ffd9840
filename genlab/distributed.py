"""Data-parallel training over the processes `torchrun` starts, with torch.distributed.

    torchrun --nproc-per-node 2 -m genlab train dcgan --batch-size 64 --sync-batchnorm

`--batch-size` is the global batch: every step, each of the N processes takes its N-th of the
same global batch (rows rank*B/N .. (rank+1)*B/N of the batch one process would draw), draws the
same per-sample noise rows (genlab.models.noise), and after each phase's backward pass the
gradients are averaged over the processes before the optimiser steps. Every process therefore
keeps identical weights, optimiser state and random state, and the run is the one-process run
up to float rounding (tested with 2 gloo processes) — which is also why a resumed run may use a
different number of processes.

Why not torch.nn.parallel.DistributedDataParallel: a genlab step is several phases, each a
backward pass through some networks and a step of one optimiser (a GAN's discriminator, then its
generator), with the networks called directly by the model's loss functions. DDP's reducer
expects one forward of the wrapped module per backward; the explicit all-reduce below is the
same communication (one flat buffer per phase) without that constraint.

BatchNorm: by default each process normalises with its own shard's statistics (as DDP does);
`--sync-batchnorm` computes them over the global batch: torch.nn.SyncBatchNorm on GPUs, and on
other devices (gloo, CPU) `GlobalBatchNorm` below, which SyncBatchNorm does not support.
Only rank 0 writes logs, images and checkpoints.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from typing import Iterable

import torch
import torch.distributed as dist
from torch import nn

from genlab.errors import GenlabError


@dataclass(frozen=True)
class Processes:
    """Where this process stands in the run: rank 0 of 1 when torchrun did not start it."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.world_size > 1


SINGLE = Processes()


def from_environment() -> Processes:
    """The rank and world size torchrun put in the environment (one process without it)."""
    try:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        raise GenlabError("WORLD_SIZE, RANK and LOCAL_RANK must be integers; start parallel runs "
                          "with torchrun --nproc-per-node N -m genlab train ...") from None
    return Processes(rank, world_size, local_rank) if world_size > 1 else SINGLE


def start(processes: Processes, device: torch.device) -> torch.device:
    """Join the process group (NCCL on GPUs, gloo otherwise); this process's device."""
    if not processes.parallel:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", processes.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        # torch.optim's first optimiser imports torch._dynamo; imported after the group is
        # joined, it keeps a reference to the group (torch 2.13), so destroy_process_group()
        # leaves gloo's threads running into interpreter teardown, where a process can abort
        # (SIGABRT, "terminate called without an active exception") after a finished run.
        # Imported before, it holds nothing and stop() ends the threads.
        import torch._dynamo  # noqa: F401

        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=dt.timedelta(minutes=30),
                                device_id=device if device.type == "cuda" else None)
    return device


def stop() -> None:
    """Leave the process group; its threads end here, not in interpreter teardown."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def average_gradients(parameters: Iterable[nn.Parameter], world_size: int) -> None:
    """Replace each gradient by its mean over the processes: one all-reduce of a flat buffer."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])  # logical order, whatever the memory format
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view(g.shape))
        offset += g.numel()


def mean_over_processes(values: torch.Tensor, world_size: int) -> torch.Tensor:
    """The element-wise mean of `values` over the processes (every process gets it)."""
    values = values.clone()
    dist.all_reduce(values)
    return values / world_size


def any_process(flag: bool, device: torch.device) -> bool:
    """True on every process when `flag` is true on at least one (a stop request, for example)."""
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def gather_to_main(obj, processes: Processes) -> list | None:
    """Every process's `obj` on rank 0 (in rank order); None on the others."""
    if not processes.parallel:
        return [obj]
    gathered = [None] * processes.world_size if processes.is_main else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered


class _SumOverProcesses(torch.autograd.Function):
    """y = the sum of x over the processes; its gradient is the sum of y's gradients (every
    process's loss depends on every process's x through y)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = x.clone()
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of the global batch across the processes,
    for backends torch.nn.SyncBatchNorm does not run on (gloo on CPU). The all-reduces are
    autograd functions, so gradients flow through the shared mean and variance as in one
    process. Same parameters and buffers as BatchNorm: checkpoints load either way."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-d input (N, C, ...), got {input.dim()}-d")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        all_reduce = _SumOverProcesses.apply
        self._check_input_dim(x)
        dims = [0, *range(2, x.dim())]                 # every dimension but the channels
        shape = [1, x.shape[1]] + [1] * (x.dim() - 2)  # (C,) -> broadcastable over (N, C, ...)
        xf = x.float()
        # Every process holds the same share of the global batch (the trainer checks it), so
        # the global count needs no all-reduce of its own.
        count = x.numel() // x.shape[1] * dist.get_world_size()
        mean = all_reduce(xf.sum(dims)) / count
        centred = xf - mean.view(shape)
        # Two passes (mean, then squared deviations) as BatchNorm computes it: no cancellation.
        var = all_reduce(centred.square().sum(dims)) / count
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked += 1
                momentum = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                            else self.momentum)
                unbiased = var * count / max(count - 1, 1)
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), momentum)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out.to(x.dtype)


def synchronise_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm of `module` computing its statistics over the global batch, in place
    (SyncBatchNorm on GPUs, GlobalBatchNorm elsewhere); parameters and buffers are kept, so the
    optimiser and the checkpoints see the same tensors."""
    kind = nn.SyncBatchNorm if device.type == "cuda" else GlobalBatchNorm
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, kind):
            replacement = kind(child.num_features, child.eps, child.momentum, child.affine,
                               child.track_running_stats)
            if child.affine:
                replacement.weight, replacement.bias = child.weight, child.bias
            if child.track_running_stats:
                replacement.running_mean = child.running_mean
                replacement.running_var = child.running_var
                replacement.num_batches_tracked = child.num_batches_tracked
            replacement.train(child.training)
            setattr(module, name, replacement)
        else:
            synchronise_batchnorm(child, device)
    return module


def broadcast_from_main(obj) -> list:
    """[rank 0's obj] on every process."""
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder
