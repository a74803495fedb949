"""A run's notes (what really ran) are kept with the run: stored as the sweep says them,
carried by its document, imported with it, shown by ``history --run`` and the reports.

Real sqlite3 stores, real sweeps of a small model (resnet18 at 64×64, random weights) and
the store the code before notes wrote (tests/data/store_schema4.sqlite). An imported
document's notes are hostile: cut to a length, sanitised, never markup anywhere.
"""

from __future__ import annotations

import copy
import io
import json
import shutil
import sqlite3
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from engine.cli import history as history_cli
from engine.core.config import BenchSettings, Choice
from engine.core.text import markdown_text
from engine.reporting.report import html_report, markdown_report
from engine.running.plan import Callbacks, make_plan
from engine.running.sweep import run_sweep
from engine.storage import documents, history
from engine.storage.notes import MAX_NOTE_CHARS, MAX_NOTES
from engine.storage.store import SCHEMA_VERSION, Store

ROOT = Path(__file__).resolve().parents[2]
OLD_STORE = ROOT / "tests" / "data" / "store_schema4.sqlite"
OLD_DOCUMENT = ROOT / "benchmarks" / "results" / "sweep" / "cpu.json"
# Keys of documents made before notes were kept, computed by the code before this change:
# the same document must keep its key, or a re-import lands twice.
OLD_STORE_RUN1_KEY = "sha256:a7a6fb93d1dccc7fbc81805a15db06367f99fc92a6ea489fd85c53e63b0033ac"
OLD_DOCUMENT_KEY = "sha256:959737f4bf2e8f0eced25936f43cf97dc4b14afd26f2f9a8331deedde5475dd7"
IGNORED = "ort ignores channels_last: not one of its options"  # a plan's own note
BENCH = BenchSettings(warmup=0, iters=3, min_iters=1, max_time_s=5.0)

HOSTILE = [
    "![x](http://evil.example/t.png) [click](javascript:alert(1)) **bold** # head",
    "<script>alert('x')</script><b>bold</b><img src=x onerror=alert(1)>",
    "clip \x1b]52;c;ZXZpbA==\x07 bell \x07 cr\rlf\nrtl \u202egnp.exe nul \x00",
    "- a list item | a | table |",
    "y" * 100_000,
]


def _plan(small_spec, batches=(1, 2), backends=("ort",)):
    return make_plan(
        Choice(
            small_spec,
            backends,
            batches=batches,
            options=(("channels_last", True),),  # not an ORT option: a note says so
            bench=BENCH,
        )
    )


@pytest.fixture(scope="module")
def swept(tmp_path_factory, small_spec, small_artifacts):
    """One real sweep whose plan says a note, in its own store."""
    store = Store(tmp_path_factory.mktemp("notes") / "results.sqlite")
    outcome = run_sweep(_plan(small_spec), store=store, artifacts=small_artifacts)
    assert outcome.measured and IGNORED in outcome.notes
    return store, outcome


def _hostile_document(store: Store, run_id: int) -> dict:
    doc = copy.deepcopy(store.document(run_id))
    doc["run"]["created_at"] = "2026-11-02T10:00:00+00:00"  # another run, not a copy
    doc["run"]["notes"] = list(HOSTILE)
    return doc


# -- the store ----------------------------------------------------------------------------


def test_an_old_store_upgrades_and_its_runs_have_no_notes(tmp_path):
    db = tmp_path / "old.sqlite"
    shutil.copyfile(OLD_STORE, db)
    assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0] == 4
    store = Store(db, readonly=True)  # a reader upgrades our own older store once
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6
    assert store.run(1)["notes"] == [] and store.run(1)["notes_kept"] is False
    assert "notes" not in store.document(1)["run"]  # as documents made before notes
    assert history.load_run(store, 1).notes == []
    store.close()
    again = Store(db)  # the step is idempotent: a second open changes nothing
    assert again.add_notes(1, ["a", "b", "a"]) == 2
    assert again.add_notes(1, ["b", "c"]) == 1
    assert again.run(1)["notes"] == ["a", "b", "c"]


def test_the_notes_migration_survives_a_crash_half_way(tmp_path):
    db = tmp_path / "half.sqlite"
    shutil.copyfile(OLD_STORE, db)
    con = sqlite3.connect(db)  # a tool that died after creating the table, before the version
    con.execute("CREATE TABLE run_notes (id INTEGER PRIMARY KEY, run_id INTEGER, text TEXT)")
    con.execute("ALTER TABLE runs ADD COLUMN notes_kept INTEGER NOT NULL DEFAULT 1")  # schema 6's
    con.commit()
    con.close()
    assert Store(db).run(1)["notes"] == []
    assert Store(db).run(1)["notes_kept"] is False


