"""``python -m engine history``: list, filter and compare stored runs on a terminal.

A thin command over :mod:`engine.storage.history`, the same functions the History page calls.
Every string a run carries may come from another machine's document, so every cell and
line goes through :func:`engine.core.text.safe_text` before it is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from dataclasses import asdict

from engine.backends import library_keys
from engine.cli.args import Parser
from engine.core.commands import engine_command
from engine.core.safeio import json_text
from engine.core.stability import speedup_text
from engine.core.text import safe_text
from engine.storage.history import (
    REFERENCE_ID,
    RunInfo,
    RunRecord,
    env_diff,
    filter_runs,
    list_runs,
    load_run,
    speedups,
    unmatched_points,
)
from engine.storage.store import Store


def text_table(head: list[str], lines: list[list[str]]) -> str:
    """Columns padded to their widest cell; every cell sanitised first, so widths hold."""
    lines = [[safe_text(c) for c in line] for line in lines]
    widths = [max([len(h), *(len(line[i]) for line in lines)]) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    return "\n".join(out + [fmt.format(*line).rstrip() for line in lines])


def format_runs(runs: list[RunInfo]) -> str:
    # The first two libraries the backends record that any listed run has a version of.
    libs = [k for k in library_keys() if any(r.environment.get(k) for r in runs)][:2]
    head = ["id", "created (UTC)", "source", "model", "size", "machine", "backends"]
    head += ["precisions", "devices", "rows", "status", *libs, "label"]
    lines = [
        [
            str(r.id),
            r.created_at[:19].replace("T", " ") if r.created_at else "(quoted)",
            r.source,
            r.model,
            r.size_label or "-",
            r.machine[:40],
            ",".join(r.backends),
            ",".join(r.precisions),
            ",".join(r.devices),
            str(r.n_rows),
            r.status,
            *(str(r.environment.get(k) or "-") for k in libs),
            r.label[:60],
        ]
        for r in runs
    ]
    return text_table(head, lines)


def format_comparison(a: RunRecord, b: RunRecord) -> str:
    sp, diff = speedups(a.rows, b.rows), env_diff(a, b)
    out = [f"A: {safe_text(a.info.title)}", f"B: {safe_text(b.info.title)}", ""]
    if sp:
        out.append("speed-up = p50 of A / p50 of B (above 1: B is faster); 'within noise' when")
        out.append("the two medians' 95% confidence intervals overlap (docs/stability.md)")
        lines = [
            [
                s.backend,
                s.precision,
                s.device,
                str(s.batch),
                f"{s.a_p50_ms:.3f}",
                f"{s.b_p50_ms:.3f}",
                speedup_text(s.speedup, s.noise),
                s.a_provider,
                s.b_provider,
            ]
            for s in sp
        ]
        head = ["backend", "precision", "device", "batch", "A p50 ms", "B p50 ms", "speed-up"]
        out.append(text_table(head + ["A ran on", "B ran on"], lines))
    else:
        out.append("no point (backend, precision, device, batch) was measured by both runs")
    only_a, only_b = unmatched_points(a, b)
    if only_a:
        out.append(safe_text(f"only in A: {'; '.join(only_a)}"))
    if only_b:
        out.append(safe_text(f"only in B: {'; '.join(only_b)}"))
    out.append("")
    if diff:
        out.append("differences that may explain it:")
        lines = [[d.kind, d.key, d.a[:50], d.b[:50]] for d in diff]
        out.append(text_table(["kind", "setting", "A", "B"], lines))
    else:
        out.append("same environment and configuration")
    if a.info.quoted or b.info.quoted:
        out.append("note: the quoted T4 study figures were not measured here")
    return "\n".join(out)


def format_run(rec: RunRecord) -> str:
    """One run: its title, how it ended, and its notes (what really ran), each one line."""
    i = rec.info
    out = [f"run: {safe_text(i.title)}", f"status: {safe_text(i.status)}"]
    if i.command:
        out.append(f"reproduce: {safe_text(i.command)}")
    if rec.notes:
        out.append(f"notes ({len(rec.notes)}):")
        out += [f"  note: {safe_text(n)}" for n in rec.notes]
    else:
        out.append(f"notes: none ({rec.why_no_notes})")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    """``python -m engine history``: list, filter and compare stored runs."""
    p = Parser(prog=engine_command("history"), description="list, filter and compare stored runs")
    p.add_argument("--db", help="results database (default: the user data folder)")
    p.add_argument("--model", help="comma list of model names")
    p.add_argument("--backend", help="comma list: torch, ort, tensorrt")
    p.add_argument("--precision", help="comma list: fp32, fp16, int8, ...")
    p.add_argument("--device", help="comma list: cpu, cuda, cuda:1")
    p.add_argument("--machine", help="text the machine, GPU or CPU name contains")
    p.add_argument("--since", help="only runs from this ISO date on, e.g. 2026-11-01")
    p.add_argument("--no-reference", action="store_true", help="hide the quoted T4 study")
    one = p.add_mutually_exclusive_group()
    one.add_argument(
        "--compare", nargs=2, metavar=("RUN_A", "RUN_B"), help=f"ids, or {REFERENCE_ID}"
    )
    one.add_argument("--run", metavar="RUN", help="one run: how it ended and its notes")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = p.parse_args(argv)
    # Closed at the end, so the -wal and -shm it made go too (sqlite_guard.drop_side_files).
    with contextlib.closing(Store(args.db, readonly=True)) as store:
        return _show(args, store)


def _show(args: argparse.Namespace, store: Store) -> int:
    if args.run:
        rec = load_run(store, args.run)
        if args.json:
            doc = {"run": rec.info.to_dict(), "notes": rec.notes, "notes_kept": rec.notes_kept}
            print(json_text(doc, indent=1))
        else:
            print(format_run(rec))
        return 0
    if args.compare:
        a, b = (load_run(store, x) for x in args.compare)
        if args.json:
            doc = {
                "a": a.info.to_dict(),
                "b": b.info.to_dict(),
                "speedups": [asdict(s) for s in speedups(a.rows, b.rows)],
                "differences": [asdict(d) for d in env_diff(a, b)],
            }
            print(json_text(doc, indent=1))
        else:
            print(format_comparison(a, b))
        return 0
    runs = filter_runs(
        list_runs(store, include_reference=not args.no_reference),
        model=args.model,
        backend=args.backend,
        precision=args.precision,
        device=args.device,
        machine=args.machine,
        since=args.since,
    )
    if args.json:
        print(json_text([r.to_dict() for r in runs], indent=1))
    elif runs:
        print(format_runs(runs))
        for r in runs:
            if r.damaged:  # the rest of the table is still right
                print(safe_text(f"run {r.id} is damaged: {r.damaged}"))
    else:
        print("no run matches", file=sys.stderr)
    return 0
