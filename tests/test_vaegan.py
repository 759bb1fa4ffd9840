"""The VAE/GAN of Larsen et al. 2015: its similarity layer, the signs and scales of its losses,
that its one forward pass a step gives each network exactly Algorithm 1's gradient and nothing
else, and that `genlab train vaegan` trains, resumes exactly and writes its grids on HDF5 files
and JPEG folders."""

from __future__ import annotations

import copy

import h5py
import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import layer_output_shapes, run_cli
from genlab.config import DataConfig, RunConfig, TrainConfig
from genlab.errors import GenlabError
from genlab.losses import gaussian_kl
from genlab.models.base import Step, frozen_batchnorm_stats
from genlab.models.noise import WHOLE
from genlab.models.vaegan import VAEGAN, VAEGANConfig
from genlab.run import config_from_dict, load_config
from genlab.checkpoint import latest_checkpoint, list_checkpoints
from genlab.train.trainer import Trainer

NETWORKS = ("encoder", "decoder", "discriminator")


# The lab's convolutions with narrow FC layers: the maths under test is the same, and a
# checkpoint is 63 MB instead of 0.72 GB.
SMALL = {"latent_dim": 8, "encoder_hidden_dim": 32, "discriminator_hidden_dim": 32}


def small_vaegan(channels: int = 1, dtype=torch.float64, **config) -> VAEGAN:
    torch.manual_seed(0)
    return VAEGAN(VAEGANConfig(**{**SMALL, **config}), (channels, 64, 64)).to(dtype)


