"""Attacks through imported documents and stored text, each driven through the real CLI.

A results document travels between machines, so each test here is an attack seen on
2026-11-30 (issue 18: terminal escapes, markdown injection in reports, documents whose
fields have the wrong type, range or depth, /dev/zero and FIFOs as import files) and
checks the outcome a user needs: one ``error:`` line and exit 2, nothing stored, every
later command still working, and no control character or markup reaching a terminal or
a report. The documents start as a real exported sweep (resnet18 at 64×64, PyTorch on
the CPU) that each attack then alters.
"""

from __future__ import annotations

import copy
import json
import os
import re
import sqlite3
from pathlib import Path

import pytest

from engine.cli import main as cli
from engine.core.config import BenchSettings, RunnerSpec, SweepConfig
from engine.core.text import markdown_text, safe_text
from engine.running.sweep import run_sweep
from engine.storage.store import Store
from tests.conftest import run_cli

OSC52 = "H100\x1b]52;c;ZWNobyBwd25lZA==\x07"  # writes to the reader's clipboard when printed
RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@pytest.fixture(scope="module")
def document(tmp_path_factory, small_artifacts) -> dict:
    """The JSON document of one real sweep, as ``bench --json`` writes it."""
    store = Store(tmp_path_factory.mktemp("imports") / "source.sqlite")
    config = SweepConfig(
        model=small_artifacts.spec,
        runners=[RunnerSpec("torch")],
        batches=[1, 2],
        bench=BenchSettings(warmup=1, iters=3, min_iters=1, max_time_s=5.0),
    )
    outcome = run_sweep(config, store=store, artifacts=small_artifacts)
    assert outcome.measured, [r.reason for r in outcome.rows]
    doc = store.document(int(outcome.run_id))
    store.close()
    return doc


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def n_runs(db: Path) -> int:
    if not db.exists():
        return 0
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    finally:
        con.close()


