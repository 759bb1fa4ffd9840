"""The model contract, for every registered model (`pytest -k contract`): it builds from a config,
takes a training step on uint8 images with finite named losses, decodes the right shape into
its data range, round-trips through a checkpoint and `load_run`, and resumes (and branches) bit
for bit. A new model in genlab.models.MODELS gets all of this for free (pythae parametrizes its
tests so)."""

from __future__ import annotations

import dataclasses
import h5py
import numpy as np
import pytest
import torch

from genlab.data import load_split
from genlab.errors import GenlabError
from genlab.models import MODELS
from genlab.run import build_model, load_run, new_config
from genlab.train.trainer import Trainer
from test_trainer import assert_same_state, final_state


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """48 smooth RGB 64x64 images in an HDF5 file, for models that need 64x64 images."""
    path = tmp_path_factory.mktemp("faces") / "faces.h5"
    g = torch.Generator().manual_seed(0)
    small = torch.rand(48, 3, 8, 8, generator=g)
    images = torch.nn.functional.interpolate(small, size=64, mode="bilinear") * 255
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=images.round().to(torch.uint8).numpy())
    return path


def small_settings(name: str, faces) -> dict:
    """The smallest run of the model on real-shaped data: the digits at 32x32, or 64x64 images
    for a model that refuses 32x32."""
    base = {"latent_dim": 8, "batch_size": 4, "fid_samples": 0, "seed": 3, "val_images": 8,
            "logging_steps": 1}
    # Hidden widths above 32 (the VAE/GAN's 2048-wide FC layers) cut to 32: the same code paths,
    # checkpoints of 63 MB instead of 0.72 GB.
    base.update({f.name: 32 for f in dataclasses.fields(MODELS[name].config_class)
                 if f.name.endswith("_hidden_dim") and isinstance(f.default, int) and f.default > 32})
    config = new_config(name, {**base, "dataset": "digits"})
    config.image_shape = (1, 32, 32)
    try:
        build_model(config)
        return {**base, "dataset": "digits"}
    except GenlabError:
        return {**base, "data_path": str(faces)}


def trainer_for(name: str, settings: dict, folder, steps: int, saving: int) -> Trainer:
    config = new_config(name, {**settings, "num_training_steps": steps, "saving_steps": saving})
    train = load_split(config.data, config.data.train_split)
    val = load_split(config.data, config.data.val_split) if not config.data.data_path else train
    config.image_shape = train.image_shape
    trainer = Trainer(config, folder, build_model(config), train, val, torch.device("cpu"))
    trainer.resume(warn=lambda message: None)
    return trainer


@pytest.mark.parametrize("name", sorted(MODELS))
def test_contract_a_step_gives_finite_named_losses_and_decodes_in_range(name, faces, tmp_path):
    trainer = trainer_for(name, small_settings(name, faces), tmp_path, 5, 5)
    losses = trainer.train_step()
    assert losses and all(isinstance(k, str) for k in losses)
    assert all(torch.isfinite(v).all() for v in losses.values()), losses
    minimised = {u.minimise for phase in trainer.phases for u in phase.updates}
    assert minimised <= set(losses)  # every update's loss is logged
    model = trainer.model.eval()
    with torch.no_grad():
        images = model.decode(model.sample_latents(3, torch.Generator().manual_seed(0)))
    low, high = model.data_range
    assert tuple(images.shape) == (3, *trainer.config.image_shape)
    assert images.min() >= low and images.max() <= high


