"""Eager PyTorch: fp32 (TF32 off), tf32, fp16, bf16, optional channels_last and CUDA graphs.

The GPU settings the speed ladder steps through live here as options: ``channels_last``,
``cudnn_benchmark`` (let cuDNN time its algorithms once per shape), ``fuse_bn`` (fold
batch-norm into the preceding convolution, exact in eval mode), ``fuse_relu`` (BN folded,
then each convolution + bias (+ residual add) + ReLU becomes one cuDNN fused call instead
of three or four memory-bound passes) and ``cuda_graph`` (capture once per batch size,
then replay: no per-kernel launch cost).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.backends.base import Availability, Backend, Candidate, PrepareContext, Runner
from engine.core.commands import pip_command
from engine.core.config import RunnerSpec
from engine.core.devices import cuda_availability, parse_device
from engine.core.errors import BadInput
from engine.core.options import max_threads, option


@dataclass(frozen=True)
class TorchOptions:
    """Eager PyTorch's switches (the speed ladder steps through them)."""

    channels_last: bool = option(False, "NHWC memory layout", "channels-last")
    cudnn_benchmark: bool = option(
        False, "CUDA: let cuDNN time its algorithms once per shape", "cuDNN autotune"
    )
    fuse_bn: bool = option(False, "fold BatchNorm into the preceding convolution", "BN folded")
    fuse_relu: bool = option(
        False, "CUDA: conv+bias(+add)+ReLU as one cuDNN call (BN folded first)",
        "conv+bias+ReLU fused",
    )  # fmt: skip
    cuda_graph: bool = option(False, "CUDA: capture and replay CUDA graphs", "CUDA graph")
    intra_threads: int | None = option(
        None,
        "CPU threads (set by --threads)",
        "threads",
        cli=False,
        minimum=1,
        maximum=max_threads(),
        setting="threads",
    )


class TorchRunner(Runner):
    def __init__(self, spec: RunnerSpec, module: Any) -> None:
        import torch

        self.spec = spec
        self.torch = torch
        kind, index = parse_device(spec.device)
        self.device = torch.device(kind, index) if kind == "cuda" else torch.device("cpu")
        self.dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(
            spec.precision, torch.float32
        )
        self.tf32 = spec.precision == "tf32"
        o = TorchBackend.options(spec)
        self.channels_last = o.channels_last
        self.memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        import copy

        self.fuse_relu = o.fuse_relu
        self.fuse_bn = o.fuse_bn or self.fuse_relu
        self.asked_fuse_bn = o.fuse_bn
        copied = self.dtype != torch.float32 or kind == "cuda" or self.fuse_bn
        model = copy.deepcopy(module) if copied else module
        self.folded_bn = 0
        if self.fuse_bn:
            before = count_batchnorms(model)
            model = fuse_batchnorm(model.eval())
            self.folded_bn = before - count_batchnorms(model)
        self.fused_convs = 0
        if self.fuse_relu:
            model, self.fused_convs = fuse_conv_relu(model)
        model = model.to(device=self.device, dtype=self.dtype, memory_format=self.memory_format)
        self.model = model.eval()
        self.provider = "torch-cuda" if kind == "cuda" else "torch-cpu"
        self.cudnn_benchmark = o.cudnn_benchmark
        self.info = {
            "channels_last": self.channels_last,
            "tf32": self.tf32,
            "cudnn_benchmark": self.cudnn_benchmark,
            "fuse_bn": self.fuse_bn,
            "folded_batchnorms": self.folded_bn,
            "fused_conv_relu": self.fused_convs,
        }
        self._pool: Any = None
        self._graphs: dict[tuple, Any] = {}
        self.use_graph = o.cuda_graph and kind == "cuda"
        threads = o.intra_threads
        if threads and kind == "cpu":
            torch.set_num_threads(int(threads))

    def inert_options(self) -> dict[str, str]:
        inert = {}
        if self.asked_fuse_bn and not self.folded_bn:
            inert["fuse_bn"] = "BN folding: no batch norm follows a convolution here"
        if self.fuse_relu and not self.fused_convs:
            inert["fuse_relu"] = "conv+bias+ReLU fusion: no convolution is followed by a ReLU"
        return inert

    def _set_math_mode(self) -> None:
        if self.device.type == "cuda":
            self.torch.backends.cudnn.allow_tf32 = self.tf32
            self.torch.backends.cuda.matmul.allow_tf32 = self.tf32
            self.torch.backends.cudnn.benchmark = self.cudnn_benchmark

    def to_device(self, x: np.ndarray) -> Any:
        t = self.torch.from_numpy(np.ascontiguousarray(x))
        t = t.to(device=self.device, dtype=self.dtype, non_blocking=False)
        t = t.contiguous(memory_format=self.memory_format)
        entry = self._graphs.get(tuple(t.shape)) if self.use_graph else None
        if entry is not None:
            # A graph for this shape exists (e.g. from the parity check): load the batch into
            # its input buffer now, so the replays that follow copy nothing.
            entry[1].copy_(t)
            return entry[1]
        return t

    def _forward(self, x: Any) -> Any:
        with self.torch.inference_mode():
            return self.model(x)

    def run(self, x_dev: Any) -> Any:
        self._set_math_mode()
        if self.use_graph:
            return self._graph_run(x_dev)
        return self._forward(x_dev)

    def _graph_run(self, x_dev: Any) -> Any:
        """Replay a CUDA graph captured once per input shape: no per-kernel launch cost."""
        torch = self.torch
        key = tuple(x_dev.shape)
        entry = self._graphs.get(key)
        if entry is None:
            # The first input becomes the graph's own input buffer (kept alive here), so
            # replaying on that same tensor, as the timing loop does, costs no copy.
            static_x = x_dev
            stream = torch.cuda.Stream(self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream):
                for _ in range(3):  # cuDNN picks (or times) its algorithms outside the capture
                    self._forward(static_x)
            torch.cuda.current_stream(self.device).wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            # One memory pool for all of this runner's graphs: batch sizes share activations.
            if self._pool is None:
                self._pool = torch.cuda.graph_pool_handle()
            with torch.cuda.graph(graph, pool=self._pool):
                static_y = self._forward(static_x)
            entry = self._graphs[key] = (graph, static_x, static_y)
        graph, static_x, static_y = entry
        if static_x.data_ptr() != x_dev.data_ptr():
            static_x.copy_(x_dev)
        graph.replay()
        return static_y

    def to_host(self, y_dev: Any) -> np.ndarray:
        return y_dev.detach().float().cpu().numpy()

    def stream(self) -> tuple[Any, Any]:
        if self.device.type != "cuda":
            return super().stream()
        stream = self.torch.cuda.Stream(self.device)
        return self.torch.cuda.stream(stream), stream.synchronize

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)

    def peak_memory_mb(self) -> float | None:
        if self.device.type != "cuda":
            return None
        return self.torch.cuda.max_memory_allocated(self.device) / 2**20

    def reset_peak_memory(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.reset_peak_memory_stats(self.device)

    def close(self) -> None:
        self._graphs.clear()
        self._pool = None
        self.model = None
        if self.device.type == "cuda":
            self.torch.cuda.empty_cache()


def count_batchnorms(model: Any) -> int:
    import torch

    return sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())


