#!/usr/bin/env bash
# Compiled engines on a lent one-GPU machine (issue 29): one background session, started by
# the lease's last carrying call and polled by short calls after it.
#
#   setsid nohup bash benchmarks/results/compiled/session.sh COMMIT TREE WORK > WORK/session.log 2>&1 &
#
# WORK is a scratch folder on the device machine. onnxruntime-gpu 1.31.1 comes as its wheel's
# files in an xz-compressed tar (WORK/p/part.*; benchmarks/results/zoo/session.sh says how it
# is made), and the dashboard's wheels for the GPU tests as WORK/w/*.whl; both may come as one
# tar of p/ and w/ split into four parts of under 61 MB (WORK/c/part.*), one per carrying call,
# joined here. Then, on the one GPU, never overlapping:
#
#   1. with GPU_TESTS=1, the GPU test suite (scripts/test-gpu.sh) into WORK/out/gpu-tests.log
#      (first: it is bounded, about 5 minutes, and it checks the packaged engine on CUDA;
#      VISIONBENCH_GPU_TESTS picks a selection, as scripts/test-gpu.sh says);
#   2. benchmarks/compiled_engines.py for MODELS at batch 32, none started in the last
#      STOP_S seconds of SESSION_S. Each model's JSON is written when it completes; poll
#      calls copy WORK/out back, so a model cut short by the machine's return is the only loss.
set -u
cd "$(dirname "$0")/../../.."
export VISIONBENCH_COMMIT=${1:-unknown} VISIONBENCH_TREE=${2:-unknown}
WORK=${3:?usage: session.sh COMMIT TREE WORK}
MODELS=${MODELS:-regnet_x_400mf,convnext_tiny,efficientnet_b1,resnet50,efficientnet_b0}
END=$(($(date +%s) + ${SESSION_S:-1500}))
left() { echo $((END - $(date +%s))); }
R=$WORK/out && mkdir -p "$R/compiled"
log() { echo "$(date -u +%H:%M:%S) $*" | tee -a "$R/progress.txt"; }

. benchmarks/results/gpu-machine.sh && gpu_machine "$WORK" "$R/progress.txt"
cp benchmarks/results/compiled/*.json "$R/compiled/" 2>/dev/null

if [ "${GPU_TESTS:-1}" = 1 ]; then
  log "GPU tests"
  VISIONBENCH_GPU_SITE=$WORK/site bash scripts/test-gpu.sh "$WORK/none" "$R/gpu-tests.log" >> "$R/progress.txt" 2>&1
  log "GPU tests exit $?"
fi
log "compiled engines: $MODELS"
python3 benchmarks/compiled_engines.py --out "$R/compiled" --models "$MODELS" \
  --budget-s $(($(left) - ${STOP_S:-300})) >> "$R/progress.txt" 2>&1
log "session done"
