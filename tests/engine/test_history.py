"""History: import (with deduplication and rejection), store migration, filters, comparison.

The runs are real sweeps of resnet18 at 64×64 (random weights) through torch and ONNX
Runtime on the CPU; the "other machine" document is a real exported run whose
environment fingerprint is rewritten to another machine's, which is data, not a mock.
"""

from __future__ import annotations

import copy
import json
import sqlite3
from pathlib import Path

import pytest

from engine.cli import main as cli
from engine.core.config import BenchSettings, ResultRow, RunnerSpec, SweepConfig
from engine.core.errors import BadInput, EngineError
from engine.running.sweep import run_sweep
from engine.storage import history
from engine.storage.store import JSON_SCHEMA, SCHEMA_VERSION, Store

ROOT = Path(__file__).resolve().parents[2]
H100_ENV = {
    "cpu": "Intel(R) Xeon(R) Platinum 8480+",
    "cpu_count": 52,
    "gpu": "NVIDIA H100 80GB HBM3",
    "torch": "2.9.0+cu128",
}


def tiny_sweep(store: Store, artifacts, backends=("torch", "ort"), batches=(1, 2)) -> int:
    config = SweepConfig(
        model=artifacts.spec,
        runners=[RunnerSpec(b) for b in backends],
        batches=list(batches),
        bench=BenchSettings(warmup=1, iters=3, min_iters=1, max_time_s=5.0),
    )
    outcome = run_sweep(config, store=store, artifacts=artifacts)
    assert outcome.measured, [r.reason for r in outcome.rows]
    return int(outcome.run_id)


def other_machine(doc: dict) -> dict:
    """The same document as if it had been measured on an H100 host a few days earlier."""
    doc = copy.deepcopy(doc)
    doc["run"]["environment"].update(H100_ENV)
    doc["run"]["created_at"] = "2026-11-01T09:00:00+00:00"
    doc["run"]["id"] = 77
    return doc


@pytest.fixture(scope="module")
def measured(tmp_path_factory, small_artifacts):
    """A store with two real sweeps and the document of the first from 'another machine'."""
    folder = tmp_path_factory.mktemp("history")
    store = Store(folder / "measured.sqlite")
    first = tiny_sweep(store, small_artifacts, ("torch", "ort"))
    second = tiny_sweep(store, small_artifacts, ("torch",))
    other = other_machine(store.document(first))
    path = folder / "h100.json"
    path.write_text(json.dumps(other))
    return {"store": store, "first": first, "second": second, "doc": other, "path": path}


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def count_runs(db: Path) -> int:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    finally:
        con.close()


# -- import --------------------------------------------------------------------------------


def test_import_keeps_fingerprint_and_rows(measured, tmp_path):
    store = Store(tmp_path / "mine.sqlite")
    run_id, created = history.import_document(store, measured["doc"], "h100.json")
    assert created
    run = store.run(run_id)
    assert run["source"] == "import"
    assert run["environment"] == measured["doc"]["run"]["environment"]
    assert run["created_at"] == measured["doc"]["run"]["created_at"]
    assert run["machine"] == H100_ENV["gpu"]
    assert [r.to_dict() for r in store.rows(run_id)] == measured["doc"]["rows"]
    found = history.filter_runs(history.list_runs(store), machine="h100")
    assert [r.id for r in found] == [run_id]


def test_import_twice_does_not_duplicate(measured, tmp_path, capsys):
    db = tmp_path / "mine.sqlite"
    code, out, _ = run_main(capsys, "import", str(measured["path"]), "--db", str(db))
    assert code == 0 and "imported h100.json as run 1" in out
    code, out, _ = run_main(capsys, "import", str(measured["path"]), "--db", str(db))
    assert code == 0 and "already run 1" in out
    store = Store(db)
    assert count_runs(db) == 1
    assert len(store.rows(1)) == len(measured["doc"]["rows"])
    # Exported again from this store (new id, source "import"), it is still the same run.
    again = store.document(1)
    assert again["run"]["source"] == "import"
    assert history.import_document(store, again, "again.json") == (1, False)


def test_reimport_into_the_store_that_measured_it(measured):
    store = measured["store"]
    before = count_runs(store.path)
    doc = store.document(measured["first"])
    assert history.import_document(store, doc) == (measured["first"], False)
    assert count_runs(store.path) == before


