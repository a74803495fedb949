"""No file is ever clobbered: outputs are never written through a planted symbolic link,
never over the store, an input model, a database or the artifact cache, and the files the
store makes beside itself (the disk-full reserve, the migration lock) never follow a link.
Real CLI processes and real stores; each refusal is exit 2 with one line.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.core.errors import BadInput
from engine.core.paths import cache_dir
from engine.core.safeio import write_text
from engine.storage.store import Store
from tests.conftest import run_cli

TINY = ("--model", "resnet18", "--image-size", "32", "--batch", "1", "--backend", "ort")


def _store(path: Path) -> bytes:
    s = Store(path)
    s.create_run({"model": {"name": "resnet18"}}, {})
    s.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    s.close()
    return path.read_bytes()


@pytest.fixture
def victim(tmp_path) -> Path:
    """Someone else's file that a link planted in a shared folder points at."""
    v = tmp_path / "victim.txt"
    v.write_text("keep me\n")
    v.chmod(0o640)
    return v


def _untouched(victim: Path) -> None:
    assert victim.read_text() == "keep me\n" and (victim.stat().st_mode & 0o777) == 0o640


def _refused(res, *words: str) -> None:
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    for w in words:
        assert w in lines[0], res.stderr


def test_outputs_never_follow_a_planted_link(tmp_path, victim):
    db = tmp_path / "r.sqlite"
    _store(db)
    for name, argv in {
        "r.md": ("report", "--db", str(db), "--no-diagnostics", "--out"),
        "r.json": ("bench", *TINY, "--db", str(db), "--json"),
        "m.onnx": ("export", "--model", "resnet18", "--out"),
        "d.json": ("diagnose", "--no-probe", "--json"),
    }.items():
        link = tmp_path / name
        link.symlink_to(victim)
        res = run_cli(*argv, str(link))
        if argv[0] == "diagnose":  # its package runs alone: its own one line, same code
            assert res.returncode == 2 and "symbolic link" in res.stderr, res.stderr
        else:
            _refused(res, "symbolic link")
        assert link.is_symlink()
        _untouched(victim)


def test_a_link_made_after_the_check_is_replaced_not_followed(tmp_path, victim):
    # The rename puts the new file where the link was; the file it pointed at stays.
    out = tmp_path / "late.md"
    out.symlink_to(victim)
    with pytest.raises(BadInput, match="symbolic link"):
        write_text(out, "report\n")
    out.unlink()
    write_text(out, "report\n")
    assert out.read_text() == "report\n" and not out.is_symlink()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    _untouched(victim)


def test_an_output_is_never_the_store_an_input_a_database_or_the_cache(tmp_path):
    db = tmp_path / "runs.sqlite"
    before = _store(db)
    model = tmp_path / "m.onnx"
    model.write_bytes(b"\x08\x07")  # refused before anything reads it
    other = tmp_path / "other.sqlite"
    other_bytes = _store(other)
    inside = cache_dir() / "mine.json"
    cases = [
        (("bench", *TINY, "--db", str(db), "--json", str(db)), "the --db store"),
        (("bench", "--onnx", str(model), "--db", str(db), "--json", str(model)), "--onnx model"),
        (("export", "--model", "resnet18", "--out", str(other)), "SQLite database"),
        (("report", "--db", str(db), "--no-diagnostics", "--out", str(db) + ".md"), None),
        (("bench", *TINY, "--db", str(db), "--json", str(inside)), "artifact cache"),
    ]
    for argv, words in cases:
        res = run_cli(*argv)
        if words is None:  # a report beside the store is fine: only the store itself is kept
            assert res.returncode == 0, res.stderr
            continue
        _refused(res, words)
    res = run_cli("diagnose", "--no-probe", "--json", str(other))
    assert res.returncode == 2 and "SQLite database" in res.stderr, res.stderr
    assert db.read_bytes() == before and other.read_bytes() == other_bytes
    assert model.read_bytes() == b"\x08\x07" and not inside.exists()
    # a new store named twice: nothing exists yet, the names alone are the same file
    fresh = tmp_path / "new.sqlite"
    _refused(run_cli("bench", *TINY, "--db", str(fresh), "--json", str(fresh)), "--db store")


