"""An ONNX file older than opset 13 brought to the opset int8 quantisation needs.

The int8 rows quantise per channel, and a per-channel ``QuantizeLinear`` /
``DequantizeLinear`` (its ``axis``) exists from opset 13: ONNX Runtime's quantiser wrote
such nodes into an opset-11 or -12 file as it was, and the model it made did not load
("Unrecognized attribute: axis for operator DequantizeLinear"; a TorchScript export at
opset 11, 2026-12-08). Below opset 11 its pre-processing converts the file itself and fails
on the commonest one: it swaps an opset-9 ``Upsample`` for a ``Resize`` before converting,
and ONNX's converter then finds no ``Resize`` at opset 9 ("No Adapter From Version $9 for
Resize"). So the private copy the quantiser reads is converted first, here, with ONNX's
version converter. That converter's Resize 10 → 11 step leaves out Resize-10's coordinates
(asymmetric, rounding down), so a linear ``Upsample`` moved by half a pixel (measured: a
max difference of 0.083 on a 4-channel test model); they are put back. The copy is used
only where its outputs agree with the file's by the product's parity check at FP32;
otherwise int8 is not applicable to that file, with the reason. The file itself runs
unchanged in every other row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from engine.core.errors import NotApplicable

TARGET_OPSET = 13  # per-channel QuantizeLinear (its axis) needs opset 13


def default_opset(model: Any) -> int:
    """The version of the default ONNX operator set the model imports (0: none)."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def file_opset(path: Path) -> int:
    import onnx

    return default_opset(onnx.load(str(path), load_external_data=False))


def needs_copy(path: Path) -> bool:
    """Whether the quantiser must read an opset-``TARGET_OPSET`` copy of ``path``."""
    return 0 < file_opset(path) < TARGET_OPSET


def converted_copy(src: Path, out: Path, feeds: list[dict[str, np.ndarray]], name: str) -> str:
    """Write ``src`` at opset ``TARGET_OPSET`` to ``out`` once its outputs on ``feeds`` agree
    with the file's; the note that says what the int8 rows then ran. NotApplicable where
    the converter cannot convert the file or the copy computes something else."""
    import onnx
    from onnx import version_converter

    model = onnx.load(str(src))
    opset = default_opset(model)
    fix = f"export the model at opset {TARGET_OPSET} or newer for int8"
    try:
        converted = version_converter.convert_version(model, TARGET_OPSET)
    except Exception as exc:  # noqa: BLE001 - the converter asserts in C++ (RuntimeError, ...)
        raise NotApplicable(
            f"int8 quantisation cannot read {name}: ONNX's version converter cannot bring"
            f" this opset-{opset} file to opset {TARGET_OPSET}, which per-channel int8 needs",
            _unconvertible(model, exc),
            fix,
        ) from exc
    _resize_10_coordinates(converted.graph)
    onnx.save(converted, str(out))
    parity = _agreement(src, out, feeds)
    said = (
        f"max relative error {parity.max_rel_err:.1e}, cosine {parity.cosine:.6f}"
        if parity.max_rel_err is not None and parity.cosine is not None
        else ""
    )
    if parity.ok is not True:
        raise NotApplicable(
            f"int8 quantisation cannot use {name}: its opset-{TARGET_OPSET} copy (the file is"
            f" opset {opset}; per-channel int8 needs {TARGET_OPSET}) does not agree"
            " with it",
            f"the parity check at FP32 says {parity.status}"
            + (f" ({parity.reason})" if parity.reason else f" ({said})"),
            fix,
        )
    return (
        f"int8 of {name}: quantised from an opset-{TARGET_OPSET} copy of the file (it is opset"
        f" {opset}; per-channel int8 needs {TARGET_OPSET}), made by ONNX's version"
        f" converter; the copy's outputs agree with the file's ({said})"
    )


def _resize_10_coordinates(graph: Any) -> None:
    """Give every Resize of a converted file Resize-10's (and Upsample's) coordinates."""
    from onnx import helper

    for node in graph.node:
        if node.op_type != "Resize":
            continue
        kept = [a for a in node.attribute if a.name not in ("coordinate_transformation_mode",
                                                              "nearest_mode")]  # fmt: skip
        del node.attribute[:]
        node.attribute.extend(kept)
        node.attribute.append(helper.make_attribute("coordinate_transformation_mode", "asymmetric"))
        node.attribute.append(helper.make_attribute("nearest_mode", "floor"))


def _agreement(src: Path, copy: Path, feeds: list[dict[str, np.ndarray]]) -> Any:
    """The parity check at FP32 of the copy against the file, over every output (the
    worst one), on the calibration feeds."""
    import onnxruntime as ort

    from engine.core.parity import compare

    def outputs(path: Path) -> list[np.ndarray]:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        runs = [session.run(None, feed) for feed in feeds]
        return [
            np.concatenate([r[i].reshape(len(r[i]), -1) for r in runs]) for i in range(len(runs[0]))
        ]

    results = [compare(a, b, "fp32") for a, b in zip(outputs(src), outputs(copy), strict=True)]
    return next((r for r in results if r.ok is not True), results[0])


def _unconvertible(model: Any, exc: BaseException) -> str:
    """Why the converter stopped: operators no operator set of ONNX defines any more (the
    experimental ones of old exporters, such as ImageScaler), else its own first line."""
    import onnx

    gone = sorted(
        {
            n.op_type
            for n in model.graph.node
            if n.domain in ("", "ai.onnx") and not onnx.defs.has(n.op_type)
        }
    )
    if gone:
        many = len(gone) > 1
        return (
            f"its {', '.join(gone)} operator{'s' if many else ''} no longer"
            f" exist{'' if many else 's'} in ONNX (an experimental operator of old exporters),"
            f" so there is nothing to convert {'them' if many else 'it'} to"
        )
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