def _bad_documents(doc: dict) -> dict[str, tuple[bytes, str]]:
    def dump(d) -> bytes:
        return json.dumps(d).encode()

    no_env = copy.deepcopy(doc)
    del no_env["run"]["environment"]
    no_batch = copy.deepcopy(doc)
    del no_batch["rows"][0]["batch"]
    text_batch = copy.deepcopy(doc)
    text_batch["rows"][0]["batch"] = "8"
    nan_latency = copy.deepcopy(doc)
    nan_latency["rows"][0]["p50_ms"] = float("nan")
    newer = dict(doc, schema=JSON_SCHEMA + 1)
    return {
        "malformed": (dump(doc)[:-20], "not valid JSON"),
        "list": (dump([doc]), "not a bench JSON document"),
        "no schema": (dump({k: v for k, v in doc.items() if k != "schema"}), "no schema"),
        "no environment": (dump(no_env), "no environment"),
        "row without batch": (dump(no_batch), "row 0 has no batch"),
        "batch as text": (dump(text_batch), "not a positive whole number"),
        "NaN latency": (dump(nan_latency), "p50_ms nan, not a finite number"),
        "newer schema": (dump(newer), f"reads schema {JSON_SCHEMA} and older"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "malformed",
        "list",
        "no schema",
        "no environment",
        "row without batch",
        "batch as text",
        "NaN latency",
        "newer schema",
    ],
)
def test_import_rejects_bad_documents(measured, tmp_path, capsys, case):
    data, expected = _bad_documents(measured["doc"])[case]
    path = tmp_path / "bad.json"
    path.write_bytes(data)
    db = tmp_path / "mine.sqlite"
    code, out, err = run_main(capsys, "import", str(path), "--db", str(db))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0]
    assert not db.exists() or count_runs(db) == 0


def test_import_checks_size_before_reading(tmp_path, capsys):
    path = tmp_path / "huge.json"
    with open(path, "wb") as f:  # sparse: nothing is written, nothing needs reading
        f.truncate(history.MAX_IMPORT_BYTES + 1)
    code, _, err = run_main(capsys, "import", str(path), "--db", str(tmp_path / "x.sqlite"))
    assert code == 2
    assert "not imported" in err and f"larger than {history.MAX_IMPORT_BYTES // 2**20} MB" in err


