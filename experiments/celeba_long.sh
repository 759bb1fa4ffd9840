#!/usr/bin/env bash
# The lab's comparison trained long: the VAE/GAN at the lab's settings and its two baselines on
# the 14,283 CelebA training faces at batch 64, up a ladder of 2.5, 5, 10, 15 and 20 epochs (558,
# 1,116, 2,232, 3,348 and 4,464 steps), one run at a time: every model reaches a rung before any
# goes to the next, so whenever the runs stop the three stand at about the same number of images
# seen. A checkpoint every 2.5 epochs (558 steps) is kept; no FID during training (the
# trajectory is scored afterwards from the kept checkpoints: experiments/celeba_trajectory.py).
#
#   DEADLINE=02:50 experiments/celeba_long.sh OUT
#
# Resumable across sessions: run the same command again. Each training gets --max-time up to
# DEADLINE (a wall-clock time `date -d` reads), so it ends at a step boundary with a checkpoint
# and the next call resumes it bit for bit (a run resumed with a larger --steps trains exactly
# as one started with it: no schedule depends on the total). Order on each rung: the VAE/GAN,
# the VAE, the DCGAN, then the branch (below); a branch that fails is reported and left out,
# so it never holds the baselines back.
#
# The environment: H5 (default ../shared/data/celeba/celeba64.h5), GENLAB (default
# .venv/bin/genlab), FLAGS added to every run (e.g. "--precision fp32"), and BRANCH="NAME FLAG
# ...": one change to the VAE/GAN tried from its 10-epoch checkpoint (step 2,232) beside the
# default, as OUT/vaegan-NAME (`genlab train --branch-from`), on each rung above 10 epochs
# (e.g. BRANCH="sum-beta4 --llike-reduction sum --beta 4 --gamma 6.1e-4"). NAME is a word of
# letters, digits, '.', '_' and '-' that does not start with '-'.
set -euo pipefail
OUT=${1:?usage: DEADLINE=HH:MM experiments/celeba_long.sh OUT}
H5=${H5:-../shared/data/celeba/celeba64.h5}
GENLAB=${GENLAB:-.venv/bin/genlab}
FLAGS=${FLAGS:-}
deadline=$(date -d "${DEADLINE:?set DEADLINE, the wall-clock time every run must end by}" +%s)
mkdir -p "$OUT"

# The same batch, data and checkpoint schedule for all three; each model's own defaults
# otherwise (the VAE baseline at the VAE/GAN's latent size and learning rate).
COMMON="--data $H5 --batch-size 64 --saving-steps 558 --logging-steps 10 --fid-samples 0"
runs=(
    "vaegan $OUT/vaegan"
    "vae $OUT/vae-larsen64 --arch larsen64 --latent-dim 2048 --learning-rate 3e-4"
    "dcgan $OUT/dcgan64 --arch dcgan64"
)
BRANCH_STEP=2232
branch=()
if [ -n "${BRANCH:-}" ]; then
    read -r name flags <<< "$BRANCH"
    if [[ ! $name =~ ^[A-Za-z0-9._][A-Za-z0-9._-]*$ ]]; then
        echo "BRANCH must start with the branch's name (letters, digits, '.', '_', '-'), then its flags, e.g. BRANCH=\"beta4 --beta 4\"; it starts with '$name'"
        exit 2
    fi
    branch=("vaegan $OUT/vaegan-$name --branch-from $OUT/vaegan/checkpoints/step-$(printf %08d $BRANCH_STEP).pt $flags")
fi
for target in 558 1116 2232 3348 4464; do
    rung=("${runs[@]}")
    if [ "$target" -gt "$BRANCH_STEP" ] && [ ${#branch[@]} -gt 0 ]; then
        rung=("${runs[@]}" "${branch[0]}")
    fi
    for run in "${rung[@]}"; do
        read -r model dir extra <<< "$run"
        [ -s "$dir/checkpoints/step-$(printf %08d "$target").pt" ] && continue
        left=$((deadline - $(date +%s)))
        if [ "$left" -lt 300 ]; then
            echo "less than 5 minutes before DEADLINE: $dir stays below step $target for now"
            exit 0
        fi
        # shellcheck disable=SC2086
        if ! "$GENLAB" train "$model" $COMMON $extra $FLAGS --steps "$target" --max-time "${left}s" \
                --run-dir "$dir" >> "$dir.log" 2>&1; then
            echo "$dir: stopped with an error; see $dir.log"
            [ "$run" = "${branch[0]:-}" ] || exit 1
            branch=(); failed=1; continue   # the baselines go on without the branch
        fi
        if [ ! -s "$dir/checkpoints/step-$(printf %08d "$target").pt" ]; then
            echo "$dir: stopped at the deadline below step $target; run the same command again"
            exit 0
        fi
        echo "$(date +%T) $dir: step $target ($(tail -n 1 "$dir.log"))"
    done
done
if [ -n "${failed:-}" ]; then
    echo "the baselines are at step 4464 (20 epochs); the branch failed (above)"
    exit 1
fi
echo "every run is at step 4464 (20 epochs)"
