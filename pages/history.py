"""History page: earlier runs from the results store, compared and shared.

Lists every stored run with its environment fingerprint (the quoted T4 study too, marked
as not measured here), filters them, compares two as a speed-up per batch size next to the
environment differences that explain it, imports ``bench --json`` documents from other
machines, and offers the HTML / markdown reports and the CSV / JSON of the runs picked.
All of it is ``engine.storage.history``, ``engine.storage.documents`` and ``engine.reporting.report``; this script only
draws. Every string a run carries may come from another machine's file, so none is given
to a widget that renders markdown without ``markdown_text``; tables and pickers show text.
"""

from __future__ import annotations

import json

import streamlit as st

from engine.core.errors import EngineError
from engine.core.paths import python_command
from engine.core.text import markdown_text
from engine.reporting.charts import compare_chart
from engine.storage import documents, history
from engine.storage.notes import why_no_notes
from engine.storage.shared import shared_store
from engine.storage.store import Store
from pages import common

IMPORT_LOG_KEY = "vb_hist_import_log"
IMPORTED_KEY = "vb_hist_imported"
IMPORT_MB = documents.MAX_IMPORT_BYTES // 2**20


# -- import --------------------------------------------------------------------------------
def _import_section(store: Store) -> None:
    with st.expander("Import results from another machine"):
        st.caption(
            f"Upload documents written by `{python_command()} -m engine bench --json FILE` on any"
            f" machine (or `{python_command()} -m engine import FILE` there). Their fingerprint is"
            " kept; the same "
            f"document is never imported twice. Up to {IMPORT_MB} MB each."
        )
        uploads = st.file_uploader(
            "bench JSON documents",
            type=["json"],
            accept_multiple_files=True,
            key="vb_hist_upload",
            # The uploader states and enforces the same limit as the import itself.
            max_upload_size=IMPORT_MB,
        )
        done: set[str] = st.session_state.setdefault(IMPORTED_KEY, set())
        log: list[tuple[str, str]] = st.session_state.setdefault(IMPORT_LOG_KEY, [])
        for up in uploads or []:
            # The uploader hands the same files back on every rerun; import each once.
            if up.file_id in done:
                continue
            try:
                documents.check_size(up.size, up.name)
                doc = documents.parse_document(up.getvalue(), up.name)
                run_id, created = documents.import_document(store, doc, up.name)
            except EngineError as exc:
                log.append(("error", exc.user_message()))
            else:
                if created:
                    log.append(("success", f"Imported {up.name} as run {run_id}."))
                else:
                    log.append(("info", f"{up.name} is already run {run_id}; not imported again."))
            # Marked only once its outcome is in the log: a rerun never drops a file unsaid.
            done.add(up.file_id)
        for kind, message in log:
            getattr(st, kind)(markdown_text(message))


# -- list and filter -----------------------------------------------------------------------
def _runs_section(store: Store | None) -> list[history.RunInfo]:
    """The stored runs as a table, filtered; the runs shown."""
    runs: list[history.RunInfo] = []
    if store is not None:
        with common.guard("reading the runs"):
            runs = history.list_runs(store)
    measured = [r for r in runs if not r.quoted]
    st.subheader(f"Runs ({len(measured)} stored)")
    shown = _filtered(runs)
    if not measured:
        st.info(
            "No runs stored yet. Run a sweep on the Benchmark page or with "
            f"`{python_command()} -m engine bench`, or import a document above."
        )
    st.dataframe(history.runs_frame(shown), hide_index=True, key="vb_hist_runs")
    for r in shown:
        if r.damaged:
            st.warning(markdown_text(f"Run {r.id} is damaged: {r.damaged}."))
    if any(r.quoted for r in shown):
        st.caption(
            "Run **t4** is the study's figures from a Google Colab T4: quoted, not measured here."
        )
    return shown


