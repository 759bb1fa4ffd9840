"""Crash-proof runs: a training process killed with SIGKILL at random moments (mid-step,
mid-validation, mid-checkpoint write) always leaves a valid newest checkpoint, the next process
resumes from exactly it, and after 20 kills the run ends with the weights, optimiser state, data
order and random state of a run never interrupted, bit for bit."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, run_cli
from genlab.checkpoint import list_checkpoints, load_checkpoint
from test_trainer import assert_same_state, final_state

TRIALS = 20
STEPS = 160
ARGS = ["train", "vae", "--dataset", "digits", "--latent-dim", "8", "--batch-size", "32",
        "--steps", str(STEPS), "--saving-steps", "2", "--logging-steps", "2", "--keep-checkpoints",
        "3", "--val-images", "64", "--fid-samples", "0", "--seed", "5"]


def committed_steps(run_dir: Path) -> list[int]:
    return [step for step, _ in list_checkpoints(run_dir)]


@pytest.mark.extended
def test_sigkill_at_random_moments_always_resumes_exactly(tmp_path):
    # One thread everywhere: the same arithmetic (reduction order) in every process.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    reference = run_cli(*ARGS, "--run-dir", tmp_path / "straight", env=env)
    assert reference.returncode == 0, reference.stderr

    run_dir, rng = tmp_path / "killed", random.Random(2026)
    trials = exact_resumes = 0
    while trials < TRIALS:
        before = committed_steps(run_dir)
        newest = before[-1] if before else 0
        log = open(tmp_path / f"life-{trials}.log", "w+")
        process = subprocess.Popen([sys.executable, "-m", "genlab", *ARGS, "--run-dir",
                                    str(run_dir)], cwd=REPO, env=env, stderr=log, text=True)
        # Wait for this life to commit one more checkpoint (so every life moves the run on),
        # then kill it at a random moment of the next save intervals (each is 2 steps and a
        # save, ~0.3 s here): mid-step, mid-validation, mid-write, mid-rename or mid-prune.
        deadline = time.monotonic() + 120
        while (committed_steps(run_dir)[-1:] or [0])[0] <= newest:
            assert process.poll() is None, f"the run ended before it was killed: {log.name}"
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.7))
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL, "the run finished before the kill"
        trials += 1
        # Every checkpoint the dead process committed verifies; the newest is what a run uses.
        steps = committed_steps(run_dir)
        for step, path in list_checkpoints(run_dir):
            assert load_checkpoint(path)["step"] == step
        log.seek(0)
        said = log.read()
        if trials > 1:  # a life after a kill: it must resume from the newest checkpoint left
            exact_resumes += f"from step {newest} (step-{newest:08d}.pt)" in said
        assert "warning" not in said and "Traceback" not in said, said
        assert steps[-1] < STEPS

    newest = committed_steps(run_dir)[-1]
    final = run_cli(*ARGS, "--run-dir", run_dir, env=env)
    assert final.returncode == 0, final.stderr
    exact_resumes += f"from step {newest} (step-{newest:08d}.pt)" in final.stderr
    assert_same_state(final_state(tmp_path / "straight"), final_state(run_dir))
    # The scalar log has every logging step once, as the straight run's (dead lives dropped).
    def logged(folder):
        return [(r["step"], sorted(r)) for r in map(json.loads,
                (folder / "scalars.jsonl").read_text().splitlines())]
    assert logged(run_dir) == logged(tmp_path / "straight")
    print(f"\nkill -9 trials: {trials}; resumed from the newest valid checkpoint: "
          f"{exact_resumes}/{trials}; final weights equal to the uninterrupted run's")
    assert exact_resumes == trials
