"""Shared state of the dashboard's pages: the sidebar selection, cached runners, sweeps.

The sidebar is drawn once by ``dashboard.py`` (so its widgets keep their values across
pages) and its result is a :class:`Selection`. Built runners (ONNX Runtime sessions,
PyTorch modules, TensorRT engines) live in ``st.cache_resource`` so reruns and other
browser sessions reuse them; the cache is bounded and closes what it evicts. A sweep
runs in a background thread through the worker launcher (:mod:`engine.running.launch`, a child
process a native crash cannot take down) so the page can stream its progress and a stop
button can end it between batches. The sidebar's widgets keep their values across pages,
and its backend option controls are generated from the backends' declared options; both
live in :mod:`pages.widgets`.
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from engine.artifacts.models import (
    ModelArtifacts,
    check_batches,
    load_artifacts,
    pretrained_file,
)
from engine.backends import (
    DEFAULT_BACKENDS,
    Runner,
    backend_names,
    describe,
    get_backend,
)
from engine.backends.base import PrepareContext
from engine.core import config
from engine.core.config import (
    BenchSettings,
    Choice,
    ModelSpec,
    ResultRow,
    RunnerSpec,
    SweepConfig,
)
from engine.core.errors import BadInput, EngineError
from engine.core.options import dashboard_values
from engine.core.paths import default_db
from engine.core.text import markdown_text
from engine.running.plan import Callbacks, Plan, make_plan
from pages.onnx_source import MAX_UPLOAD_MB, fixed_batch, onnx_model_inputs  # noqa: F401 - re-exported
from pages.widgets import kept, option_controls, setting_controls

MAX_CACHED_RUNNERS = 6
PRECISIONS = ("fp32", "tf32", "fp16", "bf16", "int8")
DEFAULT_BATCHES = "1,2,4,8,16,32"
SELECTION_KEY = "vb_selection"
JOB_KEY = "vb_job"
ENTRY_KEY = "vb_entry_ran"


def ensure_entry() -> None:
    """Make sure ``dashboard.py`` (navigation, page config) runs before any page.

    With a ``pages/`` folder Streamlit serves a page's old-style URL directly until the
    entry has called ``st.navigation`` once; such a page would lose the navigation.
    """
    if not st.session_state.get(ENTRY_KEY):
        st.switch_page("dashboard.py")


# -- errors ---------------------------------------------------------------------------
def show_error(exc: BaseException, where: str = "") -> None:
    """An error box: the engine's own message, or the type and message of our bug."""
    if isinstance(exc, EngineError):
        st.error(markdown_text(exc.user_message()), icon=":material/warning:")
    else:
        first = str(exc).strip().splitlines()[0][:400] if str(exc).strip() else ""
        prefix = f"{where} failed: " if where else ""
        st.error(markdown_text(f"{prefix}{type(exc).__name__}: {first}"), icon=":material/error:")


@contextlib.contextmanager
def guard(where: str = "") -> Iterator[None]:
    """Show a failure inside the block as an error box; the rest of the page goes on.

    Streamlit's own rerun/stop signals derive from BaseException and pass through.
    """
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - every failure becomes a message, not a crash
        show_error(exc, where)


# -- the sidebar selection ------------------------------------------------------------
@dataclass(frozen=True)
class Selection:
    """What the sidebar asks for: one model, backend × precision on a device, batches."""

    model: ModelSpec
    device: str = "cpu"
    backends: tuple[str, ...] = DEFAULT_BACKENDS
    precisions: tuple[str, ...] = ("fp32",)
    batches: tuple[int, ...] = (1, 2, 4, 8)
    settings: BenchSettings = BenchSettings(**dashboard_values(BenchSettings))
    problems: tuple[str, ...] = ()
    # Problems of the sweep's inputs only (its batch list): the live measurement, which
    # takes its batch from the slider, still runs.
    sweep_problems: tuple[str, ...] = ()
    options: tuple[tuple[str, Any], ...] = ()  # backend options set away from their defaults
    fixed_batch: int | None = None  # an ONNX file's input fixes its batch at this

    @property
    def key(self) -> int:
        """What a shown result was made for: a result of another key is stale."""
        return hash((self.model, self.device, self.backends, self.precisions, self.options))

    def choice(self, auto: bool = False, include_compile: bool = False) -> Choice:
        """What the sidebar asks for, as the CLI's flags would say it."""
        return Choice(
            model=self.model,
            backends=self.backends,
            devices=(self.device,),
            precisions=self.precisions,
            batches=self.batches,
            options=self.options,
            bench=self.bench(),
            only_runnable=True,  # what can never run is left out, with why, not a skipped row
            auto=auto,
            include_compile=auto and include_compile,
        )

    def plan(self, auto: bool = False, include_compile: bool = False) -> Plan:
        """The plan of this selection, made once per rerun by the page that runs it;
        ``include_compile``: auto mode also builds the compiled engines not yet cached."""
        return make_plan(self.choice(auto, include_compile))

    def combinations(self) -> tuple[list[RunnerSpec], list[str]]:
        """Runnable specs (each with its backend's own options), and why each other was left out."""
        plan = self.plan()
        return plan.chosen, plan.left_out

    def bench(self) -> BenchSettings:
        return self.settings

    def sweep_config(self) -> SweepConfig:
        return self.plan().config