def fuse_batchnorm(model: Any) -> Any:
    """Fold each BatchNorm that follows a convolution into its weights (eval mode only).

    Exact up to rounding, and it removes one memory-bound pass per convolution. Models
    that torch.fx cannot trace are returned unchanged: the option is a speed-up, never
    a reason to fail.
    """
    from torch.fx.experimental.optimization import fuse

    try:
        return fuse(model, inplace=False)
    except Exception:  # noqa: BLE001 - untraceable models just keep their BatchNorms
        return model


class ConvReLU:
    """Marker base so tests and callers can find the fused layers."""


def _fused_conv_module(conv: Any, with_add: bool) -> Any:
    import torch
    import torch.nn.functional as F

    class FusedConvReLU(torch.nn.Module, ConvReLU):
        """relu(conv(x) + bias [+ z]) as one cuDNN call on CUDA; the same math elsewhere."""

        def __init__(self) -> None:
            super().__init__()
            self.weight = conv.weight
            self.bias = conv.bias
            self.stride = list(conv.stride)
            self.padding = list(conv.padding)
            self.dilation = list(conv.dilation)
            self.groups = conv.groups
            self.with_add = with_add

        def forward(self, x: Any, z: Any = None) -> Any:
            if x.is_cuda:
                args = (self.stride, self.padding, self.dilation, self.groups)
                if z is None:
                    return torch.cudnn_convolution_relu(x, self.weight, self.bias, *args)
                return torch.cudnn_convolution_add_relu(x, self.weight, z, 1.0, self.bias, *args)
            y = F.conv2d(
                x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
            )
            return F.relu(y if z is None else y + z)

    return FusedConvReLU()


