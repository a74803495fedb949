"""The sidebar's ONNX-file source: the upload (one file, a model with its data files, or one
.zip) and the size the file runs at, in two fields (height, width).

A size the file declares is shown in fields that cannot be changed; a symbolic side takes
what the fields say (224 at first, with a note that it was chosen). The spec comes from
:func:`engine.artifacts.onnx_source.onnx_spec`, the function the CLI uses too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from engine.artifacts.float_mix import precision_note
from engine.artifacts.onnx_source import (
    DEFAULT_SIDE,
    inputs_words,
    inspected,
    layout_note,
    onnx_spec,
)
from engine.artifacts.upload_bundle import save_onnx_bundle
from engine.artifacts.uploads import KINDS, save_onnx_upload
from engine.core.config import ModelSpec
from engine.core.errors import EngineError
from engine.core.text import markdown_text
from pages.widgets import kept

MAX_UPLOAD_MB = KINDS["onnx"][1] // 2**20
NO_FILE = "no ONNX file yet"


def _save(files: list[Any]) -> str:
    pairs = [(f.name, f.getvalue()) for f in files]
    if len(pairs) == 1 and pairs[0][0].lower().endswith(".onnx"):
        return str(save_onnx_upload(*pairs[0]))
    return str(save_onnx_bundle(pairs))


def _upload(sb: Any, problems: list[str]) -> str | None:
    """The saved model's path, or None; a bad upload is a problem now, not at Run sweep."""
    files = sb.file_uploader(
        f"ONNX file, with its data files if it has any (or one .zip; up to {MAX_UPLOAD_MB} MB)",
        accept_multiple_files=True,
        key="vb_upload",
        help="torch.onnx.export may write model.onnx and model.onnx.data: upload both.",
    )
    ids = tuple(f.file_id for f in files or [])
    if ids and st.session_state.get("vb_onnx_file_id") != ids:
        st.session_state.pop("vb_onnx_saved", None)
        try:
            path = _save(files)
            st.session_state["vb_onnx_saved"] = (files[0].name, path)
            st.session_state["vb_onnx_file_id"] = ids
        except EngineError as exc:
            st.session_state.pop("vb_onnx_file_id", None)
            problems.append(exc.user_message())
            return None
    saved = st.session_state.get("vb_onnx_saved")
    if saved and Path(saved[1]).is_file():
        # Kept across pages: Streamlit may hand a page no files for a widget drawn before.
        sb.caption(f"Using the uploaded {markdown_text(Path(saved[1]).name)}.")
        return saved[1]
    problems.append("Upload an ONNX image classifier, or pick a torchvision model.")
    return None


def _size_fields(sb: Any, path: str) -> tuple[int, int] | None:
    """Height and width: the declared ones (fixed fields) or the user's for symbolic sides."""
    info = inspected(path)
    left, right = sb.columns(2)
    sides = []
    for col, declared, name in ((left, info.height, "Height"), (right, info.width, "Width")):
        if declared is not None:
            col.number_input(f"{name} (fixed by the file)", value=declared, disabled=True)
            sides.append(declared)
        else:
            key = f"vb_onnx_{name.lower()}"
            sides.append(
                int(col.number_input(f"{name} (pixels)", 1, 8192, **kept(key, DEFAULT_SIDE)))
            )
    if info.height is None or info.width is None:
        sb.caption(
            f"This file takes any image {'size' if info.height == info.width else 'side'}: it"
            f" runs at the size above ({DEFAULT_SIDE} unless you change it)."
        )
        return sides[0], sides[1]
    return None


def onnx_model_inputs(sb: Any, problems: list[str]) -> ModelSpec:
    """The ONNX source's spec; a placeholder spec (and a problem) while there is no file."""
    path = _upload(sb, problems)
    if path is None:
        return ModelSpec(name=NO_FILE)
    try:
        spec, note = onnx_spec(path, _size_fields(sb, path))
    except EngineError as exc:
        problems.append(exc.user_message())
        return ModelSpec(name=NO_FILE)
    if note:
        sb.caption(markdown_text(note))
    info = inspected(path)
    if said := precision_note(Path(path).name, info.floats):  # before any run: the live
        sb.caption(markdown_text(said))  # card of an FP16 file runs the copy
    if info.layout == "NHWC":
        sb.caption(markdown_text(layout_note(info.input_name, Path(path).name)))
    sb.caption(f"Inputs: {markdown_text(inputs_words(path))}.")
    return spec


def fixed_batch(spec: ModelSpec) -> int | None:
    """The batch an ONNX file's input fixes (``torch.onnx.export`` fixes it unless told
    otherwise), or None: a torchvision model, a dynamic batch, or no readable file yet."""
    if not spec.onnx_path:
        return None
    try:
        return inspected(spec.onnx_path).fixed_batch
    except EngineError:  # said where the file was read
        return None