def test_a_note_is_capped_and_a_run_holds_a_bounded_number(tmp_path):
    store = Store(tmp_path / "cap.sqlite")
    run_id = store.create_run({"model": {"name": "m"}}, {})
    store.add_notes(run_id, ["z" * (MAX_NOTE_CHARS + 500)])
    (note,) = store.run(run_id)["notes"]
    assert note.startswith("z" * (MAX_NOTE_CHARS - 40)) and len(note) == MAX_NOTE_CHARS
    assert note.endswith(f"(cut: {MAX_NOTE_CHARS + 500} characters)")
    store.add_notes(run_id, [f"n{i}" for i in range(MAX_NOTES + 50)])
    assert len(store.run(run_id)["notes"]) == MAX_NOTES


# -- written as the run goes --------------------------------------------------------------


def test_a_sweep_stores_its_notes_with_the_run(swept):
    store, outcome = swept
    stored = store.run(outcome.run_id)["notes"]
    assert IGNORED in stored
    assert stored == [n for n in outcome.notes if n in stored]  # in the order said
    assert set(outcome.notes) <= set(stored)


def test_notes_are_in_the_store_before_the_run_ends(tmp_path, small_spec, small_artifacts):
    """A reader sees each note while the sweep still measures: a note said by the first
    runner is stored before its first row lands, so a run cut short keeps every note said
    so far."""
    db = tmp_path / "live.sqlite"
    store = Store(db)
    said = "the first runner's own note"
    seen: list[list[str]] = []

    def factory(spec, art, ctx):
        from engine.backends import get_backend

        if spec.backend == "ort":
            ctx.notes.append(said)  # as a backend says what ran (an FP32 copy, a cached plan)
        return get_backend(spec.backend).prepare(spec, art, ctx)

    def on_row(row):
        reader = Store(db, readonly=True)
        try:
            seen.append(reader.run(reader.runs()[0]["id"])["notes"])
        finally:
            reader.close()

    plan = _plan(small_spec, batches=(1,), backends=("ort", "torch"))
    outcome = run_sweep(
        plan,
        store=store,
        callbacks=Callbacks(on_row=on_row),
        runner_factory=factory,
        artifacts=small_artifacts,
    )
    assert [r.backend for r in outcome.rows] == ["ort", "torch"]
    assert IGNORED in seen[0]  # the plan's notes: stored when the run was created
    assert said in seen[0]  # the runner's: as said, before its first row landed
    assert said in store.run(outcome.run_id)["notes"]


def test_a_run_stopped_half_way_keeps_its_notes(tmp_path, small_spec, small_artifacts):
    store = Store(tmp_path / "stopped.sqlite")
    rows = []
    outcome = run_sweep(
        _plan(small_spec, batches=(1, 2, 4)),
        store=store,
        callbacks=Callbacks(on_row=rows.append, should_stop=lambda: len(rows) >= 1),
        artifacts=small_artifacts,
    )
    assert outcome.interrupted and len(outcome.rows) == 1
    assert store.run(outcome.run_id)["status"] == "interrupted"
    assert IGNORED in store.run(outcome.run_id)["notes"]


def _export_notes(notes: list[str]) -> list[str]:
    """The artifacts' own note of the ONNX export, made or reused during the sweep."""
    return [n for n in notes if "exported to ONNX in" in n or "reused the cached ONNX export" in n]


