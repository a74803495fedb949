"""A whole session on one store: the dashboard open while the CLI sweeps, imports, reports.

Two dashboard sessions (Streamlit's AppTest of ``dashboard.py`` in this process, as one
server holds them: its tabs are threads sharing one connection per store) move between
the Benchmark and History pages while real ``python -m engine`` processes run beside
them on the same store: 4 sweeps (two at a time; the default worker launcher, so each
sweep is a parent and a child process holding connections), 2 imports of a ``bench
--json`` document, 2 HTML reports, and 10 page reruns in between (plus the final
ones). The issue's full session (two servers with two tabs each, 10 sweeps, 5 imports,
5 reports, 20 reruns) is scaled down to keep this under about 90 s on 2 loaded cores.

At the end every session's History page lists every run the CLI's ``history`` lists,
nothing said "damaged", every process exited 0, and no process holds a deleted store
file (a WAL or -shm removed under a connection means its locks were lost).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("streamlit", reason="the dashboard pages need Streamlit")

from streamlit.testing.v1 import AppTest  # noqa: E402

from engine.storage.shared import close_shared  # noqa: E402
from tests.conftest import ROOT, run_cli  # noqa: E402

APP = str(ROOT / "dashboard.py")
HISTORY, BENCHMARK = "pages/history.py", "pages/benchmark.py"
TINY = ("--model", "resnet18", "--image-size", "32", "--batch", "1", "--backend", "ort")
FAST = ("--device", "cpu", "--precision", "fp32", "--iters", "2", "--warmup", "0", "--quiet")


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "engine", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(procs: list[subprocess.Popen], said: list[str]) -> None:
    for p in procs:
        out, err = p.communicate(timeout=600)
        said.append(out + err)
        assert p.returncode == 0, f"{p.args}: exit {p.returncode}\n{err}"


def deleted_store_files(db: Path) -> list[str]:
    """Every descriptor, in any process we may read, on a deleted file of this store."""
    gone = []
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            fds = list(fd_dir.iterdir())
        except OSError:
            continue  # another user's process, or one that just ended
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith(str(db)) and target.endswith("(deleted)"):
                gone.append(f"{fd}: {target}")
    return gone


def page_text(at: AppTest) -> str:
    parts = [e.value for e in at.subheader] + [e.value for e in at.error]
    parts += [e.value for e in at.warning] + [str(e.value) for e in at.exception]
    return "\n".join(str(p) for p in parts)


def rerun(at: AppTest, page: str, said: list[str]) -> AppTest:
    at.switch_page(page).run()
    said.append(page_text(at))
    assert not at.exception, page_text(at)
    return at


def runs_shown(at: AppTest) -> str:
    return next(str(h.value) for h in at.subheader if str(h.value).startswith("Runs ("))


def imported_copy(document: Path, label: str) -> Path:
    """Another document: the same sweep under another label (de-duplication compares labels)."""
    doc = json.loads(document.read_text())
    doc["run"]["label"] = label
    out = document.with_name(f"{label}.json")
    out.write_text(json.dumps(doc))
    return out


def test_a_whole_session_on_one_store(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("VISIONBENCH_DATA", str(data))  # the dashboard's store and the CLI's
    monkeypatch.chdir(ROOT)
    db = data / "results.sqlite"
    said: list[str] = []
    tabs = [AppTest.from_file(APP, default_timeout=300) for _ in range(2)]
    for at in tabs:
        at.run()
        rerun(at, HISTORY, said)
    document = tmp_path / "doc.json"

    # Two sweeps at once, one writing a document; the tabs rerun meanwhile.
    sweeps = [start("bench", *TINY, *FAST, "--db", str(db), "--json", str(document))]
    sweeps.append(start("bench", *TINY, *FAST, "--db", str(db)))
    for at, page in zip(tabs * 2, [HISTORY, BENCHMARK, BENCHMARK, HISTORY], strict=True):
        rerun(at, page, said)
    finish(sweeps, said)

    # Two more sweeps, an import and a report beside them.
    others = [start("bench", *TINY, *FAST, "--db", str(db)) for _ in range(2)]
    others.append(start("import", "--db", str(db), str(imported_copy(document, "first"))))
    others.append(start("report", "--db", str(db), "--out", str(tmp_path / "r1.html")))
    for at, page in zip(tabs * 2, [HISTORY, HISTORY, BENCHMARK, HISTORY], strict=True):
        rerun(at, page, said)
    assert deleted_store_files(db) == []  # while the sweeps hold their connections
    finish(others, said)

    # The last import and report while the tabs read.
    last = [start("import", "--db", str(db), str(imported_copy(document, "second")))]
    last.append(start("report", "--db", str(db), "--out", str(tmp_path / "r2.html")))
    for at in tabs:
        rerun(at, HISTORY, said)
    finish(last, said)

    listed = run_cli("history", "--db", str(db), "--json", "--no-reference")
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    assert len(runs) == 6 and {r["status"] for r in runs} == {"done"}, runs
    for at in tabs:
        rerun(at, HISTORY, said)
        assert runs_shown(at) == "Runs (6 stored)", page_text(at)
    assert all((tmp_path / f"r{i}.html").stat().st_size > 0 for i in (1, 2))
    assert not [s for s in said if "damaged" in s.lower()], said
    assert deleted_store_files(db) == []
    close_shared()  # the dashboard's connections, as at its exit
    assert deleted_store_files(db) == []
