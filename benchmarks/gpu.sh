#!/usr/bin/env bash
# The GPU figures of docs/benchmarks.md: bash benchmarks/gpu.sh OUTPUT_DIR [STEP ...]
# STEP is any of tests train_step train_step_compile dib_cifar_sweep dib_cifar_sweep_compile profile data_pipeline
# evaluation (default: tests train_step train_step_compile dib_cifar_sweep data_pipeline evaluation,
# about 12 minutes on one H100). Each benchmark prints the machine it ran on.
# The whole dib_cifar sweep (python -m benchmarks dib_cifar_full) takes longer than one device command
# may run, so it runs in the background, in a process session of its own that outlives the command:
#   sweep_start   starts it (TRIALS_PER_GPU trials at a time, default 4; COMPILE, default cudagraphs);
#   sweep_wait    waits until it has finished or WAIT_S seconds (default 540) have passed, and copies
#                 its log so far to OUTPUT_DIR/sweep.txt;
#   sweep_stop    ends it (say, when a cuda_tests check of CUDA graphs failed: then COMPILE=on sweep_start).
# One lease: WAIT_S=120 bash benchmarks/gpu.sh $OUT sweep_start cuda_tests sweep_wait (the tests may
# take their whole 420 s, and a device command at most 600 s), then bash benchmarks/gpu.sh $OUT
# sweep_wait in further calls, each made before the machine's idle release (30 s). The tests run
# beside the sweep's first minutes (its timing is then an upper bound), so that both fit the session's
# 30 device minutes; if a CUDA-graphs test fails, sweep_stop, then
# TRIALS_PER_GPU=7 OMP_NUM_THREADS=2 COMPILE=on ... sweep_start: without graphs the step is host-bound
# (at batch 128 the GPU was busy 3.2 ms of a 21.5 ms compiled step), so all seven trials at once, on
# two cores each (Tune: --trials-per-gpu 7 --cpus-per-trial 2), is the packing that could fill the GPU.
# cuda_tests runs only the tests that need CUDA (every objective's CUDA graphs against eager, in fp32
# and, for the conv nets, bf16 + channels_last; no host syncs); tests runs the fast path's whole
# test files.
# Or full_TRIALS (e.g. full_0-1): those trials of the sweep in the foreground, two at a time with
# compile=cudagraphs; full_0-1, full_2-3, full_4-5 and full_6 are its four rounds, a call each.
set -uo pipefail
out="${1:-benchmark_results}"
shift || true
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(tests train_step train_step_compile dib_cifar_sweep data_pipeline evaluation)
mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi -L | tee "$out/gpu.txt"
run() { local name="$1"; shift; echo "== $name: $*"; timeout 420 "$@" 2>&1 | grep -v -i "warn" | tee "$out/$name.txt"; }
for step in "${steps[@]}"; do
  case "$step" in
    tests) run tests python3 -m pytest -q -p no:cacheprovider tests/test_fast_path.py tests/test_knn_entropy.py tests/test_ema.py ;;
    cuda_tests) run cuda_tests python3 -m pytest -q -p no:cacheprovider -k "cuda" tests/test_fast_path.py tests/test_ema.py ;;
    sweep_start) mkdir -p /tmp/ib_sweep
      setsid nohup python3 -m benchmarks dib_cifar_full --trials-per-gpu "${TRIALS_PER_GPU:-4}" \
        --set "compile=${COMPILE:-cudagraphs}" --paper >/tmp/ib_sweep/log 2>&1 </dev/null &
      echo "== sweep_start: pid $!, log /tmp/ib_sweep/log" ;;
    sweep_stop) pkill -f "benchmarks dib_cifar_full"; echo "== sweep_stop" ;;
    sweep_wait) deadline=$((SECONDS + ${WAIT_S:-540}))
      while [ $SECONDS -lt $deadline ] && pgrep -f "benchmarks dib_cifar_full" >/dev/null; do sleep 5; done
      echo "== sweep_wait: $(pgrep -f "benchmarks dib_cifar_full" >/dev/null && echo still running || echo finished)"
      grep -v -i "warn" /tmp/ib_sweep/log | tee "$out/sweep.txt" | tail -40 ;;
    train_step) run train_step python3 -m benchmarks train_step ;;
    train_step_compile) run train_step_compile python3 -m benchmarks train_step --objectives dib --compile ;;
    dib_cifar_sweep) run dib_cifar_sweep python3 -m benchmarks dib_cifar_sweep --packing 1,2,4 --epochs 2 ;;
    dib_cifar_sweep_compile) run dib_cifar_sweep_compile python3 -m benchmarks dib_cifar_sweep --packing 1,2 --epochs 3 --compile on ;;
    full_*) run "$step" python3 -m benchmarks dib_cifar_full --trials-per-gpu 2 --trials "${step#full_}" \
      --set compile=cudagraphs --paper ;;
    profile) run profile python3 -m benchmarks profile_step --batch-sizes 128,512 --steps 40 --rows 0 --compile off,on,cudagraphs ;;
    data_pipeline) run data_pipeline python3 -m benchmarks data_pipeline --images 50000 --batch-size 512 --workers 8 ;;
    evaluation) run evaluation python3 -m benchmarks evaluation --epochs 10 ;;
    *) echo "unknown step $step" >&2; exit 2 ;;
  esac
done
