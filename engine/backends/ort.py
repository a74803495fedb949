"""ONNX Runtime with the CPU or CUDA execution provider (int8 QDQ on the CPU), as shipped.

The plain rows are ONNX Runtime with its own provider defaults: only ``device_id`` is
set (:func:`cuda_provider_options`). Those defaults allow TF32 in the CUDA EP
(``use_tf32=1``) and search cuDNN's algorithms exhaustively, so an FP32 row on CUDA is
labelled "FP32, TF32 allowed (ORT default)" and judged at the TF32 tolerance. Every
departure is a declared, labelled option (:class:`OrtOptions`): ``strict_fp32``
(``use_tf32=0``), ``cudnn_conv_algo_search``, ``prefer_nhwc``, ``cuda_graph``,
``trt_ep``. The timed session is created without profiling: a separate one-off session
with profiling on runs one batch and counts the nodes each provider executed; the providers the timed
session really uses are compared with the ones requested: a CUDA result that ran (even
partly) on the CPU is an error that names the cause, never a row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.backends import describe
from engine.backends.base import Availability, Backend, Candidate, PrepareContext, Runner
from engine.backends.ort_faults import model_fault, session_error  # noqa: F401 - re-exported
from engine.backends.ort_placement import (  # noqa: F401 - re-exported for callers and tests
    COMPUTE_OPS,
    TRT_EP,
    capture_limit,
    check_capture_ops,
    check_graph_capture,
    check_placement,
    input_numpy_dtype,
    node_placement,
    probe_placement,
)
from engine.core.commands import engine_command, pip_command
from engine.core.config import RunnerSpec
from engine.core.devices import cuda_availability, parse_device
from engine.core.errors import BadInput
from engine.core.options import max_threads, option

CONV_SEARCHES = ("EXHAUSTIVE", "HEURISTIC", "DEFAULT")


@dataclass(frozen=True)
class OrtOptions:
    """Departures from ONNX Runtime as shipped; each is passed on only when set."""

    strict_fp32: bool = option(
        False, "CUDA EP: use_tf32=0 (ORT's default allows TF32)", "strict FP32 (use_tf32=0)"
    )
    cudnn_conv_algo_search: str | None = option(
        None, "CUDA EP: cuDNN convolution search (ORT's default is EXHAUSTIVE)",
        "cuDNN search", choices=CONV_SEARCHES,
    )  # fmt: skip
    prefer_nhwc: bool = option(False, "CUDA EP: prefer_nhwc=1 (NHWC kernels)", "NHWC kernels")
    cuda_graph: bool = option(
        False, "CUDA EP: enable_cuda_graph=1 on a static-shape copy of the model per batch",
        "CUDA graph (static shape per batch)",
    )  # fmt: skip
    trt_ep: bool = option(False, "ask for ONNX Runtime's TensorRT EP", "TensorRT EP")
    intra_threads: int | None = option(
        None,
        "CPU threads (set by --threads)",
        "threads",
        cli=False,
        minimum=1,
        maximum=max_threads(),
        setting="threads",
    )
    inter_threads: int | None = option(
        None,
        "ONNX Runtime inter-op threads",
        "inter-op threads",
        minimum=1,
        maximum=max_threads(),
        threads=True,
    )


def cuda_provider_options(spec: RunnerSpec) -> dict[str, Any]:
    """The CUDA EP's options: ``device_id`` and exactly the departures the spec names."""
    o = OrtBackend.options(spec)
    _, index = parse_device(spec.device)
    out: dict[str, Any] = {"device_id": index}
    if o.strict_fp32:
        out["use_tf32"] = 0
    if o.cudnn_conv_algo_search:
        out["cudnn_conv_algo_search"] = o.cudnn_conv_algo_search
    if o.prefer_nhwc:
        out["prefer_nhwc"] = 1
    if o.cuda_graph:
        out["enable_cuda_graph"] = 1
    return out


