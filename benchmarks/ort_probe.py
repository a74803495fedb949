"""Where ONNX Runtime's CUDA EP puts each node, whether a CUDA graph captures, and what a
static-shape model changes (issue 12 item 4); ONNX Runtime as shipped against a forced
``cudnn_conv_algo_search`` (item 3). Writes one JSON document.

    python benchmarks/ort_probe.py --out probe.json --models vit_b_16,convnext_tiny
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import traceback

import numpy as np


def placement(path: str, batch: int, fp16: bool, extra: dict | None = None) -> dict:
    """Provider → op → node count, from one profiled run of a session as shipped."""
    import onnxruntime as ort

    from engine.backends.ort import node_placement

    so = ort.SessionOptions()
    so.enable_profiling = True
    so.profile_file_prefix = os.path.join(tempfile.gettempdir(), "probe")
    opts = {"device_id": 0, **(extra or {})}
    sess = ort.InferenceSession(path, so, providers=[("CUDAExecutionProvider", opts)])
    shape = [batch if not isinstance(d, int) else d for d in sess.get_inputs()[0].shape]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float16 if fp16 else np.float32)
    sess.run(None, {sess.get_inputs()[0].name: x})
    prof = sess.end_profiling()
    out = node_placement(prof)
    os.unlink(prof)
    return out


def static_model(src: str, batch: int, dst: str) -> str:
    """Fix the batch dimension, then let ONNX Runtime fold the shape subgraph offline."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.tools.onnx_model_utils import make_input_shape_fixed

    model = onnx.load(src)
    inp = model.graph.input[0]
    dims = [d.dim_value or batch for d in inp.type.tensor_type.shape.dim]
    dims[0] = batch
    make_input_shape_fixed(model.graph, inp.name, dims)
    fixed = dst + ".fixed.onnx"
    onnx.save(model, fixed)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.optimized_model_filepath = dst
    ort.InferenceSession(fixed, so, providers=["CPUExecutionProvider"])
    return dst


def capture(path: str, batch: int, fp16: bool) -> dict:
    """Try a CUDA graph capture with bound torch tensors; the error text if it fails."""
    import onnxruntime as ort
    import torch

    try:
        opts = {"device_id": 0, "enable_cuda_graph": 1}
        sess = ort.InferenceSession(path, providers=[("CUDAExecutionProvider", opts)])
        dt = torch.float16 if fp16 else torch.float32
        npdt = np.float16 if fp16 else np.float32
        inp, out = sess.get_inputs()[0], sess.get_outputs()[0]
        x = torch.randn(batch, 3, 224, 224, device="cuda").to(dt)
        y = torch.empty(batch, 1000, device="cuda", dtype=dt)
        b = sess.io_binding()
        b.bind_input(inp.name, "cuda", 0, npdt, list(x.shape), x.data_ptr())
        b.bind_output(out.name, "cuda", 0, npdt, list(y.shape), y.data_ptr())
        ro = ort.RunOptions()
        ro.add_run_config_entry("gpu_graph_id", "1")
        for _ in range(3):
            sess.run_with_iobinding(b, ro)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(20):
            sess.run_with_iobinding(b, ro)
        torch.cuda.synchronize()
        return {"captured": True, "ms": (time.perf_counter() - t0) * 50}
    except Exception as exc:  # noqa: BLE001 - the message is the finding
        return {"captured": False, "error": " ".join(str(exc).split())[:600]}


def search_timing(path: str, batch: int, fp16: bool) -> dict:
    from ort_plain import plain_session, time_plain

    out = {}
    for search in (None, "DEFAULT", "HEURISTIC", "EXHAUSTIVE"):
        opts = {"device_id": 0, **({"cudnn_conv_algo_search": search} if search else {})}
        sess = plain_session(path, opts)
        s = time_plain(sess, batch, 224, fp16, False, 20, 5)
        shipped = sess.get_provider_options()["CUDAExecutionProvider"]
        out[search or "as shipped"] = {
            "p50_ms": float(np.median(s)),
            "cudnn_conv_algo_search": shipped.get("cudnn_conv_algo_search"),
            "use_tf32": shipped.get("use_tf32"),
        }
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--models", default="vit_b_16,convnext_tiny,efficientnet_b0,resnet50")
    p.add_argument("--batch", type=int, default=32)
    args = p.parse_args()
    from engine.artifacts.models import load_artifacts
    from engine.backends import environment
    from engine.core.config import ModelSpec

    doc = {"environment": environment("cuda:0"), "models": {}}
    for name in args.models.split(","):
        rec: dict = {}
        try:
            art = load_artifacts(ModelSpec(name=name))
            t0 = time.perf_counter()
            path = str(art.onnx_path("fp16"))
            rec["export_s"] = time.perf_counter() - t0
            rec["placement_dynamic"] = placement(path, args.batch, True)
            rec["capture_dynamic"] = capture(path, args.batch, True)
            static = static_model(path, args.batch, path + f".b{args.batch}.onnx")
            rec["placement_static"] = placement(static, args.batch, True)
            rec["capture_static"] = capture(static, args.batch, True)
            rec["search_b1"] = search_timing(str(art.onnx_path("fp32")), 1, False)
            rec["search_b32"] = search_timing(str(art.onnx_path("fp32")), 32, False)
        except Exception:  # noqa: BLE001 - record and go on to the next model
            rec["error"] = traceback.format_exc()[-2000:]
        doc["models"][name] = rec
        with open(args.out, "w") as f:
            json.dump(doc, f, indent=1, default=str)
        print(name, json.dumps(rec, default=str)[:1500], flush=True)


if __name__ == "__main__":
    main()
