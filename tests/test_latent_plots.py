"""`genlab latents`: the scatter of 2-d and 3-d latent means and the decoded 2-d manifold."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import run_cli
from genlab.run import load_run


@pytest.mark.parametrize("latent", [2, 3])
def test_latents_draws_the_scatter_and_for_two_dimensions_the_manifold(tmp_path, digit_runs,
                                                                       latent):
    run = digit_runs / "vae"  # latent 2, 20 steps
    if latent == 3:
        run = tmp_path / "run"
        assert run_cli("train", "vae", "--dataset", "digits", "--latent-dim", str(latent),
                       "--steps", "20", "--fid-samples", "0", "--run-dir", run).returncode == 0
    result = run_cli("latents", run, "--manifold", "5")
    assert result.returncode == 0, result.stderr
    scatter = run / "figures" / "latent-scatter-step-00000020.png"
    with Image.open(scatter) as image:
        w, h = image.size
    assert w > h * (2.5 if latent == 3 else 1.0)  # three pairwise planes side by side for 3-d
    manifold = run / "figures" / "latent-manifold-step-00000020.png"
    assert manifold.exists() == (latent == 2)
    if latent == 2:
        with Image.open(manifold) as image:
            grid = torch.from_numpy(np.asarray(image, dtype=np.float32))  # (H, W) grey
        assert grid.shape == (2 + 5 * 34, 2 + 5 * 34)   # 5 x 5 tiles of 32 px, padding 2
        model = load_run(run, torch.device("cpu"), warn=pytest.fail).model
        q = torch.special.ndtri(torch.tensor([0.1, 0.9]))
        with torch.no_grad():  # top-left tile: lowest z1, highest z2
            corner = model.decode(torch.tensor([[q[0], q[1]]]))[0, 0] * 255
        assert (grid[2:34, 2:34] - corner).abs().max() <= 1.0


def test_latents_refuses_large_latents_and_gans_in_one_sentence(tmp_path, digit_runs):
    vae, gan = tmp_path / "vae", digit_runs / "dcgan"
    assert run_cli("train", "vae", "--dataset", "digits", "--latent-dim", "8", "--steps", "2",
                   "--fid-samples", "0", "--run-dir", vae).returncode == 0
    big = run_cli("latents", vae)
    assert big.returncode == 2 and "latent size 8" in big.stderr and "Traceback" not in big.stderr
    none = run_cli("latents", gan)
    assert none.returncode == 2 and "has no encoder" in none.stderr
