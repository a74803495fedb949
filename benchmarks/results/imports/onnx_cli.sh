#!/usr/bin/env bash
# The whole time of a tiny `bench` of an ONNX file on ONNX Runtime (its process and its sweep
# worker) at two commits: BEFORE, whose sweep imported PyTorch for its thread count, and
# AFTER, which never loads it for such a run. Each commit runs from a worktree of its own
# with this checkout's .venv.
#   bash benchmarks/results/imports/onnx_cli.sh BEFORE AFTER > benchmarks/results/imports/<date>-onnx-cli.txt
set -u
cd "$(dirname "$0")/../../.."
PY=$(pwd)/.venv/bin/python
FILE=tests/data/onnx/legacy_fixed_48.onnx
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "python: $($PY -c 'import sys; print(sys.version.split()[0])'), torch $($PY -c 'import importlib.metadata as m; print(m.version("torch"))'), onnxruntime $($PY -c 'import onnxruntime; print(onnxruntime.__version__)')"
echo "command: python -m engine bench --onnx $FILE --backend ort --batch 1 --iters 2 --warmup 0 --min-iters 1 --quiet"
for rev in "$1" "$2"; do
  tree=$(mktemp -d)
  git worktree add -q --detach "$tree" "$rev"
  export VISIONBENCH_DATA=$(mktemp -d) VISIONBENCH_CACHE=$(mktemp -d)
  echo "commit: $(git rev-parse --short "$rev")"
  for i in 0 1 2 3 4; do  # run 0 warms the page cache: not counted
    (cd "$tree" && /usr/bin/time -f "%e s wall, %U s user, %S s system" \
      "$PY" -m engine bench --onnx "$FILE" --backend ort --batch 1 --iters 2 --warmup 0 \
      --min-iters 1 --quiet 2>&1 >/dev/null | tail -1 | sed "s/^/  run $i: /")
  done
  git worktree remove --force "$tree"
done
