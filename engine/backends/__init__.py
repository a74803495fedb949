"""The backend registry: adding a backend is one module here plus one line below, or,
for a backend in another package, one entry point in the group ``visionbench.backends``
(``name = "module:Class"``), which every process that runs sweeps loads, worker children too.

Everything the rest of the product needs from "the backends" is here too: the one
title of each, the labels of a configuration, and the options every registered
backend declares (from which the CLI and the sidebar draw their flags and controls).

May import ``engine.core``, ``engine.hardware``, ``engine.diagnostics`` and
``engine.artifacts``; never storage, running, reporting or the CLI.
"""

from __future__ import annotations

from typing import Any

from engine.backends.base import Availability, Backend, Candidate, PrepareContext, Runner
from engine.core.config import RunnerSpec
from engine.core.errors import BadInput, Unavailable

ENTRY_POINT_GROUP = "visionbench.backends"

_REGISTRY: dict[str, str] = {
    "torch": "engine.backends.torch_backend:TorchBackend",
    "ort": "engine.backends.ort:OrtBackend",
    "tensorrt": "engine.backends.tensorrt:TensorRTBackend",
    "torch_compile": "engine.backends.compiled:TorchCompileBackend",
}

# What speed-ups are measured against: eager PyTorch FP32 on the same device.
BASELINE = ("torch", "fp32")
# Backends a fresh dashboard selects: the baseline's and ONNX Runtime as shipped.
DEFAULT_BACKENDS = ("torch", "ort")
# Entry points refused (a second backend of one name), each with why; shown by the CLI.
REFUSED: dict[str, str] = {}
_loaded_entry_points = False


def _load_entry_points() -> None:
    """Backends other packages declare, loaded once per process: the worker child runs
    this too, so a backend installed as a distribution works wherever sweeps run."""
    global _loaded_entry_points
    if _loaded_entry_points:
        return
    _loaded_entry_points = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _REGISTRY and _REGISTRY[ep.name] != ep.value:
            REFUSED[ep.name] = (
                f"the entry point {ep.name} = {ep.value} names a backend that already exists"
                f" ({_REGISTRY[ep.name]}); two backends may not share one name"
            )
            continue
        _REGISTRY[ep.name] = ep.value


def backend_names() -> list[str]:
    _load_entry_points()
    return list(_REGISTRY)


def get_backend(name: str) -> type[Backend]:
    """The backend class; Unavailable (with the import error) when its module fails to load."""
    import importlib

    _load_entry_points()
    target = _REGISTRY.get(name)
    if target is None:
        raise BadInput(
            f"unknown backend '{name}'",
            REFUSED.get(name) or f"backends are {', '.join(_REGISTRY)}",
            f"use --backend {','.join(DEFAULT_BACKENDS)}",
        )
    module, _, cls = target.partition(":")
    try:
        return getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError) as exc:
        raise Unavailable(
            f"backend '{name}' cannot be loaded",
            f"{module}:{cls} does not import: {type(exc).__name__}: {exc}",
            "install the package that provides it, or drop it from --backend",
        ) from exc


def register(name: str, target: str) -> None:
    """Add a backend: ``target`` is ``"module:Class"``. One line per backend. A second
    backend under a name already registered for another target is refused."""
    _load_entry_points()
    if _REGISTRY.get(name, target) != target:
        raise BadInput(
            f"a backend named '{name}' is already registered ({_REGISTRY[name]})",
            "two backends may not share one name",
            "pick another name, or unregister the first",
        )
    _REGISTRY[name] = target


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def _loadable() -> list[tuple[str, type[Backend]]]:
    return [(n, b) for n in backend_names() if (b := _backend_or_none(n)) is not None]


def backend_versions() -> dict[str, str | None]:
    """The library versions every loadable backend runs on, for the environment of a run."""
    out: dict[str, str | None] = {}
    for _, b in _loadable():
        out.update(b.library_versions())
    return out


def environment(device: str = "cpu") -> dict[str, Any]:
    """The environment stored with a run: the machine's fingerprint plus the version of
    every library a loadable backend runs on."""
    from engine.hardware.env import fingerprint

    return {**fingerprint(device), **backend_versions()}