def parse_batches(text: str) -> tuple[int, ...]:
    out = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        if not part.isdigit() or int(part) < 1:
            raise BadInput(
                f"batch size '{part}' is not a whole number of 1 or more", fix="use e.g. 1,2,4,8"
            )
        out.append(int(part))
    if not out:
        raise BadInput("no batch size given", fix="use e.g. 1,2,4,8")
    return tuple(sorted(set(out)))


@st.cache_data(show_spinner=False)
def model_names() -> list[str]:
    from engine.artifacts.models import classification_models

    return list(classification_models())


@st.cache_data(show_spinner=False, ttl=60)
def availability_table(device: str) -> dict[str, tuple[bool, str]]:
    out = {}
    for name in backend_names():
        try:
            a = get_backend(name).availability(device)
            out[name] = (
                a.ok,
                " ".join(x for x in (a.reason, f"Fix: {a.fix}" if a.fix else "") if x),
            )
        except Exception as exc:  # noqa: BLE001 - a backend module that fails to import
            out[name] = (False, f"{type(exc).__name__}: {exc}")
    return out


def cuda_devices() -> tuple[list[str], str]:
    """CUDA devices torch can see, or why there are none."""
    from engine.core.devices import cuda_availability

    a = cuda_availability("cuda")
    if not a.ok:
        return [], a.reason
    import torch

    return [f"cuda:{i}" for i in range(torch.cuda.device_count())], ""


def sidebar() -> Selection:
    """Draw the shared sidebar and return what it selects (also kept in session state)."""
    sb = st.sidebar
    problems: list[str] = []
    sb.header("Model")
    model = _model_inputs(sb, problems)
    sb.header("Run")
    device, backends, options = _backend_inputs(sb)
    precisions = sb.multiselect(
        "Precisions", list(PRECISIONS), **kept("vb_precisions", ["fp32"], list(PRECISIONS))
    )
    sweep_problems: list[str] = []
    if fixed := fixed_batch(model):  # the only batch the file runs at: nothing to choose
        sb.text_input(f"Batch size (fixed at {fixed} by the file)", str(fixed), disabled=True)
        batches = (fixed,)
    else:
        batch_text = sb.text_input(
            "Batch sizes (comma-separated)", **kept("vb_batches", DEFAULT_BATCHES)
        )
        try:
            batches = parse_batches(batch_text)
        except EngineError as exc:
            sweep_problems.append(exc.user_message())
            batches = (1,)
    settings = setting_controls(sb, config.SWEEP_SETTINGS)
    sel = Selection(
        model=model,
        device=device,
        backends=tuple(backends),
        precisions=tuple(precisions),
        batches=batches,
        settings=settings,
        problems=tuple(problems),
        options=tuple(sorted(options.items())),
        sweep_problems=tuple(sweep_problems),
        fixed_batch=fixed,
    )
    st.session_state[SELECTION_KEY] = sel
    return sel