def _tf32_by_default(precision: str, device: str, options: dict[str, Any]) -> bool:
    """True for the FP32 CUDA EP row that runs ORT's default math (TF32 allowed)."""
    on_cuda = parse_device(device)[0] == "cuda"
    return (
        on_cuda
        and precision == "fp32"
        and not options.get("strict_fp32")
        and not options.get("trt_ep")
    )


PROVIDER_NAMES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def import_ort():
    import onnxruntime as ort

    return ort


def trt_ep_options(spec: RunnerSpec, index: int) -> dict[str, Any]:
    """TensorRT EP settings: engines and timings cached under our cache folder."""
    from engine.core.paths import cache_dir

    try:  # a pip-installed TensorRT puts libnvinfer where the EP finds it only after import
        import tensorrt  # noqa: F401
    except (ImportError, OSError):
        pass  # the EP then fails to load and the used-providers check reports the fallback
    folder = cache_dir() / "ort-tensorrt-ep"
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "device_id": index,
        "trt_fp16_enable": spec.precision == "fp16",
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(folder),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(folder),
    }


def session_options(ort: Any, o: OrtOptions) -> Any:
    """Session options as shipped (all graph optimisations, no profiling) plus thread counts."""
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    if o.intra_threads:
        so.intra_op_num_threads = o.intra_threads
    if o.inter_threads:
        so.inter_op_num_threads = o.inter_threads
    return so


def logits_name(outputs: list[Any]) -> str:
    """The output to time and compare: the only one, or the only 2-D one (a user's file
    was checked to have exactly one when it was loaded)."""
    two_d = [o for o in outputs if len(o.shape) == 2]
    return (two_d[0] if len(outputs) > 1 and len(two_d) == 1 else outputs[0]).name


