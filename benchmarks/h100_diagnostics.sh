#!/usr/bin/env bash
# Provider diagnostics on an NVIDIA H100, in two environments, to be committed as examples:
#
#   1. the CPU-only onnxruntime package with a GPU present   -> expected: ort-cpu-only-package,
#      verdict CPU; its printed fix is "install onnxruntime-gpu"
#   2. that fix applied: onnxruntime-gpu importable           -> expected: ok-cuda, verdict CUDA
#      (and once more asking for TensorRT, which shows tensorrt-missing and the fallback to CUDA)
#
# The machine this was written for: python3 3.12 with torch 2.11 (CUDA 13) and the CPU-only
# onnxruntime 1.30 preinstalled; onnxruntime-gpu installed separately into a folder that is put
# on PYTHONPATH, e.g.
#     python3 -m pip install --target /tmp/site onnxruntime-gpu==1.31.1
#     PYTHONPATH=/tmp/site bash benchmarks/h100_diagnostics.sh docs/examples
# The folder holding onnxruntime-gpu is taken from ORT_GPU_SITE (default /tmp/site). Environment
# 1 runs with that folder removed from PYTHONPATH, environment 2 with it first on PYTHONPATH.
# Reports shorten machine paths (home, site-packages, temp folder) so they can be committed.
set -euo pipefail

out=${1:?usage: bash benchmarks/h100_diagnostics.sh OUTPUT_DIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
py=${PYTHON:-python3}
gpu_site=${ORT_GPU_SITE:-/tmp/site}
diag="$here/engine/diagnostics"  # the package folder runs as a script
mkdir -p "$out"

if [ ! -f "$gpu_site/onnxruntime/__init__.py" ]; then
  echo "onnxruntime-gpu is not in $gpu_site; install it first:" >&2
  echo "  $py -m pip install --target $gpu_site onnxruntime-gpu==1.31.1" >&2
  exit 2
fi

# PYTHONPATH without the onnxruntime-gpu folder, and with it first.
without_gpu=$(printf '%s' "${PYTHONPATH:-}" | tr ':' '\n' | grep -vxF "$gpu_site" | paste -sd: - || true)
with_gpu="$gpu_site${without_gpu:+:$without_gpu}"

report() {  # name, PYTHONPATH, diagnostics arguments...
  local name=$1 pythonpath=$2
  shift 2
  echo "== $name (PYTHONPATH=${pythonpath:-<unset>})"
  env PYTHONPATH="$pythonpath" "$py" "$diag" "$@" \
    --json "$out/diagnose-h100-$name.json" --markdown "$out/diagnose-h100-$name.md" \
    | tee "$out/diagnose-h100-$name.txt"
}

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host: $(uname -srm)"
  nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv,noheader \
    | sed 's/^/gpu: /' || echo "gpu: nvidia-smi failed"
  echo "python: $("$py" -c 'import sys; print(sys.version.split()[0])')"
  echo "torch: $("$py" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)' 2>&1 | tail -1)"
  echo "onnxruntime (system): $(env PYTHONPATH="$without_gpu" "$py" -c 'import onnxruntime as o; print(o.__version__, o.get_available_providers())' 2>&1 | tail -1)"
  echo "onnxruntime (with $gpu_site): $(env PYTHONPATH="$with_gpu" "$py" -c 'import onnxruntime as o; print(o.__version__, o.get_available_providers())' 2>&1 | tail -1)"
} | sed "s#$HOME#~#g" | tee "$out/diagnose-h100-machine.txt"

report cpu-only-package "$without_gpu"
report onnxruntime-gpu "$with_gpu"
report onnxruntime-gpu-tensorrt "$with_gpu" --provider TensorrtExecutionProvider

# One line per environment: the fix printed in 1 is what 2 applies.
"$py" - "$out" <<'EOF' | tee "$out/diagnose-h100-summary.txt"
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
for name in ("cpu-only-package", "onnxruntime-gpu", "onnxruntime-gpu-tensorrt"):
    r = json.loads((out / f"diagnose-h100-{name}.json").read_text())
    print(f"{name}: {r['verdict_provider']}: {r['verdict']}")
    print(f"    findings: {', '.join(f['id'] for f in r['findings'])}")
    print(f"    used: {r['providers']['used']}")
EOF
