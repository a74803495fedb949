"""``python -m engine report``: write an HTML page or a markdown summary of stored runs.

A thin command over :mod:`engine.reporting.report`, which the History page's download buttons call.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from engine.cli.args import Parser, parse_list
from engine.core.commands import engine_command
from engine.core.errors import BadInput
from engine.core.paths import check_output
from engine.core.safeio import write_text
from engine.core.text import safe_text
from engine.reporting.report import html_report, markdown_report
from engine.storage.store import Store


def main(argv: list[str]) -> int:
    """``python -m engine report``: write an HTML or markdown report of stored runs."""
    p = Parser(prog=engine_command("report"), description="write an HTML or markdown report")
    p.add_argument("--db", help="results database (default: the user data folder)")
    p.add_argument(
        "--run",
        action="append",
        default=[],
        help="run id (repeat or comma list; t4 = the quoted study); default: the newest run",
    )
    p.add_argument("--out", required=True, help="FILE.html or FILE.md")
    p.add_argument(
        "--probe", action="store_true", help="diagnostics with a live ONNX Runtime probe"
    )
    p.add_argument("--no-diagnostics", action="store_true", help="leave the diagnostics out")
    args = p.parse_args(argv)
    out = Path(args.out)
    suffix = out.suffix.lower()
    if suffix not in (".html", ".htm", ".md", ".markdown"):
        raise BadInput(
            f"--out {out.name} has no .html or .md suffix",
            fix="name the report FILE.html (self-contained page) or FILE.md (markdown summary)",
        )
    run_ids = [x for text in args.run for x in parse_list(text, str, "run id")]
    check_output(out, "--out", {"the --db store": args.db})
    make = html_report if suffix in (".html", ".htm") else markdown_report
    with contextlib.closing(Store(args.db, readonly=True)) as store:  # its -wal, -shm go
        text = make(store, run_ids, diagnostics=not args.no_diagnostics, probe=args.probe)
    if out.parent and not out.parent.exists():
        raise BadInput(f"the folder for {out.name} does not exist", fix="create it first")
    write_text(out, text, "--out")
    print(f"wrote {safe_text(out)} ({len(text.encode()) / 1024:.0f} KiB)", file=sys.stderr)
    return 0