def write(path: Path, doc: dict | str) -> Path:
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def assert_one_error(code: int, err: str, expected: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert expected in lines[0], lines[0]
    assert "Traceback" not in err


# -- 18.1: terminal escapes ------------------------------------------------------------------


def test_escapes_in_an_import_never_reach_the_terminal(document, tmp_path, capsys):
    doc = copy.deepcopy(document)
    doc["run"]["environment"]["gpu"] = OSC52
    doc["run"]["label"] = "sweep\x1b[2J\x1b[31m"
    doc["rows"][0]["provider"] = "CPU\x9b31m\u202egnp.exe"
    db = str(tmp_path / "mine.sqlite")
    code, out, err = run_main(capsys, "import", str(write(tmp_path / "evil\x1b[8m.json", doc)),
                              "--db", db)  # fmt: skip
    assert code == 0, err
    outputs = [out + err]
    for argv in (["history"], ["history", "--compare", "1", "t4"], ["history", "--json"]):
        code, out, err = run_main(capsys, *argv, "--db", db)
        assert code == 0, err
        outputs.append(out + err)
    for text in outputs:
        assert not RAW_CONTROL.search(text) and "\u202e" not in text, repr(text)
    assert "H100\\x1b]52;c;ZWNobyBwd25lZA==\\x07" in outputs[1]  # shown, not obeyed


def test_escapes_already_in_a_database_never_reach_the_terminal(document, tmp_path, capsys):
    """A results file written by another tool or version: the terminal output cleans it."""
    db = tmp_path / "shared.sqlite"
    assert run_main(capsys, "import", str(write(tmp_path / "a.json", document)),
                    "--db", str(db))[0] == 0  # fmt: skip
    con = sqlite3.connect(db)
    env = json.loads(con.execute("SELECT env_json FROM runs").fetchone()[0])
    env["gpu"] = OSC52
    with con:
        con.execute("UPDATE runs SET label = ?, env_json = ?, machine = ?",
                    ("x\x1b]0;owned\x07", json.dumps(env), OSC52))  # fmt: skip
        for rid, data in con.execute("SELECT id, data_json FROM rows").fetchall():
            row = dict(json.loads(data), provider="CPU\x1b]52;c;eA==\x07")
            con.execute("UPDATE rows SET data_json = ? WHERE id = ?", (json.dumps(row), rid))
    con.close()
    for argv in (["history"], ["history", "--compare", "1", "t4"]):
        code, out, err = run_main(capsys, *argv, "--db", str(db))
        assert code == 0, err
        assert not RAW_CONTROL.search(out + err), repr(out + err)
        assert "\\x1b" in out
    code, _, err = run_main(capsys, "report", "--db", str(db), "--out",
                            str(tmp_path / "r\x1b[2J.md"), "--no-diagnostics")  # fmt: skip
    assert code == 0 and not RAW_CONTROL.search(err), repr(err)


def test_cache_listing_prints_no_escape_from_a_meta_file(tmp_path, capsys):
    """Every command's stdout passes the one sanitiser in ``engine.cli.main.main``: cache too."""
    entry = tmp_path / "onnx" / "abc123"
    entry.mkdir(parents=True)
    (entry / "meta.json").write_text(json.dumps({"created": 1.0e9, "model": OSC52}))
    (entry / "model.onnx").write_bytes(b"x" * 10)
    code, out, err = run_main(capsys, "cache", "list", "--cache-dir", str(tmp_path))
    assert code == 0, err
    assert "H100\\x1b]52" in out and not RAW_CONTROL.search(out + err), repr(out)


def test_safe_text_shows_every_control_character_and_is_idempotent():
    dirty = "a\x00b\x1b[31mc\x7fd\x9be\u202ef\u2066g\ud800h\ni\tj"
    clean = safe_text(dirty)
    assert not RAW_CONTROL.search(clean) and "\ud800" not in clean and "\u202e" not in clean
    assert clean == "a\\x00b\\x1b[31mc\\x7fd\\x9be\\u202ef\\u2066g\\ud800h\\x0ai\\x09j"
    assert safe_text(clean) == clean
    assert safe_text("a\nb\tc", newlines=True) == "a\nb\tc"
    clean.encode("utf-8")  # a lone surrogate can be written anywhere once escaped


# -- 18.3: markdown report injection -----------------------------------------------------------


def _outside_code(md: str) -> list[str]:
    """The lines of a markdown text that are not inside a fenced code block (CommonMark)."""
    out, fence = [], ""
    for line in md.splitlines():
        stripped = line.strip()
        if fence:
            if stripped.startswith(fence) and set(stripped) == {"`"}:
                fence = ""
            continue
        opening = re.match(r"(`{3,})", stripped)
        if opening:
            fence = opening.group(1)
            continue
        out.append(line)
    return out


def test_a_label_or_command_cannot_break_out_of_the_markdown_report(document, tmp_path, capsys):
    doc = copy.deepcopy(document)
    doc["run"]["label"] = "x\n```\n<img src=http://127.0.0.1:8999/l.png>"
    doc["run"]["reproduce"] = "python -m engine bench\n````\n<script>alert(1)</script>\n```"
    doc["run"]["environment"]["gpu"] = "![p](http://127.0.0.1:8999/t.png) <b>GPU</b>"
    doc["rows"][0]["provider"] = "<img src=x onerror=alert(2)> | [a](http://x)"
    db = str(tmp_path / "r.sqlite")
    assert run_main(capsys, "import", str(write(tmp_path / "d.json", doc)), "--db", db)[0] == 0
    out = tmp_path / "r.md"
    assert run_main(capsys, "report", "--db", db, "--out", str(out), "--no-diagnostics")[0] == 0
    md = out.read_text()
    prose = "\n".join(_outside_code(md))
    # Every "<" and "[" outside code is escaped, except the report's own <sub> footer.
    assert not re.search(r"(?<!\\)<(?!/?sub>)", prose), prose
    assert not re.search(r"(?<!\\)\[", prose), prose
    assert "<script>" not in prose and "![p](" not in prose
    # The command sits whole in one fence that its backticks cannot close.
    block = re.search(r"^(`{3,})\n(.*)\n\1$", md, re.M)
    assert block and "<script>alert(1)</script>" in block.group(2)
    assert len(block.group(1)) > 4 and "\n" not in block.group(2)


def test_markdown_text_escapes_what_markdown_acts_on():
    assert markdown_text("![p](http://h/t.png)") == "!\\[p\\](http\u2060\\://h/t.png)"
    assert markdown_text("<img src=x>") == "\\<img src=x\\>"
    assert markdown_text("- item") == "\\- item" and markdown_text("1. item") == "1\\. item"
    assert markdown_text("resnet18 1.5 ms") == "resnet18 1.5 ms"
    assert markdown_text("a\n# b") == "a\\\\x0a\\# b"


# -- 18.8 and 18.10: one validator for every field ---------------------------------------------


def _attacks(doc: dict) -> dict[str, tuple[str, str]]:
    """name → (document text, what the one error line must say)."""

    def alter(change) -> str:
        d = copy.deepcopy(doc)
        change(d)
        return json.dumps(d)

    def row(key, value):
        return alter(lambda d: d["rows"][0].__setitem__(key, value))

    def run(key, value):
        return alter(lambda d: d["run"].__setitem__(key, value))

    def env(key, value):
        return alter(lambda d: d["run"]["environment"].__setitem__(key, value))

    nested: dict = {}
    for _ in range(900):
        nested = {"a": nested}
    deep_env = env("x", nested)
    arrays = json.dumps(doc).replace('"environment": {', '"environment": {"x": ' + "[" * 200_000 + "]" * 200_000 + ", ", 1)  # fmt: skip
    return {
        "device as a number": (row("device", 0), "row 0 has device"),
        "provider as a number": (row("provider", 7), "row 0 has provider"),
        "backend as a list": (row("backend", ["torch"]), "has backend an array, not a string"),
        "label as an object": (run("label", {"a": 1}), "its run has label"),
        "created_at not a date": (run("created_at", "not-a-date"), "not an ISO date"),
        "row created_at not a date": (row("created_at", "yesterday"), "not an ISO date"),
        "nested options": (
            row("options", {"a": {"b": 1}}),
            "has options.a an object, not a single value",
        ),
        "environment 900 deep": (deep_env, "levels deep"),
        "200k nested arrays": (arrays, "nested too deeply"),
        "batch 10^30": (row("batch", 10**30), "outside 1..4096"),
        "batch 0": (row("batch", 0), "outside 1..4096"),
        "p50 10^400": (
            row("p50_ms", 1).replace('"p50_ms": 1,', '"p50_ms": 1e400,', 1),
            "not a finite number",
        ),  # fmt: skip
        "p50 NaN": (row("p50_ms", float("nan")), "not a finite number"),
        "negative latency": (row("p90_ms", -1.0), "outside"),
        "parity as text": (row("parity_ok", "yes"), "not true or false"),
        "gpu as a list": (env("gpu", ["a", "b"]), "environment has gpu"),
        "huge string": (run("label", "x" * 30_000), "characters"),
    }


ATTACKS = list(_attacks({"run": {"environment": {}}, "rows": [{}]}))


@pytest.mark.parametrize("attack", ATTACKS)
def test_a_bad_document_is_refused_in_one_line_and_nothing_breaks(document, tmp_path, capsys,
                                                                  attack):  # fmt: skip
    text, expected = _attacks(document)[attack]
    db = tmp_path / "mine.sqlite"
    Store(db).close()  # an existing store: history refuses a missing one (it never creates it)
    code, _, err = run_main(capsys, "import", str(write(tmp_path / "bad.json", text)),
                            "--db", str(db))  # fmt: skip
    assert_one_error(code, err, expected)
    assert n_runs(db) == 0
    # The commands that crashed on such a run before still work.
    for argv in (["history"], ["history", "--since", "2026-01-01"]):
        assert run_main(capsys, *argv, "--db", str(db))[0] == 0


def test_a_lone_surrogate_is_stored_as_a_visible_escape(document, tmp_path, capsys):
    text = json.dumps(document).replace('"label": "', '"label": "\\ud800', 1)
    db = str(tmp_path / "s.sqlite")
    code, _, err = run_main(capsys, "import", str(write(tmp_path / "s.json", text)), "--db", db)
    assert code == 0, err
    code, out, err = run_main(capsys, "history", "--db", db)
    assert code == 0 and "\\ud800" in out, err
    md = tmp_path / "s.md"
    assert run_main(capsys, "report", "--db", db, "--out", str(md), "--no-diagnostics")[0] == 0
    md.read_text(encoding="utf-8")


def test_a_multi_file_import_stores_nothing_when_one_file_is_bad(document, tmp_path, capsys):
    good = write(tmp_path / "good.json", document)
    bad_doc = copy.deepcopy(document)
    bad_doc["rows"][0]["provider"] = ["CPU"]
    bad = write(tmp_path / "bad.json", bad_doc)
    db = tmp_path / "two.sqlite"
    code, _, err = run_main(capsys, "import", str(good), str(bad), "--db", str(db))
    assert_one_error(code, err, "bad.json")
    assert n_runs(db) == 0
    assert run_main(capsys, "import", str(good), "--db", str(db))[0] == 0 and n_runs(db) == 1


# -- 18.11: files that never end -------------------------------------------------------------


def test_import_refuses_dev_zero_and_fifos_without_reading_them(tmp_path):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)  # no writer: opening it for reading blocks forever
    for path, expected in ((Path("/dev/zero"), "zero is not a regular file"),
                           (fifo, "pipe.json is not a regular file"),
                           (tmp_path, "is not a regular file")):  # fmt: skip
        proc = run_cli("import", str(path), "--db", str(tmp_path / "z.sqlite"), timeout=120)
        assert_one_error(proc.returncode, proc.stderr, expected)
    assert not (tmp_path / "z.sqlite").exists()


