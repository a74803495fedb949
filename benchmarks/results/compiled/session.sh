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
#      calls copy WORK/out back, so a model cut short by the machine's return is the only loss;
#      (LOAD_PROFILE=0: no load profile of the first winner, which a session otherwise runs once);
#   3. for BUILD_NEXT (models), with the time left: the cold and warm steps alone
#      (--only-build), none started in the last BUILD_STOP_S seconds.
#
# One lease holds a small model's three steps, not a large one's (efficientnet_b1: cold 873 s,
# warm 164 s, then the peer's compile, on an H100): each engine a cold step builds is packed
# into WORK/out/engines/ as parts under 16 MiB, fetched by calls of their own, one engine's
# parts a call (a call brings back a limited total: on 2026-12-07, of eight parts of about
# 15 MB asked for in one call, four came back and four were left out as "(total)";
# `cp WORK/out/engines/<key>.tar.* $OUT/`). Carried to the next lease
# (parts in a git-ignored folder, copied to WORK/e/ by the carrying calls) with the model's
# JSON committed under benchmarks/results/compiled/, the engine is unpacked into the cache
# here and that model resumes at its head-to-head (same GPU model and library versions; else
# the product's key differs and it rebuilds).
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
opts=() && [ -d "$WORK/e" ] && opts=(--carry-in "$WORK/e")
[ "${LOAD_PROFILE:-1}" = 1 ] || opts+=(--no-load-profile)
python3 benchmarks/compiled_engines.py --out "$R/compiled" --models "$MODELS" \
  --carry-out "$R/engines" "${opts[@]}" \
  --budget-s $(($(left) - ${STOP_S:-300})) >> "$R/progress.txt" 2>&1
if [ -n "${BUILD_NEXT:-}" ]; then
  log "engines for the next lease: $BUILD_NEXT"
  python3 benchmarks/compiled_engines.py --out "$R/compiled" --models "$BUILD_NEXT" \
    --only-build --carry-out "$R/engines" --no-load-profile \
    --budget-s $(($(left) - ${BUILD_STOP_S:-900})) >> "$R/progress.txt" 2>&1
fi
log "session done"