@pytest.mark.parametrize("name", sorted(MODELS))
def test_contract_round_trips_through_a_checkpoint_and_load_run(name, faces, tmp_path):
    trainer = trainer_for(name, small_settings(name, faces), tmp_path, 2, 2)
    trainer.fit()
    from genlab.run import write_config

    write_config(trainer.config, tmp_path)
    run = load_run(tmp_path, torch.device("cpu"), warn=pytest.fail)
    model = run.model
    assert run.step == 2 and run.config.model == name and run.checkpoint.name.startswith("step-")
    saved = trainer.model.state_dict()
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())
    z = model.sample_latents(2, torch.Generator().manual_seed(1))
    with torch.no_grad():  # (the trainer's copy is channels_last: other kernels, same maths)
        torch.testing.assert_close(model.decode(z), trainer.model.eval().decode(z),
                                   rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_contract_a_resumed_run_and_a_branch_end_bit_for_bit_like_a_straight_one(name, faces,
                                                                                 tmp_path):
    from genlab.checkpoint import checkpoint_path, load_checkpoint

    settings = small_settings(name, faces)
    trainer_for(name, settings, tmp_path / "straight", 4, 2).fit()
    trainer_for(name, settings, tmp_path / "resumed", 2, 2).fit()
    resumed = trainer_for(name, settings, tmp_path / "resumed", 4, 2)
    assert resumed.step == 2
    resumed.fit()
    assert_same_state(final_state(tmp_path / "straight"), final_state(tmp_path / "resumed"))
    # --branch-from the straight run's step 2, no setting changed: every network, optimiser,
    # BatchNorm statistic and draw goes on as in the parent.
    branch = trainer_for(name, settings, tmp_path / "branch", 4, 2)
    parent = checkpoint_path(tmp_path / "straight", 2)
    branch.branch(load_checkpoint(parent), parent)
    assert branch.step == 2
    branch.fit()
    assert_same_state(final_state(tmp_path / "straight"), final_state(tmp_path / "branch"))


def test_a_branch_that_changes_the_optimiser_is_refused_and_one_that_changes_the_logged_losses_logs_both(
        faces, tmp_path):
    from genlab.checkpoint import checkpoint_path, load_checkpoint
    from genlab.train.logging import read_scalars

    # The parent's step-3 checkpoint falls between logging steps (every 2): step 3 unlogged.
    settings = {**small_settings("vaegan", faces), "logging_steps": 2}
    trainer_for("vaegan", settings, tmp_path / "parent", 4, 3).fit()
    parent = checkpoint_path(tmp_path / "parent", 3)
    branch = trainer_for("vaegan", {**settings, "optimizer": "adam"}, tmp_path / "refused", 4, 2)
    with pytest.raises(GenlabError, match="change the encoder optimiser of --branch-from"):
        branch.branch(load_checkpoint(parent), parent)  # RMSprop by default; --optimizer adam
    # --equilibrium-margin adds two logged values: the parent's step 3 keeps its own names.
    branch = trainer_for("vaegan", {**settings, "equilibrium_margin": 0.35}, tmp_path / "branch",
                         4, 4)
    branch.branch(load_checkpoint(parent), parent)
    branch.fit()
    records = {r["step"]: r for r in read_scalars(tmp_path / "branch") if "train/kl" in r}
    assert sorted(records) == [3, 4]
    assert "train/decoder_updated" not in records[3] and "train/decoder_updated" in records[4]


def test_contract_covers_every_registered_model():
    assert set(MODELS) == {"vae", "dcgan", "vaegan"}  # a new model: add it here knowingly
    assert all(np.all([hasattr(cls, a) for a in ("name", "config_class", "data_range")])
               for cls in MODELS.values())


def test_a_checkpoint_of_another_model_is_refused_alike_when_read_and_when_resumed(tmp_path):
    from genlab.checkpoint import restore

    model = torch.nn.Linear(2, 2)
    with pytest.raises(GenlabError, match="is of a dcgan model, not the vae"):
        restore({"model_name": "dcgan", "model": model.state_dict()}, tmp_path / "c.pt", "vae",
                model)
    with pytest.raises(GenlabError, match="does not fit the model"):
        restore({"model_name": "vae", "model": {}}, tmp_path / "c.pt", "vae", model)
    restore({"model_name": "vae", "model": model.state_dict()}, tmp_path / "c.pt", "vae", model)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_contract_a_model_declares_its_capabilities_and_has_their_methods(name):
    from genlab.models.specs import CAPABILITIES

    cls = MODELS[name]
    assert cls.spec.capabilities <= set(CAPABILITIES)
    for capability, method in CAPABILITIES.items():
        has = callable(getattr(cls, method, None))
        assert cls.can(capability) == has, f"{name}: {capability} declared {cls.can(capability)}"


def test_contract_every_registered_metric_describes_itself():
    import genlab.metrics  # noqa: F401  (registers fid, kid, pr and latent_paths)
    from genlab.metrics.registry import (METRICS, describe, feature_metrics, format_value,
                                         metrics_of, shown_values)

    # a new metric: add it here knowingly
    assert set(METRICS) == {"fid", "kid", "pr", "latent_paths"}
    assert feature_metrics() == ("fid", "kid", "pr")  # what --metrics chooses from
    record = {"metrics": list(feature_metrics())}
    for metric in METRICS.values():
        assert metric.shown and set(metric.shown) <= set(metric.keys), metric.name
        assert metric.min_samples >= 2 and format_value(metric.keys[0], 0.5)
        assert metric.needs in ("features", "generator")
        values = {key: 0.5 for key in metric.keys}
        assert describe({"metric" if metric.needs == "generator" else "metrics":
                         metric.name if metric.needs == "generator" else [metric.name], **values})
        if metric.needs == "features":
            record.update(values)
    shown = list(shown_values(record))
    assert shown == [k for n in feature_metrics() for k in METRICS[n].shown]  # the registry's order
    assert "kid_subsets" not in shown and "kid_subsets" in record
    # a generator metric's record is read as its metric, never as sample quality
    paths = {"metric": "latent_paths", **{k: 0.5 for k in METRICS["latent_paths"].keys}}
    assert metrics_of(paths) == [] and metrics_of(paths, needs="generator") == ["latent_paths"]
    assert list(shown_values(paths)) == list(METRICS["latent_paths"].shown)
