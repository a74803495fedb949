"""Compiled engines (issue 29) on the CPU: built once, listed, loaded by a fresh process with
nothing compiled, tried by auto mode when cached, pruned on their own.

One real AOTInductor build of a small torchvision model (SqueezeNet 1.1 at 32 px, batch 2,
Inductor's default mode: about 30 s on 2 cores) is shared by the tests of this module;
each later process gets an Inductor cache folder holding only Inductor's instruction-set
probes (few-hundred-byte C++ files, not a compile of the model; copied in, as a user's
folder has them after a first run), so a compile there would write its generated code into
it (the build's own folder shows what that looks like).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from engine.backends.compiled_engine import (
    build,
    estimate_s,
    estimate_text,
    lookup,
    record,
    stale_reason,
)
from tests.backends.engine_keys import key_of
from tests.conftest import run_cli, seed_isa_probes

MODEL = ("--model", "squeezenet1_1", "--image-size", "32", "--seed", "3")
FAST = ("--iters", "3", "--warmup", "1", "--quiet")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A cache holding the engine auto mode tries on the CPU, built by `build`."""
    cache = tmp_path_factory.mktemp("compiled-cache")
    env = {"VISIONBENCH_CACHE": str(cache), "VISIONBENCH_DATA": str(cache / "data")}
    build_env, inductor = fresh_inductor(tmp_path_factory.mktemp("build"), env)
    r = run_cli("build", *MODEL, "--device", "cpu", "--batch", "2", "--json", env=build_env)
    assert r.returncode == 0, r.stderr
    assert compiled_code(inductor), "the check below could not see a compile"
    doc = json.loads(r.stdout)
    return cache, env, doc["engines"]


def fresh_inductor(tmp_path: Path, env: dict) -> tuple[dict, Path]:
    folder = seed_isa_probes(tmp_path / "inductor")
    return {**env, "TORCHINDUCTOR_CACHE_DIR": str(folder)}, folder


def compiled_code(inductor: Path) -> list[Path]:
    """Generated model code or graphs Inductor wrote: evidence of a compile."""
    code = [p for p in inductor.rglob("*.cpp") if p.stat().st_size > 4096]
    return code + list(inductor.rglob("fxgraph")) + list(inductor.rglob("*.py"))


def test_build_makes_one_cached_package_a_second_build_finds(built, tmp_path):
    cache, env, engines = built
    assert [e["built"] for e in engines] == [True]
    key = engines[0]["key"]
    assert (cache / "compiled" / key / "model.pt2").is_file()
    again_env, inductor = fresh_inductor(tmp_path, env)
    r = run_cli("build", *MODEL, "--device", "cpu", "--batch", "2", env=again_env)
    assert r.returncode == 0, r.stderr
    assert "already cached" in r.stdout and key in r.stdout
    assert not compiled_code(inductor), "a cache hit compiled something"


def test_cache_list_shows_the_engine_with_its_batch_and_build_time(built):
    cache, env, engines = built
    r = run_cli("cache", "list", "--json", env=env)
    assert r.returncode == 0, r.stderr
    (item,) = [i for i in json.loads(r.stdout) if i["kind"] == "compiled"]
    assert item["key"] == engines[0]["key"] and item["state"] == ""
    assert item["meta"]["batch"] == 2 and item["meta"]["build_s"] > 0
    table = run_cli("cache", "list", env=env).stdout
    assert engines[0]["key"] in table and "squeezenet1_1 fp32 batch 2" in table


