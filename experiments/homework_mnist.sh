#!/usr/bin/env bash
# The homework's MNIST protocol, every run behind docs/results/vae-mnist.md and dcgan-mnist.md:
# trained on the 60,000 training images, validated on the 10,000 test images, and scored (FID,
# KID, precision/recall, 3,000 generated images, fp32) against 3,000 training images, as the
# homework's starter scores, and against 3,000 test images (held out): --fid-reference both.
#
#   experiments/homework_mnist.sh OUT
#
# 1. the VAE table: latent 3, 10, 64, 100 x seeds 0-2 at the homework's defaults (batch 32,
#    Adam 1e-3, 25,000 steps), OUT/vae;
# 2. the DCGAN at its defaults (latent 100, hidden 16, batch 64, 25,000 steps) over seeds 0-2,
#    every 1,000-step checkpoint kept, OUT/dcgan; then FID at steps 5,000 ... 20,000;
# 3. the latent-3 collapse rate: --init default and kaiming x seeds 0-9, 5,000 steps, OUT/collapse;
# 4. the architecture bonus: --arch mlp and conv-shallow at latent 64 x seeds 0-2, the homework's
#    25,000 steps, OUT/arch (the conv rows are stage 1's latent-64 runs);
# 5. latent walks with extrapolation, scored, of VAE-100 and the DCGAN over seeds 0-2,
#    OUT/walks/<run>.png and records beside each run's last checkpoint.
#
# Resumable: run it again and finished runs and scores are reused, interrupted runs continue
# from their latest checkpoint (a SIGTERM ends a run at its next step with a checkpoint).
# PARALLEL runs go side by side, each on THREADS threads (default 2 x 1 on a 2-core CPU: these
# 32x32 networks are too small for two threads to help one run; docs/benchmarks.md).
set -euo pipefail
OUT=${1:?usage: experiments/homework_mnist.sh OUT}
DATA=${DATA:-../shared/data/mnist}
GENLAB=${GENLAB:-.venv/bin/genlab}
PYTHON=${PYTHON:-.venv/bin/python}
PARALLEL=${PARALLEL:-2}
export OMP_NUM_THREADS=${THREADS:-1}
mkdir -p "$OUT"

"$GENLAB" sweep vae --latent-dim 3 10 64 100 --seed 0 1 2 --data-dir "$DATA" \
    --fid-reference both --out "$OUT/vae" --parallel "$PARALLEL"

"$GENLAB" sweep dcgan --seed 0 1 2 --data-dir "$DATA" --fid-reference both --out "$OUT/dcgan" \
    --parallel "$PARALLEL"

scored() {  # whether a checkpoint has a stored sample-quality record
    "$PYTHON" -c 'import sys
from genlab.metrics.records import read_records
from genlab.metrics.registry import metrics_of
sys.exit(0 if any(metrics_of(r) for r in read_records(sys.argv[1])) else 1)' "$1"
}
for step in 5000 10000 15000 20000; do
    for seed in 0 1 2; do
        checkpoint=$(printf '%s/dcgan/seed-%s/checkpoints/step-%08d.pt' "$OUT" "$seed" "$step")
        scored "$checkpoint" || echo "$OUT/dcgan/seed-$seed $step"
    done
done | xargs -r -n 2 -P "$PARALLEL" sh -c '"$0" eval "$1" --step "$2" --fid-reference both' "$GENLAB"

"$GENLAB" sweep vae --latent-dim 3 --init default kaiming --seed 0 1 2 3 4 5 6 7 8 9 \
    --steps 5000 --fid-samples 0 --data-dir "$DATA" --out "$OUT/collapse" --parallel "$PARALLEL"

"$GENLAB" sweep vae --arch mlp conv-shallow --latent-dim 64 --seed 0 1 2 --data-dir "$DATA" \
    --fid-reference both --out "$OUT/arch" --parallel "$PARALLEL"

mkdir -p "$OUT/walks"
for run in vae/latent-dim-100_seed-{0,1,2} dcgan/seed-{0,1,2}; do
    name=${run//\//-}
    [ -s "$OUT/walks/$name.png" ] && continue
    echo "$OUT/$run $OUT/walks/$name.png"
done | xargs -r -n 2 -P "$PARALLEL" sh -c '"$0" interpolate "$1" --rows 6 --steps 8 --extend 2 \
    --score --paths 20 --midpoints 500 --fid-precision bf16 -o "$2"' "$GENLAB"
