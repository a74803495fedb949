"""``torch.compile`` (max-autotune by default) as its own backend, ``torch_compile``.

Inductor fuses pointwise work into the convolutions' epilogues, folds batch-norm into
the weights (freezing) and, in max-autotune, times several kernels per layer and keeps
the fastest. That search takes minutes per input shape, so the backend is per batch
(the sweep builds one runner for each batch size asked for, and no other), and the
compiled artifacts and autotuning results are kept on disk under the product's cache
folder (``inductor/``): a second start with the same model, shape and versions loads
them instead of compiling again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from engine.backends import describe
from engine.backends.base import Availability, Backend, Candidate, PrepareContext, Runner
from engine.backends.compiled_engine import (
    GRAPH_MODES,
    KIND,
    EngineKey,
    build,
    device_identity,
    entries,
    estimate_text,
    is_cached,
    key_meaning,
    library_versions,
    no_estimate,
    package_mode,
    stale_reason,
)
from engine.backends.torch_backend import TorchBackend, TorchRunner
from engine.core.commands import engine_command, pip_command
from engine.core.config import RunnerSpec
from engine.core.devices import parse_device
from engine.core.errors import BadInput
from engine.core.options import max_threads, option
from engine.core.parity import PARITY_BATCH, PARITY_MIN_BATCH
from engine.core.paths import cache_dir

MODES = ("max-autotune", "max-autotune-no-cudagraphs", "reduce-overhead", "default")


@dataclass(frozen=True)
class TorchCompileOptions:
    """torch.compile's switches; CUDA graphs come from Inductor's own modes, not an option."""

    compile_mode: str = option("max-autotune", "torch.compile mode", "mode", choices=MODES)
    freezing: bool = option(
        True, "Inductor freezing: weights as constants, BN folded", off_label="no freezing"
    )
    channels_last: bool = option(False, "NHWC memory layout", "channels-last")
    packaged: bool = option(
        False,
        "an AOTInductor package per batch, built once and cached (the build command);"
        " loaded with nothing compiled",
        "AOTInductor package",
    )
    intra_threads: int | None = option(
        None,
        "CPU threads (set by --threads)",
        "threads",
        cli=False,
        minimum=1,
        maximum=max_threads(),
        setting="threads",
    )


def inductor_cache_dir() -> str:
    """Point Inductor's (and Triton's) on-disk caches into the product's cache folder.

    An explicit TORCHINDUCTOR_CACHE_DIR set by the user wins. Inductor reads the variable
    each time it looks for the cache, so setting it before the first compile is enough.
    """
    if "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache_dir() / "inductor")
    folder = os.environ["TORCHINDUCTOR_CACHE_DIR"]
    os.makedirs(folder, exist_ok=True)
    os.environ.setdefault("TRITON_CACHE_DIR", os.path.join(folder, "triton"))
    return folder


class CompiledRunner(TorchRunner):
    """A TorchRunner whose forward pass is the Inductor-compiled model."""

    def __init__(self, spec: RunnerSpec, module: Any, ctx: PrepareContext) -> None:
        super().__init__(spec, module)
        torch = self.torch
        folder = inductor_cache_dir()
        import torch._inductor.config as inductor_config

        # Freezing turns weights into constants, so BN folds into the conv and
        # layouts are chosen once; it is only valid for inference, which this is.
        o = TorchCompileBackend.options(spec)
        inductor_config.freezing = o.freezing
        inductor_config.fx_graph_cache = True
        self.mode = o.compile_mode
        self.compiled = torch.compile(self.model, mode=self.mode, dynamic=False, fullgraph=False)
        # Inductor brings its own CUDA graphs in max-autotune / reduce-overhead modes.
        self.use_graph = False
        self.ctx = ctx
        self.compile_s: dict[tuple[int, ...], float] = {}
        self.info.update({"compile_mode": self.mode, "inductor_cache": "inductor/"})
        self.provider = (
            "torch-inductor-cuda" if self.device.type == "cuda" else "torch-inductor-cpu"
        )
        self._cache_folder = folder

    def _forward(self, x: Any) -> Any:
        shape = tuple(x.shape)
        if shape not in self.compile_s:
            self.ctx.step(
                f"compiling {self.spec.backend} ({self.mode}) for input {list(shape)}: minutes"
                " the first time, seconds when the on-disk cache has it"
            )
            t0 = time.perf_counter()
            with self.torch.inference_mode():
                y = self.compiled(x)
                # Inductor's graphs may be recorded on the second call; do it here too so
                # that no compile or capture work leaks into the timed iterations.
                y = self.compiled(x)
            if self.device.type == "cuda":
                self.torch.cuda.synchronize(self.device)
            self.compile_s[shape] = time.perf_counter() - t0
            self.info.setdefault("compile_s", {})[str(list(shape))] = round(
                self.compile_s[shape], 1
            )
            self.ctx.say(f"compiled for input {list(shape)} in {self.compile_s[shape]:.1f} s")
            return y
        with self.torch.inference_mode():
            return self.compiled(x)

    def run(self, x_dev: Any) -> Any:
        self._set_math_mode()
        if self.device.type == "cuda":
            # Each call is a new inference step for Inductor's CUDA graphs, which then may
            # reuse the previous step's output buffer instead of refusing to replay.
            self.torch.compiler.cudagraph_mark_step_begin()
        return self._forward(x_dev)

    def close(self) -> None:
        self.compiled = None
        super().close()


class PackagedRunner(TorchRunner):
    """A TorchRunner whose forward pass is a cached AOTInductor package (one per shape).

    The eager model is exported and compiled only when no package of this key is cached;
    otherwise the package is loaded and nothing is traced, compiled or autotuned. In the
    modes whose speed comes with CUDA graphs, the package's call is captured once per shape:
    the package itself is compiled in the mode without them (``package_mode``), the one
    package both modes of a pair load.
    """

    def __init__(self, spec: RunnerSpec, artifacts: Any, ctx: PrepareContext) -> None:
        super().__init__(spec, artifacts.torch_module())
        o = TorchCompileBackend.options(spec)
        self.art, self.ctx, self.mode, self.freezing = artifacts, ctx, o.compile_mode, o.freezing
        self.eager = self.model
        self.engines: dict[tuple[int, ...], Any] = {}
        self.use_graph = self.device.type == "cuda" and self.mode in GRAPH_MODES
        self.provider = "torch-aoti-cuda" if self.device.type == "cuda" else "torch-aoti-cpu"
        self.info.update({"compile_mode": self.mode, "engine": "AOTInductor package"})

    def _forward(self, x: Any) -> Any:
        engine = self.engines.get(tuple(x.shape)) or self._engine(x)
        with self.torch.inference_mode():
            return engine(x)

    def _compile(self, x: Any, key: EngineKey) -> Any:
        torch = self.torch
        inductor_cache_dir()

        def compile_package(path: str) -> None:
            self.ctx.step(
                f"compiling the {key.compiled_mode} engine for batch {key.batch}:"
                f" {estimate_text(key)}"
            )
            with torch.no_grad():
                program = torch.export.export(self.eager, (x,))
            configs = dict(torch._inductor.list_mode_options(key.compiled_mode))
            configs.pop("triton.cudagraphs", None)  # the runner captures its own graph
            configs["freezing"] = self.freezing
            torch._inductor.aoti_compile_and_package(
                program, package_path=path, inductor_configs=configs
            )

        return build(key, compile_package, {"mode": key.compiled_mode}, self.ctx.say)

    def _engine(self, x: Any) -> Any:
        key = TorchCompileBackend.engine_key(self.spec, self.art, int(x.shape[0]))
        path, build_s, built = self._compile(x, key)
        t0 = time.perf_counter()
        import torch._inductor.package  # noqa: F401  (timed apart: Python imports, not the engine)

        import_s = time.perf_counter() - t0
        cuda = self.device.type == "cuda"
        if cuda:
            _onnxruntime_loaded()
        probe_s = 0.0 if cuda else _isa_probes_s()
        t0 = time.perf_counter()
        with _cpu_isa_unprobed() if cuda else contextlib.nullcontext():
            engine = self.torch._inductor.aoti_load_package(
                str(path),
                run_single_threaded=self.use_graph,
                device_index=(self.device.index or 0) if cuda else -1,
            )
        load_s = time.perf_counter() - t0
        imports = _before_load(import_s, probe_s)
        if built:
            self.ctx.say(
                f"built the compiled engine {key.name} in {build_s:.0f} s and cached it"
                f" ({engine_command('cache list')}); loaded in {load_s:.1f} s{imports}"
            )
        else:
            self.ctx.say(
                f"loaded the cached compiled engine {key.name} in {load_s:.1f} s{imports},"
                f" nothing compiled (its build took {build_s:.0f} s)"
            )
        self.info.update(
            {
                "engine_key": key.name,
                "engine": "built now" if built else "loaded from the cache",
                "build_s": round(build_s, 1),
                "load_s": round(load_s, 2),
                "import_s": round(import_s, 2),
                "isa_probe_s": round(probe_s, 2),
            }
        )
        self.engines[tuple(x.shape)] = engine
        return engine

    def close(self) -> None:
        self.engines.clear()
        self.eager = None
        super().close()


def _onnxruntime_loaded() -> None:
    """Import ONNX Runtime's Python module before a package is loaded on CUDA.

    On NVIDIA H100 machines (torch 2.11.0+cu130, driver 580, 2026-12-07) every process that
    loaded a CUDA AOTInductor package without ONNX Runtime imported first died with a
    segmentation fault inside torch's loader, the building process too; with only
    ``import onnxruntime`` before it (its CPU or CUDA build, no session) every load worked
    (benchmarks/results/compiled/loadprobe/). The cause inside torch is not known; the module
    is a dependency of this product anyway, so it is imported here, not left to the order of
    rows.
    """
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        pass


@contextlib.contextmanager
def _cpu_isa_unprobed() -> Iterator[None]:
    """Load a CUDA package without Inductor's CPU instruction-set probes.

    Loading any package asks Inductor for the CPU's vector instruction set, only to compare
    it with the one recorded at build time (a logged warning where they differ): a CUDA
    package's CPU side is compiled already. torch 2.11 answers by compiling about ten tiny
    C++ probes and importing torch in a fresh Python process for each, in every process:
    42.7 and 42.9 s before a 0.3 s load on an H100 machine (benchmarks/results/compiled/
    loadprobe/). For the load only, Inductor's own ``cpp.vec_isa_ok`` setting says "no
    vector instruction set" (left alone where the user set it), so nothing is probed, and
    the one warning that this answer differs from the package's is not shown; a process that
    has probed already keeps its answer, and afterwards the answer is forgotten, so a later
    CPU compile in this process probes as usual.
    """
    from torch._inductor import config
    from torch._inductor.cpu_vec_isa import valid_vec_isa_list

    probed = getattr(valid_vec_isa_list, "cache_info", None)  # functools.cache'd in torch
    if config.cpp.vec_isa_ok is not None or probed is None or probed().currsize:
        yield
        return
    logger = logging.getLogger("torch.export.pt2_archive._package")
    logger.addFilter(_not_the_cpu_isa)
    try:
        with config.patch({"cpp.vec_isa_ok": False}):
            yield
    finally:
        logger.removeFilter(_not_the_cpu_isa)
        valid_vec_isa_list.cache_clear()


def _not_the_cpu_isa(record: logging.LogRecord) -> bool:
    """Torch's load warning about the CPU instruction set, which _cpu_isa_unprobed caused."""
    return not (isinstance(record.args, tuple) and record.args[:1] == ("AOTI_CPU_ISA",))


