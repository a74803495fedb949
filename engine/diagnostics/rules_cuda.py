"""Rules for a CUDA build of onnxruntime: did the CUDA EP load, and if not, the deepest cause.

Order matters: the driver first (without it nothing else can help), then the CUDA major the
driver supports, then cuDNN and the CUDA libraries, then the loader path, and last what ONNX
Runtime itself logged and what the session really used. Library fixes list every missing
library the provider needs (its DT_NEEDED entries), mapped to pip packages by `cuda_wheels`.
"""

from __future__ import annotations

from engine.core.commands import engine_command
from engine.diagnostics.context import Context, Verdict
from engine.diagnostics.cuda_wheels import pip_install
from engine.diagnostics.output import lib_summary
from engine.diagnostics.packages import major
from engine.diagnostics.probe import interesting_lines, load_errors, probe_log, used_providers
from engine.diagnostics.report import CUDA_EP, short_name
from engine.diagnostics.rules_trt import tensorrt_findings

EP_LIB = "libonnxruntime_providers_cuda.so"
PRELOAD_FIX = (
    "# in Python, once, before the first InferenceSession:\n"
    "import onnxruntime; onnxruntime.preload_dlls()"
)


def no_gpu_note() -> str:
    return (
        "# without an NVIDIA GPU, onnxruntime-gpu runs on the CPU: check that instead with\n"
        + engine_command("diagnose --provider CPU")
    )


def session_evidence(probe: dict | None, provider: str) -> str:
    if not probe:
        return "(not probed)"
    s = probe.get("sessions", {}).get(provider, {})
    if s.get("used") is None:
        st = probe.get("stages", {}).get(s.get("stage", ""), {})
        return f"session with {s.get('chain')} failed: {st.get('error')}"
    ok = "correct" if s.get("output_ok") else "WRONG"
    return f"InferenceSession(providers={s['chain']}).get_providers() = {s['used']}; output {ok}"


def lib_evidence(libs: dict) -> str:
    return "\n".join(f"{v['soname']}: {lib_summary(v)}" for v in libs.values())


def _library_fix(ctx: Context) -> str:
    """One install line for every missing library, so that one command makes the EP loadable."""
    sonames = [v["soname"] for v in ctx.lib_missing.values()]
    line = pip_install(sonames, ctx.cuda_major)
    return line + "  # then call onnxruntime.preload_dlls() before the first session"


def read_probe_state(ctx: Context) -> Verdict | None:
    """What the live session used, which remedy fixed it, what ONNX Runtime logged."""
    plain, probes = ctx.plain, ctx.probes
    ctx.plain_errors = load_errors(probe_log(plain)) if plain else []
    used = used_providers(plain, CUDA_EP) or used_providers(plain, ctx.first) or []
    ctx.cuda_used = CUDA_EP in used
    for key, probe in (("preload_dlls", probes.preload), ("torch_first", probes.torch_first)):
        if CUDA_EP in (used_providers(probe, ctx.first) or []):
            ctx.fixed_by = ctx.fixed_by or key
    ctx.ep_log = "\n".join(interesting_lines(probe_log(plain))) if plain else ""
    # With the pip-installed libraries loaded first, ONNX Runtime often names the real root
    # cause (libcuda.so.1) that hid behind the first missing library (libcublasLt.so.13).
    for label, errs in remedy_errors(ctx).items():
        if errs:
            ctx.ep_log += f"\n{label}: " + "\n".join(e["line"] for e in errs)
    return None


def remedy_errors(ctx: Context) -> dict[str, list[dict]]:
    pairs = (
        ("after onnxruntime.preload_dlls()", ctx.probes.preload),
        ("after import torch", ctx.probes.torch_first),
    )
    return {label: load_errors(probe_log(probe)) for label, probe in pairs if probe}


def probe_failed(ctx: Context) -> Verdict | None:
    plain = ctx.plain
    if not plain or plain.get("completed"):
        return None
    ctx.add(
        "probe-failed",
        "error",
        "the live probe did not finish",
        plain.get("error") or "the probe process failed",
        (plain.get("stderr") or "")[-1500:],
        'python -c "import onnxruntime as o; print(o.get_device(), o.get_available_providers())"',
    )
    return ctx.verdict("none", plain.get("error") or "the probe failed")