class OrtRunner(Runner):
    def __init__(
        self,
        spec: RunnerSpec,
        model_path: str,
        ctx: PrepareContext,
        tail: tuple[int, ...] | None = None,
    ) -> None:
        """``tail`` is the measured input's channels, height and width, which the placement
        probe puts on symbolic axes (None: the old guess, for a fully static file)."""
        ort = import_ort()
        self.spec = spec
        self.ort = ort
        kind, index = parse_device(spec.device)
        self.kind, self.index = kind, index
        o = OrtBackend.options(spec)
        so = session_options(ort, o)
        if kind == "cuda":
            # CUDA EP libraries come from torch's CUDA wheels; loading torch first finds them.
            import torch  # noqa: F401

            if hasattr(ort, "preload_dlls"):
                try:
                    ort.preload_dlls()
                except Exception:  # noqa: BLE001 - diagnostics explains failures in depth
                    pass
            providers: list[Any] = [
                ("CUDAExecutionProvider", cuda_provider_options(spec)),
                "CPUExecutionProvider",
            ]
            if o.trt_ep:
                providers.insert(0, (TRT_EP, trt_ep_options(spec, index)))
        else:
            providers = ["CPUExecutionProvider"]
        self.use_graph = o.cuda_graph and kind == "cuda"
        batch = min(ctx.batches) if ctx.batches else 1
        if self.use_graph:
            # Known before capture: ONNX Runtime refuses to create a graph-capturing session
            # when any node is placed on the CPU, so look at the placement first.
            check_capture_ops(model_path)
            graph_placement = probe_placement(
                ort, model_path, session_options(ort, o), providers, batch, tail
            )
            check_graph_capture(graph_placement)
        try:
            self.session = ort.InferenceSession(model_path, sess_options=so, providers=providers)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own classes for each cause
            raise session_error(exc, model_path) from exc
        self.requested = TRT_EP if kind == "cuda" and o.trt_ep else PROVIDER_NAMES[kind]
        self.used = self.session.get_providers()
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.output_name = logits_name(self.session.get_outputs())
        self.input_dtype = input_numpy_dtype(inp.type)
        self.provider = self.requested if self.requested in self.used else self.used[0]
        self._out_tail: tuple[int, ...] | None = None
        self._in_tail: tuple[int, ...] = ()
        self._static: dict[tuple, Any] = {}
        # What it is fed: the file's declared input type (an FP16 input in an FP32 row too).
        self.info = {"providers_used": self.used, "model_path": model_path,
                     "input_dtype": np.dtype(self.input_dtype).name}  # fmt: skip
        if self.use_graph:
            self.info["static_shape_batch"] = batch
        self.placement: dict[str, dict[str, int]] = {}
        if self.use_graph:
            self.placement = graph_placement
        elif self.requested in self.used:
            self.placement = probe_placement(
                ort, model_path, session_options(ort, o), providers, batch, tail
            )
        check_placement(self.requested, self.used, self.placement)
        self.info["node_placement"] = self.placement

    def to_device(self, x: np.ndarray) -> Any:
        if self.kind == "cpu":
            return np.ascontiguousarray(x, dtype=self.input_dtype)
        import torch

        # Cast on the GPU: NumPy's float16 conversion of a large batch costs more than the
        # whole forward pass (measured: ~200 ms end to end at batch 256 on an H100).
        t = torch.from_numpy(np.ascontiguousarray(x)).to(f"cuda:{self.index}")
        t = t.to(getattr(torch, np.dtype(self.input_dtype).name))  # float16, float32, uint8
        entry = self._static.get(tuple(t.shape))
        if entry is not None and entry[1].data_ptr() != t.data_ptr():
            # This shape is already bound (a CUDA graph reads only the captured buffer): load
            # the batch into the bound input now, so the timed runs copy nothing.
            entry[1].copy_(t)
            torch.cuda.current_stream(t.device).synchronize()
            return entry[1]
        return t

    def _output_shape(self, batch: int) -> tuple[int, ...]:
        out = next(o for o in self.session.get_outputs() if o.name == self.output_name)
        if self._out_tail is None:
            dims = out.shape[1:]
            if all(isinstance(d, int) for d in dims):
                self._out_tail = tuple(dims)
            else:  # resolve symbolic dims once with a real run
                probe = self.session.run(
                    [self.output_name],
                    {self.input_name: np.zeros((batch, *self._in_tail), self.input_dtype)},
                )[0]
                self._out_tail = probe.shape[1:]
        return (batch, *self._out_tail)

    def run(self, x_dev: Any) -> Any:
        if self.kind == "cpu":
            return self.session.run([self.output_name], {self.input_name: x_dev})[0]
        return self._run_bound(x_dev)

    def _run_bound(self, x_dev: Any) -> Any:
        """I/O binding on torch CUDA tensors: no host copies inside the timed call."""
        import torch

        key = tuple(x_dev.shape)
        entry = self._static.get(key)
        if entry is None:
            self._in_tail = key[1:]
            out_dtype = next(
                o.type for o in self.session.get_outputs() if o.name == self.output_name
            )
            tdtype = torch.float16 if "float16" in out_dtype else torch.float32
            y = torch.empty(self._output_shape(key[0]), dtype=tdtype, device=x_dev.device)
            # The first input is bound as is and kept alive in the entry: replaying on that
            # tensor (as the timing loop does) copies nothing.
            x_static = x_dev
            binding = self.session.io_binding()
            np_in = np.dtype(str(x_static.dtype).removeprefix("torch.")).type
            binding.bind_input(
                self.input_name, "cuda", self.index, np_in, list(key), x_static.data_ptr()
            )
            np_out = np.float16 if tdtype == torch.float16 else np.float32
            binding.bind_output(
                self.output_name, "cuda", self.index, np_out, list(y.shape), y.data_ptr()
            )
            entry = self._static[key] = (binding, x_static, y)
            if self.use_graph and len(self._static) > 1:
                raise BadInput(
                    "an ONNX Runtime CUDA graph is captured for one input shape",
                    "this runner already captured another batch size",
                    "prepare one runner per batch size when cuda_graph is on",
                )
        binding, x_static, y = entry
        if x_static.data_ptr() != x_dev.data_ptr():
            x_static.copy_(x_dev)
            # The copy runs on torch's stream, ONNX Runtime reads on its own: wait for it.
            torch.cuda.current_stream(x_dev.device).synchronize()
        if self.use_graph:
            ro = self.ort.RunOptions()
            ro.add_run_config_entry("gpu_graph_id", "1")
            try:
                self.session.run_with_iobinding(binding, ro)
            except Exception as exc:  # noqa: BLE001 - a known capture-only limit is not a fault
                limit = capture_limit(exc)
                if limit is None:
                    raise
                raise limit from exc
        else:
            binding.synchronize_inputs()
            self.session.run_with_iobinding(binding)
        return y

    def to_host(self, y_dev: Any) -> np.ndarray:
        if isinstance(y_dev, np.ndarray):
            return y_dev.astype(np.float32, copy=False)
        return y_dev.detach().float().cpu().numpy()

    def synchronize(self) -> None:
        if self.kind == "cuda":
            import torch

            torch.cuda.synchronize(self.index)

    def peak_memory_mb(self) -> float | None:
        if self.kind != "cuda":
            return None
        from engine.hardware.gpu import nvml_used_mb

        return nvml_used_mb(self.index)

    def thread_counts(self) -> dict[str, int]:
        """ONNX Runtime reports 0 for "its default", which is one thread per physical core."""
        if self.session is None:
            return super().thread_counts()
        from engine.hardware.machine import physical_cores

        intra = self.session.get_session_options().intra_op_num_threads
        return {**super().thread_counts(), "ort": intra if intra > 0 else physical_cores()}

    def close(self) -> None:
        self._static.clear()
        self.session = None


