"""Compiled engines' cache (issue 29) against a hostile or careless user: records that are
data (strings, NaN, a FIFO), links planted where an engine is read or written, and a prune
that runs while a build compiles. Stand-in packages: nothing is compiled here."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
import time
from pathlib import Path

import pytest

from engine.artifacts.cache import prune
from engine.backends.compiled_engine import (
    EngineKey,
    build,
    entries,
    estimate_s,
    estimate_text,
    is_cached,
    lookup,
    record,
)
from engine.core.errors import BadInput
from tests.backends.engine_keys import key_of


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VISIONBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@contextlib.contextmanager
def unblocked_after(fifos: list[Path], seconds: float = 4.0):
    """Fail, rather than hang, when a FIFO is opened for a blocking read: after ``seconds``
    each FIFO gets a writer that closes at once, so a reader stuck in it sees the end."""
    stop = threading.Event()

    def release() -> None:
        if not stop.wait(seconds):
            for fifo in fifos:
                with contextlib.suppress(OSError):
                    os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    helper = threading.Thread(target=release, daemon=True)
    helper.start()
    t0 = time.monotonic()
    try:
        yield
    finally:
        stop.set()
        helper.join()
    assert time.monotonic() - t0 < seconds, "a read blocked on a FIFO in the cache"


def write_package(path: str) -> None:
    with open(path, "wb") as f:  # as a compiler does: open the name it was given and write
        f.write(os.urandom(256))


def rewrite(engine: EngineKey, **changes) -> None:
    meta = {**record(engine), **changes}
    (engine.folder / "meta.json").write_text(json.dumps(meta))


def test_hostile_record_numbers_give_no_estimate_and_no_crash(cache):
    key = key_of()
    build(key, write_package, {})
    for value in ("300", float("nan"), float("inf"), 1e300, -50.0, True, None, [1]):
        rewrite(key, build_s=value)
        assert estimate_s(key_of(batch=8)) is None, value
        assert "nan" not in estimate_text(key_of(batch=8)), value
    rewrite(key, build_s=12.0, created="yesterday")  # was a ValueError from sorting
    assert estimate_s(key_of(batch=8)) == 12.0
    for created in ([1], {"a": 1}, float("nan"), None):
        rewrite(key, created=created)
        assert len(entries()) == 1
    rewrite(key, created=1.0, key={**key.to_dict(), "batch": True})
    assert estimate_s(key_of(batch=1)) is None  # a bool is no batch size


def test_a_fifo_at_a_record_is_never_opened_for_a_blocking_read(cache):
    key = key_of()
    build(key, write_package, {})
    other = key_of(batch=9)
    other.folder.mkdir()
    os.mkfifo(other.folder / "meta.json")
    with unblocked_after([other.folder / "meta.json"]):
        assert estimate_s(key_of(batch=8)) is not None  # entries() skips the FIFO
    (key.folder / "meta.json").unlink()
    os.mkfifo(key.folder / "meta.json")
    with unblocked_after([key.folder / "meta.json"]):
        assert not is_cached(key)
    with unblocked_after([key.folder / "meta.json"]):
        found, note = lookup(key)
    assert found is None and "record is missing or unreadable" in note
    path, _, built_now = build(key, write_package, {})  # rebuilt, not wedged
    assert built_now and is_cached(key)


def test_a_package_that_is_a_link_is_discarded_not_followed(cache, tmp_path):
    key = key_of()
    build(key, write_package, {})
    outside = tmp_path / "outside.pt2"
    outside.write_bytes(b"someone else's file")
    key.package.unlink()
    key.package.symlink_to(outside)
    rewrite(key, sha256=hashlib.sha256(outside.read_bytes()).hexdigest())
    assert not is_cached(key)
    found, note = lookup(key)
    assert found is None and "not a regular file" in note
    assert outside.read_bytes() == b"someone else's file"


def test_an_entry_folder_that_is_a_link_is_removed_not_written_through(cache, tmp_path):
    key = key_of()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    key.folder.parent.mkdir(parents=True)
    key.folder.symlink_to(elsewhere, target_is_directory=True)
    path, _, built_now = build(key, write_package, {})
    assert built_now and not key.folder.is_symlink() and path.is_file()
    assert list(elsewhere.iterdir()) == []


def test_the_compiled_folder_a_link_out_of_the_cache_is_refused(cache, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cache.mkdir()
    (cache / "compiled").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(BadInput, match="not a folder of the cache"):
        build(key_of(), write_package, {})
    assert list(elsewhere.iterdir()) == []


def test_a_link_planted_at_the_name_the_compiler_writes_is_never_written_through(cache, tmp_path):
    """The old temporary name, pre.<pid>.pt2 in the entry folder, was predictable for the
    minutes of a compile: a link planted there had the package written over its target."""
    key = key_of()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")

    def attacked(path: str) -> None:
        for name in (f"pre.{os.getpid()}.pt2", Path(path).name):
            planted = key.folder / name
            if not planted.exists():
                planted.symlink_to(victim)
        write_package(path)

    path, _, built_now = build(key, attacked, {})
    assert victim.read_text() == "precious"
    assert built_now and not path.is_symlink() and lookup(key)[0] == path


def test_prune_while_a_build_compiles_leaves_the_entry_alone(cache):
    """The entry's folder was made minutes before the compiler wrote anything into it:
    `cache prune --key` or `--all` meanwhile removed it, and the build died on its
    missing folder (a traceback, exit 1)."""
    key = key_of()
    said: list[str] = []

    def compiling(path: str) -> None:
        with pytest.raises(BadInput, match="being written by a build"):
            prune(keys=[key.name])
        said.extend(i.key for i in prune(everything=True))
        write_package(path)

    path, _, built_now = build(key, compiling, {})
    assert said == [] and built_now and path.is_file() and is_cached(key)
    assert [i.key for i in prune(keys=[key.name])] == [key.name]  # done: prunable now


def test_auto_mode_at_batch_1_counts_the_parity_engine_as_one_to_build(cache):
    """Parity needs a batch of at least 2: with `--batch 1` alone and that engine cached,
    auto mode said "cached, so auto mode tries it" and then compiled the parity batch's
    engine unasked (minutes in max-autotune on a GPU), never offered by --with-compile."""
    from engine.artifacts.models import load_artifacts
    from engine.backends import auto_candidates, get_backend
    from engine.core.config import ModelSpec
    from engine.core.parity import PARITY_BATCH

    art = load_artifacts(ModelSpec("squeezenet1_1", image_size=32, seed=3))
    backend = get_backend("torch_compile")
    (slow,), _ = auto_candidates("cpu", ["torch_compile"], True, art, (1,), only_slow=True)
    assert backend.engine_batches(slow, (1,)) == (1, PARITY_BATCH)
    build(backend.engine_key(slow, art, 1), write_package, {})
    specs, notes = auto_candidates("cpu", ["torch_compile"], False, art, (1,), only_slow=True)
    assert (
        specs == []
        and f"batch 1, {PARITY_BATCH} (batch {PARITY_BATCH} for the parity" in (notes[0])
    )
    build(backend.engine_key(slow, art, PARITY_BATCH), write_package, {})
    specs, notes = auto_candidates("cpu", ["torch_compile"], False, art, (1,), only_slow=True)
    assert specs == [slow] and "cached, so auto mode tries it" in notes[0]
    assert backend.engine_batches(slow, (1, 4)) == (1, 4)  # judged at 4: nothing more


def test_an_interrupted_build_leaves_no_entry_and_the_next_says_nothing_was_discarded(cache):
    """Ctrl-C or SIGTERM during the compile left an empty entry folder: listed by
    `cache list` as an engine of 0 B, and the next build said it 'discarded' it."""
    key = key_of()

    def interrupted(path: str) -> None:
        Path(path).write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build(key, interrupted, {})
    assert not key.folder.exists()
    said: list[str] = []
    assert build(key, write_package, {}, said.append)[2] is True
    assert not any("discarded" in s for s in said), said


def test_a_build_waiting_for_another_process_says_so(cache):
    key = key_of()
    lock = cache / "locks" / f"{key.name}.lock"
    lock.parent.mkdir(parents=True)
    holder = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)  # another process's build of the same key
    said: list[str] = []
    worker = threading.Thread(target=build, args=(key, write_package, {}, said.append))
    worker.start()
    deadline = time.monotonic() + 10
    while not said and time.monotonic() < deadline:
        time.sleep(0.05)
    os.close(holder)
    worker.join()
    assert said and "another process is building the compiled engine" in said[0]
    assert is_cached(key)


def test_a_truncated_package_is_not_counted_as_cached(cache):
    """Auto mode tries an engine that is cached without being asked: a truncated one was
    counted, then discarded by its hash check and rebuilt for minutes unasked."""
    key = key_of()
    build(key, write_package, {})
    assert is_cached(key)
    with open(key.package, "r+b") as f:
        f.truncate(100)
    assert not is_cached(key)


def test_build_asked_twice_for_one_precision_builds_it_once():
    """`build --precision fp32,fp32` loaded the same engine twice and said "2 engine(s)"."""
    from engine.running.build import build_specs

    specs = build_specs("torch_compile", "cpu", ["fp32", "fp32"], {"compile_mode": "default"})
    assert len(specs) == 1


def test_prune_names_the_whole_engine_key(cache, capsys):
    """`cache prune --key` said "removed compiled/aoti-squeeze": every engine of a model
    starts so, and the user could not tell which one went."""
    from engine.cli.cache import main

    key = key_of(model="squeezenet1_1")
    build(key, write_package, {})
    assert main(["prune", "--key", key.name]) == 0
    assert f"removed compiled/{key.name} " in capsys.readouterr().out


def test_the_cpu_thread_count_is_part_of_the_key(cache):
    """Inductor generates CPU code for the compiling process's thread count (with one
    thread, no OpenMP loop at all): an engine built by `bench --auto --threads 1` was loaded
    as "cached" by every later run, which then measured one thread under a "2 thr" label."""
    import torch

    from engine.artifacts.models import load_artifacts
    from engine.backends import get_backend
    from engine.core.config import ModelSpec, RunnerSpec

    art = load_artifacts(ModelSpec("squeezenet1_1", image_size=32, seed=3))
    backend = get_backend("torch_compile")
    opts = {"packaged": True, "compile_mode": "default"}

    def key(**more):
        return backend.engine_key(
            RunnerSpec("torch_compile", "cpu", "fp32", {**opts, **more}), art, 2
        )

    assert key(intra_threads=1) != key(intra_threads=2)
    assert key(intra_threads=1).name != key(intra_threads=2).name
    assert key().cpu_threads == torch.get_num_threads()


def test_auto_mode_looks_for_the_engine_of_its_own_thread_count(cache):
    """`build --threads 1` then `bench --auto --threads 1`: the ladder looked up the engine
    without the thread setting, so it never found the one built for it."""
    from engine.artifacts.models import load_artifacts
    from engine.backends import auto_candidates, get_backend
    from engine.core.config import ModelSpec

    art = load_artifacts(ModelSpec("squeezenet1_1", image_size=32, seed=3))
    backend = get_backend("torch_compile")
    (one,), _ = auto_candidates("cpu", ["torch_compile"], True, art, (2,), True, threads=1)
    assert "intra_threads" not in one.opts  # a setting, filled in when the runner is built
    settled = backend.settled(one, {"threads": 1})
    build(backend.engine_key(settled, art, 2), write_package, {})
    specs, _ = auto_candidates("cpu", ["torch_compile"], False, art, (2,), True, threads=1)
    assert specs == [one]
    specs, notes = auto_candidates("cpu", ["torch_compile"], False, art, (2,), True, threads=7)
    assert specs == [] and "not all cached" in notes[0]


def test_build_threads_builds_the_engine_auto_mode_of_those_threads_finds(cache, capfd):
    """`python -m engine build --threads 1` ended in an ImportError traceback (a helper it
    imported had been removed); it builds the engine `bench --auto --threads 1` looks up."""
    from engine.artifacts.models import load_artifacts
    from engine.backends import auto_candidates
    from engine.cli.main import main
    from engine.core.config import ModelSpec

    argv = ["build", "--model", "squeezenet1_1", "--image-size", "32", "--seed", "3"]
    assert main([*argv, "--batch", "2", "--device", "cpu", "--threads", "1"]) == 0
    assert "1 engine(s)" in capfd.readouterr().out  # the build's child writes to the terminal
    art = load_artifacts(ModelSpec("squeezenet1_1", image_size=32, seed=3))
    specs, notes = auto_candidates("cpu", ["torch_compile"], False, art, (2,), True, threads=1)
    assert len(specs) == 1, notes
    specs, _ = auto_candidates("cpu", ["torch_compile"], False, art, (2,), True, threads=2)
    assert specs == []


def test_cache_list_json_stays_json_with_nan_in_a_record(cache, capsys):
    """A record is data: NaN or Infinity in it came out of `cache list --json` as bare
    NaN / Infinity, which strict JSON parsers refuse."""
    from engine.cli.cache import main

    folder = cache / "compiled" / "aoti-x"
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text('{"key": {"model": "x"}, "build_s": NaN, "created": 1e999}')

    def refuse(name: str):
        raise ValueError(f"{name} is not JSON")

    assert main(["list", "--json"]) == 0
    (item,) = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert item["meta"]["build_s"] is None
    assert main(["prune", "--all", "--json"]) == 0
    json.loads(capsys.readouterr().out, parse_constant=refuse)


def test_a_cpu_engine_is_keyed_by_the_cpu_flags_it_was_compiled_for():
    """Inductor compiles with -march=native; the key named only the instruction-set level
    ("cpu AVX512"), shared by CPUs with and without AMX or AVX512-FP16."""
    from engine.backends.compiled_engine import cpu_flags_digest, device_identity

    flags = cpu_flags_digest()
    if not flags:
        pytest.skip("this system's /proc/cpuinfo lists no CPU flags")
    name, cc = device_identity("cpu")
    assert name.startswith("cpu ") and f"flags {flags}" in name and cc == ""


def test_an_engine_of_an_older_key_schema_is_marked_stale(cache):
    """An engine keyed before the key gained a field is never loaded again (its key cannot
    match), yet it was listed as ready."""
    from engine.backends.compiled_engine import library_versions, stale_reason

    key = key_of(**library_versions())
    build(key, write_package, {})
    assert stale_reason(record(key)) == ""
    old = {**record(key)["key"], "schema": 1}
    old.pop("cpu_threads")
    assert stale_reason({"key": old}).startswith("stale: keyed by an older release")


def test_a_build_time_too_large_for_a_float_breaks_no_listing(cache, capsys):
    """`"build_s": 1000…0` (400 digits) is a valid JSON integer: `cache list` died with an
    OverflowError traceback, and so did the Engines page's cache rows."""
    from engine.artifacts.inspection import cache_rows
    from engine.cli.cache import main

    key = key_of()
    build(key, write_package, {})
    (key.folder / "meta.json").write_text(
        json.dumps(record(key))[:-1] + ', "build_s": 1' + "0" * 400 + "}"
    )
    assert record(key)["build_s"] == 10**400
    assert main(["list"]) == 0 and key.name in capsys.readouterr().out
    (row,) = cache_rows()
    assert row["build_s"] is None
    assert estimate_s(key_of(batch=8)) is None