def fuse_conv_relu(model: Any) -> tuple[Any, int]:
    """Rewrite conv → ReLU and conv → add(residual) → ReLU into fused layers (torch.fx).

    Returns the model and how many convolutions were fused; a model fx cannot trace, or
    one with no such pattern, comes back unchanged with 0.
    """
    import operator

    import torch
    from torch import fx

    try:
        gm = model if isinstance(model, fx.GraphModule) else fx.symbolic_trace(model)
    except Exception:  # noqa: BLE001 - untraceable models keep their separate layers
        return model, 0
    modules = dict(gm.named_modules())

    def conv_of(node: Any) -> Any:
        if not (isinstance(node, fx.Node) and node.op == "call_module" and len(node.users) == 1):
            return None
        m = modules.get(node.target)
        plain = (
            isinstance(m, torch.nn.Conv2d)
            and m.padding_mode == "zeros"
            and not isinstance(m.padding, str)
        )
        return m if plain else None

    def is_relu(node: Any) -> bool:
        if node.op == "call_module":
            return isinstance(modules.get(node.target), torch.nn.ReLU)
        if node.op == "call_function":
            return node.target in (torch.relu, torch.nn.functional.relu, torch.relu_)
        return node.op == "call_method" and node.target in ("relu", "relu_")

    fused = 0
    for node in list(gm.graph.nodes):
        if not is_relu(node) or not node.args or not isinstance(node.args[0], fx.Node):
            continue
        src = node.args[0]
        conv, args, drop = conv_of(src), None, [src]
        if conv is not None:
            args = (src.args[0],)
        elif (
            src.op == "call_function"
            and src.target in (operator.add, operator.iadd, torch.add)
            and len(src.users) == 1
            and len(src.args) == 2
            and not src.kwargs
        ):
            for a, b in (src.args, src.args[::-1]):
                if conv_of(a) is not None and isinstance(b, fx.Node):
                    conv, args, drop = conv_of(a), (a.args[0], b), [src, a]
                    break
        if conv is None or args is None:
            continue
        name = f"fused_conv_relu_{fused}"
        gm.add_submodule(name, _fused_conv_module(conv, len(args) == 2))
        with gm.graph.inserting_before(node):
            new = gm.graph.call_module(name, args)
        node.replace_all_uses_with(new)
        gm.graph.erase_node(node)
        for old in drop:
            gm.graph.erase_node(old)
        fused += 1
    if fused:
        gm.graph.lint()
        gm.delete_all_unused_submodules()
        gm.recompile()
    return gm, fused


class TorchBackend(Backend):
    NAME = "torch"
    TITLE = "PyTorch"
    PRECISIONS = ("fp32", "tf32", "fp16", "bf16")
    Options = TorchOptions
    RUNS_ONNX_FILES = False
    LIBRARIES = {"torch": ("torch",)}
    REFERENCE_RANK = 0  # eager FP32 on the CPU is what the model means

    @classmethod
    def auto_ladder(cls, device: str) -> list[Candidate]:
        """The naive baseline first, then one setting at a time (TF32, FP16, channels-last,
        cuDNN autotuning with batch-norm folded, CUDA graphs, fused conv + bias + ReLU), and
        BF16 with all of them; on the CPU the baseline alone."""
        if parse_device(device)[0] == "cpu":
            return [Candidate.of("fp32")]
        tuned = {"channels_last": True, "cudnn_benchmark": True, "fuse_bn": True}
        return [
            Candidate.of("fp32"),
            Candidate.of("tf32"),
            Candidate.of("fp16"),
            Candidate.of("fp16", channels_last=True),
            Candidate.of("fp16", **tuned),
            Candidate.of("fp16", **tuned, cuda_graph=True),
            Candidate.of("fp16", **tuned, cuda_graph=True, fuse_relu=True),
            Candidate.of("bf16", **tuned, cuda_graph=True, fuse_relu=True),
        ]

    @classmethod
    def parity_spec(cls, spec: RunnerSpec) -> RunnerSpec:
        return spec.with_options(cuda_graph=False)  # a graph is captured per shape

    @classmethod
    def availability(cls, device: str = "cpu") -> Availability:
        try:
            import torch  # noqa: F401
        except ImportError as exc:
            return Availability(
                False, f"torch does not import: {exc}", f"{pip_command()} install torch"
            )
        return cuda_availability(device)

    @classmethod
    def check(cls, spec: RunnerSpec) -> None:
        if spec.precision == "int8":
            raise BadInput(
                "eager PyTorch cannot run int8",
                "int8 here means a statically quantised ONNX model",
                "use --backend ort --precision int8 on the CPU",
            )
        super().check(spec)
        cpu = parse_device(spec.device)[0] == "cpu"
        o = cls.options(spec)
        if spec.precision == "tf32" and cpu:
            raise BadInput("tf32 is a GPU math mode", "the CPU has no TF32", "use fp32 on the CPU")
        if o.cuda_graph and cpu:
            raise BadInput("CUDA graphs need a CUDA device", fix="drop cuda_graph on the CPU")
        for name in ("cudnn_benchmark", "fuse_relu"):
            if getattr(o, name) and cpu:
                raise BadInput(f"{name} is a cuDNN setting", fix="drop it on the CPU")

    @classmethod
    def _build(cls, spec: RunnerSpec, artifacts, ctx: PrepareContext) -> Runner:
        return TorchRunner(spec, artifacts.torch_module())