class OrtBackend(Backend):
    NAME = "ort"
    TITLE = "ONNX Runtime"
    PRECISIONS = ("fp32", "tf32", "fp16", "int8")
    Options = OrtOptions
    LIBRARIES = {"onnxruntime": ("onnxruntime-gpu", "onnxruntime")}
    REFERENCE_RANK = 1  # for ONNX files, which PyTorch cannot run

    @classmethod
    def auto_ladder(cls, device: str) -> list[Candidate]:
        """As shipped first, then FP16, CUDA graphs and NHWC kernels (its own defaults already
        search cuDNN exhaustively: the steps add only departures); int8 QDQ on the CPU."""
        if parse_device(device)[0] == "cpu":
            return [Candidate.of("fp32"), Candidate.of("int8")]
        return [
            Candidate.of("fp32"),
            Candidate.of("fp16"),
            Candidate.of("fp16", cuda_graph=True),
            Candidate.of("fp16", prefer_nhwc=True),
            Candidate.of("fp16", prefer_nhwc=True, cuda_graph=True),
        ]

    @classmethod
    def parity_spec(cls, spec: RunnerSpec) -> RunnerSpec:
        return spec.with_options(cuda_graph=False)  # a graph is captured per shape

    @classmethod
    def library_versions(cls) -> dict[str, str | None]:
        from importlib import metadata

        out = super().library_versions()
        for dist in cls.LIBRARIES["onnxruntime"]:
            try:
                metadata.version(dist)
            except metadata.PackageNotFoundError:
                continue
            out["onnxruntime_package"] = dist
            break
        else:
            out["onnxruntime_package"] = None
        return out

    @classmethod
    def availability(cls, device: str = "cpu") -> Availability:
        try:
            ort = import_ort()
        except ImportError as exc:
            return Availability(
                False,
                f"onnxruntime does not import: {exc}",
                f"{pip_command()} install onnxruntime-gpu",
            )
        kind, _ = parse_device(device)
        if kind == "cpu":
            return Availability(True)
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            return Availability(
                False,
                "the installed onnxruntime package has no CUDA execution provider",
                f"{pip_command()} uninstall -y onnxruntime && {pip_command()} install onnxruntime-gpu",
            )
        return cuda_availability(device)

    @classmethod
    def explain(cls, exc: Exception) -> Exception:
        return model_fault(exc)

    @classmethod
    def precision_route(cls, precision: str) -> str:
        if precision != "int8":
            return super().precision_route(precision)
        sweep = engine_command("bench --backend ort --precision int8 --device cpu")
        return (
            f"nothing to build, {sweep} quantises the model (once, then cached) and runs it"
            " on the CPU"
        )

    @classmethod
    def check(cls, spec: RunnerSpec) -> None:
        super().check(spec)
        o = cls.options(spec)
        cpu = parse_device(spec.device)[0] == "cpu"
        if spec.precision == "int8" and not cpu:
            raise BadInput(
                "int8 with ONNX Runtime runs on the CPU execution provider here",
                "the CUDA EP has no fast int8 convolutions for QDQ models",
                "use --device cpu for int8, or fp16 on the GPU",
            )
        if spec.precision in ("tf32", "fp16") and cpu:
            raise BadInput(
                f"ONNX Runtime {spec.precision} needs the CUDA execution provider",
                "the CPU execution provider has no fast kernels for it",
                "use fp32 or int8 on the CPU",
            )
        if spec.precision == "tf32" and o.strict_fp32:
            raise BadInput(
                "tf32 and strict_fp32 contradict each other",
                "strict_fp32 sets use_tf32=0",
                "use fp32 with strict_fp32, or tf32 without it",
            )
        if o.trt_ep and (cpu or spec.precision not in ("fp32", "fp16")):
            raise BadInput(
                f"the TensorRT EP cannot run {spec.precision} on {spec.device} here",
                "it is offered on CUDA devices for fp32 and fp16",
                "use --device cuda with fp32 or fp16, or drop trt_ep",
            )

    @classmethod
    def per_batch(cls, spec: RunnerSpec) -> bool:
        """A CUDA graph is captured for one input shape: one session per batch size."""
        return cls.options(spec).cuda_graph and parse_device(spec.device)[0] != "cpu"

    @classmethod
    def parity_precision(cls, spec: RunnerSpec) -> str:
        """ORT's default FP32 on CUDA allows TF32: judge it at the TF32 tolerance."""
        if _tf32_by_default(spec.precision, spec.device, spec.opts):
            return "tf32"
        return spec.precision

    @classmethod
    def precision_note(cls, precision: str, device: str, options: dict[str, Any]) -> str:
        if _tf32_by_default(precision, device, options):
            return "TF32 allowed (ORT default)"
        return ""

    @classmethod
    def model_path(cls, spec: RunnerSpec, artifacts, ctx: PrepareContext) -> str:
        if spec.precision == "int8":
            from engine.artifacts.quantize import quantize_int8

            return str(
                quantize_int8(artifacts, ctx.calibration_dir, progress=ctx.step, note=ctx.row_note)
            )
        precision = "fp16" if spec.precision == "fp16" else "fp32"
        path = artifacts.onnx_path(precision, progress=ctx.step)
        if cls.per_batch(spec):
            # A CUDA graph is captured for one batch: a static-shape copy for that batch folds
            # the shape subgraph ONNX Runtime would otherwise run on the CPU (ViT, ConvNeXt).
            from engine.artifacts.external_data import model_digest
            from engine.artifacts.static_shapes import static_batch_model

            ctx.step(f"making a static-shape model for batch {ctx.batches[0]}")
            tail = artifacts.input_shape(1)[1:]
            return str(static_batch_model(path, ctx.batches[0], model_digest(path), tail))
        return str(path)

    @classmethod
    def _build(cls, spec: RunnerSpec, artifacts, ctx: PrepareContext) -> Runner:
        path = cls.model_path(spec, artifacts, ctx)
        ctx.step(f"creating an ONNX Runtime session ({describe(spec)})")
        return OrtRunner(spec, path, ctx, artifacts.input_shape(1)[1:])
