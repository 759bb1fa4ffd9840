#!/usr/bin/env bash
# The homework's MNIST protocol, every run behind docs/results/vae-mnist.md and dcgan-mnist.md:
# trained on the 60,000 training images, validated on the 10,000 test images, and scored (FID,
# KID, precision/recall, 3,000 generated images, fp32) against 3,000 training images, as the
# homework's starter scores, and against 3,000 test images (held out): --fid-reference both.
#
#   experiments/homework_mnist.sh OUT
#
# 1. the VAE table: latent 3, 10, 64, 100 x seeds 0-2 at the homework's defaults (batch 32,
#    Adam 1e-3, 25,000 steps), OUT/vae/latent-dim-Z_seed-S, then `genlab sweep`'s table of them;
# 2. the DCGAN at its defaults (latent 100, hidden 16, batch 64, 25,000 steps) over seeds 0-2,
#    every 1,000-step checkpoint kept, OUT/dcgan/seed-S, scored at steps 5,000 ... 25,000;
# 3. the latent-3 collapse rate: --init default and kaiming x seeds 0-9, 5,000 steps, OUT/collapse;
# 4. the architecture bonus: --arch mlp and conv-shallow at latent 64 x seeds 0-2, the homework's
#    25,000 steps, OUT/arch (the conv rows are stage 1's latent-64 runs);
# 5. latent walks with extrapolation, scored, of VAE-100 and the DCGAN over seeds 0-2,
#    OUT/walks/<run>.png and records beside each run's last checkpoint.
#
# Resumable: run it again and finished runs and scores are reused, interrupted runs continue
# from their latest checkpoint (a SIGTERM ends a run at its next step with a checkpoint).
#
# Layout, from benchmarks/run_layout.py and docs/benchmarks.md: runs train CORES at a time on one
# thread each (the 32x32 networks are too small for a second thread to help one run), and are
# scored one at a time on every core: Inception is large enough to use both (two 1-thread
# scorings side by side ran at 4.3 images/s each, one on both cores at 8.0), and two first
# scorings side by side would each compute the same real images' features before either caches.
set -euo pipefail
OUT=${1:?usage: experiments/homework_mnist.sh OUT}
DATA=${DATA:-../shared/data/mnist}
GENLAB=${GENLAB:-.venv/bin/genlab}
PYTHON=${PYTHON:-.venv/bin/python}
CORES=${CORES:-$(nproc)}
mkdir -p "$OUT"

scored() {  # CHECKPOINT: whether it has the scores `genlab eval --fid-reference both` stores
    "$PYTHON" -c 'import sys
from pathlib import Path
from genlab.config import EvalConfig
from genlab.metrics.evaluate import stored_records
from genlab.run import load_config
checkpoint = Path(sys.argv[1])
config = load_config(checkpoint.parent.parent / "config.json")
stored = stored_records(checkpoint, config, EvalConfig(fid_reference="both"), seed=0)
sys.exit(0 if all(stored.values()) else 1)' "$1"
}

score() {  # RUN STEP: FID, KID, precision/recall against both references, unless stored
    local checkpoint
    checkpoint=$(printf '%s/checkpoints/step-%08d.pt' "$1" "$2")
    scored "$checkpoint" || OMP_NUM_THREADS=$CORES "$GENLAB" eval "$1" --step "$2" \
        --fid-reference both >> "$1.log" 2>&1
}

train_batch() {  # MODEL, then "RUN_DIR FLAG..." per run: trained side by side, one thread each
    local model=$1 spec
    shift
    for spec in "$@"; do
        # shellcheck disable=SC2086
        (set -- $spec; dir=$1; shift
         OMP_NUM_THREADS=1 "$GENLAB" train "$model" --data-dir "$DATA" --fid-samples 0 "$@" \
             --run-dir "$dir" >> "$dir.log" 2>&1) &
    done
    wait
}

in_batches() {  # MODEL STEP, then "RUN_DIR FLAG..." per run: CORES at a time, each then scored
    local model=$1 step=$2 i spec
    shift 2
    local specs=("$@")
    for ((i = 0; i < ${#specs[@]}; i += CORES)); do
        train_batch "$model" "${specs[@]:i:CORES}"
        if [ "$step" != 0 ]; then
            for spec in "${specs[@]:i:CORES}"; do score "${spec%% *}" "$step"; done
        fi
    done
}

# 1. The VAE table.
mkdir -p "$OUT/vae"
runs=()
for z in 3 10 64 100; do
    for s in 0 1 2; do runs+=("$OUT/vae/latent-dim-${z}_seed-$s --latent-dim $z --seed $s"); done
done
in_batches vae 25000 "${runs[@]}"
"$GENLAB" sweep vae --latent-dim 3 10 64 100 --seed 0 1 2 --data-dir "$DATA" --out "$OUT/vae" \
    > "$OUT/vae/sweep.out" 2>&1   # every run is done: the sweep's table of them, nothing trained

# 2. The DCGAN over seeds, and its FID by step.
mkdir -p "$OUT/dcgan"
in_batches dcgan 25000 "$OUT/dcgan/seed-0 --seed 0" "$OUT/dcgan/seed-1 --seed 1" \
    "$OUT/dcgan/seed-2 --seed 2"
for step in 5000 10000 15000 20000; do
    for s in 0 1 2; do score "$OUT/dcgan/seed-$s" "$step"; done
done

# 3. The latent-3 collapse rate (no FID: whether any latent dimension is active).
mkdir -p "$OUT/collapse"
runs=()
for init in default kaiming; do
    for s in 0 1 2 3 4 5 6 7 8 9; do
        runs+=("$OUT/collapse/init-${init}_seed-$s --latent-dim 3 --init $init --seed $s --steps 5000")
    done
done
in_batches vae 0 "${runs[@]}"

# 4. The architecture bonus.
mkdir -p "$OUT/arch"
runs=()
for arch in mlp conv-shallow; do
    for s in 0 1 2; do runs+=("$OUT/arch/arch-${arch}_seed-$s --arch $arch --latent-dim 64 --seed $s"); done
done
in_batches vae 25000 "${runs[@]}"

# 5. Latent walks, scored (Inception features of the frames and midpoints), one at a time.
mkdir -p "$OUT/walks"
for run in vae/latent-dim-100_seed-{0,1,2} dcgan/seed-{0,1,2}; do
    name=${run//\//-}
    [ -s "$OUT/walks/$name.png" ] && continue
    OMP_NUM_THREADS=$CORES "$GENLAB" interpolate "$OUT/$run" --rows 6 --steps 8 --extend 2 \
        --score --paths 20 --midpoints 500 -o "$OUT/walks/$name.png" \
        >> "$OUT/walks/$name.log" 2>&1
done