def test_files_beside_the_store_never_follow_a_link(tmp_path, victim):
    db = tmp_path / "r.sqlite"
    store = Store(db)
    (tmp_path / "r.sqlite.run1.reserve").symlink_to(victim)
    run = store.create_run({"model": {"name": "x"}}, {})
    store.finish_run(run)
    store.close()
    _untouched(victim)

    fresh = tmp_path / "fresh.sqlite"
    Path(f"{fresh}.migrate.lock").symlink_to(victim)
    with pytest.raises(BadInput, match="migrate.lock is a symbolic link"):
        Store(fresh)
    _untouched(victim)


def test_device_locks_never_follow_a_planted_link(tmp_path, victim, monkeypatch):
    """The device locks sit under predictable names in the cache: a link planted there
    is refused in one line (filelock before 3.20.1 opened it following the link and
    truncated its target; later ones raise a bare ELOOP), and so is a FIFO."""
    from engine.running.locks import device_lock, lock_path

    monkeypatch.setenv("VISIONBENCH_CACHE", str(tmp_path / "cache"))
    Path(lock_path("cpu")).symlink_to(victim)
    with pytest.raises(BadInput, match="cpu.lock is a symbolic link"), device_lock("cpu"):
        pass
    _untouched(victim)
    os.mkfifo(lock_path("cuda:1"))
    with pytest.raises(BadInput, match="cuda_1.lock is not a regular file"):
        with device_lock("cuda:1", timeout_s=1):
            pass
    with device_lock("cuda:0"), device_lock("cuda:2"):  # other devices still lock
        assert Path(lock_path("cuda:0")).is_file()


def test_the_tensorrt_plan_lock_never_follows_a_planted_link(tmp_path, victim):
    """TensorRT's plan lock sits in the cache's locks/ folder under a predictable name."""
    from types import SimpleNamespace

    from engine.backends.tensorrt.load import plan_lock

    key = SimpleNamespace(folder=tmp_path / "tensorrt" / "abc")
    lock = tmp_path / "locks" / "abc.lock"
    lock.parent.mkdir(parents=True)
    lock.symlink_to(victim)
    with pytest.raises(BadInput, match="abc.lock is a symbolic link"), plan_lock(key):
        pass
    _untouched(victim)
    other = SimpleNamespace(folder=tmp_path / "tensorrt" / "def")
    with plan_lock(other):  # a plan of its own still locks
        assert (tmp_path / "locks" / "def.lock").is_file()


def test_db_may_be_a_link_the_user_made_to_a_regular_file(tmp_path):
    real = tmp_path / "real.sqlite"
    _store(real)
    link = tmp_path / "link.sqlite"
    link.symlink_to(real)
    store = Store(link)
    assert len(store.runs()) == 1
    store.create_run({"model": {"name": "y"}}, {})
    store.close()
    assert link.is_symlink() and len(Store(real, readonly=True).runs()) == 2
    assert os.path.samefile(link, real)


def test_prune_all_keeps_an_entry_a_live_build_is_writing(tmp_path):
    # An export traces for minutes before it writes a byte; the entry is marked from the
    # moment its folder exists, so a prune beside it keeps it (a real prune process).
    from engine.artifacts.export import building

    cache = tmp_path / "cache"
    folder = cache / "onnx" / ("a" * 32)
    env = {"VISIONBENCH_CACHE": str(cache)}
    with building(folder):
        res = run_cli("cache", "prune", "--all", env=env)
        assert res.returncode == 0, res.stderr
        assert folder.is_dir()
    res = run_cli("cache", "prune", "--all", env=env)
    assert res.returncode == 0 and not folder.exists(), res.stderr
