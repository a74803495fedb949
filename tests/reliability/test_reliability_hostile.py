"""One list of hostile strings through every surface a file's text reaches (issue 26).

Each string is put where an attacker can put it: stored in a results database as run and
row fields (bypassing the import's own cleaning, as a database from another tool or an
older version would be), written by the sweep worker's child on its stderr (ONNX
Runtime's own log line naming an initializer of the model file), or handed to the
sanitiser of a surface. Each output is then checked for what that surface acts on: raw
control and bidi characters on a terminal, markup and autolinks on a page, formula
prefixes in a CSV cell, tags in the HTML report. The History page is checked in a real
Chromium in tests/pages/test_browser_history.py.
"""

from __future__ import annotations

import csv
import io
import re
import sys
from pathlib import Path

import numpy as np

from engine.cli import main as cli
from engine.core.config import BenchSettings, ModelSpec, ResultRow, RunnerSpec, SweepConfig
from engine.core.text import csv_cell, markdown_text, safe_stdio, safe_text, write_terminal
from engine.reporting.report import html_report, markdown_report
from engine.storage.history import rows_csv
from engine.storage.store import Store

HOSTILE = [
    "![p](http://127.0.0.1:9/p.png)",
    "[x](javascript:alert(1))",
    "<img src=http://127.0.0.1:9/i.png onerror=alert(1)>",
    "<script>alert(1)</script><iframe src=//127.0.0.1:9>",
    "http://127.0.0.1:9/bare www.example.com a@example.com HTTPS://x.example",
    "\x1b]52;c;ZXZpbA==\x07",  # OSC 52: writes the reader's clipboard
    "\x1b[2J\x1b[H",  # CSI: clears the screen
    "\x9b31m\x9d0;title\x9c",  # the same as C1 controls
    "\u202egnp.exe\u2066x\u2069",  # bidi override and isolate
    '=HYPERLINK("http://127.0.0.1:9","x")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)",
    "\t=1",
    "\r=1",
]
# What a terminal acts on (line feeds and tabs are text there).
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _store(path: Path) -> Store:
    """Two runs whose every text field is hostile, written straight into the database."""
    store = Store(path)
    for run in range(2):
        env = {"gpu": HOSTILE[run], "host": HOSTILE[-1 - run], "torch": HOSTILE[5]}
        config = {"model": {"name": HOSTILE[4], "image_size": 64}}
        rid = store.create_run(config, env, command=" ".join(HOSTILE), label=HOSTILE[run + 2])
        for i, h in enumerate(HOSTILE):
            ok = i % 3 != 2
            row = ResultRow(
                model=h,
                backend=f"b{i}{h}",
                device="cpu",
                precision=h,
                batch=1 + run,
                provider=h,
                status="ok" if ok else "failed",
                reason="" if ok else h,
                p50_ms=1.0 + i,
                p90_ms=2.0 + i,
                throughput_ips=10.0,
                parity_ok=False if ok else None,
                parity_reason=h,
            )
            store.add_row(rid, row)
        store.finish_run(rid, "done", HOSTILE[6])
    return store


def _page_ok(text: str) -> None:
    """Markdown that renders as its characters: no markup, and nothing GFM would link."""
    assert not re.search(r"(?<!\\)[\[\]<>`*_]", text), repr(text)
    resolved = re.sub(r"\\(.)", r"\1", text)  # what the renderer sees after the escapes
    assert not re.search(r"(?i)(https?|ftps?|mailto|xmpp):|www\.|@\w", resolved), repr(text)
    assert not RAW.search(text.replace("\n", "").replace("\t", "")), repr(text)


def _csv_ok(text: str) -> None:
    cells = [c for line in csv.reader(io.StringIO(text)) for c in line]
    assert cells
    bad = [c for c in cells if c[:1] in FORMULA and not re.fullmatch(r"-?[\d.e+-]+|-", c)]
    assert not bad, bad


