"""experiments/celeba_long.sh's ladder, with a stub in place of genlab: the order of the runs on
each rung, the branch from the VAE/GAN's 10-epoch checkpoint beside it above that rung, and a
deadline that stops the climb and the same command that continues it."""

import os
import stat
import subprocess

from conftest import REPO

SCRIPT = REPO / "experiments" / "celeba_long.sh"
# Records its arguments and writes the checkpoint of the --steps it was asked for, as a run
# that reaches its target does.
STUB = """#!/usr/bin/env bash
echo "$*" >> "$CALLS"
[[ -n "${FAIL_BRANCH:-}" && "$*" == *--branch-from* ]] && { echo "a refused flag"; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in --steps) steps=$2; shift;; --run-dir) dir=$2; shift;; esac; shift
done
mkdir -p "$dir/checkpoints"
echo weights > "$dir/checkpoints/step-$(printf %08d "$steps").pt"
echo "trained to step $steps"
"""


def climb(tmp_path, deadline: str, branch: str = "", said: list | None = None, code: int = 0,
          **env: str) -> list[tuple[str, str, str]]:
    """(model, run folder, --steps) of each training the ladder started, in order."""
    stub = tmp_path / "genlab"
    stub.write_text(STUB)
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    calls = tmp_path / "calls.txt"
    env = {**os.environ, "GENLAB": str(stub), "CALLS": str(calls), "DEADLINE": deadline,
           "BRANCH": branch, **env}
    result = subprocess.run(["bash", SCRIPT, tmp_path / "out"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == code, result.stderr
    if said is not None:
        said.append(result.stdout)
    runs = []
    for line in calls.read_text().splitlines() if calls.exists() else []:
        words = line.split()
        runs.append((words[1], words[words.index("--run-dir") + 1].rsplit("/", 1)[1],
                     words[words.index("--steps") + 1]))
    calls.unlink(missing_ok=True)
    return runs


def test_each_rung_trains_the_vaegan_then_the_vae_then_the_dcgan_and_the_branch_above_10_epochs(
        tmp_path):
    runs = climb(tmp_path, "+2 hours", branch="beta4 --beta 4")
    three = lambda steps: [("vaegan", "vaegan", steps), ("vae", "vae-larsen64", steps),
                           ("dcgan", "dcgan64", steps)]
    with_branch = lambda steps: [*three(steps), ("vaegan", "vaegan-beta4", steps)]
    assert runs == [*three("558"), *three("1116"), *three("2232"), *with_branch("3348"),
                    *with_branch("4464")]
    # Each run's output goes to its own log beside its folder.
    assert (tmp_path / "out" / "vaegan-beta4.log").read_text().count("trained to step") == 2
    # Run again: every rung is there, nothing is trained.
    assert climb(tmp_path, "+2 hours", branch="beta4 --beta 4") == []


def test_the_branch_command_names_the_10_epoch_checkpoint_and_its_flags(tmp_path):
    climb(tmp_path, "+2 hours", branch="beta4 --beta 4")
    (tmp_path / "out" / "vaegan-beta4" / "checkpoints" / "step-00004464.pt").unlink()
    stub_calls = tmp_path / "calls.txt"
    env = {**os.environ, "GENLAB": str(tmp_path / "genlab"), "CALLS": str(stub_calls),
           "DEADLINE": "+2 hours", "BRANCH": "beta4 --beta 4"}
    subprocess.run(["bash", SCRIPT, tmp_path / "out"], cwd=REPO, env=env, check=True,
                   capture_output=True, text=True, timeout=60)
    [line] = stub_calls.read_text().splitlines()
    assert (f"--branch-from {tmp_path}/out/vaegan/checkpoints/step-00002232.pt --beta 4" in line
            and "--steps 4464" in line and f"--run-dir {tmp_path}/out/vaegan-beta4" in line)


def test_a_deadline_under_five_minutes_away_trains_nothing_and_says_so(tmp_path):
    said = []
    assert climb(tmp_path, "+4 minutes", said=said) == []
    assert said == ["less than 5 minutes before DEADLINE: "
                    f"{tmp_path}/out/vaegan stays below step 558 for now\n"]


def test_a_branch_that_fails_is_left_out_and_the_baselines_climb_on(tmp_path):
    said = []
    runs = climb(tmp_path, "+2 hours", branch="beta4 --beta 4", said=said, code=1, FAIL_BRANCH="1")
    assert [run for run in runs if run[1] != "vaegan-beta4"] == [
        (model, folder, steps) for steps in ("558", "1116", "2232", "3348", "4464")
        for model, folder in (("vaegan", "vaegan"), ("vae", "vae-larsen64"), ("dcgan", "dcgan64"))]
    assert [run for run in runs if run[1] == "vaegan-beta4"] == [("vaegan", "vaegan-beta4", "3348")]
    assert "vaegan-beta4: stopped with an error" in said[0] and "the branch failed" in said[0]


def test_a_branch_without_a_name_is_refused_before_anything_trains(tmp_path):
    said = []
    assert climb(tmp_path, "+2 hours", branch="--beta 4", said=said, code=2) == []
    assert "BRANCH must start with the branch's name" in said[0]
