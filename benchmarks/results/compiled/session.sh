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
#   1. benchmarks/compiled_engines.py for MODELS at batch 32 until SESSION_S - TESTS_S;
#   2. with GPU_TESTS=1, the GPU test suite (scripts/test-gpu.sh) into WORK/out/gpu-tests.log.
set -u
cd "$(dirname "$0")/../../.."
export VISIONBENCH_COMMIT=${1:-unknown} VISIONBENCH_TREE=${2:-unknown}
WORK=${3:?usage: session.sh COMMIT TREE WORK}
MODELS=${MODELS:-regnet_x_400mf,convnext_tiny,efficientnet_b1,resnet50,efficientnet_b0}
END=$(($(date +%s) + ${SESSION_S:-1100}))
left() { echo $((END - $(date +%s))); }
R=$WORK/out && mkdir -p "$R/compiled" "$WORK/site"
log() { echo "$(date -u +%H:%M:%S) $*" | tee -a "$R/progress.txt"; }

command -v nvidia-smi >/dev/null || { log "no nvidia-smi: this script is for the GPU machine"; exit 3; }
if compgen -G "$WORK/c/part.*" >/dev/null && [ ! -d "$WORK/w" ]; then
  cat "$WORK"/c/part.* | tar x -C "$WORK" || { log "joining the carried parts failed"; exit 2; }
fi
if compgen -G "$WORK/p/part.*" >/dev/null && [ ! -d "$WORK/site/onnxruntime" ]; then
  unxz() { if command -v xz >/dev/null; then xz -dc; else python3 -c "import lzma, shutil, sys
shutil.copyfileobj(lzma.open(sys.stdin.buffer), sys.stdout.buffer)"; fi; }
  cat "$WORK"/p/part.* | unxz | tar x -C "$WORK/site" || { log "unpacking the wheel failed"; exit 2; }
  python3 -m pip uninstall -y -q onnxruntime 2>/dev/null
fi
if compgen -G "$WORK/w/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target "$WORK/site" "$WORK"/w/*.whl \
    >> "$R/progress.txt" 2>&1 || log "installing the dashboard's wheels failed"
fi
export PYTHONPATH=$WORK/site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
export VISIONBENCH_CACHE=$WORK/cache VISIONBENCH_DATA=$WORK/data
python3 -c "import onnxruntime as o; assert 'CUDAExecutionProvider' in o.get_available_providers(); print('onnxruntime', o.__version__)" \
  >> "$R/progress.txt" 2>&1 || { log "ONNX Runtime's CUDA provider is missing: nothing measured"; exit 3; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >> "$R/progress.txt"

# A private copy of the tree: the lease re-sends the working tree at every call.
SRC=$WORK/src && rm -rf "$SRC" && mkdir -p "$SRC"
tar cf - --exclude=./.gpuparts --exclude=./.git . | tar xf - -C "$SRC" && cd "$SRC" || exit 4
cp benchmarks/results/compiled/*.json "$R/compiled/" 2>/dev/null

log "compiled engines: $MODELS"
python3 benchmarks/compiled_engines.py --out "$R/compiled" --models "$MODELS" \
  --budget-s $(($(left) - ${TESTS_S:-420})) >> "$R/progress.txt" 2>&1
if [ "${GPU_TESTS:-1}" = 1 ]; then
  log "GPU tests"
  VISIONBENCH_GPU_SITE=$WORK/site bash scripts/test-gpu.sh "$WORK/none" "$R/gpu-tests.log" >> "$R/progress.txt" 2>&1
  log "GPU tests exit $?"
fi
log "session done"