def test_notes_said_while_the_sweep_runs_are_kept_once_in_order(tmp_path, small_spec):
    """The artifacts say a note mid-sweep (the ONNX export the ort runner needs, made or
    reused) and a backend says one and then fails to build: both reach the outcome (what
    the CLI prints) and the store once each, in the order said, the export's before the
    row that used it lands."""
    from engine.artifacts.models import load_artifacts
    from engine.backends import get_backend

    art = load_artifacts(small_spec)  # its own: nothing exported through it yet
    db = tmp_path / "said.sqlite"
    store = Store(db)
    failing = "torch said this, then failed to build"

    def factory(spec, a, ctx):
        if spec.backend == "torch":
            ctx.say(failing)
            raise RuntimeError("cannot build")
        return get_backend(spec.backend).prepare(spec, a, ctx)

    seen: list[list[str]] = []

    def on_row(row):
        reader = Store(db, readonly=True)
        try:
            seen.append(reader.run(reader.runs()[0]["id"])["notes"])
        finally:
            reader.close()

    plan = _plan(small_spec, batches=(1,), backends=("ort", "torch"))
    outcome = run_sweep(
        plan, store=store, callbacks=Callbacks(on_row=on_row), runner_factory=factory, artifacts=art
    )
    assert [r.status for r in outcome.rows] == ["ok", "failed"]
    (exported,) = _export_notes(outcome.notes)
    assert outcome.notes.count(failing) == 1 and len(set(outcome.notes)) == len(outcome.notes)
    said = outcome.notes
    assert said.index(IGNORED) < said.index(exported) < said.index(failing)
    assert store.run(outcome.run_id)["notes"] == outcome.notes
    assert exported in seen[0] and failing in seen[1]  # stored as said, before each row


# -- documents ----------------------------------------------------------------------------


def test_the_document_carries_the_notes_and_an_import_keeps_them(swept, tmp_path):
    store, outcome = swept
    doc = json.loads(json.dumps(store.document(outcome.run_id)))  # as written to a file
    assert doc["run"]["notes"] == store.run(outcome.run_id)["notes"]
    fresh = Store(tmp_path / "fresh.sqlite")
    run_id, created = documents.import_document(fresh, doc, "run.json")
    assert created and fresh.run(run_id)["notes"] == store.run(outcome.run_id)["notes"]
    assert documents.import_document(fresh, doc, "run.json") == (run_id, False)
    # exported again from the store it was imported into: recognised, not a copy
    assert documents.import_document(fresh, fresh.document(run_id)) == (run_id, False)


def test_documents_made_before_notes_import_with_the_same_key(tmp_path):
    old = documents.read_document_file(OLD_DOCUMENT)
    assert "notes" not in old["run"]
    checked = documents.check_document(old, "cpu.json")
    assert documents.document_key(checked.run, checked.rows) == OLD_DOCUMENT_KEY
    store = Store(tmp_path / "imp.sqlite")
    run_id, created = documents.import_document(store, old, "cpu.json")
    assert created and store.run(run_id)["notes"] == []
    db = tmp_path / "old.sqlite"
    shutil.copyfile(OLD_STORE, db)
    exported = Store(db).document(1)
    exported["run"]["notes"] = []  # as the code before schema 6 wrote it
    checked = documents.check_document(exported)
    assert documents.document_key(checked.run, checked.rows) == OLD_STORE_RUN1_KEY


def test_hostile_notes_are_cut_and_made_inert_on_import(swept, tmp_path):
    store, outcome = swept
    fresh = Store(tmp_path / "hostile.sqlite")
    run_id, created = documents.import_document(fresh, _hostile_document(store, outcome.run_id))
    assert created
    notes = fresh.run(run_id)["notes"]
    assert len(notes) == len(HOSTILE)
    for note in notes:
        assert len(note) <= MAX_NOTE_CHARS
        assert not any(c in note for c in "\x1b\x07\x00\r\n\u202e")
    assert notes[2].startswith("clip \\x1b]52;c;ZXZpbA==\\x07")
    assert notes[4].endswith("(cut: 100000 characters)")


@pytest.mark.parametrize(
    "notes, why",
    [
        ("one note", "its run has notes 'one note', not a list"),
        (["fine", 7], "its run has notes[1] 7, not a string"),
        (["n"] * (MAX_NOTES + 1), f"its run has notes holds {MAX_NOTES + 1} items, at most"),
    ],
)
def test_notes_of_the_wrong_shape_are_one_clear_message(swept, notes, why):
    store, outcome = swept
    doc = copy.deepcopy(store.document(outcome.run_id))
    doc["run"]["notes"] = notes
    with pytest.raises(documents.BadInput) as err:
        documents.check_document(doc, "bad.json")
    assert why in err.value.user_message()


# -- shown --------------------------------------------------------------------------------


