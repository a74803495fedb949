"""The source of the probe child process, run as `python -c CHILD_SOURCE ARGS_JSON`.

It runs in a fresh interpreter. fd 1 and fd 2 are redirected to a temp file around each stage,
so ONNX Runtime's native log (written by C++ straight to the file descriptor) and its Python
"EP Error ... Falling back" prints are captured per stage. It writes one line, a marker followed
by JSON, to the original stdout, and leaves with os._exit (CUDA libraries can crash at exit).
"""

CHILD_SOURCE = r"""
import json, os, sys, tempfile, time, traceback
args = json.loads(sys.argv[1])
report = os.fdopen(os.dup(1), "w")
result = {"remedy": args["remedy"], "stages": {}, "sessions": {}}

def stage(name, fn):
    sys.stdout.flush(); sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    tmp = tempfile.TemporaryFile()
    os.dup2(tmp.fileno(), 1); os.dup2(tmp.fileno(), 2)
    start, value, error = time.perf_counter(), None, None
    try:
        value = fn()
    except BaseException as exc:
        error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    finally:
        sys.stdout.flush(); sys.stderr.flush()
        os.dup2(saved[0], 1); os.dup2(saved[1], 2); os.close(saved[0]); os.close(saved[1])
    tmp.seek(0)
    log = tmp.read().decode("utf-8", "replace")
    tmp.close()
    result["stages"][name] = {"ok": error is None, "error": error, "log": log,
                              "seconds": round(time.perf_counter() - start, 3)}
    return value

def finish():
    try:
        with open("/proc/self/maps") as fh:
            keys = ("libcuda.so", "libcudart", "libcublas", "libcudnn.so", "libcurand",
                    "libcufft.so", "libnvinfer.so", "libonnxruntime_providers")
            paths = {l[l.index("/"):].strip() for l in fh if "/" in l and any(k in l for k in keys)}
        result["loaded_libraries"] = sorted(paths)
    except OSError:
        result["loaded_libraries"] = None
    report.write(args["marker"] + json.dumps(result) + "\n")
    report.flush()
    os._exit(0)  # skip interpreter teardown: CUDA libraries can crash at exit

def import_torch():
    import torch
    info = {"version": torch.__version__, "cuda": torch.version.cuda, "cudnn_version": None}
    try:
        info["cudnn_version"] = torch.backends.cudnn.version()
    except Exception as exc:
        info["cudnn_error"] = str(exc)
    info["cuda_available"] = torch.cuda.is_available()
    return info

if args["remedy"] == "torch_first":
    result["torch"] = stage("import torch", import_torch)
    if result["torch"] is None:
        finish()

def import_ort():
    import onnxruntime as ort
    info = {"version": getattr(ort, "__version__", None), "file": ort.__file__,
            "available_providers": ort.get_available_providers(),
            "device": ort.get_device(), "has_preload_dlls": hasattr(ort, "preload_dlls")}
    try:
        from onnxruntime.capi import build_and_package_info as b
        info.update(package_name=getattr(b, "package_name", None),
                    cuda_version=getattr(b, "cuda_version", None),
                    cudnn_version=getattr(b, "cudnn_version", None))
    except Exception as exc:
        info["build_info_error"] = str(exc)
    return info

result["ort"] = stage("import onnxruntime", import_ort)
if result["ort"] is None:
    finish()
import onnxruntime as ort

if args["remedy"] == "preload_dlls":
    if not hasattr(ort, "preload_dlls"):
        result["preload_unavailable"] = True
        finish()
    stage("onnxruntime.preload_dlls()", ort.preload_dlls)

with open(args["model"], "rb") as fh:
    model = fh.read()

for requested in args["providers"]:
    chain = [requested]
    if requested == "TensorrtExecutionProvider":
        chain.append("CUDAExecutionProvider")
    if "CPUExecutionProvider" not in chain:
        chain.append("CPUExecutionProvider")

    def run_session(chain=chain):
        import numpy as np
        sess = ort.InferenceSession(model, providers=chain)
        x = np.arange(4, dtype=np.float32).reshape(1, 4)
        y = sess.run(None, {"X": x})[0]
        return {"used": sess.get_providers(), "output_ok": bool((y == 2 * x).all())}

    out = stage("session " + requested, run_session) or {}
    out.update(chain=chain, stage="session " + requested)
    result["sessions"][requested] = out
finish()
"""