def test_a_creation_time_too_large_for_a_float_breaks_no_listing(cache, capsys):
    """`"created": 1000…0` (400 digits): math.isfinite raised OverflowError, so `cache list`
    and every `cache prune` died with a traceback."""
    from engine.cli.cache import main

    key = key_of()
    build(key, write_package, {})
    (key.folder / "meta.json").write_text(
        json.dumps(record(key))[:-1] + ', "created": 1' + "0" * 400 + "}"
    )
    assert main(["list"]) == 0 and key.name in capsys.readouterr().out
    assert main(["prune", "--older-than", "1"]) == 0
    assert len(entries()) == 1


def test_build_with_backend_given_twice_follows_the_last_as_argparse_does():
    """`build --backend torch_compile --backend tensorrt`: the hand-over looked at the first,
    argparse kept the last, and the command said "0 engine(s)" with exit 0."""
    from engine.cli.build import _own_command

    assert _own_command(["--backend", "torch_compile", "--backend", "tensorrt"]) == "trt-build"
    assert _own_command(["--backend=tensorrt", "--backend", "torch_compile"]) == ""
    assert _own_command(["--backend", "tensorrt"]) == "trt-build"


def test_an_engine_keyed_by_the_mode_asked_for_is_listed_stale_not_loaded(cache, capsys):
    """Schema 2 keyed a package by the mode asked for (compile_mode); schema 3 by the mode
    compiled. Such an entry is listed as stale, never matched, and crashes nothing."""
    from engine.backends.compiled_engine import library_versions
    from engine.cli.cache import main

    key = key_of(**library_versions())
    old = {**key.to_dict(), "schema": 2, "compile_mode": "max-autotune"}
    old.pop("compiled_mode")
    folder = cache / "compiled" / "aoti-tiny-b4-fp32-0123456789abcdef0123"
    folder.mkdir(parents=True)
    (folder / "model.pt2").write_bytes(b"x" * 64)
    (folder / "meta.json").write_text(json.dumps({"key": old, "build_s": 5.0, "batch": 4}))
    assert EngineKey.from_dict(old) is None and not is_cached(key)
    assert estimate_s(key) is None  # another key's build time is no estimate for this one
    assert main(["list", "--json"]) == 0
    (item,) = json.loads(capsys.readouterr().out)
    assert item["state"].startswith("stale: keyed by an older release") and item["detail"] == ""
    assert main(["prune", "--key", folder.name]) == 0 and not folder.exists()


