#!/usr/bin/env bash
# Import time of ml_dtypes (every `import onnx` imports it) at three versions, and the whole
# CPU time of a tiny `bench` (its process and its sweep worker) with the installed one.
#   bash benchmarks/results/imports/ml_dtypes.sh > benchmarks/results/imports/<date>-ml-dtypes.txt
set -u
cd "$(dirname "$0")/../../.."
PY=.venv/bin/python
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "python: $($PY -c 'import sys; print(sys.version.split()[0])'), numpy $($PY -c 'import numpy; print(numpy.__version__)'), onnx $($PY -c 'import importlib.metadata as m; print(m.version("onnx"))')"
for v in 0.5.4 0.6.0 0.7.0; do
  site=$(mktemp -d)
  $PY -m pip install -q --no-deps --target "$site" "ml_dtypes==$v" 2>/dev/null
  for i in 1 2 3; do
    PYTHONPATH=$site $PY -c "import time, numpy; t = time.perf_counter(); import ml_dtypes
print(f'ml_dtypes {ml_dtypes.__version__}: import {1000 * (time.perf_counter() - t):.0f} ms (numpy loaded first)')"
  done
  rm -rf "$site"
done
export VISIONBENCH_DATA=$(mktemp -d) VISIONBENCH_CACHE=$(mktemp -d)
echo "installed: ml_dtypes $($PY -c 'import importlib.metadata as m; print(m.version("ml_dtypes"))')"
for i in 0 1 2 3; do  # the first run exports the model: not counted
  /usr/bin/time -f "bench (process and worker): %e s wall, %U s user, %S s system" \
    $PY -m engine bench --model resnet18 --image-size 32 --batch 1 --backend ort --device cpu \
    --precision fp32 --iters 2 --warmup 0 --quiet 2>&1 >/dev/null | tail -1 | sed "s/^/run $i: /"
done
