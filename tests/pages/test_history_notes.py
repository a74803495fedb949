"""A run's notes on the History page, and the journey they make: a sweep on the CLI
says what ran → the History page shows it → ``bench --json`` exported it → imported into a
fresh store on "another machine" → the notes are still there, on the CLI and the page.

Real CLI processes (the sweep in its worker), real sqlite3 stores, Streamlit's AppTest;
a hostile document's notes (markdown, HTML, terminal escapes, a huge string) render as
their own characters.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

pytest.importorskip(
    "streamlit", reason="the dashboard pages need Streamlit, which is not installed here"
)

from streamlit.testing.v1 import AppTest  # noqa: E402

from engine.core.text import markdown_text  # noqa: E402
from engine.storage import documents  # noqa: E402
from engine.storage.store import Store  # noqa: E402
from pages.common import ENTRY_KEY  # noqa: E402
from tests.conftest import run_cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PAGE = str(ROOT / "pages" / "history.py")
IGNORED = "ort ignores channels_last: not one of its options"
HOSTILE = [
    "![x](http://evil.example/t.png) [click](javascript:alert(1)) **bold** :red[red]",
    "<script>alert('x')</script><b>bold</b>",
    "clip \x1b]52;c;ZXZpbA==\x07 rtl \u202egnp.exe",
    "- a list item",
    "y" * 100_000,
]


def _page(folder: Path, monkeypatch) -> AppTest:
    monkeypatch.setenv("VISIONBENCH_DATA", str(folder))  # Store() opens folder/results.sqlite
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state[ENTRY_KEY] = True  # as if dashboard.py had drawn the navigation
    at.run()
    assert not at.exception, at.exception
    return at


def _notes_shown(at: AppTest, run_id: int) -> list[str]:
    """The markdown of the "Notes of run N" expander."""
    (box,) = [e for e in at.expander if e.label.startswith(f"Notes of run {run_id} (")]
    return [m.value for m in box.markdown]


@pytest.fixture(scope="module")
def bench_on_the_cli(tmp_path_factory):
    here = tmp_path_factory.mktemp("here")
    doc = here / "run.json"
    done = run_cli(
        "bench",
        "--model",
        "resnet18",
        "--image-size",
        "32",
        "--backend",
        "ort",
        "--batch",
        "1",
        "--iters",
        "3",
        "--warmup",
        "0",
        "--channels-last",  # not an ORT option: the run says it ignored it
        "--quiet",
        "--db",
        str(here / "results.sqlite"),
        "--json",
        str(doc),
    )
    assert done.returncode == 0, done.stderr
    assert f"note: {IGNORED}" in done.stderr
    # said by the artifacts while the sweep ran (the ONNX export, made or reused): once
    exported = [n for n in done.stderr.splitlines() if "ONNX export" in n or "to ONNX in" in n]
    assert len(exported) == 1 and exported[0].startswith("note: "), done.stderr
    return here, doc


def test_a_cli_runs_notes_travel_to_another_store(bench_on_the_cli, tmp_path, monkeypatch):
    here, doc = bench_on_the_cli
    at = _page(here, monkeypatch)  # the History page of the machine that measured
    assert any(s.value == "What ran" for s in at.subheader)
    assert f"- {markdown_text(IGNORED)}" in _notes_shown(at, 1)

    written = json.loads(doc.read_text())  # the document bench --json wrote
    assert IGNORED in written["run"]["notes"]
    there = tmp_path / "there"
    there.mkdir()
    fresh = str(there / "results.sqlite")
    done = run_cli("import", "--db", fresh, str(doc))
    assert done.returncode == 0, done.stderr
    shown = run_cli("history", "--db", fresh, "--run", "1")
    assert shown.returncode == 0, shown.stderr
    assert f"  note: {IGNORED}" in shown.stdout.splitlines()
    assert written["run"]["notes"] == Store(fresh, readonly=True).run(1)["notes"]

    at = _page(there, monkeypatch)  # and on the other machine's History page
    assert f"- {markdown_text(IGNORED)}" in _notes_shown(at, 1)


def test_hostile_notes_render_as_their_characters(bench_on_the_cli, tmp_path, monkeypatch):
    here, doc = bench_on_the_cli
    hostile = copy.deepcopy(json.loads(doc.read_text()))
    hostile["run"]["notes"] = HOSTILE
    store = Store(tmp_path / "results.sqlite")
    run_id, created = documents.import_document(store, hostile, "hostile.json")
    assert created
    stored = store.run(run_id)["notes"]
    store.close()

    at = _page(tmp_path, monkeypatch)
    shown = _notes_shown(at, run_id)
    assert shown == [f"- {markdown_text(n)}" for n in stored]
    joined = "\n".join(shown)
    for raw in ("![x](", "<script>", "**bold**", ":red[", "\x1b", "\u202e", "javascript:"):
        assert raw not in joined
    assert max(len(n) for n in stored) <= 2_000  # the huge note was cut, not shown whole


def test_a_run_without_notes_says_so(tmp_path, monkeypatch):
    """A run stored before notes were kept and a run made now that had nothing to note
    say which they are (the second is not "stored before notes were kept")."""
    old = ROOT / "tests" / "data" / "store_schema4.sqlite"
    (tmp_path / "results.sqlite").write_bytes(old.read_bytes())
    store = Store(tmp_path / "results.sqlite")  # upgrades the old store
    run = store.run(1)
    now = store.create_run(run["configuration"], run["environment"], "bench")
    store.add_row(now, store.rows(1)[0])
    store.finish_run(now)
    store.close()
    at = _page(tmp_path, monkeypatch)  # the default pair: run 1 against the run made now
    captions = {
        run_id: [c.value for e in at.expander if e.label == f"Notes of run {run_id} (0)"
                 for c in e.caption]
        for run_id in (1, now)
    }  # fmt: skip
    assert captions[1] == ["No notes: this run was stored before runs kept their notes."]
    assert captions[now] == ["No notes: this run had nothing to note."]