def test_every_surface_neutralises_the_same_hostile_strings(tmp_path, capsys):
    db = tmp_path / "hostile.sqlite"
    store = _store(db)
    # page text and CSV cells, string by string
    for h in HOSTILE:
        _page_ok(markdown_text(h))
        assert str(csv_cell(h))[:1] not in FORMULA, repr(h)
        assert not RAW.search(safe_text(h)) and not RAW.search(safe_text(h, newlines=True))
    # terminal: what any command prints, stdout and stderr, and another process's bytes
    with safe_stdio():
        for h in HOSTILE:
            print(h)
            print(f"error: {h}", file=sys.stderr)
            write_terminal(sys.stderr, h.encode())
    for argv in (
        ["history"],
        ["history", "--compare", "1", "2"],
        ["report", "--out", str(tmp_path / "r.md"), "--no-diagnostics"],
    ):
        code = cli.main([*argv, "--db", str(db)])
        out = capsys.readouterr()
        assert code == 0, out.err
        assert not RAW.search(out.out + out.err), repr(out.out + out.err)
    # CSV: History's download and Store.export_csv
    _csv_ok(rows_csv(store, [1, 2]))
    store.export_csv(None, tmp_path / "rows.csv")
    _csv_ok((tmp_path / "rows.csv").read_text())
    # the HTML report: no tag of a run's text, no control outside plotly's own script
    page = html_report(store, [1, 2], diagnostics=False)
    assert "<script>alert" not in page.lower()
    text = re.sub(r"<script\b.*?</script>", "", page, flags=re.S)
    for tag in ("<img", "<iframe", "<a "):
        assert tag not in text.lower(), tag
    assert not RAW.search(text.replace("\n", "").replace("\t", "")), RAW.findall(text)[:5]
    # the markdown report: prose escaped and unlinked, the command in a fence of its own
    md = markdown_report(store, [1, 2], diagnostics=False)
    assert not RAW.search(md.replace("\n", "").replace("\t", "")), repr(md)
    prose = re.sub(r"^(`{3,})\n.*?\n\1$", "", md, flags=re.M | re.S)
    assert not re.search(r"(?<!\\)(\[|<(?!/?sub>))", prose), prose
    store.close()


def _onnx_with_hostile_names(path: Path) -> Path:
    """A tiny image classifier whose last node, named with escapes, fails at run time.

    ONNX Runtime logs the failure on stderr itself, naming the node; the same text comes
    back in its exception, so it reaches the ``failed`` row too.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 3, 32, 32])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 4])
    w = numpy_helper.from_array(np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4), "w")
    shape = numpy_helper.from_array(np.array([-1, 5], np.int64), "shape")  # 4 logits, not 5
    nodes = [
        helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w"], ["mm"]),
        helper.make_node("Reshape", ["mm", "shape"], ["logits"], name=HOSTILE[5] + HOSTILE[6]),
    ]
    graph = helper.make_graph(nodes, "hostile", [x], [y], [w, shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.save(model, path)
    return path


def test_onnx_runtime_log_lines_of_the_worker_child_are_sanitised(tmp_path, capsys):
    """The child's stderr comes through a pipe and the terminal sanitiser (issue 26.3)."""
    from engine.running.worker import run_sweep_in_worker

    onnx_path = _onnx_with_hostile_names(tmp_path / "hostile.onnx")
    spec = ModelSpec(name="hostile", image_size=32, onnx_path=str(onnx_path))
    bench = BenchSettings(warmup=1, iters=2, max_time_s=5.0, min_iters=1)
    config = SweepConfig(spec, [RunnerSpec("ort")], [1], bench, parity=False)
    outcome = run_sweep_in_worker(config, str(tmp_path / "r.sqlite"))
    err = capsys.readouterr().err
    assert [r.status for r in outcome.rows] == ["failed"], outcome.errors
    assert "Non-zero status code" in err  # ONNX Runtime's own line is shown ...
    assert "\\x1b]52;c;ZXZpbA==\\x07" in err  # ... with its escapes visible
    assert not RAW.search(err.replace("\n", "").replace("\t", "")), repr(err)