def _filtered(runs: list[history.RunInfo]) -> list[history.RunInfo]:
    """Draw the filters; the runs they let through."""
    c1, c2, c3, c4 = st.columns(4)
    models = c1.multiselect(
        "Model", sorted({r.model for r in runs if r.model}), key="vb_hist_model"
    )
    backends = c2.multiselect(
        "Backend", sorted({b for r in runs for b in r.backends}), key="vb_hist_backend"
    )
    precisions = c3.multiselect(
        "Precision", sorted({p for r in runs for p in r.precisions}), key="vb_hist_precision"
    )
    devices = c4.multiselect(
        "Device", sorted({d for r in runs for d in r.devices}), key="vb_hist_device"
    )
    c5, c6, c7 = st.columns([2, 1, 1])
    machine = c5.text_input(
        "Machine contains", key="vb_hist_machine", placeholder="e.g. H100, EPYC"
    )
    since = c6.date_input("Since", value=None, key="vb_hist_since")
    show_reference = c7.checkbox(
        "Show the quoted T4 study",
        value=True,
        key="vb_hist_reference",
        help="The study's figures from a Colab T4: quoted, not measured here.",
    )
    shown: list[history.RunInfo] = []
    with common.guard("filtering"):
        shown = history.filter_runs(
            runs,
            model=models,
            backend=backends,
            precision=precisions,
            device=devices,
            machine=machine,
            since=since,
            include_reference=show_reference,
        )
    return shown


# -- compare -------------------------------------------------------------------------------
def _compare_section(
    store: Store | None, by_id: dict[str, history.RunInfo]
) -> tuple[str | None, str | None]:
    """Pick two of the shown runs and compare them; the ids picked (None: fewer than two)."""
    st.subheader("Compare two runs")
    ids = list(by_id)
    if len(ids) < 2:
        st.info("Two runs are needed to compare; widen the filters or run another sweep.")
        return None, None
    newest = [i for i in ids if not by_id[i].quoted]
    default_b = newest[0] if newest else ids[0]
    # The newest measured run against the one before it; the quoted study only if no other.
    default_a = next((i for i in newest if i != default_b), None) or next(
        i for i in ids if i != default_b
    )
    left, right = st.columns(2)
    a_id = left.selectbox(
        "A (baseline)",
        ids,
        index=ids.index(default_a),
        format_func=lambda i: by_id[i].title,
        key="vb_hist_a",
    )
    b_id = right.selectbox(
        "B (compared with A)",
        ids,
        index=ids.index(default_b),
        format_func=lambda i: by_id[i].title,
        key="vb_hist_b",
    )
    if a_id == b_id:
        st.warning("A and B are the same run; pick two different runs.")
    elif store is not None:
        with common.guard("the comparison"):
            _comparison(store, a_id, b_id)
    return a_id, b_id


def _comparison(store: Store, a_id: str, b_id: str) -> None:
    """Speed-up per batch size of B over A, and what differed between them."""
    ra, rb = history.load_run(store, a_id), history.load_run(store, b_id)
    sp = history.speedup_frame(history.speedups(ra.rows, rb.rows))
    if ra.info.quoted or rb.info.quoted:
        st.info("One side is the quoted T4 study: its figures were not measured here.")
    st.plotly_chart(compare_chart(sp, f"run {a_id}", f"run {b_id}"), key="vb_hist_chart")
    if not sp.empty:
        # a ratio inside the two runs' noise is not shown as a speed-up
        sp["speedup"] = sp["speedup"].where(sp["noise"] != "within noise")
        st.dataframe(
            sp[["series", "batch", "a_p50_ms", "b_p50_ms", "speedup", "noise"]
               + ["a_provider", "b_provider"]],
            hide_index=True,
            key="vb_hist_speedups",
        )  # fmt: skip
    unsure = [
        f"{side}: {r.backend} {r.precision} {r.device} batch {r.batch} {r.parity_status}"
        for side, rec in (("A", ra), ("B", rb))
        for r in rec.rows
        if r.status == "ok" and r.parity_status in ("failed", "not judged")
    ]
    if unsure:
        st.caption("Parity failed or not judged: " + markdown_text("; ".join(unsure[:12])))
    only_a, only_b = history.unmatched_points(ra, rb)
    if only_a:
        st.caption(f"Only in A: {markdown_text('; '.join(only_a))}")
    if only_b:
        st.caption(f"Only in B: {markdown_text('; '.join(only_b))}")
    st.markdown("**Differences that may explain it**")
    diff = history.diff_frame(history.env_diff(ra, rb))
    if diff.empty:
        st.caption("Same environment and configuration.")
    else:
        st.dataframe(
            diff.rename(columns={"a": f"A (run {a_id})", "b": f"B (run {b_id})"}),
            hide_index=True,
            key="vb_hist_diff",
        )


