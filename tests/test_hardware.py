"""genlab.hardware.has_bf16: bf16 in hardware, not bf16 that PyTorch would emulate (which is
many times slower than fp32 and would make `--precision auto` a slowdown)."""

import platform

import pytest
import torch

from genlab.hardware import has_bf16
from genlab.train.trainer import uses_bf16


@pytest.mark.parametrize("avx512_bf16, amx, expected", [(False, False, False),
                                                        (True, False, True), (False, True, True)])
def test_an_x86_cpu_has_bf16_only_with_avx512_bf16_or_amx(monkeypatch, avx512_bf16, amx,
                                                          expected):
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    # oneDNN's test passes on any AVX-512 CPU (Skylake, Cascade Lake): not asked on x86.
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    cpu = torch.device("cpu")
    assert has_bf16(cpu) is expected
    assert uses_bf16("auto", cpu, bf16_on_cpu=True) is expected
    assert uses_bf16("auto", cpu, bf16_on_cpu=False) is False  # measured slower in bf16


@pytest.mark.parametrize("capability, expected", [((7, 0), False), ((7, 5), False),
                                                  ((8, 0), True), ((9, 0), True)])
def test_an_nvidia_gpu_has_bf16_from_compute_capability_8(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    # Below 8, PyTorch reports bf16 support including emulation: not asked.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    assert has_bf16(torch.device("cuda", 0)) is expected


def test_other_devices_have_no_bf16_genlab_relies_on():
    assert has_bf16(torch.device("meta")) is False