def test_import_is_all_or_nothing_across_files(measured, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    db = tmp_path / "mine.sqlite"
    code, _, err = run_main(capsys, "import", str(measured["path"]), str(bad), "--db", str(db))
    assert code == 2 and "bad.json" in err
    assert not db.exists() or count_runs(db) == 0


def test_committed_benchmark_documents_import(tmp_path):
    docs = sorted((ROOT / "benchmarks").glob("**/*.json"))
    if not docs:
        pytest.skip("no bench documents are committed under benchmarks/ yet")
    store = Store(tmp_path / "mine.sqlite")
    for path in docs:
        doc = json.loads(path.read_text())
        if not (isinstance(doc, dict) and {"schema", "run", "rows"} <= doc.keys()):
            continue  # other files (summaries, notes) can live there too
        run_id, created = history.import_file(store, path)
        assert created and store.run(run_id)["source"] == "import"
        assert len(store.rows(run_id)) == len(doc["rows"])


# -- store migration -----------------------------------------------------------------------

# The schema exactly as version 1 of the tool wrote it (never change this text).
V1_DDL = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    created_at TEXT NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'running',
    source TEXT NOT NULL DEFAULT 'local',
    source_key TEXT UNIQUE,
    config_json TEXT NOT NULL,
    env_json TEXT NOT NULL,
    command TEXT NOT NULL DEFAULT ''
);
CREATE TABLE rows (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    model TEXT, backend TEXT, device TEXT, precision TEXT, batch INTEGER,
    provider TEXT, status TEXT,
    p50_ms REAL, throughput_ips REAL,
    data_json TEXT NOT NULL
);
CREATE INDEX rows_run ON rows(run_id);
PRAGMA user_version=1;
"""


def write_v1_store(path: Path, doc: dict, partially_migrated: bool = False) -> None:
    con = sqlite3.connect(path)
    con.executescript(V1_DDL)
    run = doc["run"]
    con.execute(
        "INSERT INTO runs (created_at, label, model, status, source, config_json, env_json,"
        " command) VALUES (?,?,?,?,?,?,?,?)",
        (
            run["created_at"],
            run["label"],
            run["configuration"]["model"]["name"],
            "done",
            "local",
            json.dumps(run["configuration"]),
            json.dumps(run["environment"]),
            run["reproduce"],
        ),
    )
    for r in doc["rows"]:
        con.execute(
            "INSERT INTO rows (run_id, created_at, model, backend, device, precision, batch,"
            " provider, status, p50_ms, throughput_ips, data_json)"
            " VALUES (1,?,?,?,?,?,?,?,?,?,?,?)",
            (
                r["created_at"],
                r["model"],
                r["backend"],
                r["device"],
                r["precision"],
                r["batch"],
                r["provider"],
                r["status"],
                r["p50_ms"],
                r["throughput_ips"],
                json.dumps(r),
            ),
        )
    if partially_migrated:  # a newer tool died after ALTER TABLE, before user_version moved on
        con.execute("ALTER TABLE runs ADD COLUMN machine TEXT NOT NULL DEFAULT ''")
    con.commit()
    con.close()


@pytest.mark.parametrize("partially_migrated", [False, True])
def test_v1_store_opens_and_migrates(measured, tmp_path, partially_migrated):
    db = tmp_path / "old.sqlite"
    write_v1_store(db, measured["doc"], partially_migrated)
    store = Store(db)
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    run = store.run(1)
    assert run["machine"] == H100_ENV["gpu"]  # filled from the stored fingerprint
    assert [r.to_dict() for r in store.rows(1)] == measured["doc"]["rows"]
    assert [r.id for r in history.filter_runs(history.list_runs(store), machine="H100")] == [1]
    # The migrated store keeps working: a new run and an import land next to the old one.
    new_id = store.create_run({"model": {"name": "resnet18"}}, {"cpu": "Some CPU"})
    store.add_row(new_id, ResultRow("resnet18", "torch", "cpu", "fp32", 1, p50_ms=1.0))
    assert store.run(new_id)["machine"] == "Some CPU"
    assert history.import_document(store, measured["doc"]) == (1, False)
    store.close()
    assert Store(db).db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_store_from_a_newer_tool_is_refused(tmp_path):
    db = tmp_path / "future.sqlite"
    con = sqlite3.connect(db)
    con.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    con.close()
    with pytest.raises(EngineError, match="upgrade the tool"):
        Store(db)


# -- listing, filtering, comparing ---------------------------------------------------------


@pytest.fixture(scope="module")
def with_import(measured, tmp_path_factory):
    """A copy of the measured store with the other machine's document imported."""
    db = tmp_path_factory.mktemp("with_import") / "all.sqlite"
    src = measured["store"]
    store = Store(db)
    for run_id in (measured["first"], measured["second"]):
        doc = src.document(run_id)
        new_id = store.create_run(
            doc["run"]["configuration"],
            doc["run"]["environment"],
            doc["run"]["reproduce"],
            label=doc["run"]["label"],
            created_at=doc["run"]["created_at"],
        )
        for r in src.rows(run_id):
            store.add_row(new_id, r)
        store.finish_run(new_id)
    imported, _ = history.import_document(store, measured["doc"])
    return store, imported


def test_list_shows_every_run_and_the_quoted_reference(with_import):
    store, imported = with_import
    runs = history.list_runs(store)
    assert runs[0].id == history.REFERENCE_ID and runs[0].quoted
    assert "not measured here" in runs[0].label
    stored = [r for r in runs if not r.quoted]
    assert sorted(r.id for r in stored) == [1, 2, imported]
    by_id = {r.id: r for r in stored}
    assert by_id[1].backends == ["ort", "torch"] and by_id[2].backends == ["torch"]
    assert by_id[1].environment["torch"] == by_id[2].environment["torch"]
    assert by_id[imported].source == "import"
    assert history.REFERENCE_ID not in [r.id for r in history.list_runs(store, False)]
    # The reference is never written into the store.
    assert count_runs(store.path) == 3


