"""The homework's DCGAN: the tables, the initialisation, the two phases and their losses."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from conftest import (SHARED_MNIST, layer_output_shapes, needs_inception, needs_shared_mnist,
                      run_cli)
from genlab.errors import GenlabError
from genlab.losses import discriminator_fake_loss, discriminator_real_loss, generator_loss
from genlab.models.base import Step
from genlab.models.noise import WHOLE
from genlab.models.dcgan import DCGAN, DCGANConfig
from genlab.run import default_run_dir, new_config
from test_trainer import make_trainer


def build(hidden_g: int = 16, hidden_d: int = 16, latent: int = 100, **config) -> DCGAN:
    torch.manual_seed(0)
    return DCGAN(DCGANConfig(latent_dim=latent, generator_hidden_dim=hidden_g,
                             discriminator_hidden_dim=hidden_d, **config), (1, 32, 32))


@pytest.mark.parametrize("h", [8, 16, 32])
def test_layers_match_the_homework_tables(h):
    model = build(h, h)
    g, d = model.generator, model.discriminator
    z = torch.randn(5, 100, 1, 1)
    assert layer_output_shapes(g, z) == {"g1": (4 * h, 4, 4), "g2": (2 * h, 8, 8),
                                         "g3": (h, 16, 16), "g4": (1, 32, 32)}
    assert layer_output_shapes(d, torch.randn(5, 1, 32, 32)) == {
        "d1": (h, 16, 16), "d2": (2 * h, 8, 8), "d3": (4 * h, 4, 4), "d4": (1, 1, 1),
        "sigmoid": (1, 1, 1)}
    # Kernel, stride, padding per row of the tables.
    for name, stride, padding in [("g1", 1, 0), ("g2", 2, 1), ("g3", 2, 1), ("g4", 2, 1)]:
        conv = getattr(g, name)[0]
        assert isinstance(conv, nn.ConvTranspose2d)
        assert (conv.kernel_size, conv.stride, conv.padding) == ((4, 4), (stride,) * 2, (padding,) * 2)
    for name, stride, padding in [("d1", 2, 1), ("d2", 2, 1), ("d3", 2, 1)]:
        conv = getattr(d, name)[0]
        assert (conv.kernel_size, conv.stride, conv.padding) == ((4, 4), (stride,) * 2, (padding,) * 2)
    assert (d.d4.kernel_size, d.d4.stride, d.d4.padding) == ((4, 4), (1, 1), (0, 0))
    # Activations and BatchNorm where the tables put them.
    assert [type(m).__name__ for m in g.g1] == ["ConvTranspose2d", "BatchNorm2d", "ReLU"]
    assert [type(m).__name__ for m in g.g4] == ["ConvTranspose2d", "Tanh"]
    assert [type(m).__name__ for m in d.d1] == ["Conv2d", "LeakyReLU"]
    assert [type(m).__name__ for m in d.d2] == ["Conv2d", "BatchNorm2d", "LeakyReLU"]
    assert all(m.negative_slope == 0.2 for m in d.modules() if isinstance(m, nn.LeakyReLU))
    assert isinstance(d.sigmoid, nn.Sigmoid)
    # No biases in the discriminator's convolutions.
    assert all(m.bias is None for m in d.modules() if isinstance(m, nn.Conv2d))
    # One probability per image, and G's images in [-1, 1].
    p = model.discriminate(torch.randn(5, 1, 32, 32))
    assert p.shape == (5,) and ((p > 0) & (p < 1)).all()
    images = model.decode(torch.randn(5, 100))
    assert images.shape == (5, 1, 32, 32) and images.abs().max() <= 1


def test_initialisation_follows_the_dcgan_paper():
    model = build(32, 32)
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(convs) == 8 and len(norms) == 5
    weights = torch.cat([m.weight.flatten() for m in convs])
    assert abs(weights.mean().item()) < 1e-3
    assert weights.std().item() == pytest.approx(0.02, rel=0.02)
    scales = torch.cat([m.weight for m in norms])  # 2 * (128 + 64) + 32 + 64 + 128 values
    assert scales.mean().item() == pytest.approx(1.0, abs=0.005)
    assert scales.std().item() == pytest.approx(0.02, rel=0.25)
    assert all(torch.equal(m.bias, torch.zeros_like(m.bias)) for m in norms)
    # The default init (Kaiming uniform, std ~ 1/sqrt(fan_in)) would be far from 0.02 for the
    # first generator layer: its std is a sign the DCGAN init ran on every conv.
    assert all(m.weight.std().item() < 0.03 for m in convs)


def test_loss_formulas_and_gradients_on_a_hand_checked_case():
    # Logits 0 and ln 3: D = 1/2 and 3/4.
    logits = torch.tensor([0.0, math.log(3.0)], requires_grad=True)
    d = torch.tensor([0.5, 0.75])
    assert torch.allclose(discriminator_real_loss(logits), -torch.log(d))
    assert torch.allclose(discriminator_fake_loss(logits), -torch.log(1 - d))

    # Non-saturating: mean of -log D. d/dl = -(1 - D) / B = [-1/4, -1/8].
    (grad,) = torch.autograd.grad(generator_loss(logits, "nonsaturating").mean(), logits)
    assert torch.allclose(grad, torch.tensor([-0.25, -0.125]))
    # Saturating: mean of log(1 - D). d/dl = -D / B = [-1/4, -3/8].
    (grad,) = torch.autograd.grad(generator_loss(logits, "saturating").mean(), logits)
    assert torch.allclose(grad, torch.tensor([-0.25, -0.375]))
    assert torch.allclose(generator_loss(logits, "saturating"), torch.log(1 - d))

    # With respect to D itself: -1/D (non-saturating) vs -1/(1 - D) (saturating), per image.
    probability = d.clone().requires_grad_(True)

    def grad_by_probability(kind: str) -> torch.Tensor:
        as_logits = torch.log(probability) - torch.log1p(-probability)
        return torch.autograd.grad(generator_loss(as_logits, kind).sum(), probability)[0]

    grad_ns, grad_s = grad_by_probability("nonsaturating"), grad_by_probability("saturating")
    assert torch.allclose(grad_ns, torch.tensor([-2.0, -4.0 / 3.0]))
    assert torch.allclose(grad_s, torch.tensor([-2.0, -4.0]))

    # Where D confidently rejects a sample (D = 1e-6) the saturating gradient vanishes and the
    # log-D trick's does not: the reason the homework trains with the trick.
    rejected = torch.tensor([math.log(1e-6)], requires_grad=True)
    (grad_s,) = torch.autograd.grad(generator_loss(rejected, "saturating").sum(), rejected)
    (grad_ns,) = torch.autograd.grad(generator_loss(rejected, "nonsaturating").sum(), rejected)
    assert abs(grad_s.item()) < 2e-6 and grad_ns.item() == pytest.approx(-1.0, abs=1e-5)

    # Finite where sigmoid rounds to exactly 0 or 1 in float32.
    extreme = torch.tensor([-200.0, 200.0])
    for values in (discriminator_real_loss(extreme), discriminator_fake_loss(extreme),
                   generator_loss(extreme, "nonsaturating"), generator_loss(extreme, "saturating")):
        assert torch.isfinite(values).all()


@pytest.mark.parametrize("kind", ["nonsaturating", "saturating"])
def test_model_losses_are_batch_means_of_the_formulas(kind):
    model = build(8, 8, latent=10, generator_loss=kind).train()
    x = torch.rand(6, 1, 32, 32) * 2 - 1
    step = Step(0, WHOLE, model.draw_step(6, WHOLE, torch.device("cpu")))
    z = step.draws["z"]
    d_out = model.discriminator_losses(x, step)
    g_out = model.generator_losses(x, step)
    with torch.no_grad():
        d_real = model.discriminate(x)
        d_fake = model.discriminate(model.decode(z))
    expected_d = -torch.log(d_real).mean() - torch.log(1 - d_fake).mean()
    assert d_out["discriminator_loss"].item() == pytest.approx(expected_d.item(), rel=1e-5)
    assert d_out["D(x)"].item() == pytest.approx(d_real.mean().item(), rel=1e-5)
    assert d_out["D(G(z1))"].item() == pytest.approx(d_fake.mean().item(), rel=1e-5)
    expected_g = (-torch.log(d_fake) if kind == "nonsaturating" else torch.log(1 - d_fake)).mean()
    assert g_out["generator_loss"].item() == pytest.approx(expected_g.item(), rel=1e-5)
    # No optimiser step in between: the generator phase scored the very same images.
    assert g_out["D(G(z2))"].item() == pytest.approx(d_fake.mean().item(), rel=1e-5)


def _parameters(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def _changed(before: dict[str, torch.Tensor], module: nn.Module) -> set[bool]:
    return {not torch.equal(before[name], p) for name, p in module.named_parameters()}


def test_discriminator_step_changes_only_d_and_generator_step_only_g(tmp_path):
    trainer = make_trainer(tmp_path, 5, 5, model="dcgan")
    model = trainer.model
    d_phase, g_phase = trainer.phases
    batch = trainer._batch(trainer.train_set.images[:64])
    model.train()

    g_before, d_before = _parameters(model.generator), _parameters(model.discriminator)
    g_stats = {k: v.clone() for k, v in model.generator.state_dict().items()}
    step = trainer.new_step(len(batch))
    trainer.run_phase(d_phase, batch, step)
    assert _changed(d_before, model.discriminator) == {True}   # every D parameter moved
    assert _changed(g_before, model.generator) == {False}      # no G parameter did
    assert all(p.grad is None for p in model.generator.parameters())
    # G(z) is computed once a step, in this phase: G's BatchNorm statistics counted it once.
    assert all(not torch.equal(v, model.generator.state_dict()[k])
               for k, v in g_stats.items() if "running" in k)
    assert step.handoff["fake"].requires_grad  # its graph kept for the generator phase

    g_before, d_before = _parameters(model.generator), _parameters(model.discriminator)
    g_stats = {k: v.clone() for k, v in model.generator.state_dict().items()}
    trainer.optimizers["discriminator"].zero_grad(set_to_none=True)  # the D phase's are left
    trainer.run_phase(g_phase, batch, step)
    assert _changed(g_before, model.generator) == {True}
    assert _changed(d_before, model.discriminator) == {False}
    assert all(p.grad is None for p in model.discriminator.parameters())
    # ...and the generator phase did not run G again.
    assert all(torch.equal(v, model.generator.state_dict()[k])
               for k, v in g_stats.items() if "running" in k or "num_batches" in k)
    # The generator phase consumed the discriminator phase's G(z): it never makes its own.
    with pytest.raises(RuntimeError, match="discriminator phase"):
        trainer.run_phase(g_phase, batch, step)


def test_generator_phase_scores_the_discriminator_phases_images_after_its_step(tmp_path):
    trainer = make_trainer(tmp_path, 5, 5, model="dcgan")
    model = trainer.model
    # With D frozen (lr 0) D(G(z2)) must equal D(G(z1)): same z, same G, same D.
    trainer.optimizers["discriminator"].param_groups[0]["lr"] = 0.0
    losses = trainer.train_step()
    assert losses["D(G(z2))"].item() == pytest.approx(losses["D(G(z1))"].item(), rel=1e-5)
    # With D learning, the discriminator step pushes D(G(z)) down for the same images.
    trainer.optimizers["discriminator"].param_groups[0]["lr"] = 2e-4
    losses = trainer.train_step()
    assert losses["D(G(z2))"].item() < losses["D(G(z1))"].item()
    # G's BatchNorm statistics counted each step's batch once; D's saw real, fake, fake.
    g_norms = [m for m in model.generator.modules() if isinstance(m, nn.BatchNorm2d)]
    d_norms = [m for m in model.discriminator.modules() if isinstance(m, nn.BatchNorm2d)]
    assert {int(m.num_batches_tracked) for m in g_norms} == {2}
    assert {int(m.num_batches_tracked) for m in d_norms} == {6}


def test_run_folder_names_tell_hidden_sizes_and_loss_apart():
    def name(**settings):
        return default_run_dir(new_config("dcgan", {"train_split": "test", **settings})).name

    assert name() == "dcgan-mnist-test-z100-b64-s25000"
    assert name(generator_hidden_dim=8, discriminator_hidden_dim=8) == \
        "dcgan-mnist-test-z100-g8-d8-b64-s25000"
    assert name(generator_loss="saturating") == "dcgan-mnist-test-z100-saturating-b64-s25000"
    assert name(diff_augment="translation,cutout") == \
        "dcgan-mnist-test-z100-aug-translation-cutout-b64-s25000"
    assert name(arch="dcgan64") == "dcgan-dcgan64-mnist-test-z100-b64-s25000"
    assert name(arch="dcgan64", generator_hidden_dim=16) == \
        "dcgan-dcgan64-mnist-test-z100-g16-b64-s25000"


@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan64_is_the_dcgan_papers_64x64_networks(channels):
    model = DCGAN(DCGANConfig(arch="dcgan64"), (channels, 64, 64))
    assert (model.config.generator_hidden_dim, model.config.discriminator_hidden_dim) == (64, 64)
    assert layer_output_shapes(model.generator, torch.randn(2, 100, 1, 1)) == {
        "g1": (512, 4, 4), "g2": (256, 8, 8), "g3": (128, 16, 16), "g4": (64, 32, 32),
        "g5": (channels, 64, 64)}
    assert layer_output_shapes(model.discriminator, torch.randn(2, channels, 64, 64)) == {
        "d1": (64, 32, 32), "d2": (128, 16, 16), "d3": (256, 8, 8), "d4": (512, 4, 4),
        "d5": (1, 1, 1), "sigmoid": (1, 1, 1)}
    # pytorch/examples' dcgan (ngf = ndf = 64, nz = 100, no biases): 3,576,704 and 2,765,568
    # parameters for 3 channels; each channel fewer removes one 4x4 kernel per 64 maps.
    assert sum(p.numel() for p in model.generator.parameters()) == 3_576_704 - (3 - channels) * 64 * 16
    assert sum(p.numel() for p in model.discriminator.parameters()) == \
        2_765_568 - (3 - channels) * 64 * 16
    assert isinstance(model.discriminator.d1[1], torch.nn.LeakyReLU)  # no BatchNorm on D's input
    assert all(isinstance(getattr(model.discriminator, f"d{i}")[1], torch.nn.BatchNorm2d) for i in (2, 3, 4))
    with pytest.raises(GenlabError, match="--arch dcgan64 makes 64x64 images.*--image-size 64"):
        DCGAN(DCGANConfig(arch="dcgan64"), (1, 32, 32))


def test_wrong_image_size_is_refused_in_one_sentence(tmp_path):
    result = run_cli("train", "dcgan", "--dataset", "digits", "--image-size", "28",
                     "--run-dir", tmp_path / "run", "--fid-samples", "0")
    assert result.returncode == 2
    assert "32x32" in result.stderr and "--image-size 32" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


@needs_shared_mnist
def test_homework_command_logs_five_curves_samples_and_sample_works(tmp_path):
    run = tmp_path / "run"
    result = run_cli("train", "dcgan", "--dataset", "mnist", "--data-dir", SHARED_MNIST,
                     "--train-split", "test", "--run-dir", run, "--steps", "40",
                     "--saving-steps", "20", "--generator-loss", "saturating",
                     "--fid-samples", "0")
    assert result.returncode == 0, result.stderr
    config = json.loads((run / "config.json").read_text())
    assert config["model_config"] == {"arch": "homework", "latent_dim": 100,
                                      "generator_hidden_dim": 16,
                                      "discriminator_hidden_dim": 16,
                                      "generator_loss": "saturating", "diff_augment": "none"}
    assert (config["train"]["batch_size"], config["train"]["learning_rate"]) == (64, 2e-4)

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run))
    events.Reload()
    curves = {"train/discriminator_loss", "train/generator_loss", "train/D(x)",
              "train/D(G(z1))", "train/D(G(z2))"}
    assert curves <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("train/D(x)")] == [10, 20, 30, 40]
    assert [e.step for e in events.Images("images/samples")] == [0, 20, 40]
    assert (run / "checkpoints" / "step-00000040-samples.png").is_file()

    out = tmp_path / "grid.png"
    result = run_cli("sample", run, "-n", "16", "-o", out)
    assert result.returncode == 0, result.stderr
    from PIL import Image

    with Image.open(out) as grid:
        assert grid.size == (2 + 8 * 34, 2 + 2 * 34)


@needs_inception
def test_eval_scores_a_dcgan_run_on_images_mapped_from_minus_one_one(tmp_path):
    run = tmp_path / "run"
    result = run_cli("train", "dcgan", "--dataset", "digits", "--run-dir", run, "--steps", "10",
                     "--fid-samples", "0")
    assert result.returncode == 0, result.stderr
    result = run_cli("eval", run, "--fid-samples", "40", "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["step"] == 10 and record["model"] == "dcgan"
    # Ten steps of a GAN make noise: far from the digits, but a finite, positive distance.
    assert math.isfinite(record["fid"]) and record["fid"] > 50
    stored = (run / "checkpoints" / "step-00000010-metrics.jsonl").read_text().splitlines()
    assert json.loads(stored[-1])["fid"] == record["fid"]


def test_translation_shifts_each_image_by_at_most_an_eighth_with_zero_padding():
    from genlab.models.augment import translate

    torch.manual_seed(0)
    x = torch.zeros(200, 1, 32, 32)
    x[:, 0, 16, 16] = 1.0  # one lit pixel per image
    shifted = translate(x)
    found = (shifted[:, 0] == 1).nonzero()  # (image, row, col) of each lit pixel
    assert len(found) == 200 and torch.equal(found[:, 0], torch.arange(200))
    offsets = found[:, 1:] - 16
    assert offsets.abs().max() == 4 and {int(o) for o in offsets.flatten()} == set(range(-4, 5))
    assert shifted.sum() == 200  # nothing else lit, nothing lost
    # A full image shifted sideways by k shows k zero columns: every k in 0..4 occurs, no more.
    ones = translate(torch.ones(200, 1, 32, 32))
    blank_columns = (ones[:, 0] == 0).all(1).sum(1)
    assert set(blank_columns.tolist()) == set(range(5))


def test_cutout_zeroes_one_half_size_square_and_both_pass_gradients():
    from genlab.models.augment import cutout, diff_augment

    torch.manual_seed(0)
    x = torch.ones(300, 1, 32, 32, requires_grad=True)
    out = cutout(x)
    zeros = (out[:, 0] == 0)
    counts = zeros.flatten(1).sum(1)
    assert counts.max() == 16 * 16 and counts.min() >= 8 * 8  # cut by the border at worst
    rows, cols = zeros.any(2).sum(1), zeros.any(1).sum(1)
    assert torch.equal(counts, rows * cols)  # one rectangle per image
    # Differentiable: G's gradient reaches every pixel the augmentation keeps.
    augmented = diff_augment(x, "translation,cutout")
    (grad,) = torch.autograd.grad(augmented.sum(), x)
    assert grad.sum() == augmented.sum() and set(grad.unique().tolist()) <= {0.0, 1.0}
    assert diff_augment(x, "none") is x


def test_diff_augment_feeds_d_augmented_real_and_generated_images(monkeypatch):
    import genlab.models.dcgan as dcgan

    seen = []
    monkeypatch.setattr(dcgan, "diff_augment",
                        lambda x, policy, shard: seen.append((policy, x.shape)) or x.flip(3))
    model = build(8, 8, latent=10, diff_augment="translation,cutout").train()
    x = torch.rand(6, 1, 32, 32) * 2 - 1
    step = Step(0, WHOLE, model.draw_step(6, WHOLE, torch.device("cpu")))
    model.discriminator_losses(x, step)
    model.generator_losses(x, step)
    assert seen == [("translation,cutout", (6, 1, 32, 32))] * 3  # real, fake; fake again
    # Diagnostics and sampling never augment.
    model.discriminate(x)
    model.decode(torch.randn(2, 10))
    assert len(seen) == 3


def test_validation_of_a_model_without_validation_losses_stops_after_one_batch(tmp_path):
    trainer = make_trainer(tmp_path, 5, 5, model="dcgan")
    seen = []
    original = trainer._batch
    trainer._batch = lambda images: seen.append(len(images)) or original(images)
    assert trainer.validate() == {}
    assert seen == [min(500, len(trainer.val_set))]  # one batch, not the whole split