def library_keys() -> list[str]:
    """The environment keys backends record their libraries under, in registry order."""
    keys: list[str] = []
    for _, b in _loadable():
        keys += [k for k in b.library_versions() if k not in keys]
    return keys


def reference_spec(onnx_source: bool) -> RunnerSpec:
    """The FP32 reference parity compares with, on the CPU: the loadable backend of lowest
    rank that offers one for this model source."""
    offers = [
        (rank, i, n)
        for i, (n, b) in enumerate(_loadable())
        if (rank := b.reference_rank(onnx_source)) is not None
    ]
    if not offers:
        raise Unavailable(
            "no backend offers an FP32 reference for this model",
            "parity needs one backend that runs the model in FP32 on the CPU",
            "install torch and onnxruntime (the README's install command)",
        )
    return RunnerSpec(min(offers)[2], "cpu", "fp32")


def is_reference(spec: RunnerSpec, onnx_source: bool) -> bool:
    """True for the reference configuration itself (comparing it with itself proves nothing)."""
    ref = reference_spec(onnx_source)
    return (spec.backend, spec.device, spec.precision) == (
        ref.backend,
        ref.device,
        ref.precision,
    ) and not any(switches(spec.backend, spec.opts).values())


def auto_candidates(
    device: str,
    backends: list[str] | None = None,
    include_slow: bool = False,
    artifacts: Any = None,
    batches: tuple[int, ...] = (),
    only_slow: bool = False,
    threads: int | None = None,
) -> tuple[list[RunnerSpec], list[str]]:
    """Auto mode's candidates on ``device`` in ladder order (the registry's order, each
    backend's ladder), and notes: a backend asked for that offers none, and for each slow
    candidate (a compile of minutes) whether it is in because its engines are cached for
    ``batches`` of ``artifacts``' model, in to be built because ``include_slow`` asked, or
    left out, and why. ``only_slow``: the slow candidates alone (of backends not asked for,
    whose cached engines auto mode tries anyway). ``threads``: the sweep's CPU threads (a
    compiled CPU engine is built for its thread count, so its cache is looked up for them)."""
    specs, notes = [], []
    for name in backends if backends is not None else backend_names():
        b = get_backend(name) if backends is not None else _backend_or_none(name)
        if b is None:
            continue
        offered = []
        for c in b.auto_ladder(device):
            spec = RunnerSpec(name, device, c.precision, c.options)
            if only_slow and not c.slow:
                continue
            if c.slow:  # the engine looked for is the one built for the sweep's threads
                probe = b.settled(spec, {"threads": threads})
                keep, note = _slow_candidate(b, probe, include_slow, artifacts, batches)
                notes.append(note)
                if not keep:
                    continue
            offered.append(spec)
        if backends is not None and not only_slow and not b.auto_ladder(device):
            notes.append(f"{b.TITLE} offers auto mode no candidate on {device}: it has none")
        specs += offered
    return specs, notes


def _slow_candidate(
    b: type[Backend], spec: RunnerSpec, asked: bool, artifacts: Any, batches: tuple[int, ...]
) -> tuple[bool, str]:
    """(try it, the note saying why) for a candidate that compiles for minutes."""
    label = describe(spec, "short")
    needed = b.engine_batches(spec, batches) if batches else batches
    where = f"batch {', '.join(map(str, needed))}" if needed else "these batches"
    if needed != batches:
        where += f" (batch {needed[-1]} for the parity check)"
    cached = artifacts is not None and batches and b.cached_engines(spec, artifacts, batches)
    if cached:
        return True, f"{label}: its engines for {where} are cached, so auto mode tries it"
    hint = b.build_hint(spec, artifacts, batches) if artifacts is not None and batches else ""
    cost = f" ({hint})" if hint else " (minutes)"
    if asked:
        return True, (
            f"{label}: its engines for {where} are not all cached; building the missing ones"
            f" now{cost}, then cached"
        )
    return False, (
        f"{label}: left out, its engines compile for minutes and those for {where} are not"
        " all cached;"
        f" --with-compile (or the dashboard's toggle) builds them{cost}, and later runs"
        " reuse them"
    )


def _first_said(hook: str, kind: str, meta: dict[str, Any]) -> str:
    """The first thing a loadable backend's ``hook`` says of a cache entry, "" if none."""
    for name in backend_names():
        b = _backend_or_none(name)
        said = getattr(b, hook)(kind, meta) if b is not None else ""
        if said:
            return said
    return ""


