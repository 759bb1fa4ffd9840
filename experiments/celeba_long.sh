#!/usr/bin/env bash
# The lab's comparison trained long: the VAE/GAN at the lab's settings and its two baselines, each
# for 20 epochs of the 14,283 CelebA training faces at batch 64 (4,464 steps), one at a time, a
# checkpoint every 2.5 epochs (558 steps) kept, no FID during training (the trajectory is scored
# afterwards from the kept checkpoints):
#
#   DEADLINE=23:00 experiments/celeba_long.sh OUT
#
# Resumable across sessions: run the same command again. Each training gets --max-time up to
# DEADLINE (a wall-clock time `date -d` reads), so it ends at a step boundary with a checkpoint
# and the next call resumes it bit for bit. Order: the DCGAN (about 20 minutes on a 2-core CPU),
# the VAE (about 1.5 hours), the VAE/GAN (about 5 hours): the baselines' trajectories first.
#
# The environment: H5 (default ../shared/data/celeba/celeba64.h5), GENLAB (default
# .venv/bin/genlab), FLAGS added to every run (e.g. "--precision fp32").
set -euo pipefail
OUT=${1:?usage: DEADLINE=HH:MM experiments/celeba_long.sh OUT}
H5=${H5:-../shared/data/celeba/celeba64.h5}
GENLAB=${GENLAB:-.venv/bin/genlab}
FLAGS=${FLAGS:-}
deadline=$(date -d "${DEADLINE:?set DEADLINE, the wall-clock time every run must end by}" +%s)
mkdir -p "$OUT"

# The same epochs, batch, data and checkpoint schedule for all three; each model's own defaults
# otherwise (the VAE baseline at the VAE/GAN's latent size and learning rate).
COMMON="--data $H5 --epochs 20 --batch-size 64 --saving-steps 558 --logging-steps 10 --fid-samples 0"
runs=(
    "dcgan $OUT/dcgan64 --arch dcgan64"
    "vae $OUT/vae-larsen64 --arch larsen64 --latent-dim 2048 --learning-rate 3e-4"
    "vaegan $OUT/vaegan"
)
for run in "${runs[@]}"; do
    read -r model dir extra <<< "$run"
    left=$((deadline - $(date +%s)))
    if [ "$left" -lt 300 ]; then
        echo "$dir: less than 5 minutes before DEADLINE; not started"
        continue
    fi
    # shellcheck disable=SC2086
    "$GENLAB" train "$model" $COMMON $extra $FLAGS --max-time "${left}s" --run-dir "$dir" \
        >> "$dir.log" 2>&1 || { echo "$dir: stopped with an error; see $dir.log"; continue; }
    # exit 0 with a stop by --max-time: the deadline is reached, later runs wait for next time
    if tail -n 5 "$dir.log" | grep -q "stopped by --max-time\|stopped at step .* by --max-time"; then
        echo "$dir: stopped at the deadline; run the same command again to resume"
        exit 0
    fi
    echo "$dir: $(tail -n 1 "$dir.log")"
done
