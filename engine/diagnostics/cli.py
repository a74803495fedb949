"""`python -m engine diagnose` and `python engine/diagnostics`: print the report, write files."""

from __future__ import annotations

import argparse
import os
import sys

from engine.diagnostics.run import run_diagnostics


def main(argv: list[str] | None = None) -> int:
    """`diagnose [--json FILE] [--markdown FILE] [--provider NAME ...] [--no-probe]`."""
    parser = argparse.ArgumentParser(
        prog="python -m engine diagnose",
        description="Explain where ONNX Runtime will run (CUDA or CPU), why, and how to fix it.",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    parser.add_argument("--markdown", metavar="FILE", help="also write the report as Markdown")
    parser.add_argument(
        "--provider",
        metavar="NAME",
        action="extend",
        nargs="+",
        help="execution provider(s) to probe: CUDA, TensorRT, CPU or full names"
        " (default: CUDA where the NVIDIA driver sees a GPU, else CPU)",
    )
    parser.add_argument("--no-probe", action="store_true", help="skip the live ONNX Runtime probe")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds for all probes")
    args = parser.parse_args(argv)
    report = run_diagnostics(
        tuple(args.provider or ()), probe=not args.no_probe, timeout_s=args.timeout
    )
    sys.stdout.write(report.to_text())
    for path, text in ((args.json, report.to_json()), (args.markdown, report.to_markdown())):
        if path:
            folder = os.path.dirname(os.path.abspath(path))
            os.makedirs(folder, exist_ok=True)
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text + ("" if text.endswith("\n") else "\n"))
    return 0
