"""The generic trainer: exact resume, logging without duplicates on resume, non-finite losses,
and checkpoints that are atomic, verified and never unpickle code."""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from genlab.data import load_split
from genlab.errors import GenlabError
from genlab.fsutil import atomic_save, atomic_write_bytes
from genlab.models.base import Phase, Update
from genlab.models.dcgan import DCGAN
from genlab.models.vae import VAE
from genlab.run import build_model, new_config
from genlab.checkpoint import (CheckpointError, checkpoint_path, latest_checkpoint,
                                     list_checkpoints, load_checkpoint)
from genlab.distributed import SINGLE, Processes
from genlab.metrics.records import metrics_path
from genlab.train.logging import read_scalars
from genlab.train.trainer import NonFiniteLossError, Trainer

SETTINGS = dict(dataset="digits", latent_dim=10, batch_size=64, logging_steps=5, seed=7)


def make_trainer(run_dir: Path, steps: int, saving: int, model_cls=None, model: str = "vae",
                 processes: Processes = SINGLE, **extra) -> Trainer:
    config = new_config(model, {**SETTINGS, "num_training_steps": steps, "saving_steps": saving,
                                **extra})
    train = load_split(config.data, "train")
    val = load_split(config.data, "test")
    config.image_shape = train.image_shape
    built = build_model(config)
    if model_cls is not None:  # same weights, different behaviour
        swapped = model_cls(config.model_config, config.image_shape)
        swapped.load_state_dict(built.state_dict(), strict=False)  # extra layers keep their init
        built = swapped
    trainer = Trainer(config, run_dir, built, train, val, torch.device("cpu"), processes=processes)
    trainer.resume(warn=lambda message: None)
    return trainer


def final_state(run_dir: Path) -> dict:
    payload, _ = latest_checkpoint(run_dir, warn=pytest.fail)
    return payload


def assert_same_state(a: dict, b: dict) -> None:
    assert a["step"] == b["step"]
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    for name, opt in a["optimizers"].items():
        for pid, state in opt["state"].items():
            for key, value in state.items():
                assert torch.equal(value, b["optimizers"][name]["state"][pid][key]), (pid, key)
    assert a["data_order"] == b["data_order"]
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])


@pytest.mark.parametrize("model", ["vae", "dcgan"])
def test_stopped_and_resumed_run_ends_bit_for_bit_like_a_straight_one(tmp_path, model):
    # (tests/test_contract.py resumes every registered model on a short run; this one crosses an
    # epoch boundary and compares the logs too.)
    # 64-image batches over 1,500 digits: step 40 is past an epoch boundary (23.4 steps).
    # For the DCGAN this covers both networks, both optimisers and the BatchNorm statistics.
    make_trainer(tmp_path / "straight", 40, 20, model=model).fit()
    make_trainer(tmp_path / "resumed", 20, 20, model=model).fit()
    resumed = make_trainer(tmp_path / "resumed", 40, 20, model=model)
    assert resumed.step == 20
    resumed.fit()
    assert_same_state(final_state(tmp_path / "straight"), final_state(tmp_path / "resumed"))
    straight_log = [{k: v for k, v in r.items() if k != "time"}
                    for r in read_scalars(tmp_path / "straight")]
    resumed_log = [{k: v for k, v in r.items() if k != "time"}
                   for r in read_scalars(tmp_path / "resumed")]
    assert straight_log == resumed_log
    assert [s for s, _ in list_checkpoints(tmp_path / "resumed")] == [20, 40]


def test_resume_after_a_crash_drops_the_dead_process_logs(tmp_path):
    run = tmp_path / "run"
    make_trainer(run, 30, 20).fit()  # checkpoints 20 and 30, logs up to 30
    for suffix in (".pt", ".json"):  # as if the process died after step 30 before saving
        checkpoint_path(run, 30).with_suffix(suffix).unlink()
    make_trainer(run, 30, 20).fit()
    steps = [r["step"] for r in read_scalars(run) if "train/loss" in r]
    assert steps == [5, 10, 15, 20, 25, 30]
    events = EventAccumulator(str(run))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == steps
    assert [e.step for e in events.Scalars("val/loss")] == [20, 30]