def test_filters(with_import):
    store, imported = with_import
    runs = history.list_runs(store)

    def ids(**kw):
        return sorted(str(r.id) for r in history.filter_runs(runs, **kw))

    assert ids(model="resnet18") == ["1", "2", str(imported)]
    assert ids(model=["resnet50"]) == ["t4"]
    assert ids(backend="ort") == ["1", str(imported), "t4"]
    assert ids(precision="fp16") == ["t4"]
    assert ids(device="cuda") == ["t4"]
    assert ids(machine="h100") == [str(imported)]
    assert ids(since="2026-11-02") == sorted(
        str(r.id) for r in runs if r.created_at and r.created_at >= "2026-11-02"
    )
    assert "t4" not in ids(since="2000-01-01")
    assert ids(since="2999-01-01") == []
    assert ids(model="resnet18", backend="ort", include_reference=False) == ["1", str(imported)]
    with pytest.raises(BadInput):
        history.filter_runs(runs, since="last tuesday")


def test_compare_two_runs(with_import):
    store, imported = with_import
    rows, diff = history.compare_runs(store, 1, 2)
    first = {(r.backend, r.batch): r.p50_ms for r in store.rows(1) if r.status == "ok"}
    second = {(r.backend, r.batch): r.p50_ms for r in store.rows(2) if r.status == "ok"}
    shared = sorted(first.keys() & second.keys())
    assert [(r.backend, r.batch) for r in rows] == shared and shared
    for r in rows:
        assert r.a_p50_ms == first[(r.backend, r.batch)]
        assert r.speedup == pytest.approx(
            first[(r.backend, r.batch)] / second[(r.backend, r.batch)]
        )
    assert [d for d in diff if d.kind == "environment"] == []  # same machine, same libraries


def test_compare_across_machines_names_the_differences(with_import):
    store, imported = with_import
    rows, diff = history.compare_runs(store, imported, 1)
    assert {(r.backend, r.batch) for r in rows} == {
        ("torch", 1),
        ("torch", 2),
        ("ort", 1),
        ("ort", 2),
    }
    here = store.run(1)["environment"]
    by_key = {d.key: d for d in diff}
    for key, value in H100_ENV.items():
        assert by_key[key].a == str(value)
        assert by_key[key].b == (str(here[key]) if here.get(key) is not None else "—")
    assert "python" not in by_key  # identical settings are not listed


def test_compare_with_the_quoted_reference(with_import):
    store, _ = with_import
    rows, diff = history.compare_runs(store, "t4", 1)
    assert rows == []  # the study measured resnet50 at batch 32 on a T4: nothing in common
    keys = {d.key for d in diff}
    assert {"gpu", "model", "figures"} <= keys
    rec = history.load_run(store, "t4")
    assert rec.info.quoted and all(r.status == "quoted" for r in rec.rows)
    with pytest.raises(BadInput):
        history.load_run(store, 999)
    with pytest.raises(BadInput):
        history.load_run(store, "latest")


def test_history_cli(with_import, capsys):
    store, imported = with_import
    db = str(store.path)
    code, out, _ = run_main(capsys, "history", "--db", db)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["id", "created", "(UTC)"]
    assert {line.split()[0] for line in lines[2:]} == {"t4", "1", "2", str(imported)}
    code, out, _ = run_main(capsys, "history", "--db", db, "--machine", "H100", "--json")
    assert code == 0 and [r["id"] for r in json.loads(out)] == [imported]
    code, out, _ = run_main(capsys, "history", "--db", db, "--compare", str(imported), "1")
    assert code == 0
    assert "speed-up" in out and H100_ENV["gpu"] in out and "cpu_count" in out
    code, out, _ = run_main(capsys, "history", "--db", db, "--compare", "1", "2", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["a"]["id"] == 1 and doc["speedups"]
    for argv in (["--compare", "1", "99"], ["--since", "soon"], ["--compare", "1"]):
        code, _, err = run_main(capsys, "history", "--db", db, *argv)
        assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1


def test_rows_csv(with_import):
    import csv
    import io

    store, imported = with_import
    lines = list(csv.DictReader(io.StringIO(history.rows_csv(store, [1, imported, "t4"]))))
    stored = store.rows(1) + store.rows(imported)
    assert len(lines) == len(stored) + len(history.reference_record().rows)
    assert [(x["run_id"], x["backend"], float(x["p50_ms"])) for x in lines[: len(stored)]] == [
        (str(rid), r.backend, r.p50_ms) for rid in (1, imported) for r in store.rows(rid)
    ]
    assert {x["machine"] for x in lines if x["run_id"] == str(imported)} == {H100_ENV["gpu"]}
    assert {x["status"] for x in lines if x["run_id"] == "t4"} == {"quoted"}