def images(n: int, channels: int = 1, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    """n smooth images in [-1, 1]: 8x8 noise upsampled to 64x64."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(n, channels, 8, 8, generator=g, dtype=dtype) * 2 - 1
    return torch.nn.functional.interpolate(small, size=64, mode="bilinear", align_corners=False)


@pytest.mark.parametrize("layer, shape", [("conv1", (32, 64, 64)), ("conv2", (128, 32, 32)),
                                          ("conv3", (256, 16, 16)), ("conv4", (256, 8, 8)),
                                          ("pixel", (3, 64, 64))])
def test_similarity_features_are_the_chosen_convolution_before_its_batchnorm(layer, shape):
    model = small_vaegan(channels=3, feature_layer=layer)
    x = images(4, channels=3)
    features = model.similarity_features(x)
    # The joint pass (--similarity-pass joint) gives the same features and D's logits at once.
    logits, joint_features = model.logits_and_features(x)
    assert torch.equal(joint_features, features)
    torch.testing.assert_close(logits, model.discriminator_logits(x), rtol=0, atol=0)
    assert tuple(features.shape[1:]) == shape
    if layer == "pixel":
        assert torch.equal(features, x)
        return
    # Run the discriminator by hand up to the layer, then only its convolution.
    h = x
    for name, child in model.discriminator.named_children():
        if name == layer:
            expected = child[0](h)
            break
        h = child(h)
    assert isinstance(child[0], torch.nn.Conv2d)
    assert torch.equal(features, expected)
    # Not the BatchNorm'd / ReLU'd output of the layer (features can be negative).
    assert (features < 0).any()


def test_discriminator_and_decoder_shapes_follow_the_lab_table():
    model = small_vaegan(channels=3, encoder_hidden_dim=2048, discriminator_hidden_dim=1024)
    assert layer_output_shapes(model.discriminator, images(2, 3)) == {
        "conv1": (32, 64, 64), "conv2": (128, 32, 32), "conv3": (256, 16, 16),
        "conv4": (256, 8, 8), "flatten": (16384,), "fc": (1024,), "logit": (1,), "sigmoid": (1,)}
    assert [head[0].out_features for head in (model.encoder.mean, model.encoder.log_sigma)] == \
        [2048, 2048]
    # The widths are the options' (the narrow model the other tests use has 32 and 16).
    narrow = small_vaegan(channels=3, encoder_hidden_dim=32, discriminator_hidden_dim=16)
    assert layer_output_shapes(narrow.discriminator, images(2, 3))["fc"] == (16,)
    assert [head[0].out_features for head in (narrow.encoder.mean, narrow.encoder.log_sigma)] == \
        [32, 32]
    out = model.decode(torch.randn(5, 8, dtype=torch.float64))
    assert out.shape == (5, 3, 64, 64) and out.min() >= -1 and out.max() <= 1  # Tanh
    assert isinstance(model.decoder[-1], torch.nn.Tanh)


def test_other_image_sizes_are_refused_in_one_sentence():
    with pytest.raises(GenlabError, match="64x64 images, but the data is 32x32; use --image-size 64"):
        VAEGAN(VAEGANConfig(latent_dim=8), (1, 32, 32))


# --- signs and scales ------------------------------------------------------------------------

def a_step(model: VAEGAN, n: int, index: int = 0, seed: int = 5) -> Step:
    torch.manual_seed(seed)
    return Step(index, WHOLE, model.draw_step(n, WHOLE, torch.device("cpu")))


def by_hand(model: VAEGAN, x: torch.Tensor, step: Step) -> dict[str, torch.Tensor]:
    """The step's terms computed from the networks one by one, as the paper writes them."""
    n, latent = len(x), model.config.latent_dim
    mu, log_sigma = model.encode(x)
    z = mu + torch.exp(log_sigma) * step.draws["eps"]
    # One batch through the decoder (its BatchNorm normalises posterior and prior together).
    x_tilde, x_prior = model.decode(torch.cat([z, step.draws["z_prior"].to(z.dtype)])).chunk(2)
    kl = 0.5 * (mu**2 + torch.exp(2 * log_sigma) - 2 * log_sigma - 1).sum(1)
    if model.config.similarity_pass == "joint":  # Dis_l from the GAN's batch [x, x~, x_p]
        features = model.similarity_features(torch.cat([x, x_tilde, x_prior]))
    else:  # a batch of its own, [x, x~]
        features = model.similarity_features(torch.cat([x, x_tilde]))
    real, reconstructed = features[:n], features[n:2 * n]
    if model.config.llike_reduction == "mean":  # public reimplementations' reading: nn.MSELoss, KL per dimension
        llike, prior = torch.nn.MSELoss()(reconstructed, real), (kl / latent).mean()
    else:  # the paper's Gaussian log-likelihood: 1/2 the summed squared error, KL in nats
        llike, prior = 0.5 * (real - reconstructed).square().sum((1, 2, 3)).mean(), kl.mean()
    d = model.discriminate(torch.cat([x, x_tilde, x_prior]))  # the Sigmoid network
    d_real, d_tilde, d_prior = d[:n], d[n:2 * n], d[2 * n:]
    if model.config.generator_loss == "nonsaturating":
        gen = -torch.log(d_tilde).mean() - torch.log(d_prior).mean()
    else:
        gen = torch.log(1 - d_tilde).mean() + torch.log(1 - d_prior).mean()
    cfg = model.config
    return {"encoder": cfg.beta * prior + llike, "decoder": cfg.gamma * llike + gen,
            # -L_GAN: cross entropy with x as real, x~ and x_p as generated
            "discriminator": (-torch.log(d_real).mean() - torch.log(1 - d_tilde).mean()
                              - torch.log(1 - d_prior).mean()),
            "kl": kl.mean(), "llike": llike, "prior": prior, "gen": gen,
            "D(x)": d_real.mean(), "D(x_p)": d_prior.mean()}


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("kind", ["nonsaturating", "saturating"])
def test_loss_terms_equal_the_papers_formulas_with_the_right_signs(kind, reduction):
    model = small_vaegan(generator_loss=kind, beta=0.5, gamma=3.0, llike_reduction=reduction)
    x = images(6)
    step = a_step(model, 6)
    out = model.step_losses(x, step)
    with torch.no_grad():
        expected = by_hand(model, x, step)
    torch.testing.assert_close(out["encoder_loss"], expected["encoder"])
    torch.testing.assert_close(out["decoder_loss"], expected["decoder"])
    torch.testing.assert_close(out["discriminator_loss"], expected["discriminator"])
    for name in ("kl", "llike", "D(x)", "D(x_p)"):
        torch.testing.assert_close(out[name], expected[name])
    torch.testing.assert_close(out["generator_loss"], expected["gen"])


def test_gamma_weighs_the_mean_feature_error_and_equals_2_over_features_on_the_sum():
    # gamma 5 on the per-feature mean squared error (nn.MSELoss, the default): on the paper's
    # 1/2-summed error over conv4's 16,384 features the same decoder is gamma 5/8192.
    mean_model = small_vaegan(gamma=5.0)
    assert mean_model.config.llike_reduction == "mean" and mean_model.config.feature_layer == "conv4"
    sum_model = small_vaegan(gamma=5.0 * 2 / 16384, llike_reduction="sum")
    sum_model.load_state_dict(mean_model.state_dict())
    x = images(4, seed=2)
    grads = []
    for model in (mean_model, sum_model):
        out = model.step_losses(x, a_step(model, 4))
        grads.append(torch.autograd.grad(out["decoder_loss"], list(model.decoder.parameters())))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-15)
    # ...and the two L_llike differ by exactly that factor, with the mean one nn.MSELoss's.
    with torch.no_grad():
        mean_llike = mean_model.step_losses(x, a_step(mean_model, 4))["llike"]
        sum_llike = sum_model.step_losses(x, a_step(sum_model, 4))["llike"]
    torch.testing.assert_close(sum_llike, mean_llike * 16384 / 2)