def cache_state(kind: str, meta: dict[str, Any]) -> str:
    """What a backend says of one of its cache entries ("stale: …"), "" when nothing."""
    return _first_said("cache_state", kind, meta)


def cache_detail(kind: str, meta: dict[str, Any]) -> str:
    """What a backend says one of its cache entries' key means, "" when nothing."""
    return _first_said("cache_detail", kind, meta)


def title(name: str) -> str:
    """The backend's one human name; an unknown name (an old stored row) as it is."""
    b = _backend_or_none(name)
    return b.TITLE if b is not None else name


def _backend_or_none(name: str) -> type[Backend] | None:
    try:
        return get_backend(name)
    except (BadInput, Unavailable):
        return None


def precision_text(backend: str, precision: str, device: str, options: dict[str, Any]) -> str:
    """``precision`` plus what its math really is where the name alone does not say."""
    b = _backend_or_none(backend)
    note = b.precision_note(precision.lower(), device, dict(options or {})) if b else ""
    return f"{precision}, {note}" if note else precision


def option_words(backend: str, options: dict[str, Any]) -> list[str]:
    """Label words for a configuration's options; unknown names (old rows) as name=value."""
    opts = switches(backend, options)
    b = _backend_or_none(backend)
    if b is None:
        return [f"{k}={v}" for k, v in sorted(opts.items())]
    from engine.core.options import fields_of

    known = {f.name for f in fields_of(b.Options)}
    words = b.option_words({k: v for k, v in opts.items() if k in known})
    return words + [f"{k}={v}" for k, v in sorted(opts.items()) if k not in known]


def describe(config: Any, form: str = "long") -> str:
    """The one human name of a configuration: anything with ``backend``, ``precision``,
    ``device`` and ``options`` (a RunnerSpec, a ResultRow, a mapping of those keys).

    ``short``  ``PyTorch FP16 + channels-last`` (the auto-mode ladder, a step of one device)
    ``series`` ``PyTorch FP16 (cuda:0) + channels-last`` (charts and tables)
    ``long``   ``PyTorch FP16 on cuda:0 + channels-last`` (messages, reports)
    Thread counts never name a configuration; an unknown backend or option (an old stored
    row) shows as it is.
    """
    get = config.get if isinstance(config, dict) else (lambda k: getattr(config, k, None))
    backend, device = str(get("backend") or ""), str(get("device") or "")
    raw = get("options") or {}
    options = dict(raw.items() if isinstance(raw, dict) else raw)
    text = precision_text(backend, str(get("precision") or "").upper(), device, options)
    where = {"short": "", "series": f" ({device})", "long": f" on {device}"}[form]
    words = option_words(backend, options)
    return f"{title(backend)} {text}{where}" + (" + " + ", ".join(words) if words else "")


def switches(backend: str, options: Any) -> dict[str, Any]:
    """A configuration's options that change what runs, by declaration: thread counts
    (declared ``setting=`` or ``threads=True``) only change how many cores it gets. A
    backend no longer registered (an old stored row) drops every name any backend
    declares as a thread count."""
    opts = dict(options or {}) if isinstance(options, dict | list | tuple) else {}
    b = _backend_or_none(backend)
    if b is not None:
        return b.switches(opts)
    counts = {n for n, (f, _) in declared_options().items() if f.setting or f.threads}
    return {k: v for k, v in opts.items() if k not in counts}


def declared_options() -> dict:
    """Option name → (field, backends declaring it), over every registered backend."""
    from engine.core.options import merged_fields

    classes = [(n, b.Options) for n, b in _loadable()]
    return merged_fields(classes)


__all__ = [
    "BASELINE",
    "DEFAULT_BACKENDS",
    "Availability",
    "Backend",
    "Candidate",
    "auto_candidates",
    "cache_detail",
    "cache_state",
    "backend_versions",
    "is_reference",
    "library_keys",
    "reference_spec",
    "PrepareContext",
    "Runner",
    "backend_names",
    "declared_options",
    "describe",
    "environment",
    "get_backend",
    "option_words",
    "precision_text",
    "register",
    "switches",
    "title",
    "unregister",
]
