import csv
import json
import sqlite3

import pytest

from engine.core.config import ResultRow
from engine.core.errors import EngineError
from engine.storage.store import SCHEMA_VERSION, Store


def _row(batch, p50=1.0):
    return ResultRow(
        model="m",
        backend="ort",
        device="cpu",
        precision="fp32",
        batch=batch,
        provider="CPUExecutionProvider",
        p50_ms=p50,
        throughput_ips=batch / p50 * 1e3,
    )


def test_rows_are_committed_one_by_one(tmp_path):
    db = tmp_path / "r.sqlite"
    store = Store(db)
    run = store.create_run({"model": {"name": "m"}}, {"cpu": "x"}, "python -m engine bench")
    store.add_row(run, _row(1))
    # A second connection (another process in real life) sees the row before the run ends.
    other = sqlite3.connect(db)
    assert other.execute("SELECT COUNT(*) FROM rows").fetchone()[0] == 1
    assert other.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    store.add_row(run, _row(8, 2.0))
    store.finish_run(run)
    doc = store.document(run)
    assert doc["schema"] == 1 and doc["run"]["reproduce"].startswith("python -m engine")
    assert [r["batch"] for r in doc["rows"]] == [1, 8]
    assert doc["run"]["environment"] == {"cpu": "x"}


def test_exports(tmp_path):
    store = Store(tmp_path / "r.sqlite")
    run = store.create_run({"model": {"name": "m"}}, {}, "")
    store.add_row(run, _row(4))
    store.export_json(run, tmp_path / "r.json")
    store.export_csv(run, tmp_path / "r.csv")
    assert json.loads((tmp_path / "r.json").read_text())["rows"][0]["p50_ms"] == 1.0
    rows = list(csv.DictReader(open(tmp_path / "r.csv")))
    assert rows[0]["provider"] == "CPUExecutionProvider" and rows[0]["batch"] == "4"


def test_newer_schema_is_refused_untouched(tmp_path):
    db = tmp_path / "future.sqlite"
    con = sqlite3.connect(db)
    con.execute(f"PRAGMA user_version={SCHEMA_VERSION + 5}")
    con.close()
    with pytest.raises(EngineError, match="schema"):
        Store(db)
    assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 5


def _open_and_write(path: str) -> None:
    store = Store(path)
    store.create_run({"model": {"name": "m"}}, {}, "")
    store.close()


def test_processes_opening_a_new_store_at_once_all_succeed(tmp_path):
    """Switching a new file to WAL fails at once while another connection has it open;
    without taking turns, some of these processes died with 'database is locked'."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    failures = 0
    for i in range(30):
        path = str(tmp_path / f"{i}.sqlite")
        procs = [ctx.Process(target=_open_and_write, args=(path,)) for _ in range(6)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        failures += sum(p.exitcode != 0 for p in procs)
        assert len(Store(path).runs()) == sum(p.exitcode == 0 for p in procs)
    assert failures == 0


def test_a_version_2_store_gains_parity_status_from_parity_ok(tmp_path):
    from engine.storage.store import MIGRATIONS

    db = tmp_path / "v2.sqlite"
    con = sqlite3.connect(db)
    for step in MIGRATIONS[:2]:
        step(con)
    con.execute("PRAGMA user_version=2")
    con.execute(
        "INSERT INTO runs (created_at, config_json, env_json) VALUES ('2026-11-01', '{}', '{}')"
    )
    for ok in (True, False, None):
        data = {k: v for k, v in _row(1).to_dict().items() if not k.startswith("parity_s")}
        data.pop("parity_reason")
        data["parity_ok"] = ok
        con.execute(
            "INSERT INTO rows (run_id, created_at, data_json) VALUES (1, '2026-11-01', ?)",
            (json.dumps(data),),
        )
    con.commit()
    con.close()
    store = Store(db)
    stored = [r[0] for r in store.db.execute("SELECT parity_status FROM rows ORDER BY id")]
    assert stored == ["ok", "failed", "off"]
    assert [r.parity_status for r in store.rows()] == ["ok", "failed", "off"]
    row = _row(2)
    row.parity_ok, row.parity_status, row.parity_reason = None, "not judged", "constant logits"
    store.add_row(1, row)
    last = store.db.execute("SELECT parity_status FROM rows ORDER BY id DESC").fetchone()[0]
    assert last == "not judged" and store.rows()[-1].parity_reason == "constant logits"
    store.export_csv(1, tmp_path / "r.csv")
    assert list(csv.DictReader(open(tmp_path / "r.csv")))[-1]["parity_status"] == "not judged"


def test_committed_result_documents_still_load_with_a_parity_status():
    from pathlib import Path

    files = sorted((Path(__file__).parents[2] / "benchmarks" / "results").rglob("*.json"))
    docs = [json.loads(f.read_text()) for f in files]
    rows = [
        ResultRow.from_dict(r)
        for doc in docs
        if isinstance(doc, dict) and "schema" in doc and "run" in doc
        for r in doc["rows"]
    ]
    assert rows, "no committed result rows found"
    for r in rows:
        assert r.parity_status == {True: "ok", False: "failed", None: "off"}[r.parity_ok]


def test_a_killed_runs_reserve_is_freed_by_the_next_run(tmp_path):
    import subprocess
    import sys

    db = tmp_path / "r.sqlite"
    store = Store(db)
    killed = store.create_run({"model": {"name": "m"}}, {}, "")
    alive = store.create_run({"model": {"name": "m"}}, {}, "")  # this process: still running
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    store.db.execute("UPDATE runs SET pid=? WHERE id=?", (int(dead.stdout), killed))
    store.db.commit()
    reserves = sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".reserve"))
    assert reserves == [f"r.sqlite.run{killed}.reserve", f"r.sqlite.run{alive}.reserve"]
    third = store.create_run({"model": {"name": "m"}}, {}, "")
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".reserve"))
    assert left == [f"r.sqlite.run{alive}.reserve", f"r.sqlite.run{third}.reserve"]
    for run in (alive, third):
        store.finish_run(run)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".reserve")]
    store.close()


def test_the_same_run_is_found_whatever_order_its_keys_were_written_in(tmp_path):
    store = Store(tmp_path / "same.sqlite")
    config = {"model": {"name": "m", "seed": 0}, "batches": [1, 8], "parity": True}
    env = {"cpu": "x", "torch": "2.1"}
    run = store.create_run(config, env, created_at="2026-12-07T00:00:00+00:00")
    store.add_row(run, _row(1))
    # A document read back by another tool: the same values, keys in another order.
    reordered = {"parity": True, "batches": [1, 8], "model": {"seed": 0, "name": "m"}}
    when = "2026-12-07T00:00:00+00:00"
    assert store.same_run_id(when, reordered, {"torch": "2.1", "cpu": "x"}) == run
    assert store.same_run_id(when, reordered, env, rows=store.rows(run)) == run
    assert store.same_run_id(when, {**reordered, "batches": [1]}, env) is None
    assert store.same_run_id(when, reordered, env, rows=[_row(2)]) is None  # rows still compared
    store.close()