# -- notes ---------------------------------------------------------------------------------
def _notes_section(store: Store | None, by_id: dict[str, history.RunInfo], picked: list) -> None:
    """What the picked runs said really ran (a cached engine loaded, an FP32 copy run),
    stored with each run; an imported run's notes came from a file, so each is escaped."""
    ids = [i for i in dict.fromkeys(picked) if i in by_id and not by_id[i].quoted]
    if store is None or not ids:
        return
    st.subheader("What ran")
    for run_id in ids:
        notes: list[str] = []
        why = ""
        with common.guard("reading the run's notes"):
            run = store.run(int(run_id))
            notes, why = run["notes"], why_no_notes(run["notes_kept"], run["source"])
        with st.expander(f"Notes of run {run_id} ({len(notes)})", expanded=True):
            if not notes and why:
                st.caption(f"No notes: {why}.")
            for note in notes:
                st.markdown("- " + markdown_text(note))


# -- downloads -----------------------------------------------------------------------------
def _share_section(
    store: Store | None,
    by_id: dict[str, history.RunInfo],
    a_id: str | None,
    b_id: str | None,
) -> None:
    st.subheader("Share")
    ids = list(by_id)
    picked = st.multiselect(
        "Runs in the report",
        ids,
        default=[i for i in (a_id, b_id) if i is not None and i in ids][:2] or ids[:1],
        format_func=lambda i: by_id[i].title,
        key="vb_hist_report_runs",
    )
    if picked and store is not None:
        _downloads(store, [history.parse_run_id(i) for i in picked])


def _downloads(store: Store, report_ids: list[int | str]) -> None:
    name = "visionbench-" + "-".join(str(i) for i in report_ids)

    def _html() -> str:
        from engine.reporting.report import html_report

        return html_report(store, report_ids)

    def _markdown() -> str:
        from engine.reporting.report import markdown_report

        return markdown_report(store, report_ids)

    d1, d2, d3 = st.columns(3)
    # Reports are built only when clicked: the HTML carries plotly.js (a few MB).
    d1.download_button(
        "HTML report",
        _html,
        file_name=f"{name}.html",
        mime="text/html",
        on_click="ignore",
        key="vb_hist_dl_html",
        help="One file with the charts inside; opens with no network.",
    )
    d2.download_button(
        "Markdown summary",
        _markdown,
        file_name=f"{name}.md",
        mime="text/markdown",
        on_click="ignore",
        key="vb_hist_dl_md",
        help="Fits a pull request or an issue.",
    )
    d3.download_button(
        "CSV of the rows",
        lambda: history.rows_csv(store, report_ids),
        file_name=f"{name}.csv",
        mime="text/csv",
        on_click="ignore",
        key="vb_hist_dl_csv",
    )
    stored = [i for i in report_ids if i != history.REFERENCE_ID]
    for i, rid in enumerate(stored):
        st.download_button(
            f"JSON document of run {rid} (importable elsewhere)",
            lambda rid=rid: json.dumps(store.document(int(rid)), indent=1),
            file_name=f"visionbench-run-{rid}.json",
            mime="application/json",
            on_click="ignore",
            key=f"vb_hist_dl_json_{i}",
        )


def main() -> None:
    common.ensure_entry()
    st.title("History")
    st.caption(
        "Every run in the results store with the machine and library versions it ran on. "
        "Pick two to see the speed-up per batch size and what differed between them."
    )
    store = None
    with common.guard("opening the results store"):
        store = shared_store()  # one connection per process, not one per rerun
    if store is not None:
        _import_section(store)
    shown = _runs_section(store)
    by_id = {str(r.id): r for r in shown}
    a_id, b_id = _compare_section(store, by_id)
    measured = [i for i, r in by_id.items() if not r.quoted]
    _notes_section(store, by_id, [i for i in (b_id, a_id) if i] or measured[:1])
    _share_section(store, by_id, a_id, b_id)


main()
