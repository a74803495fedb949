"""Write the tiny ONNX files under tests/data/onnx/ the ways people make them.

Each is a small CNN classifier (a few KB of weights), exported by torch's dynamo exporter
or the legacy one (``dynamo=False``), with and without dynamic height and width, with its
weights in a data file beside it, at 28, 48 and 299 px, non-square, one-channel, and with
several outputs, one whose dynamic batch is fixed inside the graph, one with the batch fixed
at 1 on its input (the dynamo exporter's default), one whose head reads
the batch at run time (``x.view(x.size(0), -1)``), one in FP16 and one that takes uint8
pixels and normalises them itself. The suite benchmarks each through the CLI. Run again after changing
this script: ``.venv/bin/python scripts/make_test_onnx.py``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import warnings
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "onnx"
OTHER_EXPORTERS = ("tf2onnx_",)  # written by scripts/make_tf2onnx_test_files.py


class Tiny(torch.nn.Module):
    """Conv, ReLU, global pooling, linear head: any side of 3 px or more works (a 1×1
    input, what the old placement probe fed a dynamic file, fails in the Conv)."""

    def __init__(self, channels: int = 3, classes: int = 10, features: bool = False) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, 8, 3, stride=2)  # no padding: 1×1 fails
        self.head = torch.nn.Linear(8, classes)
        self.extra = torch.nn.Linear(8, 5) if features == "ambiguous" else None
        self.features = features

    def forward(self, x):
        f = torch.relu(self.conv(x))
        pooled = torch.nn.functional.adaptive_avg_pool2d(f, 1).flatten(1)
        logits = self.head(pooled)
        if self.features == "ambiguous":
            return logits, self.extra(pooled)  # two 2-D outputs: which is the logits?
        if self.features:
            return f, logits  # a feature map first, the logits second
        return logits


class BakedBatch(Tiny):
    """Declares a dynamic batch but reshapes to the export batch (``view(2, -1)`` traced
    with literal numbers): a Reshape whose constant shape starts with 2, so any other
    batch fails inside the graph although the input says any batch."""

    def forward(self, x):
        f = torch.relu(self.conv(x))
        return self.head(torch.nn.functional.adaptive_avg_pool2d(f, 1).view(2, -1))


class Pixels(Tiny):
    """Takes uint8 pixels and normalises them itself (ImageNet mean and spread), as a model
    exported for deployment with its preprocessing inside does."""

    def forward(self, x):
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        return super().forward((x.float() / 255 - mean) / std)


class ViewHead(Tiny):
    """The head flattened by ``x.view(x.size(0), -1)``: the batch is read at run time
    (Shape, Gather, Concat before the Reshape), so shape inference cannot follow it."""

    def forward(self, x):
        f = torch.nn.functional.adaptive_avg_pool2d(torch.relu(self.conv(x)), 1)
        return self.head(f.view(f.size(0), -1))


def example(shape, dtype=None):
    if dtype == torch.uint8:
        return torch.randint(0, 256, shape, dtype=dtype)
    return torch.randn(*shape, dtype=dtype)


def legacy(name: str, model, shape, dynamic_hw: bool, outputs=("logits",), dtype=None) -> None:
    axes = {0: "batch", 2: "height", 3: "width"} if dynamic_hw else {0: "batch"}
    dyn = {"input": axes, **{o: {0: "batch"} for o in outputs}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (example(shape, dtype),), str(OUT / name), dynamo=False,
            input_names=["input"], output_names=list(outputs), dynamic_axes=dyn,
            opset_version=17,
        )  # fmt: skip


def dynamo(
    name: str, model, shape, dynamic_hw: bool, external: bool = False, batch: bool = True
) -> None:
    """batch=False: the exporter's default, every dimension as exported (batch fixed)."""
    from torch.export import Dim

    dims = {0: Dim("batch", max=64)} if batch else {}
    if dynamic_hw:
        dims.update({2: Dim("height", min=8, max=1024), 3: Dim("width", min=8, max=1024)})
    target = OUT / name
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        model, (torch.randn(*shape),), str(target), dynamo=True,
        dynamic_shapes={"x": dims} if dims else None, external_data=external, verbose=False,
    )  # fmt: skip
    strip_machine_paths(target)


def strip_machine_paths(path: Path) -> None:
    """The dynamo exporter stores each node's Python stack trace, with the absolute paths of
    the machine that exported it: keep the traces (users' files have them), drop the
    folders above ``scripts/`` and ``site-packages/``."""
    import re

    import onnx

    model = onnx.load(str(path), load_external_data=False)
    above = re.compile(r'File "[^"]*?/(scripts/|site-packages/)')
    for node in model.graph.node:
        for prop in node.metadata_props:
            prop.value = above.sub(r'File "\1', prop.value)
    onnx.save(model, str(path))


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(
        description=__doc__.split("\n\n", 1)[0],
        epilog=f"Replaces its files under {OUT.relative_to(OUT.parents[2])}/ (not tf2onnx_*).",
    ).parse_args(argv)  # no options: --help or a stray argument writes nothing
    OUT.mkdir(parents=True, exist_ok=True)
    for p in OUT.iterdir():  # the files of other exporters' scripts stay
        if not p.name.startswith(OTHER_EXPORTERS):
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    torch.manual_seed(0)
    legacy("legacy_fixed_48.onnx", Tiny().eval(), (1, 3, 48, 48), dynamic_hw=False)
    legacy("legacy_dynamic_hw.onnx", Tiny().eval(), (1, 3, 48, 48), dynamic_hw=True)
    legacy("legacy_fixed_299.onnx", Tiny().eval(), (1, 3, 299, 299), dynamic_hw=False)
    legacy("legacy_fixed_40x56.onnx", Tiny().eval(), (1, 3, 40, 56), dynamic_hw=False)
    legacy("legacy_gray_28.onnx", Tiny(channels=1).eval(), (1, 1, 28, 28), dynamic_hw=False)
    two = Tiny(features=True).eval()
    legacy("legacy_two_outputs.onnx", two, (1, 3, 32, 32), False, ("features", "logits"))
    both = Tiny(features="ambiguous").eval()
    legacy("legacy_ambiguous_outputs.onnx", both, (1, 3, 32, 32), False, ("a", "b"))
    dynamo("dynamo_fixed_28.onnx", Tiny().eval(), (2, 3, 28, 28), dynamic_hw=False)
    dynamo("dynamo_dynamic_hw.onnx", Tiny().eval(), (2, 3, 48, 48), dynamic_hw=True)
    dynamo("dynamo_gray_dynamic_hw.onnx", Tiny(channels=1).eval(), (2, 1, 28, 28), True)
    dynamo("external/model.onnx", Tiny().eval(), (2, 3, 48, 48), False, external=True)
    dynamo("dynamo_static_batch_1.onnx", Tiny().eval(), (1, 3, 32, 32), False, batch=False)
    legacy("legacy_baked_batch_2.onnx", BakedBatch().eval(), (2, 3, 32, 32), dynamic_hw=False)
    legacy("legacy_view_head_28.onnx", ViewHead().eval(), (1, 3, 28, 28), dynamic_hw=False)
    half = Tiny().half().eval()  # exported in FP16, as people do for GPUs
    legacy("legacy_fp16_32.onnx", half, (1, 3, 32, 32), False, dtype=torch.float16)
    legacy("legacy_uint8_32.onnx", Pixels().eval(), (1, 3, 32, 32), False, dtype=torch.uint8)
    for p in sorted(OUT.rglob("*")):
        if p.is_file():
            print(f"{p.relative_to(OUT)}: {p.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