def _sgd(model: VAEGAN, network: str, x: torch.Tensor, step: Step, lr: float) -> None:
    net = getattr(model, network)
    out = model.step_losses(x, step)
    grads = torch.autograd.grad(out[f"{network}_loss"], list(net.parameters()), allow_unused=True)
    with torch.no_grad():
        for p, g in zip(net.parameters(), grads):
            if g is not None:
                p -= lr * g


@pytest.mark.parametrize("kind", ["nonsaturating", "saturating"])
def test_a_decoder_step_raises_D_of_its_images_and_a_discriminator_step_lowers_it(kind):
    # gamma tiny: the decoder's step is its GAN term alone, which must fool D more, for both
    # generator losses; then D's step must tell real and generated further apart.
    # (float32: a direction, not an equality, is tested, and float64 convolutions are 4x slower.)
    model = small_vaegan(dtype=torch.float32, generator_loss=kind, gamma=1e-9)
    x = images(8, dtype=torch.float32)
    step = a_step(model, 8, seed=1)

    def scores():
        with torch.no_grad():
            out = model.step_losses(x, step)
        return out["D(x)"], out["D(x~)"], out["D(x_p)"]

    before = scores()
    _sgd(model, "decoder", x, step, lr=1e-3)
    after_decoder = scores()
    assert after_decoder[1] > before[1] and after_decoder[2] > before[2]
    _sgd(model, "discriminator", x, step, lr=1e-3)
    after_discriminator = scores()
    # (D(x) alone may move either way: BatchNorm normalises the three kinds of image together.)
    assert after_discriminator[1] < after_decoder[1] and after_discriminator[2] < after_decoder[2]
    for fake in (1, 2):
        assert (after_discriminator[0] - after_discriminator[fake]
                > after_decoder[0] - after_decoder[fake])


# --- gradient routing: one forward pass, Algorithm 1's three gradients ------------------------

def algorithm1_gradients(model: VAEGAN, x: torch.Tensor, step: Step) -> dict[str, list]:
    """Each network's gradient as Algorithm 1 computes it: at the step's starting parameters,
    each network differentiating its own loss, computed here network by network (`by_hand`)."""
    model = copy.deepcopy(model)
    losses = by_hand(model, x, step)
    return {net: torch.autograd.grad(losses[net], list(getattr(model, net).parameters()),
                                     retain_graph=True, allow_unused=True)
            for net in NETWORKS}


def double_precision_trainer(tmp_path, model: VAEGAN, **train) -> Trainer:
    from genlab.data.memory import ImageSet

    data = ImageSet(torch.zeros(8, 1, 64, 64, dtype=torch.uint8), None, "t", "train", "test")
    config = RunConfig(model="vaegan", model_config=model.config, data=DataConfig(),
                       train=TrainConfig(**{**VAEGAN.train_defaults, **train}),
                       image_shape=(1, 64, 64))
    return Trainer(config, tmp_path, model, data, data, torch.device("cpu"))


