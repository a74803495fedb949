#!/usr/bin/env bash
# A cached AOTInductor package loaded as the first CUDA work of a fresh process (issue 29):
# on an H100 on 2026-12-07 such loads died with a segmentation fault (loadprobe/). One short
# call on a GPU machine, OUT the folder that comes back:
#
#   bash benchmarks/results/compiled/freshload.sh OUT
#
# builds a small engine (resnet18 at 64 px, batch 4, FP16 channels-last, Inductor's default
# mode: quick), then loads it in fresh processes: (a) torch's own aoti_load_package and one
# call, nothing on the GPU before; (b) the same after one tiny FP16 convolution and matrix
# product on the GPU (cuDNN's and cuBLAS's handles made first); (c) after one forward pass of
# the eager model on the GPU; (d) after an ONNX Runtime session on its CUDA provider ran once
# (bench's worker had run such rows where loads worked; needs onnxruntime-gpu on PYTHONPATH,
# as session.sh's gpu_machine sets it up; else that arm says so); (e) `bench` of the engine
# alone. Before the arms: how the package's library links (diag.txt) and, where the machine has
# them, a native backtrace of the plain arm (gdb.txt) and what it opens and runs (strace.txt).
set -u
cd "$(dirname "$0")/../../.."
R=${1:?usage: freshload.sh OUT}; mkdir -p "$R"
export PYTHONUNBUFFERED=1 VISIONBENCH_CACHE=${TMPDIR:-/tmp}/freshload/cache VISIONBENCH_DATA=${TMPDIR:-/tmp}/freshload/data
C=(--model resnet18 --image-size 64 --batch 4 --device cuda --precision fp16 --channels-last --packaged --compile-mode default)
say() { echo "$(date -u +%H:%M:%S) $*" >> "$R/progress.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >> "$R/progress.txt"
say "build"; python3 -m engine build "${C[@]}" > "$R/build.txt" 2>&1; say "build exit $?"
PKG=$(find "$VISIONBENCH_CACHE/compiled" -name model.pt2 | head -1)
cat > "$R/probe.py" <<'PY'
import sys, time
import torch, torch._inductor.package
if sys.argv[2] == "warmed":
    x = torch.ones(1, 1, 4, 4, device="cuda", dtype=torch.float16)
    torch.nn.functional.conv2d(x, torch.ones(1, 1, 3, 3, device="cuda", dtype=x.dtype))
    torch.ones(8, 8, device="cuda", dtype=x.dtype) @ torch.ones(8, 8, device="cuda", dtype=x.dtype)
    torch.cuda.synchronize()
if sys.argv[2] == "eager":
    import torchvision
    model = torchvision.models.resnet18().eval().cuda().half().to(memory_format=torch.channels_last)
    with torch.no_grad():
        model(torch.randn(4, 3, 64, 64, device="cuda", dtype=torch.float16))
    torch.cuda.synchronize()
if sys.argv[2] == "ort":
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        sys.exit("not run: this onnxruntime has no CUDA provider")
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [4]) for n in "xy"]
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", io[:1], io[1:])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    s = ort.InferenceSession(model.SerializeToString(), providers=["CUDAExecutionProvider"])
    print("ORT providers:", s.get_providers())
    s.run(None, {"x": __import__("numpy").ones(4, dtype="float32")})
t0 = time.perf_counter()
engine = torch._inductor.aoti_load_package(sys.argv[1], device_index=0)
print(f"loaded in {time.perf_counter() - t0:.1f} s", flush=True)
x = torch.randn(4, 3, 64, 64, device="cuda", dtype=torch.float16).to(memory_format=torch.channels_last)
print("ran:", tuple(engine(x).shape))
PY
say "diagnostics"
{
  echo "CUDA_HOME=${CUDA_HOME:-unset}"; command -v nvcc && nvcc --version | tail -2; ls -d /usr/local/cuda* 2>&1
  python3 -c "import torch, torch.utils.cpp_extension as c; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cpp_extension CUDA_HOME', c.CUDA_HOME)"
  D=$(mktemp -d) && (cd "$D" && python3 -m zipfile -e "$PKG" .)
  for so in $(find "$D" -name '*.so'); do echo "== $so"; readelf -d "$so" | grep -E 'NEEDED|RPATH|RUNPATH'; ldd "$so"; done
  for j in $(find "$D" -name '*flags.json'); do echo "== $j"; cat "$j"; echo; done
} > "$R/diag.txt" 2>&1
if command -v gdb >/dev/null; then
  say "gdb"; timeout 120 gdb -q -batch -ex run -ex bt -ex "info sharedlibrary" --args python3 "$R/probe.py" "$PKG" plain > "$R/gdb.txt" 2>&1; say "gdb exit $?"
fi
if command -v strace >/dev/null; then
  say "strace"; timeout 120 strace -f -tt -e trace=execve,openat,clone3,clone,wait4 -o "$R/strace.raw" python3 "$R/probe.py" "$PKG" plain > "$R/strace-run.txt" 2>&1
  say "strace exit $?"; grep -v ENOENT "$R/strace.raw" | grep -v -E '\.py"|\.pyc"|__pycache__' | tail -400 > "$R/strace.txt"; rm -f "$R/strace.raw"
fi
for arm in plain warmed eager ort; do
  say "$arm"
  timeout 120 python3 -X faulthandler "$R/probe.py" "$PKG" "$arm" > "$R/$arm.txt" 2>&1
  say "$arm exit $?"
done
say "bench"; python3 -X faulthandler -m engine bench --backend torch_compile "${C[@]}" --iters 3 --warmup 1 > "$R/bench.txt" 2>&1; say "bench exit $?"