def _history(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = history_cli.main(list(argv))
    return code, out.getvalue()


def test_history_shows_one_runs_notes(swept):
    store, outcome = swept
    code, text = _history("--db", str(store.path), "--run", str(outcome.run_id))
    assert code == 0
    assert f"  note: {IGNORED}" in text.splitlines()
    code, text = _history("--db", str(store.path), "--run", str(outcome.run_id), "--json")
    assert code == 0 and IGNORED in json.loads(text)["notes"]


def test_hostile_notes_stay_inert_in_history_and_reports(swept, tmp_path):
    store, outcome = swept
    fresh = Store(tmp_path / "shown.sqlite")
    run_id, _ = documents.import_document(fresh, _hostile_document(store, outcome.run_id))
    code, text = _history("--db", str(fresh.path), "--run", str(run_id))
    assert code == 0
    assert not any(c in text for c in "\x1b\x07\x00\r\u202e")
    assert "note: clip \\x1b]52;c;ZXZpbA==\\x07" in text
    assert len([line for line in text.splitlines() if line.startswith("  note: ")]) == 5

    md = markdown_report(fresh, [run_id], diagnostics=False)
    for note in fresh.run(run_id)["notes"]:
        assert f"- {markdown_text(note)}" in md.splitlines()
    assert "![x](" not in md and "<script>" not in md and "**bold**" not in md

    page = html_report(fresh, [run_id], diagnostics=False)
    assert "What ran (the run&#39;s notes)" in page or "What ran (the run's notes)" in page
    assert "<script>alert" not in page and "<b>bold</b>" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    assert "\x1b" not in page and "\u202e" not in page


def test_a_worker_that_crashes_keeps_the_notes_it_said(tmp_path):
    """The worker stored its notes as it went: after a segfault the parent says them
    (it never got the child's "done"), and stores its own note with them."""
    from tests.conftest import run_cli

    db = str(tmp_path / "crash.sqlite")
    args = ["bench", "--model", "resnet18", "--image-size", "32", "--backend", "ort"]
    args += ["--batch", "1,2,4", "--iters", "3", "--warmup", "0", "--channels-last"]
    done = run_cli(*args, "--quiet", "--db", db, env={"VISIONBENCH_TEST_CRASH": "segv@1"})
    assert done.returncode != 0 and "SIGSEGV" in done.stderr
    assert f"note: {IGNORED}" in done.stderr
    later = "1 later point(s) were not run"
    assert f"note: {later}" in done.stderr
    notes = Store(db, readonly=True).run(1)["notes"]
    assert IGNORED in notes and later in notes
    code, text = _history("--db", db, "--run", "1")
    assert f"  note: {later}" in text.splitlines()


# -- a run that said none is not one stored before notes ----------------------------------

SAID_NONE = "notes: none (this run had nothing to note)"
BEFORE_NOTES = "notes: none (this run was stored before runs kept their notes)"
IMPORTED_BEFORE = (
    "notes: none (this run was imported from a document made before runs kept their notes)"
)


def _notes_line(db: Path, run_id: int) -> str:
    code, text = _history("--db", str(db), "--run", str(run_id))
    assert code == 0
    return text.splitlines()[-1]


def test_a_run_that_said_no_notes_is_told_from_one_stored_before_notes(tmp_path):
    """A run made now that said nothing to note says so; a run the store held before notes
    were kept, or imported from a document made before then, says that instead, in every
    store its document reaches."""
    db = tmp_path / "old.sqlite"
    shutil.copyfile(OLD_STORE, db)
    store = Store(db)  # upgraded: run 1 was stored before notes were kept
    old = store.run(1)
    now = store.create_run(old["configuration"], old["environment"], "bench")  # said none
    store.finish_run(now)
    assert _notes_line(db, 1) == BEFORE_NOTES
    assert _notes_line(db, now) == SAID_NONE
    code, text = _history("--db", str(db), "--run", str(now), "--json")
    assert code == 0 and json.loads(text)["notes_kept"] is True
    code, text = _history("--db", str(db), "--run", "1", "--json")
    assert code == 0 and json.loads(text)["notes_kept"] is False

    there = tmp_path / "there.sqlite"
    fresh = Store(there)
    kept_doc, before_doc = (json.loads(json.dumps(store.document(i))) for i in (now, 1))
    assert kept_doc["run"]["notes"] == [] and "notes" not in before_doc["run"]
    kept_id, _ = documents.import_document(fresh, kept_doc)
    before_id, _ = documents.import_document(fresh, before_doc)
    old_id, _ = documents.import_document(fresh, documents.read_document_file(OLD_DOCUMENT))
    assert _notes_line(there, kept_id) == SAID_NONE
    assert _notes_line(there, before_id) == IMPORTED_BEFORE
    assert _notes_line(there, old_id) == IMPORTED_BEFORE
    assert "notes" not in fresh.document(old_id)["run"]  # and so on to the next store