@pytest.mark.parametrize("reduction, similarity", [("mean", "separate"), ("sum", "joint")])
def test_one_pass_gives_each_network_exactly_algorithm1s_gradient_and_counts_batchnorm_once(
        tmp_path, reduction, similarity):
    model = small_vaegan(beta=0.7, gamma=5.0, llike_reduction=reduction,
                         similarity_pass=similarity)
    x = images(4, seed=3)
    trainer = double_precision_trainer(tmp_path, model)
    (phase,) = trainer.phases  # one forward pass a step
    step = a_step(model, 4, seed=11)
    expected = algorithm1_gradients(model, x, step)
    before = {net: {k: v.clone() for k, v in getattr(model, net).state_dict().items()}
              for net in NETWORKS}
    trainer.run_phase(phase, x, step)
    for net in NETWORKS:
        now = getattr(model, net).state_dict()
        # its weights moved, and each of its BatchNorm layers counted the batch exactly once
        assert any(k.endswith("weight") and not torch.equal(v, before[net][k])
                   for k, v in now.items()), net
        counts = {int(v - before[net][k]) for k, v in now.items() if k.endswith("num_batches_tracked")}
        assert counts == {1}, (net, counts)
        # Each network's gradient is its own loss's and no other's: the decoder's would differ
        # by the encoder's L_llike share if it leaked in, the encoder's by the GAN term.
        scale = max(e.abs().max().item() for e in expected[net] if e is not None)
        for (name, p), e in zip(getattr(model, net).named_parameters(), expected[net]):
            if e is None:
                assert p.grad is None or not p.grad.any(), (net, name)
            else:
                # Biases before a BatchNorm have a true gradient of 0: compare those to rounding
                # noise on the scale of the network's gradients.
                torch.testing.assert_close(p.grad, e, rtol=1e-6, atol=1e-10 * scale,
                                           msg=f"{net}.{name}")


@pytest.mark.parametrize("similarity, images_seen", [("separate", 20), ("joint", 12)])
def test_a_step_decodes_2b_latents_and_discriminates_5b_images(tmp_path, similarity, images_seen):
    model = small_vaegan(dtype=torch.float32, similarity_pass=similarity)
    trainer = double_precision_trainer(tmp_path, model, batch_size=4)
    seen = {"encoder": 0, "decoder": 0, "discriminator": 0}

    def count(name):
        return lambda module, inputs, output: seen.__setitem__(name, seen[name] + len(inputs[0]))

    model.encoder.features.conv1.register_forward_hook(count("encoder"))
    model.decoder.fc.register_forward_hook(count("decoder"))
    model.discriminator.conv1.register_forward_hook(count("discriminator"))
    trainer.train_step()
    # x once; [z, z_p] once; [x, x~, x_p] once and, unless joint, [x, x~] for the similarity.
    assert seen == {"encoder": 4, "decoder": 8, "discriminator": images_seen}


def test_a_shrunken_posterior_is_not_rescaled_by_the_decoders_batchnorm():
    # Decoded alone in training mode, z and z / 2 give the same images (BatchNorm after the
    # FC layer undoes the scale), so shrinking z would lower the KL term for free; decoded beside
    # prior draws, as the VAE/GAN's phases do, the shrunken batch decodes differently.
    model = small_vaegan()
    model.train()
    z = torch.randn(16, 8, dtype=torch.float64)
    z_prior = torch.randn(16, 8, dtype=torch.float64)
    with frozen_batchnorm_stats(model.decoder), torch.no_grad():
        alone = (model.decode(z) - model.decode(z / 2)).abs().max()
        together = (model.decode_with_prior(z, z_prior)[0]
                    - model.decode_with_prior(z / 2, z_prior)[0]).abs().max()
    assert alone < 1e-3 and together > 0.05, (alone, together)


