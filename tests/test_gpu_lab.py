"""benchmarks/gpu_lab.py: its --smoke run end to end on the CPU, and the FLOP-based plan that sizes
the real run (which waits for a GPU)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO, _inception_installed

sys.path.insert(0, str(REPO / "benchmarks"))

import gpu_lab  # noqa: E402

# Training GFLOP per image as FlopCounterMode counts genlab's step (docs/benchmarks.md).
LAB_FLOPS = {"vaegan": 24.17e9, "vae-larsen64": 3.88e9, "dcgan64": 2.27e9}


@pytest.mark.slow
def test_the_smoke_run_trains_all_three_and_scores_every_kept_checkpoint(tmp_path):
    from genlab.checkpoint import list_checkpoints

    runs = tmp_path / "runs"
    # A budget well above the run's ~20 s: on a loaded machine the default 120 s can run out
    # before every checkpoint is scored. The plan is the same (the lab's 2 smoke epochs fit both).
    result = subprocess.run([sys.executable, "benchmarks/gpu_lab.py", "--smoke", "--out", tmp_path,
                             "--runs", runs, "--budget", "400"], cwd=REPO, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_lab.json").read_text())
    assert report["smoke"] and report["plan"]["fits"] and report["plan"]["epochs"] == 2
    assert list(report["runs"]) == ["vaegan", "vae-conv", "dcgan64"]
    for name, run in report["runs"].items():
        assert run["stopped"] == "finished" and run["steps"] == report["plan"]["steps"] == 4, run
        assert run["settings"]["max_time"] > 0 and run["settings"]["saving_steps"] == 2
        assert [step for step, _ in list_checkpoints(runs / name)] == [2, 4]

    # A row per model per kept checkpoint, with the scores each model has.
    rows = report["rows"]
    assert sorted((r["model"], r["step"]) for r in rows) == sorted(
        (name, step) for name in report["runs"] for step in (2, 4))
    for row in rows:
        assert "error" not in row and "skipped" not in row, row
        assert row["epoch"] == row["step"] * 4 / 8  # batch 4, 8 training faces
        if _inception_installed():
            assert report["scoring_skipped"] is None
            assert row["fid"] > 0 and {"kid", "precision", "recall"} <= set(row)
        encoder = row["model"] != "dcgan64"
        assert ("pixel_mse" in row) == ("edge_contrast" in row) == encoder
        if encoder:
            assert 0 <= row["pixel_mse"] <= 1
    if not _inception_installed():
        assert "Inception" in report["scoring_skipped"] or "weights" in report["scoring_skipped"]

    table = (tmp_path / "gpu_lab.md").read_text()
    assert table.startswith(f"# genlab lab protocol on one device: {report['device']}")
    trajectory = [line for line in table.splitlines()
                  if line.startswith(("| vaegan | ", "| vae-conv | ", "| dcgan64 | "))
                  and " | `" not in line]  # the plan's rows quote the command
    assert len(trajectory) == len(rows) == 6
    # A column per value the rows scored, named by its key: no metric is spelt out by the table.
    header = next(line for line in table.splitlines() if line.startswith("| model | epoch |"))
    assert "| pixel mse | edge contrast | detail error |" in header
    assert ("| fid | kid |" in header) == _inception_installed()
    assert "| vaegan | 2.0 | 4 | 16 |" in table and "they fit" in table
    for name in report["runs"]:
        assert (tmp_path / f"gpu_lab-{name}.log").is_file()


def test_the_lab_protocol_fits_ten_minutes_by_the_estimate_and_a_smaller_budget_trains_less():
    plan = gpu_lab.make_plan(LAB_FLOPS, 600, checkpoints=5, n_train=14_283, batch=64,
                             fid_samples=3000, lab_epochs=100, a=gpu_lab.Assumptions())
    assert plan.fits and plan.epochs == 100 and plan.steps == 22_318
    assert plan.total_s <= 0.9 * 600 and plan.saving_steps * 5 >= plan.steps
    # The VAE/GAN is bound by its FLOPs at the assumed rate, the baselines by the step floor.
    assert plan.train_s["vaegan"] == pytest.approx(22_318 * 64 * 24.17e9 / 200e12 + 5 * 2 + 20)
    assert plan.train_s["dcgan64"] == pytest.approx(22_318 * 3e-3 + 5 * 2 + 20)

    small = gpu_lab.make_plan(LAB_FLOPS, 300, checkpoints=5, n_train=14_283, batch=64,
                              fid_samples=3000, lab_epochs=100, a=gpu_lab.Assumptions())
    assert not small.fits and 1 <= small.epochs < 100 and small.epochs == int(small.epochs)
    assert small.total_s <= 0.9 * 300 < gpu_lab.estimate(
        LAB_FLOPS, small.epochs + 1, 5, 14_283, 64, 3000, gpu_lab.Assumptions())["total_s"]
    assert "do not fit" in small.note and f"training {small.epochs:g} epochs" in small.note

    with pytest.raises(SystemExit, match="too small"):
        gpu_lab.make_plan(LAB_FLOPS, 60, checkpoints=5, n_train=14_283, batch=64,
                          fid_samples=3000, lab_epochs=100, a=gpu_lab.Assumptions())


def test_scoring_keeps_to_the_rungs_and_marks_what_the_deadline_would_cut(digit_runs):
    """celeba_trajectory.py scores only the ladder's rungs (`every`): a checkpoint a deadline
    wrote between them is for resuming. Checkpoints it has no time for are rows saying so."""
    import math
    import time

    import torch

    log = []
    rows = gpu_lab.score_runs(["vae", "dcgan"], digit_runs, n_train=1500, batch=64, eval_cfg=None,
                              scoring_skipped="not scored here", device=torch.device("cpu"),
                              deadline=math.inf, per_checkpoint_s=0, log=log.append, every=20)
    assert [(r["model"], r["step"]) for r in rows] == [("vae", 20), ("dcgan", 20)]  # not step 10
    assert "pixel_mse" in rows[0] and "pixel_mse" not in rows[1]  # only a model with an encoder
    assert "fid" not in rows[0]

    rows = gpu_lab.score_runs(["vae", "dcgan"], digit_runs, 1500, 64, None, "not scored here",
                              torch.device("cpu"), deadline=time.monotonic() + 5,
                              per_checkpoint_s=60, log=log.append)
    # interleaved, in order of training; the DCGAN, not scored here, has nothing to wait for
    assert [(r["model"], r["step"], r.get("skipped")) for r in rows] == [
        ("vae", 10, "out of time"), ("dcgan", 10, None),
        ("vae", 20, "out of time"), ("dcgan", 20, None)]


def test_what_is_known_is_shown_past_the_deadline_and_only_measuring_waits(digit_runs):
    """Scores stored beside a checkpoint, and reconstruction measures an earlier call found, are
    read however late it is: a trajectory rewritten near a deadline keeps every row it had. A row
    missing a measure says "out of time" in that measure's cells."""
    import torch

    from genlab.checkpoint import list_checkpoints
    from genlab.config import EvalConfig
    from genlab.metrics.evaluate import reference_splits, run_settings
    from genlab.metrics.records import append_record
    from genlab.run import open_config

    eval_cfg = EvalConfig(fid_samples=16, fid_precision="fp32")
    for name, fid in (("vae", 11.0), ("dcgan", 12.0)):
        config = open_config(digit_runs / name)
        [split] = reference_splits(config, eval_cfg)[:1]
        for step, checkpoint in list_checkpoints(digit_runs / name):
            if (name, step) != ("dcgan", 20):  # the one checkpoint nothing is known of
                append_record(checkpoint, {"step": step, "fid": fid + step, "kid": 0.1,
                                           "kid_std": 0.01, "precision": 0.5, "recall": 0.25,
                                           "metrics": ["fid", "kid", "pr"],
                                           "settings": run_settings(config, eval_cfg, 0, split)})
    earlier = {"pixel_mse": 0.01, "edge_contrast": 0.2, "detail_error": 1.5}
    known = {("vae", 10): {**earlier, "fid": 999.0}}  # a known row's own scores are not trusted

    rows = gpu_lab.score_runs(["vae", "dcgan"], digit_runs, 1500, 64, eval_cfg, None,
                              torch.device("cpu"), deadline=0.0, per_checkpoint_s=60,
                              log=lambda _: None, known=known)
    by_key = {(r["model"], r["step"]): r for r in rows}
    assert by_key[("vae", 10)] == {"model": "vae", "step": 10, "images": 640, "epoch": 640 / 1500,
                                   "fid": 21.0, "kid": 0.1, "kid_std": 0.01, "precision": 0.5,
                                   "recall": 0.25, **earlier}
    assert by_key[("dcgan", 10)]["fid"] == 22.0 and "skipped" not in by_key[("dcgan", 10)]
    assert by_key[("vae", 20)]["fid"] == 31.0 and by_key[("vae", 20)]["skipped"] == "out of time"
    assert by_key[("dcgan", 20)].keys() == {"model", "step", "images", "epoch", "skipped"}

    table = gpu_lab.trajectory_table(rows)
    assert table[0] == ("| model | epoch | step | images seen | fid | kid | kid std | precision | "
                        "recall | pixel mse | edge contrast | detail error |")
    assert table[2:] == [
        "| vae | 0.4 | 10 | 640 | 21 | 0.1 | 0.01 | 0.5 | 0.25 | 0.0100 | 0.200 | 1.50 |",
        "| dcgan | 0.4 | 10 | 640 | 22 | 0.1 | 0.01 | 0.5 | 0.25 | - | - | - |",  # no encoder
        "| vae | 0.9 | 20 | 1,280 | 31 | 0.1 | 0.01 | 0.5 | 0.25 | out of time | out of time | "
        "out of time |",
        "| dcgan | 0.9 | 20 | 1,280 | out of time |" + " |" * 7]  # nothing to show
