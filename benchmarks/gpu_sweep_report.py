"""The markdown report of benchmarks/gpu_sweep.py: ``<out>/gpu_sweep.md`` from its JSONs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sweep import markdown_table

STAGE_NAMES = ("device", "e2e", "compile", "profile", "concurrency")


def _fmt_p50(s: dict[str, Any]) -> str:
    if s["status"] != "ok":
        return s["status"]
    p = s["p50_ms"]
    return f"{p['median']:.3f} ({p['min']:.3f}–{p['max']:.3f}, ±{p['spread_pct'] / 2:.1f}%)"


def summary_table(summary: list[dict[str, Any]]) -> str:
    batches = sorted({s["batch"] for s in summary})
    labels = list(dict.fromkeys(s["label"] for s in summary))
    lines = []
    for label in labels:
        cells = [label]
        for b in batches:
            s = next((x for x in summary if x["label"] == label and x["batch"] == b), None)
            cells.append("-" if s is None else _fmt_p50(s))
        par = [
            x["parity_ok"] for x in summary if x["label"] == label and x["parity_ok"] is not None
        ]
        cells.append("-" if not par else ("ok" if all(par) else "FAIL"))
        lines.append(cells)
    head = ["configuration", *[f"b{b} p50 ms (min–max)" for b in batches], "parity"]
    return markdown_table(head, lines)


def ips_table(summary: list[dict[str, Any]]) -> str:
    batches = sorted({s["batch"] for s in summary})
    labels = list(dict.fromkeys(s["label"] for s in summary))
    lines = []
    for label in labels:
        cells = [label]
        for b in batches:
            s = next((x for x in summary if x["label"] == label and x["batch"] == b), None)
            ok = s is not None and s["status"] == "ok"
            cells.append(f"{s['throughput_ips']:,.0f}" if ok else "-")
        lines.append(cells)
    return markdown_table(["configuration", *[f"b{b} img/s" for b in batches]], lines)


def targets(device_doc: dict[str, Any], compile_doc: dict[str, Any] | None) -> list[list[str]]:
    summary = [s for s in device_doc["summary"] if s["status"] == "ok"]
    if compile_doc:
        summary += [s for s in compile_doc["summary"] if s["status"] == "ok"]
    good = [s for s in summary if s["parity_ok"] is not False]

    def best(b: int) -> dict[str, Any] | None:
        c = [s for s in good if s["batch"] == b]
        return min(c, key=lambda s: s["p50_ms"]["median"]) if c else None

    def base(b: int) -> dict[str, Any] | None:
        return next((s for s in summary if s["batch"] == b and s["label"] == "PyTorch FP32"), None)

    out = []
    b32, f32 = best(32), base(32)
    if b32 and f32:
        ms = b32["p50_ms"]["median"]
        x = f32["p50_ms"]["median"] / ms
        ok = ms <= 1.8 and x >= 6.5
        out.append(
            [
                "batch 32 ≤ 1.8 ms and ≥ 6.5× FP32",
                f"{ms:.3f} ms, {x:.1f}× ({b32['label']})",
                "met" if ok else "not met",
            ]
        )
    b1 = best(1)
    if b1:
        ms = b1["p50_ms"]["median"]
        out.append(
            [
                "batch 1 ≤ 0.55 ms",
                f"{ms:.3f} ms ({b1['label']})",
                "met" if ms <= 0.55 else "not met",
            ]
        )
    b256 = best(256)
    if b256:
        ips = b256["throughput_ips"]
        out.append(
            [
                "batch 256 ≥ 20,000 img/s",
                f"{ips:,.0f} img/s ({b256['label']})",
                "met" if ips >= 20000 else "not met",
            ]
        )
    worst = max(
        (p["auto_over_fastest"] for p in device_doc["auto"]["picks"] if p["auto_over_fastest"]),
        default=None,
    )
    if worst is not None:
        out.append(
            [
                "auto within 5% of the fastest",
                f"worst batch: {100 * (worst - 1):+.1f}%",
                "met" if worst <= 1.05 else "not met",
            ]
        )
    return out


def _header(docs: dict[str, Any]) -> list[str]:
    first = docs.get("device") or next(iter(docs.values()))
    m, model = first["machine"], first["settings"]["model"]
    return [
        f"# {model} on one GPU: from the naive baseline to the tuned end",
        "",
        f"{m.get('gpu')} (driver {m.get('driver')}, {m.get('memory_total_mb', 0) / 1024:.0f} GiB,"
        f" SM clock max {m.get('max_sm_clock_mhz')} MHz), {m.get('date_utc')};"
        f" torch {m.get('torch')} (CUDA {m.get('cuda')}, cuDNN {m.get('cudnn')}),"
        f" onnxruntime {m.get('onnxruntime')} ({m.get('onnxruntime_package')}), Python"
        f" {m.get('python')}. {model}, random weights, {first['settings']['image_size']} px. Each figure is the median p50"
        " over repeated runs (each run a fresh build: session, capture, cuDNN search), with"
        " min–max and ± half the spread; clocks sampled by NVML after every point"
        " (benchmarks/gpu_sweep.py).",
    ]


def _when(doc: dict[str, Any]) -> str:
    """Stages may come from different sessions on the same kind of machine: say when."""
    return f"(measured {doc['machine'].get('date_utc')})"


def _device(d: dict[str, Any]) -> list[str]:
    clocks = sorted(c for s in d["summary"] for c in s.get("sm_clock_mhz", []) if c is not None)
    reps = max((r["repeat"] for r in d["rows"]), default=0) + 1
    return [
        "",
        f"## Device-resident ({reps} runs; repeat 1 is auto mode itself) {_when(d)}",
        "",
        f"SM clock after each point: {clocks[0]}–{clocks[-1]} MHz." if clocks else "",
        "",
        summary_table(d["summary"]),
        "",
        ips_table(d["summary"]),
        "",
    ]


def _compile(c: dict[str, Any]) -> list[str]:
    return [
        f"## torch.compile (max-autotune, FP16, channels-last) {_when(c)}",
        "",
        summary_table(c["summary"]),
        "",
        f"Compile time per batch size (first start): {c['compile_s']} s; a second start in a"
        f" fresh runner took {c['second_start']['seconds']:.1f} s in all (on-disk cache),"
        f" p50 {c['second_start']['p50_ms']:.3f} ms.",
        "",
    ]


def _auto(d: dict[str, Any]) -> list[str]:
    head = [
        "batch",
        "auto picked",
        "p50 ms in the auto run",
        "its median ms",
        "fastest in the run",
        "its median ms",
        "auto / fastest",
    ]
    rows = [
        [
            p["batch"],
            p["auto_pick"],
            f"{p['auto_pick_p50_ms_in_auto_run']:.3f}",
            f"{p['auto_pick_median_p50_ms']:.3f}",
            p["fastest_label"],
            f"{p['fastest_median_p50_ms']:.3f}",
            f"{p['auto_over_fastest']:.3f}",
        ]
        for p in d["auto"]["picks"]
        if p["auto_over_fastest"]
    ]
    return [
        "## Targets (issue 7; the device-resident run above only)",
        "",
        markdown_table(["target", "best reached", "verdict"], targets(d, None)),
        "",
        "## Auto mode",
        "",
        markdown_table(head, rows),
        "",
        f"Auto mode took {d['auto']['seconds']:.0f} s for all candidates and"
        " batch sizes, parity included. 'auto / fastest' compares the median of auto's pick"
        " with the fastest median of any configuration over the same repeats; picks that"
        " failed parity (BF16 here) are never eligible.",
        "",
    ]


def _e2e(e: dict[str, Any]) -> list[str]:
    return [
        f"## End to end (host tensors in, host logits out) {_when(e)}",
        "",
        summary_table(e["summary"]),
        "",
        ips_table(e["summary"]),
        "",
    ]


def _kernels(p: dict[str, Any]) -> list[str]:
    return [
        f"**{p['label']}**, batch {p['batch']}: p50 {p['p50_ms']:.3f} ms; GPU kernels"
        f" {p['gpu_kernel_ms_per_batch']:.3f} ms per batch in"
        f" {p['kernels_per_batch']:.0f} launches (busy"
        f" {100 * (p['gpu_busy_fraction'] or 0):.0f}% of the latency);"
        f" {p['achieved_tflops'] or 0:.0f} TFLOP/s achieved.",
        "",
        markdown_table(
            ["kernel", "ms / batch", "calls", "share"],
            [
                [
                    k["name"][:90].replace("|", "/"),
                    f"{k['ms_per_batch']:.4f}",
                    f"{k['calls_per_batch']:.0f}",
                    f"{100 * k['share']:.1f}%",
                ]
                for k in p["top_kernels"]
            ],
        ),
        "",
    ]


def _profile(doc: dict[str, Any]) -> list[str]:
    md = [f"## Where the time goes (torch.profiler, CUPTI kernel times) {_when(doc)}", ""]
    for p in doc["profiles"]:
        md += _kernels(p)
    return md


def _concurrency(doc: dict[str, Any]) -> list[str]:
    rows = [
        [p["label"], p["batch"], p["streams"], f"{p['throughput_ips']:,.0f}", f"{p['gain']:.2f}×"]
        for p in doc["points"]
    ]
    return [
        f"## Requests in flight {_when(doc)}",
        "",
        markdown_table(["configuration", "batch", "in flight", "img/s", "vs one"], rows),
        "",
    ]


def report(out: Path) -> str:
    """``<out>/gpu_sweep.md`` from whichever ``gpu_<stage>.json`` files are there."""
    docs = {}
    for stage in STAGE_NAMES:
        f = out / f"gpu_{stage}.json"
        if f.exists():
            docs[stage] = json.loads(f.read_text())
    if not docs:
        return "no gpu_*.json results in this folder"
    md = _header(docs)
    if "device" in docs:
        md += _device(docs["device"])
    if "compile" in docs:
        md += _compile(docs["compile"])
    if "device" in docs:
        md += _auto(docs["device"])
    if "e2e" in docs:
        md += _e2e(docs["e2e"])
    if "profile" in docs:
        md += _profile(docs["profile"])
    if "concurrency" in docs:
        md += _concurrency(docs["concurrency"])
    text = "\n".join(md) + "\n"
    (out / "gpu_sweep.md").write_text(text)
    return text
