"""Files a browser hands us (ONNX models, weights, result files, images), stored safely.

An upload is written only under ``engine.core.paths.uploads_dir()/<kind>/``, under a name we
generate: a whitelisted form of the original stem (for the label users see) plus the
content hash (so Streamlit's reruns and repeated uploads reuse one file). The
original name is used for nothing else, so ``../``, absolute paths, odd characters or a
misleading extension cannot place or run anything. Sizes are capped per kind and the
content must start like the kind it claims to be; loading stays the job of the
validating loaders (``inspect_onnx``, ``load_state_dict`` with ``weights_only=True``).
"""

from __future__ import annotations

import hashlib
import heapq
import os
import re
from pathlib import Path
from typing import Any

from engine.core.errors import BadInput
from engine.core.paths import uploads_dir

MB = 1024**2
# Per kind: accepted extensions and the largest upload in bytes.
KINDS: dict[str, tuple[tuple[str, ...], int]] = {
    "onnx": ((".onnx",), 500 * MB),
    "weights": ((".pt", ".pth", ".bin", ".ckpt"), 500 * MB),
    "json": ((".json",), 64 * MB),
    "image": ((".jpg", ".jpeg", ".png", ".bmp", ".webp"), 32 * MB),
}
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM", b"RIFF")
_STEM_CHARS = re.compile(r"[^A-Za-z0-9_-]+")


def safe_stem(name: str) -> str:
    """The original file name reduced to ``[A-Za-z0-9_-]``, at most 48 characters."""
    base = re.split(r"[\\/]", name)[-1]
    stem = base.rsplit(".", 1)[0] if "." in base else base
    stem = _STEM_CHARS.sub("_", stem).strip("_-")[:48]
    return stem or "upload"


def _check_content(kind: str, data: bytes, name: str) -> None:
    if kind == "image":
        if not data.startswith(_IMAGE_MAGIC) or (data[:4] == b"RIFF" and data[8:12] != b"WEBP"):
            raise BadInput(f"{name} is not a PNG, JPEG, BMP or WebP image", fix="upload an image")
    elif kind == "json":
        if data.lstrip()[:1] not in (b"{", b"["):
            raise BadInput(f"{name} is not a JSON document", fix="upload a bench --json file")
    elif kind == "weights":
        # torch.save writes a zip archive; older files are a bare pickle (protocol 2+).
        if not (data.startswith(b"PK\x03\x04") or data[:1] == b"\x80"):
            raise BadInput(
                f"{name} is not a file written by torch.save",
                fix="save weights with torch.save(model.state_dict(), path)",
            )


def save_upload(name: str, data: bytes, kind: str = "onnx") -> Path:
    """Store ``data`` (uploaded as ``name``) and return where it now lives.

    Raises :class:`BadInput` for an unknown kind, a wrong extension, an empty or oversized
    upload, or content that is not what the kind says.
    """
    if kind not in KINDS:
        raise BadInput(f"unknown upload kind '{kind}'", f"kinds are {', '.join(KINDS)}")
    suffixes, limit = KINDS[kind]
    shown = safe_stem(name)
    ext = os.path.splitext(name)[1].lower()
    if ext not in suffixes:
        raise BadInput(
            f"{shown}{ext} cannot be used as {kind}",
            f"a {kind} upload must end in {', '.join(suffixes)}",
            "upload the right file",
        )
    if not data:
        raise BadInput(f"{shown}{ext} is empty", fix="upload the file again")
    if len(data) > limit:
        raise BadInput(
            f"{shown}{ext} is {len(data) / MB:.0f} MB",
            f"{kind} uploads are limited to {limit / MB:.0f} MB",
            "use the CLI with a local path for larger files",
        )
    _check_content(kind, data, f"{shown}{ext}")
    digest = hashlib.sha256(data).hexdigest()[:16]
    folder = uploads_dir() / kind
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{shown}-{digest}{ext}"
    if final.is_file() and final.stat().st_size == len(data):
        return final
    tmp = folder / f".{digest}.{os.getpid()}.part"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, final)  # readers never see half a file
    return final


def check_onnx_upload(path: Path, shown: str) -> None:
    """BadInput unless ``path`` has one NCHW float input (what every ONNX source gets) and
    passes ``onnx.checker``; ``shown`` names it in the message."""
    from engine.artifacts.onnx_source import inspect_onnx

    inspect_onnx(path)
    try:
        _check_model(path)
    except Exception as exc:  # noqa: BLE001 - ValidationError, and C++ errors for odd graphs
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise BadInput(
            f"{shown} is not a valid ONNX model",
            first or type(exc).__name__,
            "upload a file written by torch.onnx.export or another ONNX exporter",
        ) from exc


def _check_model(path: Path) -> None:
    """``onnx.checker`` on ``path``; a graph whose only fault is its node order is checked
    again in order. ONNX Runtime's FP16 converter (``convert_float_to_float16`` with
    ``keep_io_types`` or an ``op_block_list``) appends its Cast nodes at the end of the graph;
    ONNX Runtime and TensorRT order a graph themselves and run it, and the CLI took such a
    file while the dashboard refused it as invalid."""
    import onnx

    try:
        onnx.checker.check_model(str(path))
    except onnx.checker.ValidationError as exc:
        if "topologically sorted" not in str(exc):
            raise
        model = onnx.load(str(path))  # with its data: the in-memory check reads no files
        if not sort_nodes(model.graph):
            raise
        onnx.checker.check_model(model)


def sort_nodes(graph: Any) -> bool:
    """Order ``graph``'s nodes so each comes after the nodes it reads (a subgraph's outer
    names included), keeping the file's order where it can; False if no order exists."""
    nodes = list(graph.node)
    known = {"", *(i.name for i in graph.input), *(t.name for t in graph.initializer)}
    known |= {s.values.name for s in graph.sparse_initializer}
    producer = {out: i for i, n in enumerate(nodes) for out in n.output if out}
    needs = [{producer[x] for x in _reads(n) if x not in known and x in producer} for n in nodes]
    readers: dict[int, list[int]] = {}
    for i, deps in enumerate(needs):
        for d in deps:
            readers.setdefault(d, []).append(i)
    waiting = [len(deps) for deps in needs]
    ready = [i for i, w in enumerate(waiting) if not w]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)  # the earliest in the file of those ready
        order.append(i)
        for r in readers.get(i, ()):
            waiting[r] -= 1
            if not waiting[r]:
                heapq.heappush(ready, r)
    if len(order) != len(nodes):
        return False  # a cycle, or a node reading itself
    graph.ClearField("node")
    graph.node.extend(nodes[i] for i in order)
    return True


def _reads(node: Any) -> set[str]:
    """The names ``node`` reads: its inputs and every name its subgraphs read."""
    from engine.artifacts.external_data import subgraphs

    names = set(node.input)
    for g in subgraphs(node):
        for inner in g.node:
            names |= _reads(inner)
    return names


def save_onnx_upload(name: str, data: bytes) -> Path:
    """Store an uploaded ONNX model and check it at once, so a bad file fails on upload.

    An upload is one file here, so it cannot lean on external data beside it (a model with
    its data files comes through engine.artifacts.upload_bundle). A file that fails is not
    kept.
    """
    path = save_upload(name, data, "onnx")
    try:
        check_onnx_upload(path, f"{safe_stem(name)}.onnx")
    except BadInput:
        path.unlink(missing_ok=True)
        raise
    return path
