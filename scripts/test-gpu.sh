#!/usr/bin/env bash
# The GPU test suite in one command, for a machine with an NVIDIA GPU and possibly no network.
#
#   bash scripts/test-gpu.sh [WHEEL_DIR] [LOG]
#
# WHEEL_DIR (default .whl/) holds wheels for what the machine lacks (Streamlit, Plotly,
# onnxruntime-gpu, ...; docs/gpu-testing.md says how to carry them). Only wheels whose
# distribution is missing, or present at another version, are installed, into a private
# folder put first on PYTHONPATH; numpy, pandas, pyarrow and torch already there are never
# replaced. With an onnxruntime-gpu wheel, a CPU-only onnxruntime package is uninstalled
# first (the two must never be installed together). Then it runs every test marked `gpu`,
# the dashboard's AppTest pages on CUDA and a real `streamlit run dashboard.py` checked over
# HTTP, and writes LOG (default benchmarks/results/gpu-tests/<date>-<gpu>.log) headed by the
# date, the commit, whether the tree was clean, the GPU, the driver and library versions.
# VISIONBENCH_GPU_TESTS (default tests) names the test files or ids to run, for a lease too
# short for the whole suite; the log's header says when it is a selection.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=${1:-.whl}
SITE=${VISIONBENCH_GPU_SITE:-/tmp/visionbench-gpu-site}
KEEP="numpy pandas pyarrow torch torchvision triton"

command -v nvidia-smi >/dev/null 2>&1 || { echo "test-gpu.sh: no nvidia-smi here: this script is for a machine with an NVIDIA GPU; run bash scripts/test.sh on other machines" >&2; exit 3; }

mkdir -p "$SITE"
if compgen -G "$WHEELS/*.whl" >/dev/null; then
  todo=()
  for whl in "$WHEELS"/*.whl; do
    base=$(basename "$whl")
    name=${base%%-*}; rest=${base#*-}; ver=${rest%%-*}
    dist=$(echo "$name" | tr '_' '-' | tr 'A-Z' 'a-z')
    case " $KEEP " in *" $dist "*) echo "keeping the installed $dist (not replaced by $base)"; continue;; esac
    have=$(PYTHONPATH="$SITE" "$PY" -c "import importlib.metadata as m,sys
try: print(m.version(sys.argv[1]))
except m.PackageNotFoundError: print('')" "$dist")
    [ "$have" = "$ver" ] && continue
    todo+=("$whl")
  done
  if printf '%s\n' "${todo[@]}" | grep -q onnxruntime_gpu && "$PY" -m pip show -q onnxruntime >/dev/null 2>&1; then
    echo "uninstalling the CPU-only onnxruntime package (onnxruntime-gpu is being installed)"
    "$PY" -m pip uninstall -y -q onnxruntime
  fi
  if [ ${#todo[@]} -gt 0 ]; then
    echo "installing ${#todo[@]} wheel(s) into $SITE"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --disable-pip-version-check \
      --upgrade --target "$SITE" "${todo[@]}" || exit 2
  fi
fi
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"

gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
slug=$(echo "$gpu" | tr 'A-Z' 'a-z' | tr -cs 'a-z0-9' '-' | sed 's/-$//')
LOG=${2:-benchmarks/results/gpu-tests/$(date -u +%Y-%m-%d)-$slug.log}
mkdir -p "$(dirname "$LOG")"
commit=${VISIONBENCH_COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
if [ -n "${VISIONBENCH_TREE:-}" ]; then tree=$VISIONBENCH_TREE
elif git rev-parse HEAD >/dev/null 2>&1; then
  [ -z "$(git status --porcelain --untracked-files=no)" ] && tree=clean || tree="modified"
else tree=unknown; fi
{
  echo "# visionbench GPU test log"
  echo "date (UTC):  $(date -u '+%Y-%m-%d %H:%M:%S')"
  echo "commit:      $commit (tree: $tree)"
  echo "tests:       ${VISIONBENCH_GPU_TESTS:-tests} (marked gpu)"
  echo "gpu:         $(nvidia-smi --query-gpu=name,memory.total,compute_cap --format=csv,noheader | head -1)"
  echo "driver:      $(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -1)"
  "$PY" - <<'EOF'
import importlib.metadata as m, platform
print(f"python:      {platform.python_version()}")
for d in ("torch", "torchvision", "onnx", "onnxruntime-gpu", "onnxruntime", "streamlit",
          "plotly", "numpy", "pandas", "tensorrt", "tensorrt-rtx-cu13-bindings"):
    try:
        print(f"{d + ':':<13}{m.version(d)}")
    except m.PackageNotFoundError:
        pass
try:
    import torch
    print(f"cuda/cudnn:  {torch.version.cuda} / {torch.backends.cudnn.version()}")
except Exception as exc:  # the log says why rather than stopping here
    print(f"torch:       cannot import ({exc})")
EOF
  echo
} > "$LOG"
cat "$LOG"

VISIONBENCH_REQUIRE_GPU=1 "$PY" -m pytest -m gpu -p no:cacheprovider -rs --durations=15 ${VISIONBENCH_GPU_TESTS:-tests} \
  2>&1 | sed -u "s#^rootdir: .*#rootdir: <repository root>#" | tee -a "$LOG"
rc=${PIPESTATUS[0]}
echo "exit code: $rc" | tee -a "$LOG"
exit "$rc"
