"""The TensorRT backend: checks, the flavour and GPU gate, and prepare (plan → runner).

Options (``RunnerSpec.options``) this backend reads are :data:`OPTIONS`; the CLI gives
every runner the same option set, so other backends' switches are ignored, not refused.
``trt_flavour`` picks full TensorRT or TensorRT-RTX (``auto``: full where installed);
``rtx_cc`` names TensorRT-RTX's target compute capabilities (default: the GPU in use).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from engine.backends.base import (
    Availability,
    Backend,
    BuiltEngine,
    Candidate,
    PrepareContext,
    Runner,
)
from engine.backends.tensorrt.build import BuildSettings
from engine.backends.tensorrt.cache import (
    MAX_OPT_LEVEL,
    BatchProfile,
    options_profile,
)
from engine.backends.tensorrt.flavour import (
    Flavour,
    check_flavour,
    check_rtx_gpu,
    parse_targets,
    rtx_targets,
    tensorrt_availability,
    trt_major,
)
from engine.backends.tensorrt.flavour import gpu_facts as _gpu_facts
from engine.backends.tensorrt.flavour import visible_cc as _visible_cc
from engine.backends.tensorrt.load import obtain_engine
from engine.backends.tensorrt.options import TensorRTOptions
from engine.backends.tensorrt.recipe import (
    BF16_MIN_CC,
    BF16_MIN_TEXT,
    PRECISIONS,
    build_recipe,
    onnx_for,
    source_name,
)
from engine.backends.tensorrt.runner import TensorRTRunner
from engine.backends.tensorrt.targets import check_plan_targets, check_targets
from engine.core.commands import engine_command
from engine.core.config import RunnerSpec
from engine.core.devices import device_kind
from engine.core.errors import BadInput, Unavailable

OPTIONS = ("workspace_mb", "opt_level", "opt_batch", "max_batch", "trt_flavour", "rtx_cc")


def _rtx_gate(flavour: Flavour, device: str) -> Availability:
    """Refused when the GPU of ``device`` is one TensorRT-RTX has no kernels for."""
    cc = _visible_cc(device)
    if flavour.name != "rtx" or cc is None:
        return Availability(True)
    try:
        check_rtx_gpu(cc, flavour.module)
    except Unavailable as exc:
        return Availability(False, f"{exc.what} ({exc.why})", exc.fix)
    return Availability(True)


def resolve_flavour(spec: RunnerSpec) -> Flavour:
    """The flavour the spec asks for, imported; Unavailable with the reason where it is not."""
    choice = check_flavour(spec.opts.get("trt_flavour", "auto"))
    flavour, ok = tensorrt_availability(choice)
    ok.raise_if_missing("TensorRT" if choice == "auto" else f"TensorRT flavour '{choice}'")
    assert flavour is not None
    return flavour


class TensorRTBackend(Backend):
    NAME = "tensorrt"
    TITLE = "TensorRT"
    PRECISIONS = PRECISIONS
    DEVICES = ("cuda",)
    Options = TensorRTOptions
    INSPECTS = True
    BUILDS_ENGINES = True
    BUILD_COMMAND = "trt-build"  # builds without a GPU (TensorRT-RTX); ``build`` hands over
    CACHE_KIND = "tensorrt"
    LIBRARIES = {
        "tensorrt": ("tensorrt", "tensorrt-cu12", "tensorrt-cu13"),
        "tensorrt_rtx": ("tensorrt-rtx-cu13-bindings",),
    }

    @classmethod
    def auto_ladder(cls, device: str) -> list[Candidate]:
        """None yet: a plan is built for minutes per profile, and no full TensorRT could be
        installed where auto mode's answers were checked (docs/tensorrt.md)."""
        return []

    @classmethod
    def _standalone_precisions(cls, precisions: tuple[str, ...]) -> tuple[str, ...]:
        """The selection's precisions TensorRT builds, each a plan of its own (one press
        built fp16 or int8 only, and bf16 alone an fp32 plan); refused where there is none."""
        own = tuple(p for p in dict.fromkeys(precisions) if p in cls.PRECISIONS)
        if not own:
            raise BadInput(
                f"{cls.TITLE} builds no {' or '.join(precisions)} plan"
                if precisions
                else "no precision is selected",
                f"{cls.TITLE} builds {', '.join(cls.PRECISIONS)}",
                "select one of those precisions",
            )
        return own

    @classmethod
    def standalone_note(cls, precisions: tuple[str, ...], options: Any) -> str:
        own = cls._standalone_precisions(precisions)
        check_plan_targets(options.trt_flavour, options.rtx_cc, own)  # before a press
        words = {
            "int8": "int8, the model quantised as bench quantises it (a Q/DQ file as it is)",
            "bf16": f"bf16 export (for compute capability {BF16_MIN_TEXT} and newer: BF16 needs"
            " Ampere or newer)",
        }
        whats = [words.get(p, f"{p} export") for p in own]
        what = f"one plan per precision: {'; '.join(whats)}" if len(own) > 1 else whats[0]
        left = [p for p in precisions if p not in own]
        if left:
            what += f" ({', '.join(left)}: no {cls.TITLE} plan)"
        return (
            f"{what}, flavour {options.trt_flavour};"
            " TensorRT-RTX targets this GPU, or every GeForce/RTX architecture where there is"
            " none"
        )

    @classmethod
    def build_standalone(
        cls,
        artifacts: Any,
        precisions: tuple[str, ...],
        batches: tuple[int, ...],
        options: Any,
        progress: Any = None,
    ) -> list[BuiltEngine]:
        """Plans built without running them (``trt-build``), one per precision of the
        selection TensorRT builds: TensorRT-RTX builds with no GPU."""
        own = cls._standalone_precisions(precisions)
        return [cls._standalone_one(artifacts, p, batches, options, progress) for p in own]

    @classmethod
    def _standalone_one(
        cls, artifacts: Any, precision: str, batches: tuple[int, ...], options: Any, progress: Any
    ) -> BuiltEngine:
        from engine.artifacts.cache import human_bytes
        from engine.backends.tensorrt.standalone import build_standalone

        recipe = build_recipe(0, precision, None, "rtx")  # which file only: int8 or an export
        ctx = PrepareContext(batches=tuple(batches), progress=progress)
        path = onnx_for(recipe, artifacts, ctx)  # int8: the file a sweep's runner builds
        built = build_standalone(
            path, precision, list(batches), artifacts.image_hw,
            options.trt_flavour, targets=options.rtx_cc or "", progress=progress,
            fixed_batch=artifacts.graph_batch, shown=source_name(recipe, artifacts, path),
            options=asdict(options),
        )  # fmt: skip
        built.notes[:0] = ctx.row_notes  # a Q/DQ file's own quantisation, an old opset's copy
        headline = {
            "Precision": precision,
            "Flavour": built.trt,
            "Build time": f"{built.build_s:.2f} s" if built.build_s else "cached",
            "Plan size": human_bytes(built.plan_bytes),
        }
        return BuiltEngine(headline, built.lines(), built.layers)

    @classmethod
    def build_batches(
        cls, spec: RunnerSpec, batch: int, batches: tuple[int, ...]
    ) -> tuple[int, ...]:
        """An engine accepts batches up to its profile's maximum: one serves every smaller one."""
        return (max(batch, *batches),)

    @classmethod
    def availability(cls, device: str = "cuda") -> Availability:
        from engine.core.devices import cuda_availability, parse_device

        kind, _ = parse_device(device)
        flavour, trt_ok = tensorrt_availability()
        if kind == "cpu":
            reason = "TensorRT runs only on NVIDIA GPUs"
            if not trt_ok.ok:
                reason += f"; also {trt_ok.reason}"
            return Availability(False, reason, "use --device cuda")
        gpu = cuda_availability(device)
        if not gpu.ok:
            # The generic CUDA fix offers --device cpu, which TensorRT can never use.
            gpu = Availability(False, gpu.reason, gpu.fix.split(", or use --device cpu")[0])
        # TensorRT's own absence is reported first: it is what the user asked for, and a
        # GPU machine without it would otherwise only learn about it on the next try.
        if not trt_ok.ok and not gpu.ok:
            return Availability(
                False, f"{trt_ok.reason}; and {gpu.reason}", f"{trt_ok.fix}; {gpu.fix}"
            )
        if not trt_ok.ok:
            return trt_ok
        if not gpu.ok:
            if flavour is not None and flavour.name == "rtx":
                # TensorRT-RTX builds without a GPU: say so where it cannot run.
                extra = (
                    f"; {flavour.label} can still build plans here: {engine_command('trt-build')}"
                )
                return Availability(False, gpu.reason, gpu.fix + extra)
            return gpu
        assert flavour is not None
        return _rtx_gate(flavour, device)

    @classmethod
    def precision_route(cls, precision: str) -> str:
        """An int8 plan is built from the model quantised as a sweep quantises it (the same
        file, so the plan a sweep finds), or from a Q/DQ int8 file as it is."""
        if precision != "int8":
            return super().precision_route(precision)
        plan = engine_command("build --backend tensorrt --precision int8 --model NAME")
        return (
            f"{plan} quantises the model as bench does and builds its plan (--onnx FILE"
            " instead: a Q/DQ int8 file is built as it is)"
        )

    @classmethod
    def check(cls, spec: RunnerSpec) -> None:
        if device_kind(spec.device) == "cpu":
            _, trt_ok = tensorrt_availability()
            also = "" if trt_ok.ok else f"; TensorRT is not installed here either ({trt_ok.fix})"
            raise BadInput(
                "TensorRT runs only on NVIDIA GPUs",
                f"device '{spec.device}' was requested",
                f"use --device cuda{also}",
            )
        check_flavour(
            spec.opts.get("trt_flavour", "auto")
        )  # its own words before the generic check
        super().check(spec)
        cls._check_options(spec.opts)
        choice = check_flavour(spec.opts.get("trt_flavour", "auto"))
        flavour, ok = tensorrt_availability(choice)
        if choice != "auto" and not ok.ok:
            ok.raise_if_missing(f"TensorRT flavour '{choice}'")
        if flavour is not None and flavour.name == "rtx":
            # trt-build's check: bf16 named for a Turing target failed in the builder
            check_targets(spec.opts.get("rtx_cc"), spec.precision, flavour.module)
            cc = _visible_cc(spec.device)
            if cc is not None:
                check_rtx_gpu(cc, flavour.module)

    @staticmethod
    def _check_options(opts: dict[str, Any]) -> None:
        for name, lo, hi in (("workspace_mb", 64, 1 << 20), ("opt_level", 0, MAX_OPT_LEVEL)):
            if name in opts:
                value = opts[name]
                if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                    raise BadInput(
                        f"the TensorRT option {name}={value!r} is out of range",
                        f"it must be a whole number from {lo} to {hi}",
                    )
        for name in ("opt_batch", "max_batch"):
            value = opts.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise BadInput(f"the TensorRT option {name}={value!r} is not a whole number")

    @classmethod
    def plan_profile(cls, spec: RunnerSpec, artifacts: Any, ctx: PrepareContext) -> BatchProfile:
        """min 1, opt the chosen (default largest) batch, max the largest incl. parity's."""
        return options_profile(spec.opts, ctx.batches, getattr(artifacts, "graph_batch", None))

    @classmethod
    def _build(cls, spec: RunnerSpec, artifacts: Any, ctx: PrepareContext) -> Runner:
        import torch

        from engine.core.devices import parse_device

        flavour = resolve_flavour(spec)
        trt = flavour.module
        _, index = parse_device(spec.device)
        gpu_name, cc, cap = _gpu_facts(index)
        major = trt_major(flavour.version) if flavour.name == "full" else 0
        recipe = build_recipe(major, spec.precision, trt, flavour.name)
        if spec.precision == "bf16" and cap < BF16_MIN_CC:
            raise BadInput(
                f"bf16 is not possible on {gpu_name} (compute capability {cc})",
                "BF16 needs compute capability 8.0 (Ampere) or newer",
                "use fp16 on this GPU",
            )
        targets: tuple[str, ...] = ()
        if flavour.name == "rtx":
            check_rtx_gpu(cc, trt)
            targets = parse_targets(spec.opts.get("rtx_cc"), trt) or (cc,)
            if cc not in targets:
                raise BadInput(
                    f"the TensorRT-RTX targets {','.join(targets)} leave out this GPU ({cc})",
                    "a plan runs only on the compute capabilities it was built for",
                    f"add {cc} to rtx_cc, or leave rtx_cc out",
                )
        profile = cls.plan_profile(spec, artifacts, ctx)
        onnx_path = onnx_for(recipe, artifacts, ctx)
        settings = BuildSettings.from_spec(spec, targets)
        shown = source_name(recipe, artifacts, onnx_path, ctx.calibration_dir)
        with torch.cuda.device(index):
            loaded = obtain_engine(
                trt, onnx_path, recipe, profile, settings, gpu_name, cc, artifacts.image_hw, ctx,
                shown,
            )  # fmt: skip
            return TensorRTRunner(spec, loaded, profile, index, recipe, flavour)


__all__ = ["OPTIONS", "TensorRTBackend", "resolve_flavour", "rtx_targets"]