def cuda_works(ctx: Context) -> Verdict | None:
    if not (ctx.cuda_used and ctx.probed):
        return None
    gpu = ", ".join(f"{g['name']} (sm {g['cc']})" for g in ctx.driver["gpus"])
    ctx.add(
        "ok-cuda",
        "ok",
        "the CUDA execution provider loads and runs",
        "a live session asked for CUDA got it, and its output is correct",
        session_evidence(ctx.plain, ctx.first) + (f"\nGPU: {gpu}" if gpu else ""),
        "",
    )
    tensorrt_findings(ctx, "")
    return ctx.verdict(short_name(ctx.used[0]))


def driver_missing(ctx: Context) -> None:
    if ctx.driver_ok:
        return
    reports = [
        f"{label}, ONNX Runtime reports: {e['line']}"
        for label, errs in [("in the plain probe", ctx.plain_errors)]
        + list(remedy_errors(ctx).items())
        for e in errs
        if e["missing"] == "libcuda.so.1"
    ]
    ctx.root = ctx.add(
        "cuda-driver-missing",
        "error",
        "no usable NVIDIA driver",
        ctx.driver_why + ", so the CUDA execution provider cannot start",
        "\n".join([ctx.driver_ev] + reports[:1]),
        "nvidia-smi  # must list your GPU; if it fails, install the NVIDIA driver"
        " (or start the container with --gpus all)\n" + no_gpu_note(),
    )
    ctx.lib_severity, ctx.caused = "info", ctx.root.id


def driver_too_old(ctx: Context) -> None:
    drv_cuda = major(ctx.driver.get("cuda_driver_version"))
    need = ctx.cuda_major
    if not ctx.driver_ok or not (drv_cuda and need and drv_cuda < need):
        return
    supports = ctx.driver["cuda_driver_version"]
    ctx.root = ctx.add(
        "cuda-major-mismatch",
        "error",
        f"the driver supports CUDA {supports}, onnxruntime-gpu needs CUDA {need}",
        f"this onnxruntime-gpu was built for CUDA {ctx.build.get('cuda_version')} but the NVIDIA "
        f"driver only supports CUDA {supports}",
        f"driver {ctx.driver.get('driver_version')}, cuDriverGetVersion = {supports}",
        f"# upgrade the NVIDIA driver to one for CUDA {need}, or install an onnxruntime-gpu"
        f" built for CUDA {drv_cuda}\nnvidia-smi  # shows 'CUDA Version'",
    )
    ctx.lib_severity, ctx.caused = "info", ctx.root.id


def cudnn_missing(ctx: Context) -> None:
    cudnn = ctx.lib_missing.get("cudnn")
    if not cudnn:
        return
    f = ctx.add(
        "cudnn-missing",
        ctx.lib_severity,
        f"cuDNN ({cudnn['soname']}) is not installed",
        f"the CUDA execution provider needs {cudnn['soname']} and it is nowhere on this machine",
        lib_evidence({"cudnn": cudnn}),
        _library_fix(ctx),
        caused_by=ctx.caused,
    )
    ctx.root = ctx.root or f


def _wrong_major(ctx: Context) -> dict:
    return {k: v for k, v in ctx.lib_missing.items() if k != "cudnn" and v["other_versions"]}


def _plain_missing(ctx: Context) -> dict:
    wrong = _wrong_major(ctx)
    return {k: v for k, v in ctx.lib_missing.items() if k != "cudnn" and k not in wrong}


def libs_wrong_major(ctx: Context) -> None:
    wrong = _wrong_major(ctx)
    if not wrong:
        return
    build = ctx.build
    f = ctx.add(
        "cuda-major-mismatch",
        ctx.lib_severity,
        f"CUDA libraries are present, but not the major version {ctx.cuda_major} this build needs",
        f"onnxruntime-gpu {build.get('version')} was built for CUDA {build.get('cuda_version')}; "
        "the CUDA libraries installed here are another major version, which cannot be used",
        lib_evidence(wrong),
        _library_fix(ctx),
        caused_by=ctx.caused,
    )
    ctx.root = ctx.root or f


def libs_missing(ctx: Context) -> None:
    missing = _plain_missing(ctx)
    if not missing:
        return
    names = ", ".join(v["soname"] for v in missing.values())
    f = ctx.add(
        "cuda-libs-missing",
        ctx.lib_severity,
        f"CUDA libraries the CUDA EP needs are not installed: {names}",
        f"the CUDA execution provider needs {names}, which are neither on the loader path "
        "nor in any pip-installed NVIDIA package",
        lib_evidence(missing),
        _library_fix(ctx),
        caused_by=ctx.caused,
    )
    ctx.root = ctx.root or f


