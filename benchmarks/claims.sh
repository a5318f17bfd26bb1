#!/bin/bash
# The runs behind docs/claims.md and docs/zoo.md, one after another, then the claims table over all of them.
#
#   bash benchmarks/claims.sh [ROOT]      (default ROOT: ./claims_runs; about 2.5 hours on two CPU cores)
#
# Each line prints the sweep's wall-clock seconds and the machine's load average before and after, so that a
# figure taken on a busy machine says so. Results, MLflow runs and datasets go under ROOT; the claims table is
# ROOT/claims.md (python -m orchestrator.claims ROOT), the zoo's report ROOT/zoo_mnist5k_*/reports/report.md.
set -uo pipefail
ROOT=$(realpath -m "${1:-claims_runs}")
mkdir -p "$ROOT"
OPTIONS=(--storage "$ROOT/results" --tracking-uri "sqlite:///$ROOT/mlflow.db" --data-dir "$ROOT/data")

RUNS=0
run() {
  local start=$SECONDS load
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  RUNS=$((RUNS + 1))
  python -m orchestrator.sweep "$@" "${OPTIONS[@]}" > "$ROOT/log_${RUNS}_$1.txt" 2>&1
  echo "$* : exit $?, $((SECONDS - start)) s, load $load -> $(cut -d' ' -f1-3 /proc/loadavg)"
}

# Real 28x28 MNIST (mnist5k, no download), three seeds each.
run vib_mnist5k --seeds 3
run dib_mnist5k --seeds 3
run knn_ib_mnist5k --seeds 3
run infomax_mnist5k --seeds 3
# The IB zoo (three seeds each by default).
run zoo_digits
run zoo_mnist5k
# The digits sweeps with seeds.
run dib_digits --seeds 2 --epochs 8
run vib_digits --seeds 3
run ceb_digits --seeds 3
run knn_ib_digits --seeds 3
# The short dib_mnist run of issue 19 (ResNet-18, beta = 1 after one epoch of cross-entropy, cosine over 3 epochs)
# on mnist5k, and the MLP DIB likewise: docs/claims.md, "The dib_mnist collapse".
SHORT=(--set 'beta=[0.0, 1.0]' --set 'evaluations=""' --set warmup_epochs=1 --set infoplane_every=0 --cpus-per-trial 1
       --gpus-per-trial 0)
OPTIONS=(--storage "$ROOT/collapse" --tracking-uri "sqlite:///$ROOT/collapse.db" --data-dir "$ROOT/data")
run dib_mnist5k --epochs 3 "${SHORT[@]}"
run dib_mnist --set dataset=mnist5k --epochs 3 "${SHORT[@]}"

python -m orchestrator.claims "$ROOT/results" > "$ROOT/claims.md"
echo "claims: $ROOT/claims.md"