class ExplodingVAE(VAE):
    """The homework VAE whose KL turns infinite on the 13th training step."""

    calls = 0

    def training_losses(self, x, step):
        out = super().training_losses(x, step)
        self.calls += 1
        if self.calls == 13:
            out["kl"] = out["kl"] * float("inf")
            out["loss"] = out["rec"] + out["kl"]
        return out


class ExplodingDCGAN(DCGAN):
    """The DCGAN whose generator loss turns infinite on the 13th step."""

    calls = 0

    def generator_losses(self, x, step):
        out = super().generator_losses(x, step)
        self.calls += 1
        if self.calls == 13:
            out["generator_loss"] = out["generator_loss"] * float("inf")
        return out


class NaNJudgedDCGAN(DCGAN):
    """The DCGAN whose logged D(x) turns NaN on the 13th step while every loss stays finite."""

    calls = 0

    def discriminator_losses(self, x, step):
        out = super().discriminator_losses(x, step)
        self.calls += 1
        if self.calls == 13:
            out["D(x)"] = out["D(x)"] * float("nan")
        return out


@pytest.mark.parametrize("model, model_cls, loss", [
    ("vae", ExplodingVAE, "loss is inf"),
    ("dcgan", ExplodingDCGAN, "generator_loss is inf"),
    ("dcgan", NaNJudgedDCGAN, "D(x) is nan"),
])
def test_non_finite_loss_stops_naming_step_and_loss_and_keeps_the_good_checkpoint(
        tmp_path, model, model_cls, loss):
    trainer = make_trainer(tmp_path, 30, 10, model_cls=model_cls, model=model)
    with pytest.raises(NonFiniteLossError) as err:
        trainer.fit()
    message = str(err.value)
    assert "step 13" in message and f"train/{loss}" in message
    assert "step-00000010.pt" in message
    assert [s for s, _ in list_checkpoints(tmp_path)] == [10]
    assert load_checkpoint(checkpoint_path(tmp_path, 10))["step"] == 10


@pytest.mark.parametrize("model, model_cls, optimizer", [("vae", ExplodingVAE, "vae"),
                                                         ("dcgan", ExplodingDCGAN, "generator")])
def test_nonfinite_skip_drops_that_update_counts_it_and_resumes_the_count(
        tmp_path, model, model_cls, optimizer):
    trainer = make_trainer(tmp_path, 15, 5, model_cls=model_cls, model=model, nonfinite="skip")
    trainer.fit()
    payload = final_state(tmp_path)
    assert payload["step"] == 15 and payload["skipped_batches"] == 1
    # The bad batch's update was never applied: that optimiser stepped 14 times in 15 steps
    # (the DCGAN's discriminator, whose loss stayed finite, all 15).
    steps = {name: max(int(s["step"]) for s in opt["state"].values())
             for name, opt in payload["optimizers"].items()}
    assert steps == ({"vae": 14} if model == "vae" else {"discriminator": 15, "generator": 14})
    assert all(torch.isfinite(t).all() for t in payload["model"].values() if t.is_floating_point())
    train = [r for r in read_scalars(tmp_path) if "train/skipped_batches" in r]
    assert [(r["step"], r["train/skipped_batches"]) for r in train] == [(5, 0), (10, 0), (15, 1)]
    loss = "train/loss" if model == "vae" else "train/generator_loss"
    assert all(math.isfinite(r[loss]) for r in train)  # the bad batch's loss is not averaged in
    resumed = make_trainer(tmp_path, 20, 5, model=model, nonfinite="skip")
    assert resumed.skipped_batches == 1
    resumed.fit()
    assert final_state(tmp_path)["skipped_batches"] == 1
    last = [r for r in read_scalars(tmp_path) if "train/skipped_batches" in r][-1]
    assert (last["step"], last["train/skipped_batches"]) == (20, 1)