@pytest.mark.parametrize("real, fake, decoder, discriminator", [
    (0.68, 0.68, True, True),
    (0.20, 0.70, True, False),   # D already sure of the real images: D rests
    (0.70, 0.30, True, False),   # ... or of the generated ones
    (1.10, 0.70, False, True),   # D is losing: the decoder rests
    (0.70, 1.20, False, True),
    (0.20, 1.20, True, True),    # both would rest: both train (the authors' rule)
])
def test_the_equilibrium_rule_rests_the_network_that_is_ahead(real, fake, decoder, discriminator):
    model = small_vaegan(equilibrium_margin=0.35)
    assert model.equilibrium_updates(real, fake) == (decoder, discriminator)


@pytest.mark.parametrize("equilibrium, margin, rests", [(3.0, 2.0, "discriminator"),
                                                        (0.2, 0.1, "decoder")])
def test_a_resting_network_keeps_its_weights_and_the_step_logs_it(tmp_path, equilibrium, margin,
                                                                  rests):
    # Fresh networks have cross entropies near 0.69: below 3 - 2 = 1 (D rests), or above
    # 0.2 + 0.1 (the decoder rests).
    model = small_vaegan(equilibrium=equilibrium, equilibrium_margin=margin)
    trainer = double_precision_trainer(tmp_path, model)
    x = images(4, seed=5)
    before = {net: copy.deepcopy(getattr(model, net).state_dict()) for net in NETWORKS}
    (phase,) = trainer.phases
    losses = trainer.run_phase(phase, x, trainer.new_step(4))
    assert 0.3 < losses["real_cross_entropy"] < 1 and 0.3 < losses["fake_cross_entropy"] < 1
    for net in NETWORKS:
        changed = [k for k, v in getattr(model, net).state_dict().items()
                   if k.endswith("weight") and not torch.equal(v, before[net][k])]
        assert bool(changed) == (net != rests), net
    assert losses[f"{rests}_updated"] == 0
    other = ({"decoder", "discriminator"} - {rests}).pop()
    assert losses[f"{other}_updated"] == 1
    assert all(p.grad is None for p in getattr(model, rests).parameters())  # no backward either
    # The rule read the logits of the step's one pass: the discriminator's own loss.
    torch.testing.assert_close(losses["discriminator_loss"], losses["real_cross_entropy"]
                               + 2 * losses["fake_cross_entropy"], rtol=1e-12, atol=0)


def test_kl_warmup_ramps_the_prior_weight_with_the_trainers_step(tmp_path):
    model = small_vaegan(beta=2.0, beta_warmup_steps=4)
    x = images(2, seed=7)
    for index, weight in enumerate([0.5, 1.0, 1.5, 2.0, 2.0]):
        losses = model.step_losses(x, a_step(model, 2, index=index))
        assert losses["prior_weight"] == weight
        torch.testing.assert_close(losses["encoder_loss"],
                                   weight * losses["prior"] + losses["llike"])
    # The trainer hands the model its step, a resumed one too: here from step 2 on.
    model = small_vaegan(dtype=torch.float32, beta=2.0, beta_warmup_steps=4)
    trainer = double_precision_trainer(tmp_path, model, batch_size=2)  # a float32 batch here
    trainer.step = 2
    assert float(trainer.train_step()["prior_weight"]) == 1.5 and trainer.step == 3
    # Without a warm-up the weight is beta from the first step and is not logged.
    plain = small_vaegan(beta=2.0)
    assert plain.prior_weight(0) == 2.0 and "prior_weight" not in plain.step_losses(x, a_step(plain, 2))


