"""Cache growth: entries are listed with sizes and ages, and can be pruned, via the CLI too.

Entries are written through the same helper the exporter uses (``finish_artifact``),
holding small real ONNX files; ages are set on the build record as time would.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from engine.artifacts.cache import cache_entries, cache_size_bytes, prune
from engine.artifacts.export import cached_artifact, finish_artifact
from engine.core.errors import BadInput
from tests.conftest import run_cli


def _onnx_bytes(width: int) -> bytes:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, width])
    w = helper.make_tensor("w", TensorProto.FLOAT, [width], [0.5] * width)
    graph = helper.make_graph([helper.make_node("Mul", ["x", "w"], ["y"])], "g", [x], [y], [w])
    return helper.make_model(graph).SerializeToString()


def _entry(root: Path, kind: str, key: str, width: int, age_days: float) -> Path:
    folder = root / kind / key
    folder.mkdir(parents=True)
    tmp = folder / "model.tmp.onnx"
    tmp.write_bytes(_onnx_bytes(width))
    path = finish_artifact(folder, tmp, "model.onnx", {"model": f"m{width}", "precision": "fp32"})
    meta = json.loads((folder / "meta.json").read_text())
    meta["created"] = time.time() - age_days * 86400
    (folder / "meta.json").write_text(json.dumps(meta))
    return path


@pytest.fixture
def cache(tmp_path):
    root = tmp_path / "cache"
    (root / "locks").mkdir(parents=True)
    (root / "locks" / "cpu.lock").write_text("")
    _entry(root, "onnx", "a" * 32, 4000, age_days=40)
    _entry(root, "int8", "b" * 32, 2000, age_days=10)
    _entry(root, "onnx-user", "c" * 32, 1000, age_days=1)
    return root


def test_entries_sizes_and_ages(cache):
    items = cache_entries(cache)
    assert [(i.kind, round(i.age_days)) for i in items] == [
        ("onnx", 40),
        ("int8", 10),
        ("onnx-user", 1),
    ]
    on_disk = sum(
        f.stat().st_size for f in cache.rglob("*") if f.is_file() and "locks" not in f.parts
    )
    assert cache_size_bytes(cache) == on_disk == sum(i.size_bytes for i in items)
    assert items[0].size_bytes > items[1].size_bytes > items[2].size_bytes


def test_prune_older_than_and_max_size(cache):
    gone = prune(older_than_days=30, root=cache)
    assert [i.kind for i in gone] == ["onnx"] and not (cache / "onnx" / ("a" * 32)).exists()
    remaining = cache_entries(cache)
    newest = remaining[-1].size_bytes
    gone = prune(max_size_bytes=newest, root=cache)
    assert [i.kind for i in gone] == ["int8"]
    assert [i.kind for i in cache_entries(cache)] == ["onnx-user"]
    # what is left still passes the exporter's own integrity check
    assert cached_artifact(cache / "onnx-user" / ("c" * 32), "model.onnx") is not None
    assert (cache / "locks" / "cpu.lock").exists()


def test_prune_keeps_an_entry_being_built_and_never_follows_links(cache, tmp_path):
    building = cache / "onnx" / ("d" * 32)
    building.mkdir()
    (building / "model.123.tmp.onnx").write_bytes(_onnx_bytes(10))
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    (cache / "onnx" / ("e" * 32)).symlink_to(outside, target_is_directory=True)
    prune(everything=True, root=cache)
    assert building.exists()
    assert (outside / "keep.txt").read_text() == "mine"
    assert not (cache / "onnx" / ("e" * 32)).exists()
    assert [i.key for i in cache_entries(cache)] == ["d" * 32]


def test_prune_needs_a_criterion(cache):
    with pytest.raises(BadInput, match="nothing to prune"):
        prune(root=cache)
    with pytest.raises(BadInput, match="negative"):
        prune(older_than_days=-1, root=cache)
    assert len(cache_entries(cache)) == 3


def test_cache_cli_list_size_prune(cache):
    res = run_cli("cache", "list", "--cache-dir", str(cache))
    assert res.returncode == 0, res.stderr
    for kind in ("onnx", "int8", "onnx-user"):
        assert kind in res.stdout
    assert "3 entries" in res.stdout and "locks" not in res.stdout
    res = run_cli("cache", "size", "--json", "--cache-dir", str(cache))
    assert json.loads(res.stdout)["size_bytes"] == cache_size_bytes(cache)
    res = run_cli("cache", "prune", "--older-than", "5", "--dry-run", "--cache-dir", str(cache))
    assert res.returncode == 0 and "would remove 2 entries" in res.stderr
    assert len(cache_entries(cache)) == 3
    res = run_cli("cache", "prune", "--older-than", "5", "--json", "--cache-dir", str(cache))
    assert res.returncode == 0, res.stderr
    assert {i["kind"] for i in json.loads(res.stdout)["removed"]} == {"onnx", "int8"}
    assert [i.kind for i in cache_entries(cache)] == ["onnx-user"]
    res = run_cli("cache", "prune", "--cache-dir", str(cache))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.count("\n") == 1 and "--older-than" in res.stderr
    onnx.checker.check_model(str(cache / "onnx-user" / ("c" * 32) / "model.onnx"))


# -- wedged and poisoned entries are rebuilt (issue 26.9, 26.12) ------------------------------


@pytest.mark.parametrize("kind", ["folder", "fifo", "dangling link"])
def test_a_meta_json_that_is_not_a_file_is_rebuilt_not_fatal(tmp_path, kind):
    import os

    folder = tmp_path / "onnx" / ("e" * 32)
    folder.mkdir(parents=True)
    meta = folder / "meta.json"
    {"folder": meta.mkdir, "fifo": lambda: os.mkfifo(meta),
     "dangling link": lambda: meta.symlink_to(tmp_path / "gone")}[kind]()  # fmt: skip
    assert cached_artifact(folder, "model.onnx") is None
    # What export_onnx does next: build into the same folder and record it.
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "model.tmp.onnx"
    tmp.write_bytes(_onnx_bytes(8))
    path = finish_artifact(folder, tmp, "model.onnx", {"model": "m8", "precision": "fp32"})
    assert cached_artifact(folder, "model.onnx") == path


def test_a_model_copied_in_from_another_entry_is_rebuilt(cache):
    """A valid model with a record matching its own bytes, under another key's folder."""
    import shutil

    poisoned = cache / "onnx" / ("d" * 32)
    shutil.copytree(cache / "onnx-user" / ("c" * 32), poisoned)
    assert cached_artifact(poisoned, "model.onnx") is None
    assert not poisoned.exists()
    assert cached_artifact(cache / "onnx-user" / ("c" * 32), "model.onnx") is not None
