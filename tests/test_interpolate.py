"""Latent walks: the path maths, and `genlab interpolate` on VAE and DCGAN runs."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from conftest import FAST_FID_PRECISION, needs_inception, run_cli
from genlab.models.walks import path_positions, walk


def test_paths_are_straight_lines_with_extrapolation_beyond_both_ends():
    assert path_positions(4).tolist() == [0, 0.25, 0.5, 0.75, 1]
    assert path_positions(4, extend=2).tolist() == [-0.5, -0.25, 0, 0.25, 0.5, 0.75, 1, 1.25, 1.5]
    z1, z2 = torch.randn(3, 5, dtype=torch.float64), torch.randn(3, 5, dtype=torch.float64)
    paths = walk(z1, z2, steps=4, extend=1)
    assert paths.shape == (3, 7, 5)
    assert torch.allclose(paths[:, 1], z1) and torch.allclose(paths[:, 5], z2)
    assert torch.allclose(paths[:, 0], z1 - (z2 - z1) / 4)   # i = -1
    assert torch.allclose(paths[:, 6], z2 + (z2 - z1) / 4)   # i = K + 1
    steps = paths.diff(dim=1)                                 # equal steps along each line
    assert torch.allclose(steps, ((z2 - z1) / 4)[:, None, :].expand_as(steps))
    with pytest.raises(ValueError):
        path_positions(0)


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "vae"
    result = run_cli("train", "vae", "--dataset", "digits", "--latent-dim", "4", "--steps", "20",
                     "--fid-samples", "0", "--run-dir", run)
    assert result.returncode == 0, result.stderr
    return run


def grid_shape(path, tile: int = 32, padding: int = 2) -> tuple[int, int]:
    """(rows, columns) of a saved grid of tile x tile images."""
    with Image.open(path) as grid:
        w, h = grid.size
    return (h - padding) // (tile + padding), (w - padding) // (tile + padding)


def test_interpolate_from_the_prior_writes_one_row_per_path(vae_run, tmp_path):
    out = tmp_path / "walk.png"
    result = run_cli("interpolate", vae_run, "--rows", "3", "--steps", "4", "--extend", "2",
                     "-o", out)
    assert result.returncode == 0, result.stderr
    assert grid_shape(out) == (3, 9)
    assert "3 paths of 9 frames between prior draws" in result.stdout
    assert "first and last 2 columns extrapolate" in result.stdout


def test_interpolate_between_encoded_images(vae_run, tmp_path):
    out = tmp_path / "data.png"
    result = run_cli("interpolate", vae_run, "--from", "data", "--rows", "2", "-o", out)
    assert result.returncode == 0, result.stderr
    assert grid_shape(out) == (2, 9) and "encodings of 4 random test images" in result.stdout
    files = []
    for i, value in enumerate((0, 255)):
        files.append(tmp_path / f"{i}.png")
        Image.new("RGB", (40, 30), (value, value, value)).save(files[-1])
    given = run_cli("interpolate", vae_run, "--images", *files, "--steps", "2", "-o", out)
    assert given.returncode == 0, given.stderr
    assert grid_shape(out) == (1, 3) and "encodings of the given images" in given.stdout
    odd = run_cli("interpolate", vae_run, "--images", files[0], "-o", out)
    assert odd.returncode == 2 and "takes pairs" in odd.stderr and "Traceback" not in odd.stderr


def test_a_gan_has_no_encoder_to_start_from(tmp_path):
    run = tmp_path / "dcgan"
    assert run_cli("train", "dcgan", "--dataset", "digits", "--steps", "2", "--fid-samples", "0",
                   "--run-dir", run).returncode == 0
    result = run_cli("interpolate", run, "--from", "data", "-o", tmp_path / "x.png")
    assert result.returncode == 2 and "has no encoder" in result.stderr
    assert not (tmp_path / "x.png").exists()
    prior = run_cli("interpolate", run, "--extend", "1", "-o", tmp_path / "x.png")
    assert prior.returncode == 0 and grid_shape(tmp_path / "x.png") == (4, 11)


def test_path_distances_measure_steps_and_detours_in_feature_space():
    from genlab.metrics.latent import path_distances

    straight = torch.linspace(0, 1, 5)[None, :, None] * torch.tensor([3.0, 4.0])  # (1, 5, 2)
    step, ratio = path_distances(straight)
    assert step == pytest.approx(5 / 4) and ratio == pytest.approx(1.0)
    detour = torch.tensor([[[0.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0]]])     # 3 unit steps
    step, ratio = path_distances(detour)
    assert step == pytest.approx(1.0) and ratio == pytest.approx(3.0)


@needs_inception
def test_score_stores_smoothness_and_midpoint_fid_beside_the_checkpoint(vae_run, tmp_path):
    import json

    result = run_cli("interpolate", vae_run, "--score", "--paths", "2", "--midpoints", "6",
                     "--steps", "2", "--fid-precision", FAST_FID_PRECISION, "-o", tmp_path / "w.png")
    assert result.returncode == 0, result.stderr
    assert "smoothness" in result.stdout and "midpoint FID" in result.stdout
    lines = (vae_run / "checkpoints" / "step-00000020-metrics.jsonl").read_text().splitlines()
    record = json.loads(lines[-1])
    assert record["metric"] == "latent_paths" and record["step"] == 20
    assert record["smoothness"] > 0 and record["path_length_ratio"] >= 1 - 1e-6
    assert record["midpoint_fid"] > 0
    assert record["settings"]["paths"] == 2 and record["settings"]["frames"] == 3
    # TensorBoard holds the registered values at the checkpoint's step
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(vae_run)).Reload()
    assert {"metrics/midpoint_fid", "metrics/smoothness"} <= set(events.Tags()["scalars"])
    assert events.Scalars("metrics/midpoint_fid")[-1].value == pytest.approx(
        record["midpoint_fid"], rel=1e-5)
    odd = run_cli("interpolate", vae_run, "--score", "--steps", "3", "-o", tmp_path / "odd.png")
    assert odd.returncode == 2 and "no midpoint frame" in odd.stderr
    assert not (tmp_path / "odd.png").exists()
