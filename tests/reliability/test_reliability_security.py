"""Security: localhost only, uploads contained and capped, no unsafe loading or shelling out.

The source scan reads our own code with ``ast`` (not grep) so a comment or a string
mentioning ``torch.load`` does not count, and a real unsafe call cannot hide behind an
alias; its rules are themselves tested on small snippets so the scan can fail.
"""

from __future__ import annotations

import ast
import io
import os
import tomllib
import zipfile
from pathlib import Path

import pytest
import torch

from engine.artifacts.uploads import KINDS, save_upload
from engine.core.errors import BadInput
from engine.core.paths import uploads_dir

ROOT = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ("engine", "pages", "benchmarks", "scripts")


def test_dashboard_binds_to_localhost():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] in ("localhost", "127.0.0.1")
    assert config["browser"]["gatherUsageStats"] is False


# -- uploads ------------------------------------------------------------------------


def _weights_bytes() -> bytes:
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buf)
    return buf.getvalue()


def test_upload_is_stored_under_the_data_folder_with_a_generated_name():
    onnx_bytes = b"\x08\x07" + b"\x00" * 64
    for evil in ("../../etc/passwd.onnx", "/tmp/abs.onnx", "..\\..\\win.onnx", "a b;rm -rf.onnx"):
        path = save_upload(evil, onnx_bytes, "onnx")
        assert path.parent == uploads_dir() / "onnx"
        assert path.resolve().is_relative_to(uploads_dir().resolve())
        assert all(c.isalnum() or c in "-_." for c in path.name), path.name
        assert path.read_bytes() == onnx_bytes
        assert oct(path.stat().st_mode & 0o777) == oct(0o600)
    again = save_upload("model.onnx", onnx_bytes, "onnx")
    assert save_upload("model.onnx", onnx_bytes, "onnx") == again  # reruns reuse one file
    assert again.name.startswith("model-") and again.suffix == ".onnx"
    assert not list((uploads_dir() / "onnx").glob("*.part"))


@pytest.mark.parametrize(
    "name, data, kind, text",
    [
        ("model.exe", b"\x08\x07", "onnx", "must end in .onnx"),
        ("model.onnx", b"", "onnx", "is empty"),
        ("w.pt", b"#!/bin/sh\nrm -rf /\n", "weights", "not a file written by torch.save"),
        ("pic.png", b"GIF89a....", "image", "not a PNG"),
        ("pic.webp", b"RIFF\x00\x00\x00\x00WAVE", "image", "not a PNG"),
        ("run.json", b"\x80\x04pickle", "json", "not a JSON document"),
        ("run.json", b"{}", "script", "unknown upload kind"),
    ],
)
def test_bad_uploads_are_refused(name, data, kind, text):
    before = set(uploads_dir().rglob("*"))
    with pytest.raises(BadInput, match=text):
        save_upload(name, data, kind)
    assert set(uploads_dir().rglob("*")) == before


def test_uploads_are_size_limited(monkeypatch):
    monkeypatch.setitem(KINDS, "json", ((".json",), 1024))
    save_upload("ok.json", b"{" + b" " * 1000 + b"}", "json")
    with pytest.raises(BadInput, match="limited to"):
        save_upload("big.json", b"[" + b" " * 2000 + b"]", "json")
    assert KINDS["onnx"][1] <= 500 * 1024**2  # not more than Streamlit lets through


def test_real_weights_and_image_uploads_are_accepted():
    assert save_upload("resnet.pth", _weights_bytes(), "weights").suffix == ".pth"
    buf = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (8, 8), (200, 10, 10)).save(buf, format="PNG")
    assert save_upload("cat.PNG", buf.getvalue(), "image").suffix == ".png"
    assert zipfile.is_zipfile(io.BytesIO(_weights_bytes()))