@pytest.mark.parametrize("head", ["log-var", "log-sigma"])
def test_max_log_sigma_bounds_the_posterior_and_keeps_its_gradient(head):
    # An outlier image whose spread head runs away (here: log sigma ~ 6, sigma ~ 400) would put
    # latents in the hundreds into the decoder; with --max-log-sigma 0 the forward pass sees
    # sigma <= 1, and the head still gets its gradient (not a dead clamp).
    x = images(4, seed=3)
    bounded = small_vaegan(max_log_sigma=0.0, posterior_head=head)
    loose = small_vaegan(posterior_head=head)
    for model in (bounded, loose):
        with torch.no_grad():  # the lab's head outputs log sigma^2: twice log sigma
            model.encoder.log_sigma[-1].bias.fill_(12.0 if head == "log-var" else 6.0)
    raw = loose.encode(x)[1]
    assert raw.min() > 3  # the unbounded posterior is far wider than the prior
    mu, log_sigma = bounded.encode(x)
    assert log_sigma.max() == 0.0
    torch.testing.assert_close(gaussian_kl(mu, log_sigma), 0.5 * mu.square().sum(1))
    step = a_step(bounded, 4)
    bounded.step_losses(x, step)["encoder_loss"].backward()
    assert bounded.encoder.log_sigma[-1].bias.grad.abs().sum() > 0
    assert loose.step_losses(x, step)["kl"] > 100 * bounded.step_losses(x, step)["kl"]
    with pytest.raises(GenlabError, match="--max-log-sigma 50 is above 20"):
        small_vaegan(max_log_sigma=50.0)


def test_a_config_stored_before_the_reduction_and_head_existed_keeps_its_maths():
    stored = RunConfig(model="vaegan", model_config=VAEGANConfig(), data=DataConfig(),
                       train=TrainConfig(), image_shape=(3, 64, 64)).to_dict()
    for key in ("llike_reduction", "posterior_head"):
        del stored["model_config"][key]
    old = config_from_dict(stored).model_config
    assert (old.llike_reduction, old.posterior_head) == ("sum", "log-sigma")
    assert (VAEGANConfig().llike_reduction, VAEGANConfig().posterior_head) == ("mean", "log-var")


# --- the command ----------------------------------------------------------------------------

def write_h5(path, n: int = 12, channels: int = 3):
    x = (images(n, channels, seed=4, dtype=torch.float32) + 1) * 127.5
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=x.round().to(torch.uint8).numpy())
    return path


TRAIN = ["--latent-dim", "8", "--encoder-hidden-dim", "32", "--discriminator-hidden-dim", "32",
         "--batch-size", "4", "--logging-steps", "1", "--saving-steps", "1",
         "--fid-samples", "0"]


def test_train_on_hdf5_writes_every_curve_and_grid(tmp_path):
    # (Exact resume of the VAE/GAN: tests/test_contract.py and tests/test_celeba.py.)
    data = write_h5(tmp_path / "celeba.h5")
    straight = tmp_path / "straight"
    # Two steps, a checkpoint after each (the VAE/GAN's 132M weights make every one ~0.7 GB).
    result = run_cli("train", "vaegan", "--data", data, *TRAIN, "--steps", "2",
                     "--run-dir", straight)
    assert result.returncode == 0, result.stderr
    events = EventAccumulator(str(straight), size_guidance={"images": 0})
    events.Reload()
    tags = events.Tags()
    for term in ("encoder_loss", "prior", "kl", "llike", "decoder_loss", "generator_loss",
                 "discriminator_loss", "D(x)", "D(x~)", "D(x_p)"):
        assert [e.step for e in events.Scalars(f"train/{term}")] == [1, 2], term
    assert {"val/kl", "val/llike", "val/pixel_squared_error", "val/active_dims",
            "val/dead_fraction/encoder.features.conv1", "val/dead_fraction/decoder.fc",
            "val/dead_fraction/discriminator.conv4"} <= set(tags["scalars"])
    for grid in ("val", "reconstructions", "samples"):
        assert [e.step for e in events.Images(f"images/{grid}")] == [0, 1, 2], grid
        png = straight / "checkpoints" / f"step-00000002-{grid}.png"
        assert Image.open(png).size[0] > 64 * 4  # a grid of 64x64 images
    config = load_config(straight / "config.json")
    assert config.model == "vaegan" and config.image_shape == (3, 64, 64)
    assert config.model_config.generator_loss == "nonsaturating"
    assert config.model_config.feature_layer == "conv4"