def libs_not_on_path(ctx: Context) -> None:
    not_on_path = {k: v for k, v in ctx.libs.items() if v["found"] and not v["loader_path"]}
    if not not_on_path or _plain_missing(ctx) or _wrong_major(ctx):
        return
    names = ", ".join(v["soname"] for v in not_on_path.values())
    purelib = "$(python -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])')"
    f = ctx.add(
        "cuda-libs-not-on-path",
        "warning" if ctx.fixed_by else ctx.lib_severity,
        "the CUDA libraries are pip-installed but not on the library search path",
        f"{names} sit in pip's NVIDIA package folders, where the dynamic loader does not look; "
        "the CUDA EP loads only if something loads them first (onnxruntime.preload_dlls() or "
        "`import torch`) or LD_LIBRARY_PATH includes them",
        lib_evidence(not_on_path),
        PRELOAD_FIX
        + "\n# or, for every process:\n"
        + f'export LD_LIBRARY_PATH="{purelib}/nvidia/cu{ctx.cuda_major}/lib:'
        + f'{purelib}/nvidia/cudnn/lib:$LD_LIBRARY_PATH"',
        caused_by=ctx.caused,
    )
    ctx.root = ctx.root or f


def ep_load_failed(ctx: Context) -> None:
    if not (ctx.plain_errors or (ctx.plain and not ctx.cuda_used)):
        return
    missing = sorted({e["missing"] for e in ctx.plain_errors if e["missing"]})
    root = ctx.root
    f = ctx.add(
        "ort-cuda-ep-load-failed",
        "warning" if (root or ctx.fixed_by) else "error",
        "ONNX Runtime could not load its CUDA execution provider",
        f"{EP_LIB} failed to load: "
        + (", ".join(missing) + " could not be found" if missing else "see the log lines"),
        ctx.ep_log or "(no log lines captured)",
        root.fix if root else 'LD_DEBUG=libs python -c "import onnxruntime"  # shows the search',
        caused_by=root.id if root else "",
    )
    ctx.root = root or f


def fixed_by_remedy(ctx: Context) -> Verdict | None:
    if not ctx.fixed_by:
        return None
    preload = ctx.fixed_by == "preload_dlls"
    remedy = "onnxruntime.preload_dlls()" if preload else "`import torch`"
    probe = ctx.probes.preload if preload else ctx.probes.torch_first
    ctx.add(
        "ok-cuda",
        "ok",
        f"the CUDA execution provider loads and runs once {remedy} comes first",
        f"with {remedy} before the first session, a live session gets CUDA",
        session_evidence(probe, ctx.first),
        PRELOAD_FIX if preload else "import torch  # before import onnxruntime",
    )
    tensorrt_findings(ctx, "")
    used = short_name((used_providers(probe, ctx.first) or [CUDA_EP])[0])
    text = f"ONNX Runtime will run on: {used}, once {remedy} runs before the first"
    root = ctx.root
    text += f" session (without it: CPU, because {root.root_cause})" if root else " session"
    return Verdict(text, used)


def static_only(ctx: Context) -> Verdict | None:
    if ctx.root is not None or ctx.probed:
        return None
    tensorrt_findings(ctx, "")
    return ctx.verdict("CUDA")


def cpu_fallback(ctx: Context) -> Verdict:
    root, plain = ctx.root, ctx.plain
    if plain:
        remedies = ctx.checks.get("remedies", {}).values()
        ctx.add(
            "cpu-fallback",
            "error" if ctx.driver_ok else "warning",
            f"{short_name(ctx.first)} was requested, the session silently runs on the CPU",
            "ONNX Runtime drops an execution provider that fails to load, prints one log line and "
            "runs every node on the CPU",
            session_evidence(plain, ctx.first)
            + f"\nget_available_providers() = {ctx.available}, "
            + f"get_device() = {(plain.get('ort') or {}).get('device')!r}\n"
            + "\n".join(
                f"{r['label']}: {r['outcome']}" + (f" ({r['detail']})" if r["detail"] else "")
                for r in remedies
            ),
            root.fix if root else "",
            caused_by=root.id if root else "",
        )
    tensorrt_findings(ctx, ctx.caused)
    because = root.root_cause if root else "the CUDA execution provider did not load"
    return ctx.verdict("CPU", because)


RULES = (
    read_probe_state,
    probe_failed,
    cuda_works,
    driver_missing,
    driver_too_old,
    cudnn_missing,
    libs_wrong_major,
    libs_missing,
    libs_not_on_path,
    ep_load_failed,
    fixed_by_remedy,
    static_only,
    cpu_fallback,
)