# -- the source scan ----------------------------------------------------------------


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def unsafe_calls(source: str) -> list[str]:
    """Calls that could run code from a file or from user text."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        kw = {k.arg: k.value for k in node.keywords}
        if name.endswith("torch.load") or name == "load" and "map_location" in kw:
            wo = kw.get("weights_only")
            if not (isinstance(wo, ast.Constant) and wo.value is True):
                found.append(f"{name} without weights_only=True (line {node.lineno})")
        if name in ("pickle.load", "pickle.loads", "cPickle.load", "dill.load", "yaml.load"):
            found.append(f"{name} (line {node.lineno})")
        if name in ("eval", "exec", "os.system", "os.popen", "subprocess.getoutput"):
            found.append(f"{name} (line {node.lineno})")
        shell = kw.get("shell")
        if (
            isinstance(shell, ast.Constant)
            and shell.value is True
            or (shell is not None and not isinstance(shell, ast.Constant))
        ):
            found.append(f"{name} with shell=True (line {node.lineno})")
    return found


def test_the_scan_catches_unsafe_calls():
    bad = (
        "import torch, pickle, subprocess, os\n"
        "torch.load(p)\n"
        "torch.load(p, weights_only=False)\n"
        "pickle.loads(b)\n"
        "subprocess.run(cmd, shell=True)\n"
        "os.system('ls ' + name)\n"
        "eval(text)\n"
    )
    assert len(unsafe_calls(bad)) == 6
    assert (
        unsafe_calls("import torch\ntorch.load(p, map_location='cpu', weights_only=True)\n") == []
    )


def _our_python_files() -> list[Path]:
    files = [ROOT / name for name in os.listdir(ROOT) if name.endswith(".py")]
    for d in SOURCE_DIRS:
        files += sorted((ROOT / d).rglob("*.py")) if (ROOT / d).is_dir() else []
    return files


def test_no_unsafe_loading_or_shell_in_our_code():
    problems = []
    files = _our_python_files()
    assert any(f.parts[-3:] == ("engine", "artifacts", "models.py") for f in files)
    for f in files:
        problems += [f"{f.relative_to(ROOT)}: {p}" for p in unsafe_calls(f.read_text())]
    assert problems == []


def test_subprocesses_take_argument_lists_not_strings():
    """Every subprocess call passes a list, so user text cannot become shell syntax."""
    offenders = []
    for f in _our_python_files():
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Call) and _dotted(node.func) in (
                "subprocess.run",
                "subprocess.Popen",
                "subprocess.call",
                "subprocess.check_output",
                "subprocess.check_call",
            ):
                first = node.args[0] if node.args else None
                if isinstance(first, ast.Constant | ast.JoinedStr | ast.BinOp):
                    offenders.append(f"{f.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def _calls_by_function(path: Path) -> list[tuple[str, str]]:
    """(enclosing function, called name) for every call in ``path``."""
    out = []

    def visit(node: ast.AST, func: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = func
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = child.name
            if isinstance(child, ast.Call):
                out.append((func, _dotted(child.func).rsplit(".", 1)[-1]))
            visit(child, name)

    visit(ast.parse(path.read_text()), "<module>")
    return out


def test_tensorrt_plans_are_deserialised_only_from_the_checked_cache():
    """A plan reaches TensorRT in one place, fed by the hash-checked cache or a fresh build;
    no upload kind can carry a plan."""
    sites = []
    for f in _our_python_files():
        for func, name in _calls_by_function(f):
            if name == "deserialize_cuda_engine":
                sites.append((f.relative_to(ROOT).as_posix(), func))
    assert sites == [("engine/backends/tensorrt/load.py", "deserialize")]
    load = ROOT / "engine" / "backends" / "tensorrt" / "load.py"
    callers = {func for func, name in _calls_by_function(load) if name == "deserialize"}
    assert callers == {"obtain_engine"}
    source = load.read_text()
    fetch = source[source.index("def fetch_plan") : source.index("def plan_lock")]
    assert "load_plan(key)" in fetch  # the hash-checked cache, else a fresh build
    obtain = source[source.index("def obtain_engine") :]
    assert obtain.index("fetch_plan(") < obtain.index("deserialize(")
    for suffixes, _ in KINDS.values():
        assert not {".engine", ".plan", ".trt"} & set(suffixes)


def test_upload_kind_defaults_to_onnx_as_the_benchmark_page_calls_it():
    path = save_upload("net.onnx", b"\x08\x07" + b"\x01" * 16)
    assert path.parent == uploads_dir() / "onnx"
    with pytest.raises(BadInput, match="must end in .onnx"):
        save_upload("net.pt", _weights_bytes())
