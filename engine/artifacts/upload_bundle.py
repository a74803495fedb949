"""An uploaded ONNX model with its external-data files: several files, or one ``.zip``.

torch's default exporter writes ``model.onnx`` plus ``model.onnx.data``; a browser user
cannot copy a file next to another, so the model and its data files are uploaded together
and stored in one folder of their own under ``uploads_dir()/onnx-bundles/``. The data
files keep the names the model refers to (each a plain file name, checked); nothing else
from the browser names anything. A ``.zip`` is opened with caps against zip bombs (the
declared sizes and the bytes really read both count against the upload limit) and refuses
links, absolute paths and ``..``. A data file the model needs and the upload lacks is
named, with how to add it.
"""

from __future__ import annotations

import hashlib
import io
import re
import stat
import zipfile
from pathlib import Path, PurePosixPath

from engine.artifacts.uploads import KINDS, MB, check_onnx_upload, safe_stem
from engine.core.errors import BadInput
from engine.core.paths import uploads_dir

LIMIT = KINDS["onnx"][1]  # the whole upload, model and data together
MAX_ENTRIES = 1000
_DATA_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}$")


def _zip_entries(name: str, data: bytes) -> list[tuple[str, bytes]]:
    """The files of a ``.zip`` (by their base names), checked before anything is written."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise BadInput(f"{safe_stem(name)}.zip is not a readable zip archive") from exc
    infos = [i for i in archive.infolist() if not i.is_dir()]
    if len(infos) > MAX_ENTRIES:
        raise BadInput(f"{safe_stem(name)}.zip holds {len(infos)} files", f"at most {MAX_ENTRIES}")
    declared = sum(i.file_size for i in infos)
    if declared > LIMIT:
        raise BadInput(
            f"{safe_stem(name)}.zip unpacks to {declared / MB:.0f} MB",
            f"an ONNX upload (model and data) is limited to {LIMIT / MB:.0f} MB",
            "use the CLI with a local path for larger models",
        )
    out, total = [], 0
    for info in infos:
        path = PurePosixPath(info.filename.replace("\\", "/"))
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise BadInput(
                f"{safe_stem(name)}.zip holds a link ({info.filename!r})", "links are refused"
            )
        if path.is_absolute() or ".." in path.parts or info.filename.startswith(("/", "\\")):
            raise BadInput(
                f"{safe_stem(name)}.zip holds the path {info.filename!r}",
                "absolute paths and '..' are refused inside an upload",
                "zip the model and its data files side by side",
            )
        with archive.open(info) as f:
            blob = f.read(LIMIT - total + 1)  # never more than the limit, whatever it declares
        total += len(blob)
        if total > LIMIT:
            raise BadInput(
                f"{safe_stem(name)}.zip unpacks to more than {LIMIT / MB:.0f} MB",
                "an ONNX upload (model and data) is limited to that",
            )
        out.append((path.name, blob))
    return out


def _files(files: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    if len(files) == 1 and files[0][0].lower().endswith(".zip"):
        files = _zip_entries(*files[0])
    total = sum(len(d) for _, d in files)
    if total > LIMIT:
        raise BadInput(
            f"the upload is {total / MB:.0f} MB",
            f"an ONNX upload (model and data) is limited to {LIMIT / MB:.0f} MB",
            "use the CLI with a local path for larger models",
        )
    return files


def save_onnx_bundle(files: list[tuple[str, bytes]]) -> Path:
    """Store an ONNX model and its data files (``(name, bytes)`` pairs, or one ``.zip``) in
    a folder of their own and check the model at once; return the model's path."""
    import onnx

    from engine.artifacts.external_data import external_locations

    files = _files(files)
    models = [(n, d) for n, d in files if n.lower().endswith(".onnx")]
    if len(models) != 1:
        found = ", ".join(safe_stem(n) + ".onnx" for n, _ in models) or "none"
        raise BadInput(
            f"the upload holds {len(models)} .onnx files ({found})",
            "one model is uploaded at a time, with its data files",
        )
    model_name, model_data = models[0]
    shown = f"{safe_stem(model_name)}.onnx"
    try:
        model = onnx.load_model_from_string(model_data)
    except Exception as exc:  # noqa: BLE001 - protobuf raises several kinds
        raise BadInput(f"{shown} is not a readable ONNX model") from exc
    others = {n: d for n, d in files if (n, d) != models[0]}
    needed = external_locations(model)
    bad = [loc for loc in needed if not _DATA_NAME.match(loc)]
    if bad:
        raise BadInput(
            f"{shown} refers to external data '{bad[0]}'",
            "an uploaded model's data files must be plain file names beside it",
            "re-save the model with its data files next to it",
        )
    missing = [loc for loc in needed if loc not in others]
    if missing:
        raise BadInput(
            f"{shown} needs {', '.join(missing)}, which the upload lacks",
            "its weights live in those files",
            f"upload {shown} and {', '.join(missing)} together (select them all, or one .zip)",
        )
    digest = hashlib.sha256(model_data)
    for loc in needed:
        digest.update(hashlib.sha256(others[loc]).digest())
    folder = uploads_dir() / "onnx-bundles" / f"{safe_stem(model_name)}-{digest.hexdigest()[:16]}"
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in [(shown, model_data), *((loc, others[loc]) for loc in needed)]:
        target = folder / name
        if not (target.is_file() and target.stat().st_size == len(data)):
            tmp = folder / f".{name}.part"
            tmp.write_bytes(data)
            tmp.replace(target)
    return _checked(folder / shown)


def _checked(path: Path) -> Path:
    import shutil

    try:
        check_onnx_upload(path, path.name)
    except BadInput:
        shutil.rmtree(path.parent, ignore_errors=True)
        raise
    return path