def test_reading_is_capped_whatever_the_file_claims(monkeypatch):
    """/proc files say they are empty (size 0) and are not: the cap counts bytes read."""
    from engine.core.errors import BadInput
    from engine.storage import documents

    maps = Path("/proc/self/maps")
    assert maps.stat().st_size == 0 and len(maps.read_bytes()) > 1000
    monkeypatch.setattr(documents, "MAX_IMPORT_BYTES", 1000)
    with pytest.raises(BadInput, match="not imported"):
        documents.read_document_file(maps)


# -- issue 25: de-duplication compares the rows ------------------------------------------------


def test_a_different_document_sharing_time_config_and_machine_is_imported(document, tmp_path):
    from engine.core.config import ResultRow
    from engine.storage import documents

    store = Store(tmp_path / "local.sqlite")
    run = document["run"]
    local = store.create_run(
        run["configuration"], run["environment"], label=run["label"], created_at=run["created_at"]
    )
    for r in document["rows"]:
        store.add_row(local, ResultRow.from_dict(r))
    store.finish_run(local)
    again = store.document(local)
    assert documents.import_document(store, again) == (local, False)  # its own export: a copy

    relabelled = copy.deepcopy(again)
    relabelled["run"]["label"] = "another label"
    more_rows = copy.deepcopy(again)
    more_rows["rows"].append(copy.deepcopy(more_rows["rows"][-1]))
    slower = copy.deepcopy(again)
    for r in slower["rows"]:
        for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms"):
            if isinstance(r.get(k), float):
                r[k] *= 10
    created = [documents.import_document(store, d) for d in (relabelled, more_rows, slower)]
    assert [c for _, c in created] == [True, True, True], created
    assert len({i for i, _ in created} | {local}) == 4
    assert [documents.import_document(store, d)[1] for d in (relabelled, slower)] == [False] * 2
    store.close()


def test_a_refused_import_shows_the_files_newline_escaped_once(document, tmp_path, capsys):
    """A newline inside the file is shown as ``\\x0a`` (its bytes, escaped), never doubled
    into ``\\\\x0a``; the parser's own text is ours, worded in plain words."""
    doc = copy.deepcopy(document)
    doc["run"]["created_at"] = "2026-12-07\nnot a date"
    db = str(tmp_path / "mine.sqlite")
    code, _, err = run_main(capsys, "import", str(write(tmp_path / "d.json", doc)), "--db", db)
    assert_one_error(code, err, "its run has created_at '2026-12-07\\x0anot a date', not an ISO")
    assert "\\\\" not in err, err
    broken = '{"schema": 1,\n "run": {"label": "a\nb"}}'
    code, _, err = run_main(capsys, "import", str(write(tmp_path / "b.json", broken)), "--db", db)
    assert_one_error(code, err, "b.json is not valid JSON: a raw control character inside a"
                                " string at line 2, column 21")  # fmt: skip