def test_train_on_a_folder_of_jpegs_and_the_steps_of_epochs(tmp_path):
    folder = tmp_path / "faces"
    folder.mkdir()
    for i, img in enumerate(images(10, 3, seed=6, dtype=torch.float32)):
        pixels = ((img.permute(1, 2, 0) + 1) * 127.5).round().to(torch.uint8).numpy()
        Image.fromarray(np.ascontiguousarray(pixels)).resize((90, 110)).save(folder / f"{i}.jpg")
    run = tmp_path / "run"
    # 10 images, batch 4, 0.8 epochs: ceil(8 / 4) = 2 steps.
    result = run_cli("train", "vaegan", "--data", folder, *TRAIN, "--saving-steps", "2",
                     "--epochs", "0.8",
                     "--channels", "1", "--run-dir", run)
    assert result.returncode == 0, result.stderr
    assert "0.8 epochs of 10 images at batch 4 = 2 steps" in result.stderr
    assert [s for s, _ in list_checkpoints(run)] == [2]
    assert load_config(run / "config.json").image_shape == (1, 64, 64)
    both = run_cli("train", "vaegan", "--data", folder, "--epochs", "1", "--steps", "3",
                   "--run-dir", tmp_path / "other")
    assert both.returncode == 2 and "pass one of them" in both.stderr


def test_run_folder_names_and_the_labs_defaults():
    from genlab.run import default_run_dir, new_config

    def config(**settings):
        return new_config("vaegan", {"data_path": "/data/celeba.h5", **settings})

    default = config()
    assert (default.train.batch_size, default.train.learning_rate, default.train.epochs) == \
        (64, 3e-4, 100.0)
    assert default.model_config == VAEGANConfig(latent_dim=2048, feature_layer="conv4", beta=1.0,
                                                gamma=5.0, generator_loss="nonsaturating",
                                                optimizer="rmsprop", equilibrium_margin=0.0,
                                                equilibrium=0.68, discriminator_lr_scale=1.0,
                                                beta_warmup_steps=0, max_log_sigma=20.0,
                                                llike_reduction="mean", posterior_head="log-var",
                                                encoder_hidden_dim=2048,
                                                discriminator_hidden_dim=1024)
    assert default_run_dir(default).name == "vaegan-celeba-z2048-b64-e100"
    assert default_run_dir(config(encoder_hidden_dim=32, discriminator_hidden_dim=32)).name == \
        "vaegan-celeba-z2048-eh32-dh32-b64-e100"
    steps = config(num_training_steps=300)  # --steps replaces the default epochs
    assert steps.train.epochs is None and default_run_dir(steps).name == "vaegan-celeba-z2048-b64-s300"
    assert default_run_dir(config(feature_layer="pixel", gamma=10.0, generator_loss="saturating",
                                  optimizer="adam")).name == \
        "vaegan-celeba-z2048-lpixel-gamma10-saturating-adam-b64-e100"
    assert default_run_dir(config(equilibrium_margin=0.35, equilibrium=0.7)).name == \
        "vaegan-celeba-z2048-margin0.35-eq0.7-b64-e100"
    assert default_run_dir(config(discriminator_lr_scale=0.1, beta_warmup_steps=50)).name == \
        "vaegan-celeba-z2048-betawarmup50-dlr0.1-b64-e100"
    assert default_run_dir(config(max_log_sigma=0.0)).name == "vaegan-celeba-z2048-maxls0-b64-e100"


@pytest.mark.parametrize("optimizer", ["rmsprop", "adam"])
def test_the_discriminator_learns_at_its_own_rate(tmp_path, optimizer):
    model = small_vaegan(optimizer=optimizer, discriminator_lr_scale=0.1)
    trainer = double_precision_trainer(tmp_path, model, learning_rate=3e-4, warmup_steps=4)

    def rates():
        return {name: [group["lr"] for group in opt.param_groups]
                for name, opt in trainer.optimizers.items()}

    assert rates() == {"encoder": [3e-4], "decoder": [3e-4], "discriminator": [pytest.approx(3e-5)]}
    # The trainer's schedule (here the warm-up's second step, factor 1/2) keeps the ratio.
    trainer.step = 1
    trainer._schedule_learning_rate()
    assert rates() == {"encoder": [pytest.approx(1.5e-4)], "decoder": [pytest.approx(1.5e-4)],
                       "discriminator": [pytest.approx(1.5e-5)]}
