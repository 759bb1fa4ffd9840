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
# Layout, from benchmarks/run_layout.py and docs/benchmarks.md: on a CPU, runs train CORES at a
# time on one thread each (the 32x32 networks are too small for a second thread to help one
# run), and are scored one at a time on every core: Inception is large enough to use both (two
# 1-thread scorings side by side ran at 4.3 images/s each, one on both cores at 8.0).
#
# The environment changes the layout, never the runs' settings:
#   PHASE=train|score|all  train every run; score every scored checkpoint (waiting for those a
#                          training still writes), then the sweep's table and the walks; or both
#                          in turn (default all)
#   JOBS=N                 runs trained at a time (default CORES)
#   SCORE_JOBS=N           checkpoints scored at a time (default 1)
#   TRAIN_FLAGS="..."      flags added to every run and the sweep, e.g. on a GPU
#                          "--device cuda --precision fp32" (a GPU's `auto` precision is bf16);
#                          runs stored with --device cuda resume on a CPU with "--device cpu"
# so one GPU machine runs, for example,
#   PHASE=train JOBS=16 TRAIN_FLAGS="--device cuda --precision fp32" experiments/homework_mnist.sh OUT &
#   PHASE=score SCORE_JOBS=4 TRAIN_FLAGS="--device cuda --precision fp32" experiments/homework_mnist.sh OUT
set -euo pipefail
OUT=${1:?usage: experiments/homework_mnist.sh OUT   (a path without spaces)}
DATA=${DATA:-../shared/data/mnist}
GENLAB=${GENLAB:-.venv/bin/genlab}
PYTHON=${PYTHON:-.venv/bin/python}
CORES=${CORES:-$(nproc)}
PHASE=${PHASE:-all}
JOBS=${JOBS:-$CORES}
SCORE_JOBS=${SCORE_JOBS:-1}
TRAIN_FLAGS=${TRAIN_FLAGS:-}
export OUT DATA GENLAB PYTHON CORES PHASE JOBS SCORE_JOBS TRAIN_FLAGS
mkdir -p "$OUT"/{vae,dcgan,collapse,arch,walks}

# Every run, most needed first (a stopped layout leaves the least needed undone): "MODEL RUN_DIR
# FLAG...". 1. the VAE table; 2. the DCGAN over seeds; 4. the architecture bonus; 3. the collapse
# rate (no FID: whether any latent dimension is active).
runs=()
for z in 3 10 64 100; do
    for s in 0 1 2; do runs+=("vae $OUT/vae/latent-dim-${z}_seed-$s --latent-dim $z --seed $s"); done
done
for s in 0 1 2; do runs+=("dcgan $OUT/dcgan/seed-$s --seed $s"); done
for arch in mlp conv-shallow; do
    for s in 0 1 2; do runs+=("vae $OUT/arch/arch-${arch}_seed-$s --arch $arch --latent-dim 64 --seed $s"); done
done
for init in default kaiming; do
    for s in 0 1 2 3 4 5 6 7 8 9; do
        runs+=("vae $OUT/collapse/init-${init}_seed-$s --latent-dim 3 --init $init --seed $s --steps 5000")
    done
done

# The checkpoints scored, in the same order: "RUN_DIR STEP".
scores=()
for z in 3 10 64 100; do for s in 0 1 2; do scores+=("$OUT/vae/latent-dim-${z}_seed-$s 25000"); done; done
for step in 25000 5000 10000 15000 20000; do
    for s in 0 1 2; do scores+=("$OUT/dcgan/seed-$s $step"); done
done
for arch in mlp conv-shallow; do for s in 0 1 2; do scores+=("$OUT/arch/arch-${arch}_seed-$s 25000"); done; done

train_one() {  # MODEL RUN_DIR FLAG...: one run on one thread, logged to RUN_DIR.log
    local model=$1 dir=$2
    shift 2
    # shellcheck disable=SC2086
    OMP_NUM_THREADS=1 "$GENLAB" train "$model" --data-dir "$DATA" --fid-samples 0 $TRAIN_FLAGS \
        "$@" --run-dir "$dir" >> "$dir.log" 2>&1 || echo "$dir: training failed; see $dir.log"
}

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

score_one() {  # RUN STEP: FID, KID, precision/recall against both references, unless stored
    local checkpoint threads=$((CORES / SCORE_JOBS > 0 ? CORES / SCORE_JOBS : 1))
    checkpoint=$(printf '%s/checkpoints/step-%08d.pt' "$1" "$2")
    # With PHASE=score a training may still be writing it: checkpoints appear whole (renamed).
    while [ ! -s "$checkpoint" ]; do
        if [ "$PHASE" != score ]; then echo "$checkpoint: not trained; see $1.log"; return 0; fi
        sleep 10
    done
    scored "$checkpoint" || OMP_NUM_THREADS=$threads "$GENLAB" eval "$1" --step "$2" \
        --fid-reference both ${TRAIN_FLAGS:+$(device_flag)} >> "$1.log" 2>&1 \
        || echo "$checkpoint: scoring failed; see $1.log"
}

device_flag() {  # the --device of TRAIN_FLAGS, for eval and interpolate
    local flags
    read -ra flags <<< "$TRAIN_FLAGS"
    for ((i = 0; i < ${#flags[@]}; i++)); do
        [ "${flags[i]}" = --device ] && echo "--device ${flags[i + 1]}"
    done
    return 0
}
export -f train_one scored score_one device_flag

if [ "$PHASE" != score ]; then
    printf '%s\n' "${runs[@]}" | xargs -P "$JOBS" -L 1 bash -c 'train_one "$@"' _
fi
[ "$PHASE" = train ] && exit 0

printf '%s\n' "${scores[@]}" | xargs -P "$SCORE_JOBS" -L 1 bash -c 'score_one "$@"' _

# The sweep's table of the VAE runs (every run is trained and scored: nothing is trained).
# shellcheck disable=SC2086
"$GENLAB" sweep vae --latent-dim 3 10 64 100 --seed 0 1 2 --data-dir "$DATA" $TRAIN_FLAGS \
    --out "$OUT/vae" > "$OUT/vae/sweep.out" 2>&1 || echo "the sweep's table failed; see $OUT/vae/sweep.out"

# 5. Latent walks, scored (Inception features of the frames and midpoints), one at a time.
mkdir -p "$OUT/walks"
for run in vae/latent-dim-100_seed-{0,1,2} dcgan/seed-{0,1,2}; do
    name=${run//\//-}
    [ -s "$OUT/walks/$name.png" ] && continue
    # shellcheck disable=SC2046
    OMP_NUM_THREADS=$CORES "$GENLAB" interpolate "$OUT/$run" --rows 6 --steps 8 --extend 2 \
        --score --paths 20 --midpoints 500 -o "$OUT/walks/$name.png" $(device_flag) \
        >> "$OUT/walks/$name.log" 2>&1 || echo "$OUT/walks/$name.png: failed; see its log"
done