def _model_inputs(sb: Any, problems: list[str]) -> ModelSpec:
    """The sidebar's Model section: a torchvision model or an uploaded ONNX file, its size
    (one field for a torchvision model; height and width for an ONNX file)."""
    sources = ["torchvision model", "ONNX file"]
    source = sb.radio("Source", sources, horizontal=True, **kept("vb_source", sources[0], sources))
    if source != "torchvision model":
        return onnx_model_inputs(sb, problems)
    name, weights = _torchvision_inputs(sb, problems)
    # No fixed range: whether the model takes a size is asked of the model, and whether it
    # fits of the device's memory, when the run is planned.
    image_size = int(
        sb.number_input("Image size (pixels)", 1, 8192, step=16, **kept("vb_size", 224))
    )
    return ModelSpec(name=name, weights=weights, image_size=image_size)


def _torchvision_inputs(sb: Any, problems: list[str]) -> tuple[str, str]:
    """A torchvision model's name and its weights (``random``, ``pretrained`` or a path)."""
    names = model_names()
    name = sb.selectbox("Model", names, **kept("vb_model", "resnet50", names))
    kinds = ["random weights", "local file", "pretrained (if cached)"]
    kind = sb.radio(
        "Weights",
        kinds,
        help="Nothing is downloaded: random weights are seeded and labelled so; "
        "pretrained weights are used only if torchvision's file is already cached.",
        **kept("vb_weights_kind", kinds[0], kinds),
    )
    weights = "random"
    if kind == "local file":
        weights = sb.text_input("Weights file (state_dict)", **kept("vb_weights_path", "")).strip()
        if not weights:
            problems.append("Give the path of a weights file, or pick random weights.")
            weights = "random"
    elif kind == "pretrained (if cached)":
        weights = "pretrained"
        try:  # said now, not when Run sweep fails: nothing is downloaded
            pretrained_file(name)
        except EngineError as exc:
            problems.append(exc.user_message())
    return name, weights


def _backend_inputs(sb: Any) -> tuple[str, list[str], dict[str, Any]]:
    """The device, the backends usable on it (and why others are not), their options."""
    cuda, why_no_cuda = cuda_devices()
    devices = ["cpu", *cuda]
    device = sb.selectbox("Device", devices, **kept("vb_device", "cpu", devices))
    if not cuda:
        sb.caption(f"No CUDA device: {why_no_cuda}.")
    avail = availability_table(device)
    usable = [b for b in backend_names() if avail[b][0]]
    backends = sb.multiselect(
        "Backends", usable, **kept("vb_backends", list(DEFAULT_BACKENDS), usable)
    )
    missing = {b: reason for b, (ok, reason) in avail.items() if not ok}
    if missing:
        with sb.expander(f"Not available on {device}: {', '.join(missing)}"):
            for b, reason in missing.items():
                st.caption(f"**{b}**: {markdown_text(reason)}")
    return device, backends, option_controls(sb, backends)


def selection() -> Selection:
    """Draw the shared sidebar on this page and return its selection."""
    try:
        return sidebar()
    except Exception as exc:  # noqa: BLE001 - a broken sidebar must not blank the page
        show_error(exc, "the sidebar")
        return Selection(ModelSpec(), problems=("The sidebar could not be drawn.",))


def show_problems(sel: Selection) -> bool:
    """Show the sidebar's input problems as errors; True when there are none."""
    for p in (*sel.problems, *sel.sweep_problems):
        st.error(markdown_text(p), icon=":material/warning:")
    return not sel.problems


# -- cached artifacts and runners -----------------------------------------------------
# Keyed by the frozen specs' own hashes (ModelSpec and RunnerSpec are frozen dataclasses):
# the specs themselves travel as underscore arguments, which Streamlit does not hash.
@st.cache_resource(max_entries=4, show_spinner=False)
def _artifacts(model_key: int, _model: ModelSpec) -> ModelArtifacts:
    return load_artifacts(_model)


def artifacts(spec: ModelSpec) -> ModelArtifacts:
    """Validated model artifacts, shared by every page and session."""
    return _artifacts(hash(spec), spec)


def batch_refusal(spec: ModelSpec, batch: int) -> EngineError | None:
    """Why ``spec`` cannot run at ``batch`` (a batch fixed on its input or inside its
    graph), or None; a model that does not load says so where it is built."""
    try:
        art = artifacts(spec)
    except EngineError:
        return None
    try:
        check_batches([batch], art.fixed_batch)
    except BadInput as exc:
        return exc
    return art.batch_refusal(batch)


@st.cache_resource(show_spinner=False)
def _live_runners() -> weakref.WeakValueDictionary:
    # Weak references: what the bounded cache evicts disappears from this listing too.
    return weakref.WeakValueDictionary()