def test_a_fresh_sweep_loads_the_engine_and_compiles_nothing(built, tmp_path):
    _, env, engines = built
    run_env, inductor = fresh_inductor(tmp_path, env)
    r = run_cli(
        "bench", *MODEL, "--backend", "torch_compile", "--packaged", "--compile-mode", "default",
        "--batch", "2", *FAST, env=run_env,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert f"loaded the cached compiled engine {engines[0]['key']}" in r.stderr
    assert "torch-aoti-cpu" in r.stdout and "built the compiled engine" not in r.stderr
    assert not compiled_code(inductor), "loading the package compiled something"


def test_the_mode_with_cuda_graphs_loads_the_package_of_the_mode_without(built, tmp_path):
    """The package holds no CUDA graph, so a mode differing only by graphs (reduce-overhead
    against the build's default) is the same file: it was keyed apart and built again."""
    _, env, engines = built
    run_env, inductor = fresh_inductor(tmp_path, env)
    r = run_cli(
        "bench", *MODEL, "--backend", "torch_compile", "--packaged",
        "--compile-mode", "reduce-overhead", "--batch", "2", *FAST, env=run_env,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert f"loaded the cached compiled engine {engines[0]['key']}" in r.stderr
    assert "built the compiled engine" not in r.stderr
    assert not compiled_code(inductor), "a mode sharing the package compiled something"
    table = run_cli("cache", "list", env=env).stdout
    assert "mode default; reduce-overhead loads it too" in table


def test_auto_mode_tries_a_cached_engine_and_says_why_one_is_left_out(built, tmp_path):
    _, env, _ = built
    run_env, _ = fresh_inductor(tmp_path, env)
    r = run_cli(
        "bench", "--auto", *MODEL, "--batch", "2", *FAST, "--backend", "torch_compile", env=run_env
    )
    assert r.returncode == 0, r.stderr
    assert "AOTInductor package" in r.stdout  # a step of the ladder
    assert "engines for batch 2 are cached, so auto mode tries it" in r.stderr
    left = run_cli("bench", "--auto", *MODEL, "--batch", "3", *FAST, "--backend", "ort",
                   env=run_env)  # fmt: skip
    assert left.returncode == 0, left.stderr
    assert "AOTInductor package" not in left.stdout
    assert "left out, its engines compile for minutes" in left.stderr
    assert "--with-compile" in left.stderr and "from an earlier build" in left.stderr


def test_prune_one_engine_on_its_own(built, tmp_path):
    cache, env, engines = built
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy, symlinks=True)
    copy_env = {**env, "VISIONBENCH_CACHE": str(copy)}
    key = engines[0]["key"]
    r = run_cli("cache", "prune", "--key", key[:16], env=copy_env)
    assert r.returncode == 0, r.stderr
    assert not (copy / "compiled" / key).exists()
    assert (copy / "onnx").is_dir() or not (cache / "onnx").exists()  # the rest is kept
    for bad, code in ((["--key", "aoti"], 2), (["--key", "aoti-nothing-like-it"], 2)):
        r = run_cli("cache", "prune", *bad, env=copy_env)
        assert r.returncode == code and "Traceback" not in r.stderr, r.stderr


# -- the cache logic itself, with a stand-in package (no compiling) ------------------------
@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VISIONBENCH_CACHE", str(tmp_path))
    return tmp_path


def write_package(path: str) -> None:
    Path(path).write_bytes(os.urandom(1024))


def test_a_damaged_or_foreign_package_is_discarded_with_a_note(cache):
    key = key_of()
    path, build_s, built_now = build(key, write_package, {})
    assert built_now and path.is_file() and record(key)["bytes"] == 1024
    assert lookup(key) == (path, "")
    with open(path, "r+b") as f:  # truncated after the build
        f.truncate(100)
    found, note = lookup(key)
    assert found is None and "SHA-256 does not match" in note and not key.folder.exists()
    build(key, write_package, {})
    meta = record(key)
    meta["key"] = {**meta["key"], "batch": 8}  # a record of other settings
    (key.folder / "meta.json").write_text(json.dumps(meta))
    found, note = lookup(key)
    assert found is None and "other build settings" in note


def test_a_failed_build_leaves_nothing_and_the_next_one_builds(cache):
    key = key_of(batch=2)

    def broken(path: str) -> None:
        Path(path).write_bytes(b"half")
        raise RuntimeError("compiler crashed")

    with pytest.raises(RuntimeError):
        build(key, broken, {})
    assert not key.package.exists() and not list(key.folder.glob("pre.*"))
    assert build(key, write_package, {})[2] is True


def test_estimate_comes_from_the_nearest_earlier_build_of_the_model(cache):
    for batch, seconds in ((1, 10.0), (32, 300.0)):
        key = key_of(batch=batch)
        build(key, write_package, {})
        meta = record(key)
        meta["build_s"] = seconds
        (key.folder / "meta.json").write_text(json.dumps(meta))
    assert estimate_s(key_of(batch=24)) == 300.0
    assert estimate_s(key_of(batch=2)) == 10.0
    assert estimate_s(key_of(model="other")) is None
    assert estimate_s(key_of(compiled_mode="max-autotune-no-cudagraphs")) is None
    assert (
        estimate_text(key_of(batch=2)) == "about 10 s, from an earlier build of tiny on this device"
    )
    # No earlier build: what to expect where the engine is built, never a GPU's on the CPU.
    on_cpu, on_gpu = (
        estimate_text(key_of(model="other")),
        estimate_text(
            key_of(model="other", device_name="NVIDIA H100 80GB HBM3", compute_capability="9.0")
        ),
    )
    assert "on the CPU" in on_cpu and "GPU" not in on_cpu, on_cpu
    assert "minutes on a GPU" in on_gpu and "CPU" not in on_gpu, on_gpu


def test_stale_when_a_library_version_changed(cache):
    key = key_of()
    build(key, write_package, {})
    now = {"torch_version": "2.14.1", "triton_version": "", "cuda_version": "13.0"}
    assert stale_reason(record(key), now) == ""
    later = {**now, "torch_version": "2.15.0"}
    assert stale_reason(record(key), later) == (
        "stale: built with other versions (torch 2.14.1 → 2.15.0)"
    )


def test_stale_when_torchvision_changed_for_a_torchvision_model_only(cache):
    now = {"torch_version": "2.14.1", "triton_version": "", "cuda_version": "13.0"}
    key = key_of(torchvision_version="0.29.1")
    build(key, write_package, {})
    assert stale_reason(record(key), {**now, "torchvision_version": "0.29.1"}) == ""
    assert stale_reason(record(key), {**now, "torchvision_version": "0.30.0"}) == (
        "stale: built with other versions (torchvision 0.29.1 → 0.30.0)"
    )
    own = key_of(model="own", torchvision_version="")  # a model whose code is not torchvision's
    build(own, write_package, {})
    assert stale_reason(record(own), {**now, "torchvision_version": "0.30.0"}) == ""


def test_cache_list_calls_an_engine_of_another_torchvision_stale(cache, capsys):
    """`cache list` and the Engines page (one engine function) judge the versions now."""
    from engine.backends.compiled_engine import current_versions
    from engine.cli.cache import main

    fresh = key_of(**current_versions())
    old = key_of(**{**current_versions(), "torchvision_version": "0.0.1"}, batch=8)
    for key in (fresh, old):
        build(key, write_package, {})
    assert main(["list", "--json"]) == 0
    states = {i["key"]: i["state"] for i in json.loads(capsys.readouterr().out)}
    assert states[fresh.name] == ""
    assert states[old.name].startswith("stale: built with other versions (torchvision 0.0.1 → ")


def test_build_waits_for_a_run_measuring_on_the_device(built, tmp_path):
    """A build fills the cores (and on a GPU times kernels in max-autotune): it took no
    device lock, so it ran beside another process's timed loop and skewed both."""
    import fcntl
    import subprocess
    import sys
    import time

    cache, env, engines = built
    run_env, _ = fresh_inductor(tmp_path, env)
    lock = cache / "locks" / "cpu.lock"
    holder = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)  # another run measuring on the CPU
    err = tmp_path / "stderr.txt"
    with open(err, "w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine", "build", *MODEL, "--device", "cpu", "--batch", "2"],
            cwd=Path(__file__).resolve().parents[2], stdout=subprocess.DEVNULL, stderr=stderr,
            env={**os.environ, **run_env},
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while "waiting for another run on cpu" not in err.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        waited = proc.poll() is None
        os.close(holder)
        assert proc.wait(timeout=300) == 0, err.read_text()
    assert waited and "waiting for another run on cpu" in err.read_text()
