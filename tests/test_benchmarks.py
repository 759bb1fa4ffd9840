"""The benchmarks run: the GPU check's --smoke on the CPU (the real run waits for a GPU)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from genlab.hardware import has_bf16

from conftest import REPO


@pytest.mark.slow
def test_the_gpu_check_runs_in_smoke_mode_and_writes_its_table(tmp_path):
    result = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--smoke", "--out", tmp_path],
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["smoke"] and report["device"]
    assert [row["model"] for row in report["models"]] == ["vae", "dcgan", "vaegan"]
    for row in report["models"]:
        assert row["gflop_per_image"] > 0 and row["fp32_eager_images_s"] > 0
        assert row["fast_images_s"] > 0
        # bf16 is timed only where it is in hardware: emulated, it is many times slower than fp32
        assert (row["fast_path"] == "fp32") == (not has_bf16(torch.device("cpu")))
    assert report["vaegan"]["steps"] == 2 and report["vaegan"]["images_s"] > 0
    assert "skipped" in report["torchrun"]
    table = (tmp_path / "gpu_check.md").read_text()
    assert table.startswith(f"# genlab GPU check: {report['device']}") and "| vaegan |" in table
