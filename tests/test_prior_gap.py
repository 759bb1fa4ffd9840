"""experiments/prior_gap.py: the Gaussian fit to the aggregate posterior, its KL from the prior,
how many directions carry the posterior means, and the script end to end on a trained VAE."""

import json
import subprocess
import sys

import pytest
import torch

from conftest import REPO, experiment

SCRIPT = REPO / "experiments" / "prior_gap.py"


@pytest.fixture(scope="module")
def prior_gap():
    return experiment("prior_gap")


def test_the_kl_of_the_fit_is_the_closed_form_of_its_mean_and_full_covariance(prior_gap):
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(50, 4, generator=g, dtype=torch.float64) @ torch.randn(4, 4, generator=g,
                                                                          dtype=torch.float64)
    log_sigma = 0.3 * torch.randn(50, 4, generator=g, dtype=torch.float64)
    mean, centred, noise = prior_gap.gaussian_fit(mu, log_sigma)
    covariance = torch.cov(mu.T, correction=0) + (2 * log_sigma).exp().mean(0).diag()
    expected = torch.distributions.kl_divergence(
        torch.distributions.MultivariateNormal(mu.mean(0), covariance),
        torch.distributions.MultivariateNormal(torch.zeros(4, dtype=torch.float64),
                                               torch.eye(4, dtype=torch.float64)))
    assert prior_gap.kl_from_prior(mean, centred, noise) == pytest.approx(expected.item(), rel=1e-9)
    # A mixture that matches N(0, I)'s two moments is at KL 0.
    assert prior_gap.kl_from_prior(torch.zeros(3), torch.zeros(5, 3), torch.ones(3)) == pytest.approx(0)


def test_diversity_is_the_mean_rms_distance_between_two_different_images(prior_gap):
    assert prior_gap.diversity(torch.full((5, 1, 4, 4), 0.3)) == 0
    two = torch.stack([torch.zeros(1, 4, 4), torch.full((1, 4, 4), 0.5)])
    assert prior_gap.diversity(two) == pytest.approx(0.5)


def test_the_script_measures_a_vae_run_and_refuses_a_run_without_an_encoder(prior_gap, digit_runs,
                                                                           tmp_path):
    grid = tmp_path / "gap.png"
    result = subprocess.run([sys.executable, SCRIPT, digit_runs / "vae", "--images", "40",
                             "--draws", "8", "--columns", "4", "-o", grid],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout[:result.stdout.rindex("}") + 1])
    assert report["model"] == "vae" and report["step"] == 20 and report["latent_dim"] == 2
    assert report["kl_from_prior_nats"] >= 0 and 1 <= report["cov_mu_participation_ratio"] <= 2
    assert set(report["diversity"]) == {"real", "reconstructions", "fitted draws", "prior draws"}
    assert all(value > 0 for value in report["diversity"].values())
    from PIL import Image
    assert Image.open(grid).size[1] > Image.open(grid).size[0] / 2  # 4 rows of 4

    # SystemExit with a sentence: the command prints it and exits 1, no traceback.
    with pytest.raises(SystemExit, match="dcgan run, which has no encoder"):
        prior_gap.measure(digit_runs / "dcgan", None, 40, 8)


def test_the_trajectory_measures_each_encoder_rung_once_and_tabulates_it(digit_runs, monkeypatch):
    trajectory = experiment("celeba_trajectory")
    rows = [{"model": "vae", "step": 20, "images": 1280, "pixel_mse": 0.05},
            {"model": "dcgan", "step": 20, "images": 1280}]  # no encoder: not measured
    said = []
    [gap] = trajectory.prior_gaps(digit_runs, rows, deadline=float("inf"), log=said.append)
    assert (gap["model"], gap["step"], gap["images"]) == ("vae", 20, 1280)
    assert gap["latent_dim"] == 2 and 0 < gap["diversity_prior"] and 0 < gap["diversity_fitted"]
    assert len(said) == 1 and said[0].startswith("prior gap ")
    # Kept in OUT/prior_gap.json: a second call reads it and measures nothing.
    monkeypatch.setattr(trajectory, "measure_prior_gap", lambda *a, **k: pytest.fail("measured twice"))
    assert trajectory.prior_gaps(digit_runs, rows, float("inf"), said.append) == [gap]
    [header, rule, line] = trajectory.prior_gap_table([gap])
    assert header.startswith("| model | step | images seen | KL of q(z)'s fit")
    assert line.startswith("| vae | 20 | 1,280 | ")


def test_the_trajectory_plots_draw_an_earlier_run_dashed_in_each_models_colour(tmp_path, monkeypatch):
    from matplotlib.axes import Axes

    trajectory = experiment("celeba_trajectory")
    drawn = []
    original = Axes.plot

    def recording(self, *args, **kwargs):
        drawn.append((args[-1], kwargs["color"], kwargs["label"], args[0]))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Axes, "plot", recording)
    rows = [{"model": "vae", "images": 100, "fid": 30.0}, {"model": "dcgan", "images": 100, "fid": 20.0}]
    earlier = [{"model": "vae", "images": 100, "fid": 31.0}, {"model": "vae", "images": 200, "fid": 25.0},
               {"model": "vaegan", "images": 100, "fid": 40.0}]  # a model only the earlier run has
    path = tmp_path / "fid.png"
    trajectory.plot(rows, "fid", "FID", path, earlier)
    assert path.stat().st_size > 0
    assert drawn == [("-", "C0", "vae", (100,)), ("--", "C0", "vae, earlier run", (100, 200)),
                     ("-", "C1", "dcgan", (100,)), ("--", "C2", "vaegan, earlier run", (100,))]


def test_the_trajectory_command_reads_back_what_it_knows_when_out_of_time(digit_runs, tmp_path):
    """celeba_trajectory.py past its --until: the reconstructions' measures of OUT/trajectory.json
    come back into the table and the rewritten file; nothing is measured."""
    import shutil

    out = tmp_path / "out"
    for name, folder in (("vae", "vae-larsen64"), ("dcgan", "dcgan64")):
        shutil.copytree(digit_runs / name, out / folder)
    known = {"pixel_mse": 0.0123, "edge_contrast": 0.456, "detail_error": 1.23}
    (out / "trajectory.json").write_text(json.dumps(
        [{"model": "vae-larsen64", "step": 10, "images": 320, "epoch": 0.1, **known}]))
    result = subprocess.run([sys.executable, "experiments/celeba_trajectory.py", out,
                             "--until", "1 hour ago", "--fid-samples", "16"], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = {(r["model"], r["step"]): r for r in json.loads((out / "trajectory.json").read_text())}
    assert {k: rows[("vae-larsen64", 10)][k] for k in known} == known
    assert rows[("vae-larsen64", 10)]["skipped"] == "out of time"  # its FID: not measured
    assert "pixel_mse" not in rows[("vae-larsen64", 20)]
    assert "| 0.0123 | 0.456 | 1.23 |" in (out / "trajectory.md").read_text()
