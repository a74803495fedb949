"""Measure how far each precision strays from the FP32 reference, to set parity's tolerances.

For a zoo of small torchvision classifiers with the engine's random weights, on the CPU:
ONNX Runtime FP32 (the engine's own runner) against PyTorch FP32, and FP16 / BF16
emulated by casting a copy of the PyTorch model and its input (PyTorch's CPU kernels
compute in that type). Each comparison goes through ``engine.core.parity.compare`` on the
parity check's own inputs, so the numbers are the ones the tolerances judge. ``--raw``
adds models with torchvision's untouched initialisation, to show "not judged".

    nice -n 19 python benchmarks/parity_tolerances.py --out benchmarks/results/parity_tolerances
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ZOO = (
    "resnet18@64,mobilenet_v3_large@64,efficientnet_b0@64,convnext_tiny@64,regnet_y_400mf@64,"
    "shufflenet_v2_x1_0@64,squeezenet1_1@64,densenet121@64,swin_t@64,mnasnet1_0@64,"
    "efficientnet_v2_s@64,vit_b_16@224"
)
RAW = "efficientnet_b0@64,mobilenet_v3_large@64,vit_b_16@224"


def _cast_outputs(model, x, dtype):
    import numpy as np
    import torch

    with torch.no_grad():
        y = copy.deepcopy(model).to(dtype)(torch.from_numpy(x).to(dtype))
    return y.float().numpy().astype(np.float64)


def measure(name: str, size: int, raw: bool) -> list[dict]:
    import torch
    import torchvision

    from engine.artifacts.models import load_artifacts
    from engine.backends import get_backend
    from engine.backends.base import PrepareContext
    from engine.core.config import ModelSpec, RunnerSpec
    from engine.core.parity import PARITY_BATCH, compare

    art = load_artifacts(ModelSpec(name=name, image_size=size))
    x = art.sample_input(PARITY_BATCH, seed=99)
    if raw:
        torch.manual_seed(0)
        model = torchvision.models.get_model(name, weights=None).eval()
    else:
        model = art.torch_module()
    ref = _cast_outputs(model, x, torch.float32)
    outputs = {
        "fp16": ("torch cast", _cast_outputs(model, x, torch.float16)),
        "bf16": ("torch cast", _cast_outputs(model, x, torch.bfloat16)),
    }
    if not raw:
        spec = RunnerSpec("ort", "cpu", "fp32")
        ctx = PrepareContext(batches=(PARITY_BATCH,))
        with get_backend("ort").prepare(spec, art, ctx) as runner:
            outputs["fp32"] = ("onnxruntime cpu", runner.infer(x))
    recs = []
    for precision, (how, out) in sorted(outputs.items()):
        p = compare(ref, out, precision)
        recs.append(
            {
                "model": name,
                "image_size": size,
                "weights": "torchvision init" if raw else "engine random weights",
                "precision": precision,
                "how": how,
                "status": p.status,
                "reason": p.reason,
                "max_rel_err": p.max_rel_err,
                "mean_rel_err": p.mean_rel_err,
                "cosine": p.cosine,
                "top1_agree": p.top1_agree,
                "centred_std": float((ref - ref.mean(axis=0)).std()),
                "max_abs_logit": float(abs(ref).max()),
            }
        )
    return recs


def markdown(recs: list[dict], env: dict) -> str:
    lines = [
        "# Parity against the FP32 reference, per precision (CPU)",
        "",
        f"Machine: {env.get('cpu')}; torch {env.get('torch')}, onnxruntime"
        f" {env.get('onnxruntime')}; date {time.strftime('%Y-%m-%d', time.gmtime())}."
        " Made by `benchmarks/parity_tolerances.py`.",
        "",
        "| model | size | weights | precision | how | status | max rel err | cosine |"
        " top-1 agree | centred std |",
        "|---|---:|---|---|---|---|---:|---:|---:|---:|",
    ]
    for r in recs:
        lines.append(
            f"| {r['model']} | {r['image_size']} | {r['weights']} | {r['precision']} |"
            f" {r['how']} | {r['status']} {r['reason']} | {r['max_rel_err']:.3g} |"
            f" {r['cosine']:.6f} | {r['top1_agree']:.3f} | {r['centred_std']:.3g} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/parity_tolerances")
    ap.add_argument("--models", default=ZOO, help="name@size,...")
    ap.add_argument("--raw", default=RAW, help="name@size,... with torchvision's own init")
    args = ap.parse_args()
    from engine.backends import environment

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = out / "parity.jsonl"  # one line per comparison as it is made: a cut run resumes
    recs = [json.loads(ln) for ln in lines.read_text().splitlines()] if lines.is_file() else []
    done = {(r["model"], r["image_size"], r["weights"]) for r in recs}
    for group, raw in ((args.models, False), (args.raw, True)):
        for item in filter(None, group.split(",")):
            name, _, size = item.partition("@")
            weights = "torchvision init" if raw else "engine random weights"
            if (name, int(size or 224), weights) in done:
                continue
            new = measure(name, int(size or 224), raw)
            with lines.open("a") as f:
                f.writelines(json.dumps(r) + "\n" for r in new)
            recs += new
            print(json.dumps(new[-1]), flush=True)
    env = environment("cpu")
    (out / "parity.json").write_text(json.dumps({"environment": env, "rows": recs}, indent=1))
    (out / "parity.md").write_text(markdown(recs, env))


if __name__ == "__main__":
    main()