class AlwaysNaNVAE(VAE):
    def training_losses(self, x, step):
        out = super().training_losses(x, step)
        out["loss"] = out["loss"] * float("nan")
        return out


def test_nonfinite_skip_still_stops_a_run_that_has_diverged(tmp_path, monkeypatch):
    monkeypatch.setattr("genlab.train.trainer.MAX_SKIPPED_IN_A_ROW", 4)
    trainer = make_trainer(tmp_path, 20, 10, model_cls=AlwaysNaNVAE, nonfinite="skip")
    with pytest.raises(NonFiniteLossError, match="step 4: the last 4 batches all had a "
                                                 "non-finite loss or gradient"):
        trainer.fit()


def test_a_full_disk_while_saving_keeps_the_previous_checkpoint_and_says_so(tmp_path, capsys,
                                                                           monkeypatch):
    from genlab import cli, fsutil

    args = ["train", "vae", "--dataset", "digits", "--latent-dim", "8", "--saving-steps", "5",
            "--fid-samples", "0", "--run-dir", str(tmp_path)]
    assert cli.main([*args, "--steps", "5"]) == 0
    before = checkpoint_path(tmp_path, 5).read_bytes()

    real_fsync = os.fsync

    def no_space_for_checkpoints(fd):
        # The disk fills at the checkpoint's write, not at the resumed run's first write (its
        # config.json): the checkpoint's own atomic path is what this test is about.
        name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))  # .step-00000010.pt.XXXX.tmp
        if name.startswith(".step-") and ".pt." in name:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(fsutil.os, "fsync", no_space_for_checkpoints)
    capsys.readouterr()
    assert cli.main([*args, "--steps", "10"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("genlab: error: the disk is full while writing ")
    assert "step-00000010.pt" in error
    assert "the previous version of that file is intact" in error and "Traceback" not in error
    monkeypatch.undo()
    assert [s for s, _ in list_checkpoints(tmp_path)] == [5]
    assert checkpoint_path(tmp_path, 5).read_bytes() == before
    assert load_checkpoint(checkpoint_path(tmp_path, 5))["step"] == 5
    assert not list(tmp_path.rglob("*.tmp"))  # no half-written file left behind


def test_damaged_latest_checkpoint_is_reported_and_the_previous_used(tmp_path):
    make_trainer(tmp_path, 20, 10).fit()
    latest = checkpoint_path(tmp_path, 20)
    data = bytearray(latest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    latest.write_bytes(bytes(data))
    warnings = []
    payload, path = latest_checkpoint(tmp_path, warn=warnings.append)
    assert payload["step"] == 10 and path == checkpoint_path(tmp_path, 10)
    assert len(warnings) == 1 and str(latest) in warnings[0] and "damaged" in warnings[0]
    stale = metrics_path(latest)  # scores of the damaged weights
    stale.write_text('{"step": 20, "fid": 1.0}\n')
    resumed = make_trainer(tmp_path, 20, 10)
    assert resumed.step == 10  # a resumed run goes on from there
    resumed.fit()
    assert not stale.exists()  # step 20 trained again: its old scores measured other weights


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_that_would_run_code_is_refused(tmp_path):
    make_trainer(tmp_path, 10, 10).fit()
    marker = tmp_path / "pwned"
    path = checkpoint_path(tmp_path, 10)
    payload = load_checkpoint(path)
    payload["config"] = _RunsCode(marker)
    atomic_save(path, lambda handle: torch.save(payload, handle))
    meta = json.loads(path.with_suffix(".json").read_text())
    data = path.read_bytes()
    meta.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="refuses to unpickle"):
        load_checkpoint(path)
    assert not marker.exists()


def test_atomic_write_keeps_the_old_file_on_failure_and_reports_a_full_disk(tmp_path):
    target = tmp_path / "state.bin"
    atomic_write_bytes(target, b"old")

    def dies_halfway(handle):
        handle.write(b"new but half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_save(target, dies_halfway)
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["state.bin"]

    def disk_full(handle):
        handle.write(b"partial")
        raise OSError(28, "No space left on device")

    with pytest.raises(GenlabError, match="disk is full while writing .*state.bin"):
        atomic_save(target, disk_full)
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["state.bin"]


def test_saving_writes_grids_beside_each_checkpoint_and_fixed_latents(tmp_path):
    make_trainer(tmp_path, 10, 5).fit()
    folder = tmp_path / "checkpoints"
    for step in (5, 10):
        for name in ("val", "reconstructions", "samples"):
            assert (folder / f"step-{step:08d}-{name}.png").is_file()
    first, second = (load_checkpoint(checkpoint_path(tmp_path, s)) for s in (5, 10))
    assert first["fixed_latents"].shape == (32, 10)
    assert torch.equal(first["fixed_latents"], second["fixed_latents"])
    assert json.loads(second["config"])["model_config"]["latent_dim"] == 10


def test_keep_checkpoints_prunes_old_weights_but_keeps_grids(tmp_path):
    make_trainer(tmp_path, 20, 5, keep_checkpoints=2).fit()
    assert [s for s, _ in list_checkpoints(tmp_path)] == [15, 20]
    assert not checkpoint_path(tmp_path, 5).exists()
    assert (tmp_path / "checkpoints" / "step-00000005-samples.png").is_file()


class BatchNormVAE(VAE):
    """The homework VAE with a BatchNorm layer, like the GANs to come."""

    def __init__(self, config, image_shape):
        super().__init__(config, image_shape)
        self.encoder.enc1 = torch.nn.Sequential(torch.nn.Conv2d(1, 16, 3, 1, 1),
                                                torch.nn.BatchNorm2d(16), torch.nn.ReLU())


def test_validation_and_grids_leave_the_training_state_alone(tmp_path):
    trainer = make_trainer(tmp_path, 10, 10, model_cls=BatchNormVAE)
    trainer.train_step()  # running statistics move away from their initial values
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    rng = torch.get_rng_state()
    assert trainer.validate()["val/loss"] > 0
    assert set(trainer.grids()) == {"val", "reconstructions", "samples"}
    assert trainer.model.training
    after = trainer.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BatchNorm buffers included
    assert torch.equal(rng, torch.get_rng_state())


def test_written_files_get_the_normal_mode_not_mkstemps_private_one(tmp_path):
    previous = os.umask(0o022)
    try:
        make_trainer(tmp_path, 5, 5).fit()
    finally:
        os.umask(previous)
    for path in [tmp_path / "checkpoints" / "step-00000005.pt",
                 tmp_path / "checkpoints" / "step-00000005.json",
                 tmp_path / "checkpoints" / "step-00000005-samples.png"]:
        assert path.stat().st_mode & 0o777 == 0o644, path


class TwoPhaseVAE(VAE):
    """Encoder and decoder trained by separate optimisers in separate phases, as a GAN's D and G."""

    def optimizers(self, train):
        return {"enc": torch.optim.Adam(self.encoder.parameters(), lr=train.learning_rate),
                "dec": torch.optim.Adam(self.decoder.parameters(), lr=train.learning_rate)}

    def phases(self):
        return [Phase("encoder", self._phase_loss("encoder"), (Update("enc", "encoder_loss"),)),
                Phase("decoder", self._phase_loss("decoder"), (Update("dec", "decoder_loss"),))]

    def _phase_loss(self, name):
        def loss(x, step):
            self.trainable_during[name] = {
                part: {p.requires_grad for p in getattr(self, part).parameters()}
                for part in ("encoder", "decoder")}
            return {f"{name}_loss": self.training_losses(x, step)["loss"]}
        return loss


def test_each_phase_trains_only_its_optimizers_parameters(tmp_path):
    trainer = make_trainer(tmp_path, 5, 5, model_cls=TwoPhaseVAE)
    model = trainer.model
    model.trainable_during = {}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    losses = trainer.train_step()
    assert set(losses) == {"encoder_loss", "decoder_loss"}
    assert model.trainable_during == {
        "encoder": {"encoder": {True}, "decoder": {False}},
        "decoder": {"encoder": {False}, "decoder": {True}}}
    # The encoder's gradient flowed through the frozen decoder; both sides stepped.
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())
    after = model.state_dict()
    assert all(not torch.equal(before[k], after[k]) for k in before)


def test_learning_rate_half_life_is_a_function_of_the_step_and_resumes_exactly(tmp_path):
    trainer = make_trainer(tmp_path / "straight", 40, 20, lr_half_life=10)
    trainer.fit()
    (group,) = trainer.optimizers["vae"].param_groups
    # The last step (step index 39) ran at lr0 * 0.5 ** (39 / 10).
    assert group["lr"] == pytest.approx(1e-3 * 0.5 ** 3.9, rel=1e-12)
    make_trainer(tmp_path / "resumed", 20, 20, lr_half_life=10).fit()
    make_trainer(tmp_path / "resumed", 40, 20, lr_half_life=10).fit()
    assert_same_state(final_state(tmp_path / "straight"), final_state(tmp_path / "resumed"))
    constant = make_trainer(tmp_path / "constant", 5, 5)
    constant.fit()
    assert constant.optimizers["vae"].param_groups[0]["lr"] == 1e-3


def test_warmup_raises_the_learning_rate_linearly_and_resumes_exactly(tmp_path):
    trainer = make_trainer(tmp_path / "seen", 8, 8, warmup_steps=4, lr_half_life=10)
    (group,) = trainer.optimizers["vae"].param_groups
    used = []
    for _ in range(6):
        trainer.train_step()
        used.append(group["lr"])  # set at the start of the step it was used in
    assert used == pytest.approx([1e-3 * min(1.0, (s + 1) / 4) * 0.5 ** (s / 10)
                                  for s in range(6)], rel=1e-12)
    # Stopping inside the warm-up and resuming continues the schedule bit for bit.
    make_trainer(tmp_path / "straight", 6, 6, warmup_steps=4).fit()
    make_trainer(tmp_path / "resumed", 2, 2, warmup_steps=4).fit()
    make_trainer(tmp_path / "resumed", 6, 2, warmup_steps=4).fit()
    assert_same_state(final_state(tmp_path / "straight"), final_state(tmp_path / "resumed"))


def test_bf16_precision_runs_the_forward_pass_in_bf16_and_the_losses_in_fp32(tmp_path):
    trainer = make_trainer(tmp_path, 4, 4, precision="bf16")
    seen = {}
    trainer.model.encoder.enc1.register_forward_hook(
        lambda module, inputs, output: seen.update(conv=output.dtype))  # returns None
    losses = trainer.train_step()
    assert seen["conv"] == torch.bfloat16
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # weights stay fp32
    auto = make_trainer(tmp_path / "auto", 4, 4)
    assert auto.bf16 is False  # auto on the CPU: fp32


def test_val_images_limits_validation_to_the_first_images(tmp_path):
    trainer = make_trainer(tmp_path, 4, 4, val_images=100)
    sizes = []
    original = trainer.model.validation_losses
    trainer.model.validation_losses = lambda batch, g: (sizes.append(len(batch)), original(batch, g))[1]
    trainer.validate()
    assert sizes == [100]


@pytest.mark.extended  # compiling takes ~15 s on the CPU
def test_compile_trains_the_same_weights_through_compiled_networks(tmp_path):
    from torch._dynamo.utils import counters

    counters.clear()
    eager = make_trainer(tmp_path / "eager", 3, 3, arch="mlp")
    eager.fit()
    compiled = make_trainer(tmp_path / "compiled", 3, 3, arch="mlp", compile=True)
    compiled.fit()
    assert counters["stats"]["unique_graphs"] > 0  # torch.compile really ran the networks
    a, b = final_state(tmp_path / "eager"), final_state(tmp_path / "compiled")
    assert a["model"].keys() == b["model"].keys()  # checkpoints keep the eager names
    for name in a["model"]:
        torch.testing.assert_close(a["model"][name], b["model"][name], rtol=1e-4, atol=1e-5)
