# Sourced by the GPU session scripts (benchmarks/results/*/session.sh) on a lent GPU machine:
#   gpu_machine WORK LOG     (with a function `log` already defined)
# joins the carried parts (WORK/c/part.*: a tar of p/ and w/), unpacks onnxruntime-gpu's files
# (WORK/p/part.*: an xz-compressed tar of the wheel's files) into WORK/site and uninstalls the
# CPU-only package, installs the dashboard's wheels (WORK/w/*.whl) there, exports PYTHONPATH
# and the product's cache and data folders under WORK, stops unless ONNX Runtime's CUDA
# provider loads, and leaves the shell in a private copy of the tree (WORK/src): the lease
# re-sends the working tree at every call.
gpu_machine() {
  local work=$1 out=$2
  command -v nvidia-smi >/dev/null || { log "no nvidia-smi: this script is for the GPU machine"; exit 3; }
  mkdir -p "$work/site"
  if compgen -G "$work/c/part.*" >/dev/null && [ ! -d "$work/w" ]; then
    cat "$work"/c/part.* | tar x -C "$work" || { log "joining the carried parts failed"; exit 2; }
  fi
  if compgen -G "$work/p/part.*" >/dev/null && [ ! -d "$work/site/onnxruntime" ]; then
    unxz() { if command -v xz >/dev/null; then xz -dc; else python3 -c "import lzma, shutil, sys
shutil.copyfileobj(lzma.open(sys.stdin.buffer), sys.stdout.buffer)"; fi; }
    cat "$work"/p/part.* | unxz | tar x -C "$work/site" || { log "unpacking the wheel failed"; exit 2; }
    python3 -m pip uninstall -y -q onnxruntime 2>/dev/null
  fi
  if compgen -G "$work/w/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target "$work/site" "$work"/w/*.whl \
      >> "$out" 2>&1 || log "installing the dashboard's wheels failed"
  fi
  export PYTHONPATH=$work/site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
  export VISIONBENCH_CACHE=$work/cache VISIONBENCH_DATA=$work/data
  python3 -c "import onnxruntime as o; assert 'CUDAExecutionProvider' in o.get_available_providers(); print('onnxruntime', o.__version__, o.__file__)" \
    >> "$out" 2>&1 || { log "ONNX Runtime's CUDA provider is missing: nothing measured"; exit 3; }
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >> "$out"
  local src=$work/src
  rm -rf "$src" && mkdir -p "$src"
  tar cf - --exclude=./.gpuparts --exclude=./.git . | tar xf - -C "$src" && cd "$src" || exit 4
}
