#!/usr/bin/env bash
# Where a warm start's seconds go (issue 29): a cached compiled engine loaded in 31 to 37 s in
# a fresh process on an H100 on 2026-12-07, and in 0.0 s in the process that had just built
# it. On a bare GPU machine, with the packages the machine has (no ONNX Runtime GPU is needed
# here), in a background session started by one call and polled by short ones:
#
#   setsid nohup bash benchmarks/results/compiled/loadprobe.sh COMMIT WORK > WORK/probe.log 2>&1 &
#
#   1. `build` the engine auto mode tries for regnet_x_400mf at batch 32 on CUDA (FP16,
#      channels-last, max-autotune, an AOTInductor package);
#   2. the load profile (benchmarks/compiled_engines.py --profile-load) in a fresh process,
#      three times: the package's contents by kind, the CUDA JIT cache's growth, cProfile's
#      top lines; a second and third start that are fast point at a cache filled by the first
#      (the driver's JIT cache, Inductor's or Triton's folders), one as slow at the load itself;
#   3. `bench` of that engine alone in a fresh process (its note gives the load time).
set -u
cd "$(dirname "$0")/../../.."
export VISIONBENCH_COMMIT=${1:-unknown}
WORK=${2:?usage: loadprobe.sh COMMIT WORK}
R=$WORK/out && mkdir -p "$R"
export PYTHONUNBUFFERED=1 VISIONBENCH_CACHE=$WORK/cache VISIONBENCH_DATA=$WORK/data
log() { echo "$(date -u +%H:%M:%S) $*" | tee -a "$R/progress.txt"; }
timed() {  # timed FILE CMD...: CMD's output to FILE, then its wall time; returns its exit
  local file=$1 t0 rc; shift
  t0=$(date +%s.%N); "$@" > "$file" 2>&1; rc=$?
  echo "wall $(python3 -c "print(round($(date +%s.%N) - $t0, 1))") s" >> "$file"
  return $rc
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >> "$R/progress.txt"
python3 -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda)" >> "$R/progress.txt" 2>&1
log "commit $VISIONBENCH_COMMIT"
M=(--model regnet_x_400mf --device cuda --batch 32 --precision fp16 --channels-last --packaged)
log "build"
timed "$R/build.txt" python3 -m engine build "${M[@]}"
log "build exit $?"
REQ='{"model": "regnet_x_400mf", "image_size": 224, "batch": 32, "device": "cuda", "backend": "torch_compile", "precision": "fp16", "options": {"channels_last": true, "packaged": true}}'
for i in 1 2 3; do
  log "load profile $i"
  timed "$R/load-profile-$i.txt" python3 -X faulthandler benchmarks/compiled_engines.py \
    --profile-load "$REQ"
  log "load profile $i exit $?"
done
log "bench"
timed "$R/bench.txt" python3 -m engine bench "${M[@]}" --backend torch_compile --iters 30 --warmup 5
log "bench exit $?"
du -sh "$WORK/cache"/* >> "$R/progress.txt" 2>&1
log "done"
