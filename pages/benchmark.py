"""Benchmark page: a live single-batch measurement, sweeps streamed in, charts and table.

The batch slider times the selected backends at one batch size with runners from the
shared cache (built once, reused across reruns and sessions) under the per-device lock.
"Run sweep" runs every backend × precision × batch, stores it in the results database
and draws latency, throughput and speed-up as rows land; a stop button ends it between
batches.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

from engine.backends import describe, reference_spec
from engine.core.config import BenchSettings, ResultRow, RunnerSpec
from engine.core.text import csv_cell, markdown_text
from engine.reporting import charts
from engine.running.locks import device_lock
from engine.running.plan import Plan
from engine.running.timing import time_runner
from engine.storage.reference import QUOTED, load_reference
from pages import common
from pages.onnx_source import NO_FILE
from pages.widgets import kept, save_kept

SLIDER_BATCHES = [1, 2, 4, 8, 16, 32, 64, 128, 256]
LIVE_PENDING = "vb_live_pending"
LIVE_RESULTS = "vb_live_results"
AUTO_KEY = "vb_auto"
COMPILE_KEY = "vb_with_compile"


def _heading(sel: common.Selection) -> tuple[Plan | None, str]:
    """What the selection will measure and check against: its plan (made here, once per
    rerun; None when the sidebar's inputs have a problem) and the reference's name."""
    onnx_source = sel.model.onnx_path is not None
    if sel.model.name == NO_FILE and not onnx_source:  # an ONNX source still without a file
        st.caption("No ONNX file yet: upload one in the sidebar (with its data files, if any).")
        common.show_problems(sel)
        return None, describe(reference_spec(True))  # a file's reference, once there is one
    # What outputs are checked against: the backend that offers the reference for this source.
    ref_name = describe(reference_spec(onnx_source))
    if onnx_source:
        about = f"The file's own weights; parity is checked against {ref_name}."
    elif sel.model.weights == "random":
        about = (
            "Random weights give real timings but meaningless predictions; parity is still checked."
        )
    else:
        about = f"Parity is checked against {ref_name}."
    st.caption(
        f"{markdown_text(sel.model.label)} at {sel.model.hw[0]}×{sel.model.hw[1]}"
        f" on {sel.device}. {about}"
    )
    plan = None
    if common.show_problems(sel):
        with common.guard("planning the sweep"):
            # The auto toggle is drawn further down; its value is already in the session.
            auto = bool(st.session_state.get(AUTO_KEY, False))
            plan = sel.plan(auto, bool(st.session_state.get(COMPILE_KEY, False)))
    if plan is not None and plan.left_out:
        st.caption("Not run: " + markdown_text("; ".join(plan.left_out)) + ".")
    if plan is not None and not plan.chosen:
        st.warning("No runnable backend × precision is selected. Pick them in the sidebar.")
    return plan, ref_name


# -- live single-batch measurement ------------------------------------------------------
def _request() -> None:
    st.session_state[LIVE_PENDING] = True


def _slider_moved(key: str) -> None:
    save_kept(key)
    _request()


def _live_section(sel: common.Selection, specs: list[RunnerSpec], running: bool) -> None:
    st.subheader("Live measurement")
    left, right = st.columns([3, 1])
    if sel.fixed_batch:  # the file runs at one batch only: no slider to move
        batch = sel.fixed_batch
        left.caption(f"Batch size {batch}: the file fixes it.")
    else:
        # Kept across pages like the sidebar's widgets, so the slider and the card agree.
        kw = kept("vb_live_batch", 8, list(SLIDER_BATCHES))
        kw["on_change"] = _slider_moved
        batch = left.select_slider("Batch size", SLIDER_BATCHES, **kw)
    right.button("Measure", on_click=_request, disabled=not specs, key="vb_measure")
    # Only the slider and the button measure; other reruns show the last measurement again.
    if st.session_state.pop(LIVE_PENDING, False) and specs:
        if running:
            st.caption("A sweep is running; measure again when it has finished.")
        else:
            _measure(sel, specs, batch)
    _show_last_measurement(sel)
    _cached_runners()


def _measure(sel: common.Selection, specs: list[RunnerSpec], batch: int) -> None:
    measured = []
    if refused := common.batch_refusal(sel.model, batch):
        common.show_error(refused)  # the file's own limit: nothing to build or time
        return
    live_settings = BenchSettings(
        warmup=2,
        iters=max(3, min(sel.settings.iters, 10)),
        max_time_s=5,
        threads=sel.settings.threads,
    )
    for spec in specs:
        name = describe(spec, "series")
        with common.guard(name):
            with st.spinner(f"{name}: preparing (the first use builds it), then timing…"):
                runner = common.cached_runner(
                    sel.model, spec, batch, sel.batches, sel.settings.threads
                )
                art = common.artifacts(sel.model)
                with device_lock(spec.device, timeout_s=120, on_wait=st.caption):
                    timing = time_runner(runner, art.sample_input(batch), live_settings)
            measured.append((name, runner.provider, timing))
    st.session_state[LIVE_RESULTS] = (sel.model.label, batch, measured, sel.key)


def _show_last_measurement(sel: common.Selection) -> None:
    last = st.session_state.get(LIVE_RESULTS)
    if last and last[3] != sel.key:  # another model or setting: its cards would mislead
        st.session_state.pop(LIVE_RESULTS, None)
        last = None
    if last:
        label, at_batch, measured, _ = last
        if measured:
            st.caption(f"{markdown_text(label)}, batch {at_batch}:")
            cols = st.columns(min(len(measured), 4))
            for i, (name, provider, timing) in enumerate(measured):
                # Throughput is a second reading, not a change: a caption, not a metric delta.
                cols[i % len(cols)].metric(
                    name,
                    f"{timing.p50_ms:.2f} ms",
                    help=f"p50 of {timing.iters} runs at batch {at_batch}; p10 {timing.p10_ms:.2f} ms,"
                    f" p90 {timing.p90_ms:.2f} ms; ran on {provider}",
                )
                cols[i % len(cols)].caption(f"{timing.throughput_ips:.0f} images/s")
    else:
        st.caption(
            f"{'Press' if sel.fixed_batch else 'Move the slider or press'} Measure: each"
            " backend is built once (export, quantisation, session or engine build), cached,"
            " and timed at that batch size."
        )


def _cached_runners() -> None:
    with st.expander("Cached runners"):
        live = common.live_runners()
        if live:
            st.dataframe(pd.DataFrame(live), hide_index=True)
            st.caption(
                "Device memory is what each runner reports (GPU runners); CPU runners hold host "
                f"memory only. At most {common.MAX_CACHED_RUNNERS} are kept; the oldest is evicted."
            )
        else:
            st.caption("No runner is cached.")
        if st.button("Clear cached runners", key="vb_clear_runners"):
            common.clear_runners()
            st.session_state.pop(LIVE_RESULTS, None)
            st.rerun()


# -- sweep --------------------------------------------------------------------------------
def _sweep_section(
    sel: common.Selection,
    plan: Plan | None,
    ref_name: str,
    job: common.SweepJob | None,
    running: bool,
) -> None:
    st.subheader("Sweep")
    runnable = plan is not None and bool(plan.chosen) and not sel.sweep_problems
    st.toggle(
        "Auto mode: try the candidate settings of the chosen backends and pick, per batch size,"
        f" the fastest whose outputs agree with {ref_name}",
        value=False,
        key=AUTO_KEY,
    )
    if st.session_state.get(AUTO_KEY):
        st.toggle(
            "Also build the compiled engines that are not cached yet (torch.compile,"
            " max-autotune on a GPU: minutes per batch size the first time; cached engines"
            " are always tried)",
            value=False,
            key=COMPILE_KEY,
        )
    if runnable:
        st.caption("The same sweep from a terminal:")
        st.code(plan.command, language="bash")
    c1, c2 = st.columns([1, 1])
    if c1.button("Run sweep", type="primary", disabled=not runnable or running, key="vb_run"):
        job = common.start_sweep(plan)
        running = True
    stop_slot = c2.empty()  # emptied when the sweep ends: a Stop for a finished sweep does nothing
    if running:
        stop_slot.button("Stop", on_click=job.stop.set, key="vb_stop")
    live_charts = st.toggle(
        "Redraw the charts while the sweep runs",
        value=False,
        key="vb_live_charts",
        help="Off by default: redrawing the charts takes the dashboard's server and your"
        " browser about half a core on each new point, and on a small machine that slowed the"
        " sweep it watched by 5-35% (benchmarks/results/dashboard-disturbance). While off, the"
        " points that have landed are listed as plain text and the charts appear at the end.",
    )
    reference = _reference()
    show_compute = st.toggle(
        "Show achieved TFLOP/s and % of the GPU's dense peak (docs/stability.md)",
        value=False,
        key="vb_compute",
    )
    onnx_source = sel.model.onnx_path is not None
    draw = functools.partial(
        _draw, reference=reference, onnx_source=onnx_source, show_compute=show_compute
    )
    if running:
        _follow(job, stop_slot, live_charts, draw)
    if job is not None and job.finished:
        _show_outcome(job)
        # The rows counted above are the rows charted: the outcome's (the same objects the
        # sweep handed the page as they landed), or those landed when there is no outcome.
        _results(job.outcome.rows if job.outcome is not None else job.rows, draw, onnx_source)
    elif not running:
        st.caption("No sweep yet in this session. Earlier runs are on the History page.")
        if reference is not None:
            st.plotly_chart(
                charts.latency_chart(charts.results_frame([]), reference), key="lat_ref"
            )


def _reference() -> pd.DataFrame | None:
    """The quoted study's figures as a results frame, when the toggle asks for them."""
    show_reference = st.toggle(
        f"Show the study's T4 figures ({QUOTED})", value=True, key="vb_reference"
    )
    reference = None
    if show_reference:
        with common.guard("the reference study"):
            study = load_reference()
            reference = charts.results_frame(study.rows)
            st.caption(
                f"{study.label}: {study.source}. Grey open markers; never measured on this machine."
            )
    return reference


def _draw(
    rows: list[ResultRow],
    suffix: str,
    *,
    reference: pd.DataFrame | None,
    onnx_source: bool,
    show_compute: bool,
) -> None:
    df = charts.results_frame(rows)
    st.plotly_chart(charts.latency_chart(df, reference), key=f"lat{suffix}")
    st.plotly_chart(charts.throughput_chart(df, reference), key=f"thr{suffix}")
    if not charts.speedup_frame(df).empty:
        st.plotly_chart(charts.speedup_chart(df), key=f"spd{suffix}")
    elif not df.empty:
        st.caption(
            "No speed-up chart: it compares with PyTorch FP32 on the same device, "
            + ("which cannot run an ONNX file." if onnx_source else "which these results lack.")
        )
    if show_compute:
        st.plotly_chart(charts.efficiency_chart(df), key=f"eff{suffix}")
    if not df.empty:
        table = charts.table_frame(df, onnx_source=onnx_source)
        st.dataframe(table, hide_index=True, key=f"tab{suffix}")


def _follow(
    job: common.SweepJob,
    stop_slot: Any,
    live_charts: bool,
    draw: Callable[[list[ResultRow], str], None],
) -> None:
    """Stream the running sweep's progress and landed points until it finishes."""
    if job.worker_note:
        st.caption(job.worker_note)
    progress = st.progress(0.0, text="starting the sweep")
    live_area = st.empty()
    shown, said = -1, ""
    while not job.finished:
        frac = job.done_count / job.total if job.total else 0.0
        text = f"{job.done_count}/{job.total or '?'} · {job.message}"
        if text != said:  # each update is a message to the browser, which redraws
            said = text
            progress.progress(min(frac, 1.0), text=text)
        if len(job.rows) != shown:
            shown = len(job.rows)
            with live_area.container():
                if live_charts:
                    draw(job.rows, f"_live{shown}")
                else:
                    st.text(charts.landed_text(job.rows))
        # The dashboard shares the cores with the sweep it watches: poll slowly.
        time.sleep(1.0)
    progress.empty()
    live_area.empty()
    stop_slot.empty()


def _show_outcome(job: common.SweepJob) -> None:
    """Where the finished sweep ran, how it ended, its notes and errors, auto mode's ladder."""
    if job.in_worker:
        st.caption("The sweep ran in a separate worker process.")
    elif job.worker_note:
        st.caption(job.worker_note)
    if job.error is not None:
        common.show_error(job.error, "the sweep")
    outcome = job.outcome
    if outcome is None:
        return
    state = "stopped early" if outcome.interrupted else "finished"
    st.success(
        f"Sweep {state}: {len(outcome.measured)} of {len(outcome.rows)} points measured"
        + (f", stored as run {outcome.run_id}" if outcome.run_id else "")
        + f" in {job.db_path.rsplit('/', 1)[-1]}."
    )
    if outcome.notes:
        with st.expander(f"Notes from the sweep ({len(outcome.notes)})"):
            for note in outcome.notes:
                st.caption(markdown_text(note))
    for err in {e.user_message() for e in outcome.errors}:
        st.warning(markdown_text(err))
    ladder = getattr(outcome, "ladder_records", None)
    if ladder is not None and ladder():
        st.subheader("Auto mode: what each setting bought")
        best = ", ".join(
            f"batch {b}: {step.label} ({step.p50_ms:.2f} ms)"
            for b, step in sorted(outcome.best.items())
        )
        st.success(f"Fastest agreeing setting — {best}")
        st.dataframe(ladder(), hide_index=True, key="vb_ladder")


def _results(
    rows: list[ResultRow], draw: Callable[[list[ResultRow], str], None], onnx_source: bool
) -> None:
    """The finished sweep's charts and table, and its rows as CSV."""
    draw(rows, "")
    if rows:
        df = charts.table_frame(charts.results_frame(rows), onnx_source=onnx_source)
        st.download_button(
            "Download CSV",
            df.map(csv_cell).to_csv(index=False).encode(),
            file_name="visionbench-results.csv",
            mime="text/csv",
            key="vb_csv",
        )


def main() -> None:
    common.ensure_entry()
    st.title("Benchmark")
    sel = common.selection()
    plan, ref_name = _heading(sel)
    job = common.current_job()
    running = job is not None and not job.finished
    _live_section(sel, plan.chosen if plan is not None else [], running)
    _sweep_section(sel, plan, ref_name, job, running)


main()