def test_onnx_runtime_log_lines_of_an_in_process_run_are_sanitised(tmp_path):
    """``bench --inline``: ONNX Runtime writes its log line to file descriptor 2 from C++,
    past Python's sys.stderr; the CLI routes that descriptor through the sanitiser too."""
    import subprocess

    onnx_path = _onnx_with_hostile_names(tmp_path / "hostile.onnx")
    argv = ["--onnx", str(onnx_path), "--backend", "ort", "--batch", "1", "--iters", "2"]
    argv += ["--warmup", "1", "--no-parity", "--inline", "--db", str(tmp_path / "r.sqlite")]
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run(
        [sys.executable, "-m", "engine", "bench", *argv],
        capture_output=True,
        cwd=root,
        timeout=300,
    )
    err = run.stderr.decode("utf-8", "replace")
    assert "Non-zero status code" in err, err  # ONNX Runtime's own line is shown ...
    assert "\\x1b]52;c;ZXZpbA==\\x07" in err  # ... with its escapes visible
    assert not RAW.search(err.replace("\n", "").replace("\t", "")), repr(err)


def test_a_long_lived_process_s_native_stderr_is_sanitised_for_good():
    """The dashboard's server: what C++ code writes to descriptor 2 after the call (an ONNX
    Runtime log line naming a hostile node) reaches the terminal sanitised."""
    import subprocess

    code = (
        "import os, sys\n"
        "from engine.core.text import sanitise_stderr_for_good\n"
        "assert sanitise_stderr_for_good() and sanitise_stderr_for_good()\n"
        "os.write(2, b'node \\x1b]52;c;ZXZpbA==\\x07 failed\\n')\n"
        "print('python \\x1b[2J too', file=sys.stderr, flush=True)\n"
    )
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=root, timeout=60)
    err = run.stderr.decode()
    assert run.returncode == 0, err
    assert "node \\x1b]52;c;ZXZpbA==\\x07 failed" in err and "python \\x1b[2J too" in err
    assert not RAW.search(err.replace("\n", "")), repr(err)


# -- typed reading: one bad stored run never hides the others (issue 26.5, 26.6) -----------


def test_a_damaged_run_is_shown_as_damaged_and_the_others_still_work(tmp_path, capsys):
    import json
    import sqlite3

    db = tmp_path / "damaged.sqlite"
    _store(db).close()
    store = Store(db)
    busy = {"busy_check": {"gpu_others": 5, "cpu_other_share": "most"}}
    good = store.create_run({"model": {"name": "m"}}, {"gpu": "g", **busy}, label="good")
    store.add_row(good, ResultRow("m", "torch", "cpu", "fp32", 1, "CPU", p50_ms=1.0))
    state = {"sm_clock_mhz_min": 1, "power_w_max": "lots", "busy_check": {"gpu_others": 5}}
    store.add_row(good, ResultRow("m", "ort", "cpu", "fp32", 1, "CPU", p50_ms=1.0,
                                  machine_state=state))  # fmt: skip
    store.close()
    con = sqlite3.connect(db)
    with con:
        con.execute("UPDATE runs SET config_json = ? WHERE id = 1", (json.dumps([1, 2]),))
        con.execute("UPDATE runs SET env_json = ?, created_at = ? WHERE id = 2",
                    (json.dumps("text"), "yesterday"))  # fmt: skip
    con.close()
    for argv in (
        ["history"],
        ["history", "--since", "2000-01-01"],
        ["history", "--compare", "1", "3"],
        ["history", "--compare", "2", "3"],
        ["report", "--run", "1,2,3", "--out", str(tmp_path / "r.html"), "--no-diagnostics"],
        ["report", "--run", "3", "--out", str(tmp_path / "r.md"), "--no-diagnostics"],
    ):
        code = cli.main([*argv, "--db", str(db)])
        out = capsys.readouterr()
        assert code == 0, (argv, out.err)
        assert "Traceback" not in out.err
        if argv == ["history"]:
            lines = out.out.splitlines()
            assert "run 1 is damaged: its configuration is not a JSON object" in lines
            assert any("run 2 is damaged: its environment is not a JSON object; its "
                       "created_at is not an ISO date" in x for x in lines)  # fmt: skip
        if "--since" in argv:
            assert "good" in out.out
