"""Collapse diagnostics: dead ReLU units per layer and a posterior's active dimensions, logged at
every validation, with a warning when a layer or the posterior passes nothing."""

from __future__ import annotations

import torch
from torch import nn
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import run_cli
from genlab.models.diagnostics import active_dimensions, count_dead_units
from genlab.train.trainer import POSTERIOR_WARMUP_STEPS
from test_trainer import make_trainer


def test_dead_units_are_channels_or_features_never_positive_on_any_image():
    net = nn.Sequential(nn.Conv2d(1, 3, 1), nn.ReLU(), nn.Flatten(), nn.Linear(12, 4), nn.ReLU())
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[0].bias.copy_(torch.tensor([-10.0, 0.0, 0.5]))  # channel 0 dead for x in [0, 1]
        net[3].weight.zero_()
        net[3].bias.copy_(torch.tensor([-1.0, 1.0, -1.0, 0.0]))  # features 0, 2, 3 never > 0
    x = torch.rand(5, 1, 2, 2)
    dead = count_dead_units(net, lambda: net(x))
    assert dead == {"1": (1, 3), "4": (3, 4)}  # named by their parent (here the Sequential's index)
    # Burda et al.'s active dimensions: variance of the posterior mean across images > 0.01.
    mu = torch.stack([torch.linspace(-1, 1, 50), torch.full((50,), 3.0), 0.05 * torch.randn(50)], 1)
    assert active_dimensions(mu) == 1


def test_a_vae_with_dead_enc5_units_warns_naming_the_layer_and_a_healthy_one_does_not(tmp_path):
    trainer = make_trainer(tmp_path / "dead", 5, 5, latent_dim=3)
    with torch.no_grad():  # every Enc-5 unit's pre-activation far below 0 for any image
        trainer.model.encoder.enc5[0].bias.fill_(-100.0)
    scalars, histograms, warnings = trainer.diagnose()
    assert scalars["val/dead_fraction/encoder.enc5"] == 1.0 and scalars["val/active_dims"] == 0
    assert warnings[0].startswith("Enc-5: 6 of 6 ReLU units dead on the validation images")
    assert "--init kaiming" in warnings[0]
    # Before the warm-up an inactive posterior is an untrained encoder, not a collapse: the dead
    # layer warns at once, the posterior only from POSTERIOR_WARMUP_STEPS on.
    assert not any("no active dimension" in w for w in warnings)
    trainer.step = POSTERIOR_WARMUP_STEPS
    _, _, warnings = trainer.diagnose()
    assert any("no active dimension" in w for w in warnings)
    assert histograms["val/kl_per_dimension"].shape == (3,)

    healthy = make_trainer(tmp_path / "healthy", 5, 5, latent_dim=3, init="kaiming")
    scalars, _, warnings = healthy.diagnose()
    assert warnings == [] and scalars["val/dead_fraction/encoder.enc5"] < 1.0
    assert scalars["val/active_dims"] >= 1


def test_a_dead_run_warns_in_its_progress_output_and_logs_the_fractions(tmp_path, monkeypatch):
    trainer = make_trainer(tmp_path, 5, 5, latent_dim=3)
    with torch.no_grad():
        trainer.model.encoder.enc5[0].bias.fill_(-100.0)
    lines = []
    monkeypatch.setattr(type(trainer._progress), "write", lambda self, message: lines.append(message))
    trainer.fit()
    assert any(line.startswith("warning: step 5: Enc-5: 6 of 6 ReLU units dead") for line in lines)
    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0, "histograms": 0})
    events.Reload()
    assert [e.value for e in events.Scalars("val/dead_fraction/encoder.enc5")] == [1.0]
    assert "val/kl_per_dimension" in events.Tags()["histograms"]


def test_gan_runs_log_the_dead_fraction_of_both_networks(tmp_path):
    run = tmp_path / "gan"
    result = run_cli("train", "dcgan", "--dataset", "digits", "--steps", "4", "--saving-steps", "4",
                     "--fid-samples", "0", "--run-dir", run)
    assert result.returncode == 0, result.stderr
    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    tags = set(events.Tags()["scalars"])
    # G's ReLU layers are counted (D's LeakyReLUs pass gradients below 0: not counted); no
    # posterior, so no active dimensions.
    assert {"val/dead_fraction/generator.g1", "val/dead_fraction/generator.g3"} <= tags
    assert "val/active_dims" not in tags