def _isa_probes_s() -> float:
    """Seconds Inductor takes to pick the CPU's vector instruction set, which loading a CPU
    package asks for: it compiles and loads about ten tiny C++ probes (about 10 s on 2 cores;
    torch 2.14 keeps them in the Inductor cache folder, torch 2.11 checks them again in every
    process). Timed apart so the load time is the package's own."""
    from torch._inductor.cpu_vec_isa import pick_vec_isa

    t0 = time.perf_counter()
    pick_vec_isa()  # cached for the process: the load below reuses the answer
    return time.perf_counter() - t0


def _before_load(import_s: float, probe_s: float) -> str:
    """What came before the load, where it took long enough to notice."""
    parts = [f"{import_s:.1f} s importing Inductor"] if import_s >= 0.5 else []
    if probe_s >= 0.5:
        parts.append(f"{probe_s:.1f} s of Inductor's CPU instruction-set probes")
    return f" (after {' and '.join(parts)})" if parts else ""


class TorchCompileBackend(Backend):
    NAME = "torch_compile"
    TITLE = "torch.compile"
    PRECISIONS = ("fp32", "tf32", "fp16", "bf16")
    Options = TorchCompileOptions
    RUNS_ONNX_FILES = False
    BUILDS_ENGINES = True
    BUILD_OPTIONS = {"packaged": True}
    CACHE_KIND = KIND

    @classmethod
    def auto_ladder(cls, device: str) -> list[Candidate]:
        """A packaged engine: FP16 channels-last max-autotune on CUDA; FP32 in the default
        mode on the CPU. Slow (minutes of compiling per shape): auto mode tries it when its
        engines are cached, or when asked to build them."""
        if parse_device(device)[0] == "cpu":
            return [Candidate.of("fp32", slow=True, packaged=True, compile_mode="default")]
        return [Candidate.of("fp16", slow=True, channels_last=True, packaged=True)]

    @classmethod
    def engine_key(cls, spec: RunnerSpec, artifacts: Any, batch: int) -> EngineKey:
        """The cache key of ``spec``'s packaged engine for ``batch`` of this model."""
        import torch

        o = cls.options(spec)
        name, cc = device_identity(spec.device)
        h, w = artifacts.image_hw
        cpu = parse_device(spec.device)[0] == "cpu"
        # what Inductor's CPU code is generated for: --threads, else this process's count
        threads = (o.intra_threads or torch.get_num_threads()) if cpu else 0
        return EngineKey(
            model=artifacts.model_name,
            weights_hash=artifacts.weights_hash,
            batch=batch,
            channels=artifacts.channels,
            height=h,
            width=w,
            precision=spec.precision,
            compiled_mode=package_mode(o.compile_mode),
            freezing=o.freezing,
            channels_last=o.channels_last,
            **library_versions(),
            device_name=name,
            compute_capability=cc,
            cpu_threads=int(threads),
            torchvision_version=artifacts.code_version,
        )

    @classmethod
    def engine_batches(cls, spec: RunnerSpec, batches: tuple[int, ...]) -> tuple[int, ...]:
        """With no batch of at least 2 asked for, parity judges a packaged engine at the
        default parity batch: an engine of its own, built and cached like the others."""
        if not cls.options(spec).packaged or cls.parity_batch(spec, batches) is not None:
            return batches
        return tuple(dict.fromkeys((*batches, PARITY_BATCH)))

    @classmethod
    def cached_engines(cls, spec: RunnerSpec, artifacts: Any, batches: tuple[int, ...]) -> bool:
        """True when ``spec`` is packaged and its engine for every batch a sweep of
        ``batches`` needs (parity's included) is in the cache."""
        if not cls.options(spec).packaged or not cls.availability(spec.device).ok:
            return False
        if not entries():  # nothing cached: no key to make, so the model need not be loaded
            return False
        needed = cls.engine_batches(spec, batches)
        return all(is_cached(cls.engine_key(spec, artifacts, b)) for b in needed)

    @classmethod
    def cache_state(cls, kind: str, meta: dict[str, Any]) -> str:
        return stale_reason(meta) if kind == cls.CACHE_KIND else ""

    @classmethod
    def cache_detail(cls, kind: str, meta: dict[str, Any]) -> str:
        return key_meaning(meta) if kind == cls.CACHE_KIND else ""

    @classmethod
    def build_hint(cls, spec: RunnerSpec, artifacts: Any, batches: tuple[int, ...]) -> str:
        """How long building ``spec``'s engines is expected to take, from earlier builds."""
        if not cls.options(spec).packaged or not cls.availability(spec.device).ok:
            return ""
        if not entries():  # no earlier build to estimate from: the model need not be loaded
            return no_estimate(not spec.device.startswith("cuda"))
        return estimate_text(cls.engine_key(spec, artifacts, max(batches)))

    @classmethod
    def parity_batch(cls, spec: RunnerSpec, batches: tuple[int, ...]) -> int | None:
        """Judged at one of the sweep's batches (the first of at least 2, which parity
        needs), which a timed point then runs, rather than at a batch of its own: another
        compile of minutes per shape (just in time or packaged)."""
        return next((b for b in batches if b >= PARITY_MIN_BATCH), None)

    @classmethod
    def availability(cls, device: str = "cpu") -> Availability:
        base = TorchBackend.availability(device)
        if not base.ok:
            return base
        try:
            import torch._inductor  # noqa: F401
        except Exception as exc:  # noqa: BLE001 - an Inductor that does not import is "unavailable"
            return Availability(
                False, f"torch._inductor does not import: {exc}", f"{pip_command()} install torch"
            )
        return Availability(True)

    @classmethod
    def check(cls, spec: RunnerSpec) -> None:
        if spec.precision == "int8":  # its own name, before eager PyTorch's check says its
            raise BadInput(
                "torch.compile cannot run int8",
                "int8 here means a statically quantised (Q/DQ) ONNX model",
                "use --backend ort --precision int8 on the CPU, or --backend tensorrt"
                " --precision int8 on a GPU",
            )
        if spec.opts.get("cuda_graph"):
            raise BadInput(
                "torch_compile captures its own CUDA graphs",
                "max-autotune records them through Inductor",
                "drop cuda_graph for torch_compile (use compile_mode=max-autotune)",
            )
        TorchBackend.check(spec)
        super().check(spec)

    @classmethod
    def check_concurrency(cls, spec: RunnerSpec) -> None:
        raise BadInput(
            "torch.compile's CUDA graphs are not safe to replay from several threads",
            fix="measure concurrency with the torch backend and cuda_graph",
        )

    @classmethod
    def per_batch(cls, spec: RunnerSpec) -> bool:
        """Compile only the batch sizes asked for: each is its own multi-minute search."""
        return True

    @classmethod
    def _build(cls, spec: RunnerSpec, artifacts, ctx: PrepareContext) -> Runner:
        if cls.options(spec).packaged:
            ctx.step(f"preparing {describe(spec)}: cached engines in compiled/")
            return PackagedRunner(spec, artifacts, ctx)
        ctx.step(f"preparing torch.compile ({describe(spec)}); cache folder inductor/")
        return CompiledRunner(spec, artifacts.torch_module(), ctx)