KILLED_BUILD = """
import sys, time
from pathlib import Path
from engine.backends.compiled_engine import build
from tests.backends.engine_keys import key_of

def compiling(path):
    Path(sys.argv[1]).write_text(path)  # the private pre.* folder exists: tell the parent
    time.sleep(600)

build(key_of(), compiling, {})
"""


def test_prune_removes_at_once_what_a_killed_build_left(cache, tmp_path, capsys):
    """A build killed mid-compile (SIGKILL) left its private pre.* folder, and the clock
    rule took the entry for one being written: `cache prune --key` refused it for an hour.
    The build's own lock says for certain: held by a live build, refused; free, removed."""
    import signal
    import subprocess
    import sys

    from engine.cli.cache import main

    key = key_of()
    ready = tmp_path / "ready"
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_BUILD, str(ready)],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "VISIONBENCH_CACHE": str(cache)},
    )
    try:
        deadline = time.monotonic() + 120
        while not ready.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), "the child build never started compiling"
        (private,) = key.folder.glob("pre.*")
        with pytest.raises(BadInput, match="being written by a build"):
            prune(keys=[key.name])  # alive: its lock is held
        assert prune(everything=True) == [] and private.is_dir()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL and private.is_dir()  # left behind
    assert main(["prune", "--key", key.name]) == 0
    assert f"removed compiled/{key.name} " in capsys.readouterr().out
    assert not key.folder.exists()


def test_the_next_build_after_a_killed_one_says_so_and_builds(cache):
    key = key_of()
    (key.folder / "pre.abc123").mkdir(parents=True)  # what a SIGKILLed build leaves
    said: list[str] = []
    path, _, built_now = build(key, write_package, {}, said.append)
    assert built_now and is_cached(key) and not list(key.folder.glob("pre.*"))
    assert any("a build of it was killed before it finished" in s for s in said), said
