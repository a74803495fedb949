"""A stand-in ``tensorrt`` module for what needs a loaded TensorRT engine.

Kept only for what this CPU machine cannot do with a real library: deserialise a plan
into an engine (TensorRT-RTX builds here but its runtime needs a GPU driver; full
TensorRT does not install here), so the plan cache's reuse and rebuild of a plan that
does not load, TensorRT-RTX's runtime cache (read and written through a loaded
engine) and the engine inspector. Builds, parser errors, profiles, plan keys and the
plan cache's hits and misses are tested with real TensorRT-RTX builds in
tests/backends/test_tensorrt_rtx.py. It mirrors only the API surface we call, with the 10.x /
11.x differences that matter (11.x has no FP16/BF16/INT8 builder flags and no
EXPLICIT_BATCH network flag), so a call that the real version would reject fails here
too; it records what our code asks and never stands in for a measured result.
"""

from __future__ import annotations

import enum
import json
import types
from pathlib import Path


def make_fake_tensorrt(
    version: str = "10.8.0",
    monitor: bool = True,
    parse_errors=(),
    gpu: str = "GPU-A",
    inspector_json: dict | None = None,
):
    """A stand-in ``tensorrt`` module that records what our code asks of it.

    It mirrors only the API surface we call, with the 10.x / 11.x differences that matter
    (11.x has no FP16/BF16/INT8 builder flags and no EXPLICIT_BATCH network flag), so a
    call that the real version would reject fails here too.
    """
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.IS_FAKE_TENSORRT = True
    major = int(version.split(".")[0])
    log: dict = {
        "create_network": [],
        "parsed": [],
        "builds": [],
        "timing_in": [],
        "runtime_cache_in": [],
        "inspected": [],
    }
    inspector_json = inspector_json or {"Layers": []}
    trt.calls = log

    class Severity(enum.IntEnum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4

    class ILogger:
        def __init__(self):
            pass

    ILogger.Severity = Severity
    trt.ILogger = ILogger
    flags = ["TF32", "FP16", "BF16", "INT8"] if major < 11 else ["TF32"]
    trt.BuilderFlag = enum.IntEnum("BuilderFlag", flags, start=0)
    net_flags = ["EXPLICIT_BATCH", "STRONGLY_TYPED"] if major < 11 else ["STRONGLY_TYPED"]
    trt.NetworkDefinitionCreationFlag = enum.IntEnum("NDCF", net_flags, start=0)
    trt.MemoryPoolType = enum.IntEnum("MemoryPoolType", ["WORKSPACE"], start=0)
    trt.ProfilingVerbosity = enum.IntEnum("PV", ["LAYER_NAMES_ONLY", "NONE", "DETAILED"], start=0)

    class Network:
        num_layers = 4

        def get_input(self, i):
            return types.SimpleNamespace(name="input", shape=(-1, 3, 16, 16))

    class ParserError:
        def __init__(self, node, name, op, desc):
            self._v = (node, name, op, desc)

        def node(self):
            return self._v[0]

        def node_name(self):
            return self._v[1]

        def node_operator(self):
            return self._v[2]

        def desc(self):
            return self._v[3]

    class OnnxParser:
        def __init__(self, network, logger):
            self.errors = [ParserError(*e) for e in parse_errors]

        @property
        def num_errors(self):
            return len(self.errors)

        def get_error(self, i):
            return self.errors[i]

        def parse_from_file(self, path):
            log["parsed"].append(Path(path).name)
            return not self.errors

    class TimingCache:
        def __init__(self, blob):
            self.blob = bytes(blob)

        def serialize(self):
            return self.blob + b"+timing"

    class Profile:
        def __init__(self):
            self.shapes = {}

        def set_shape(self, name, lo, opt, hi):
            self.shapes[name] = (tuple(lo), tuple(opt), tuple(hi))

    class Config:
        def __init__(self):
            self.flags, self.cleared, self.profiles = [], [], []
            self.pool = {}
            self.timing = None
            self.progress_monitor = None
            self.builder_optimization_level = None
            self.profiling_verbosity = None

        def set_memory_pool_limit(self, pool, n):
            self.pool[pool.name] = n

        def set_flag(self, flag):
            self.flags.append(flag.name)

        def clear_flag(self, flag):
            self.cleared.append(flag.name)

        def add_optimization_profile(self, p):
            self.profiles.append(p.shapes)

        def create_timing_cache(self, blob):
            log["timing_in"].append(bytes(blob))
            return TimingCache(blob)

        def set_timing_cache(self, cache, ignore_mismatch):
            self.timing = cache
            return True

        def get_timing_cache(self):
            return self.timing

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            log["create_network"].append(flags)
            return Network()

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            if config.progress_monitor is not None:
                m = config.progress_monitor
                m.phase_start("Building engine", None, 2)
                m.phase_start("Tactic selection", "Building engine", 4)
                for s in range(4):
                    m.step_complete("Tactic selection", s)
                m.phase_finish("Tactic selection")
                m.step_complete("Building engine", 0)
                m.step_complete("Building engine", 1)
                m.phase_finish("Building engine")
            record = {
                "flags": config.flags,
                "cleared": config.cleared,
                "profiles": config.profiles,
                "workspace": config.pool.get("WORKSPACE"),
                "opt_level": config.builder_optimization_level,
                "verbosity": getattr(config.profiling_verbosity, "name", None),
                "monitor": config.progress_monitor is not None,
            }
            log["builds"].append(record)
            return b"PLAN" + json.dumps(record).encode()

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, plan):
            plan = bytes(plan)
            return None if not plan.startswith(b"PLAN") else Engine(plan)

    class RuntimeCache:
        """TensorRT-RTX's runtime cache: accepts only blobs it wrote for this 'GPU'."""

        def __init__(self):
            self.kernels = b""

        def deserialize(self, blob):
            log["runtime_cache_in"].append(bytes(blob))
            if not bytes(blob).startswith(b"KERNELS/" + gpu.encode()):
                return False
            self.kernels = bytes(blob)
            return True

        def serialize(self):
            return self.kernels or b"KERNELS/" + gpu.encode() + b"/compiled"

    class RuntimeConfig:
        def __init__(self):
            self.cache = None

        def create_runtime_cache(self):
            return RuntimeCache()

        def set_runtime_cache(self, cache):
            self.cache = cache
            return True

    class Inspector:
        def __init__(self, engine):
            self.engine = engine
            self.execution_context = None

        def get_engine_information(self, fmt):
            log["inspected"].append((fmt.name, self.execution_context is not None))
            return json.dumps(inspector_json)

    class Engine:
        def __init__(self, plan):
            self.plan = plan

        def create_runtime_config(self):
            return RuntimeConfig()

        def create_engine_inspector(self):
            return Inspector(self)

    trt.LayerInformationFormat = enum.IntEnum("LIF", ["ONELINE", "JSON"], start=0)
    trt.Builder, trt.OnnxParser, trt.Runtime = Builder, OnnxParser, Runtime
    if monitor:

        class IProgressMonitor:
            def __init__(self):
                pass

        trt.IProgressMonitor = IProgressMonitor
    return trt