def _release(runner: Runner) -> None:
    with contextlib.suppress(Exception):
        runner.close()


@st.cache_resource(max_entries=MAX_CACHED_RUNNERS, show_spinner=False, on_release=_release)
def _runner(
    model_key: int,
    runner_key: int,
    batches: tuple[int, ...],
    threads: int | None,
    _model: ModelSpec,
    _spec: RunnerSpec,
) -> Runner:
    art = _artifacts(model_key, _model)
    ctx = PrepareContext(batches=batches, settings={"threads": threads})
    runner = get_backend(_spec.backend).prepare(_spec, art, ctx)
    _live_runners()[f"{describe(_spec)} · {art.spec.label} · {art.spec.size_text} px"] = runner
    return runner


def cached_runner(
    model: ModelSpec,
    spec: RunnerSpec,
    batch: int,
    batches: tuple[int, ...] = (),
    threads: int | None = None,
) -> Runner:
    """A built runner from the shared cache, keyed by batch only where the build depends on it.

    A captured graph is per batch; a TensorRT engine accepts batches up to its profile's
    maximum, so one engine up to the largest batch in play serves every smaller one.
    """
    key = get_backend(spec.backend).build_batches(spec, batch, tuple(batches))
    return _runner(hash(model), hash(spec), key, threads, model, spec)


def live_runners() -> list[dict[str, Any]]:
    """What the runner cache holds now, with the device memory each reports."""
    import gc

    gc.collect()
    out = []
    for label, r in list(_live_runners().items()):
        mem = None
        with contextlib.suppress(Exception):
            mem = r.peak_memory_mb()
        out.append(
            {
                "runner": label,
                "provider": r.provider,
                # A CPU runner has no device memory of its own to report: say so, not "None".
                "device memory (MiB)": f"{mem:.1f}" if mem is not None else "not tracked",
            }
        )
    return out


def clear_runners() -> None:
    _runner.clear()
    _artifacts.clear()


# -- sweeps in a background thread ----------------------------------------------------
@dataclass
class SweepJob:
    """A sweep running in a thread; the page polls it and draws what has landed."""

    config: SweepConfig | Plan  # the page's plan, run as it is (a config: planned once here)
    db_path: str
    stop: threading.Event = field(default_factory=threading.Event)
    rows: list[ResultRow] = field(default_factory=list)
    done_count: int = 0
    total: int = 0
    message: str = "starting"
    log: list[str] = field(default_factory=list)
    outcome: Any = None
    error: BaseException | None = None
    finished: bool = False
    in_worker: bool = False
    worker_note: str = ""
    auto: bool = False
    started_s: float = field(default_factory=time.time)
    thread: threading.Thread | None = None

    def on_progress(self, done: int, total: int, message: str) -> None:
        self.done_count, self.total, self.message = done, total, message
        self.log.append(message)

    def on_row(self, row: ResultRow) -> None:
        self.rows.append(row)

    def _run(self) -> None:
        from engine.running.launch import Job, WorkerLauncher
        from engine.storage.shared import shared_store

        try:
            plan = Job(self.config, auto=self.auto).plan()
            config = plan.config
            # A build that never ends (a native hang) is killed rather than waited on
            # forever: generous, since a CPU sweep of a large model is legitimately slow.
            points = len(config.runners) * len(config.batches)
            launcher = WorkerLauncher(timeout_s=1800 + 600 * points)
            self.in_worker = True
            store = shared_store(self.db_path)  # the page's own connection, not another
            callbacks = Callbacks(self.on_progress, self.on_row, self.stop.is_set)
            self.outcome = launcher.launch(Job(plan), store, callbacks)
        except BaseException as exc:  # noqa: BLE001 - the page shows every failure
            self.error = exc
        finally:
            self.finished = True

    def start(self) -> SweepJob:
        self.thread = threading.Thread(target=self._run, name="visionbench-sweep", daemon=True)
        self.thread.start()
        return self


def start_sweep(plan: Plan, db_path: str | None = None) -> SweepJob:
    job = SweepJob(config=plan, db_path=str(db_path or default_db()), auto=plan.auto)
    st.session_state[JOB_KEY] = job
    return job.start()


def current_job() -> SweepJob | None:
    job = st.session_state.get(JOB_KEY)
    return job if isinstance(job, SweepJob) else None
