"""A plain ONNX Runtime timing loop that does not import ``engine`` (issue 12 item 5).

It is the yardstick for the engine's tuned ONNX Runtime path: the same model file, the same
provider options, I/O binding on torch CUDA tensors, CUDA graph replay, timed the same way
(host clock around run + synchronise). ``ort_gap.py`` alternates it with the engine in one
process. Usable alone:

    python benchmarks/ort_plain.py MODEL.onnx --batch 32 --fp16 --nhwc --cuda-graph
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def plain_session(path: str, provider_options: dict, profiling: bool = False):
    import onnxruntime as ort
    import torch  # noqa: F401 - loads the CUDA libraries the CUDA EP links against

    so = ort.SessionOptions()
    so.enable_profiling = profiling
    return ort.InferenceSession(
        path,
        sess_options=so,
        providers=[("CUDAExecutionProvider", provider_options), "CPUExecutionProvider"],
    )


def time_plain(
    session, batch: int, image: int, fp16: bool, cuda_graph: bool, iters: int, warmup: int
) -> list[float]:
    """Per-iteration latency (ms) of ``session`` with bound CUDA input and output."""
    import onnxruntime as ort
    import torch

    inp, out = session.get_inputs()[0], session.get_outputs()[0]
    dtype = torch.float16 if fp16 else torch.float32
    np_dtype = np.float16 if fp16 else np.float32
    x = torch.randn(batch, 3, image, image, device="cuda").to(dtype)
    n_out = out.shape[1] if isinstance(out.shape[1], int) else 1000
    y = torch.empty(batch, n_out, device="cuda", dtype=dtype)
    binding = session.io_binding()
    binding.bind_input(inp.name, "cuda", 0, np_dtype, list(x.shape), x.data_ptr())
    binding.bind_output(out.name, "cuda", 0, np_dtype, list(y.shape), y.data_ptr())
    ro = ort.RunOptions()
    if cuda_graph:
        ro.add_run_config_entry("gpu_graph_id", "1")

    def step() -> None:
        session.run_with_iobinding(binding, ro)
        torch.cuda.synchronize()

    for _ in range(warmup):
        step()
    samples = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step()
        samples.append((time.perf_counter() - t0) * 1000.0)
    return samples


def provider_options(fp16_nhwc: bool, cuda_graph: bool, search: str | None) -> dict:
    opts: dict = {"device_id": 0}
    if search:
        opts["cudnn_conv_algo_search"] = search
    if fp16_nhwc:
        opts["prefer_nhwc"] = 1
    if cuda_graph:
        opts["enable_cuda_graph"] = 1
    return opts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--image", type=int, default=224)
    p.add_argument("--fp16", action="store_true")
    p.add_argument("--nhwc", action="store_true")
    p.add_argument("--cuda-graph", action="store_true")
    p.add_argument("--search", default="EXHAUSTIVE")
    p.add_argument("--iters", type=int, default=200)
    args = p.parse_args()
    sess = plain_session(args.model, provider_options(args.nhwc, args.cuda_graph, args.search))
    samples = time_plain(sess, args.batch, args.image, args.fp16, args.cuda_graph, args.iters, 20)
    print(json.dumps({"p50_ms": float(np.median(samples)), "iters": len(samples)}))


if __name__ == "__main__":
    main()
