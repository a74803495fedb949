#!/usr/bin/env bash
# How the H100 results in this folder were produced: one background session on the lent
# GPU machine, stages in order of importance, each stage's files copied to RESULTS as it
# ends (so a lease that ends early still returns what was measured). Expects
# onnxruntime-gpu in ORT_GPU_SITE (default /tmp/site) and nvidia-ml-py there too.
# STAGES="device e2e" runs a subset (the second H100 session ran device profile e2e concurrency).
#   setsid bash benchmarks/results/h100/session.sh /tmp/res > /tmp/res.log 2>&1 &
set -uo pipefail
res=${1:?usage: session.sh RESULTS_DIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
cd "$here"
site=${ORT_GPU_SITE:-/tmp/site}
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 VISIONBENCH_CACHE=${VISIONBENCH_CACHE:-/tmp/vbcache}
mkdir -p "$res"
want=" ${STAGES:-device profile harness sweep3 diagnostics e2e faults faults2 compile concurrency} "
stage() {  # name, command...  (runs only if name is in $STAGES, default: all)
  local name=$1
  shift
  [[ "$want" == *" $name "* ]] || return 0
  echo "=== $(date -u +%H:%M:%S) start $name"
  local t0=$SECONDS
  "$@" > "$res/$name.log" 2>&1
  local rc=$?
  echo "=== $(date -u +%H:%M:%S) end $name rc=$rc ($((SECONDS - t0)) s)"
  tail -40 "$res/$name.log"
  echo "$name rc=$rc $((SECONDS - t0))s" >> "$res/stages.txt"
}
{
  date -u +%Y-%m-%dT%H:%M:%SZ
  nvidia-smi
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,power.limit,temperature.gpu --format=csv
  python3 -c 'import torch, torchvision, onnx, onnxruntime as o; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(), "torchvision", torchvision.__version__, "onnx", onnx.__version__, "onnxruntime", o.__version__, o.get_available_providers())'
  python3 -c 'import pynvml; print("pynvml ok")'
} > "$res/machine.txt" 2>&1
cat "$res/machine.txt"
g=benchmarks/gpu_sweep.py
out=$res/h100
stage device python3 $g --out "$out" --stage device --repeats 3 --max-time 1.0
stage profile python3 $g --out "$out" --stage profile
stage harness python3 benchmarks/harness_overhead.py --out "$out"
stage sweep3 python3 benchmarks/sweep.py --out "$res/sweep" --name h100 --device cuda \
  --backend torch,ort --precision fp32,tf32,fp16,bf16 --batch 1,8,32 --max-time 2
if [ -f benchmarks/h100_diagnostics.sh ]; then
  stage diagnostics bash benchmarks/h100_diagnostics.sh "$res/diagnostics"
fi
stage e2e python3 $g --out "$out" --stage e2e --repeats 3 --max-time 1.0
if [ -f benchmarks/gpu_faults.py ]; then
  mkdir -p "$res/faults"
  stage faults timeout 300 python3 benchmarks/gpu_faults.py oom --device cuda:0 \
    --out "$res/faults/gpu_faults_oom.json"
  stage faults2 timeout 300 python3 benchmarks/gpu_faults.py serialise --device cuda:0 \
    --out "$res/faults/gpu_faults_serialise.json"
fi
stage compile python3 $g --out "$out" --stage compile --repeats 3 --compile-batches 32
stage concurrency python3 $g --out "$out" --stage concurrency --batches 1,8,32,128,256
python3 $g --out "$out" --stage report > /dev/null 2>&1
echo "=== $(date -u +%H:%M:%S) all done"
touch "$res/DONE"
