"""`python -m engine diagnose` and `python engine/diagnostics`: print the report, write files."""

from __future__ import annotations

import argparse
import errno
import math
import os
import shutil
import stat
import sys
import tempfile
from typing import NoReturn

from engine.core.commands import engine_command
from engine.diagnostics.run import run_diagnostics

MAX_TIMEOUT_S = 3600.0  # an hour for all probes: a probe that needs longer has hung


class _Parser(argparse.ArgumentParser):
    """argparse with the CLI's error policy: one ``error:`` line and exit 2, no usage."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {self.prog}: {message}. Fix: see `{self.prog} --help`", file=sys.stderr)
        sys.exit(2)


def _timeout(text: str) -> float:
    """Seconds above 0 and at most MAX_TIMEOUT_S: nan, inf and 0 never make a deadline."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and 0 < value <= MAX_TIMEOUT_S):
        raise argparse.ArgumentTypeError(
            f"{text} is out of range: it must be a finite number of seconds above 0"
            f" and at most {MAX_TIMEOUT_S:g}"
        )
    return value


def main(argv: list[str] | None = None) -> int:
    """`diagnose [--json FILE] [--markdown FILE] [--provider NAME ...] [--no-probe]`."""
    parser = _Parser(
        prog=engine_command("diagnose"),
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
    parser.add_argument("--timeout", type=_timeout, default=60.0, help="seconds for all probes")
    args = parser.parse_args(argv)
    report = run_diagnostics(
        tuple(args.provider or ()), probe=not args.no_probe, timeout_s=args.timeout
    )
    sys.stdout.write(report.to_text())
    for path, text in ((args.json, report.to_json()), (args.markdown, report.to_markdown())):
        if path:
            problem = _write_report(path, text + ("" if text.endswith("\n") else "\n"))
            if problem:
                print(f"error: {problem[1]}", file=sys.stderr)
                return problem[0]
    return 0


def _is_sqlite(path: str) -> bool:
    if not os.path.isfile(path):
        return False
    with open(path, "rb") as fh:  # this process holds no database connection
        return fh.read(16) == b"SQLite format 3\x00"


def _write_report(path: str, text: str) -> tuple[int, str] | None:
    """engine.core.safeio's rules without importing it (this package runs alone): regular files
    only, never through a link nor over a SQLite database, a temporary file in a private
    folder renamed into place, an OSError as one line. Returns (exit code, message)."""
    try:
        if os.path.islink(path):
            return 2, f"cannot write {path}: it is a symbolic link. Fix: name the file itself"
        if os.path.exists(path) and not stat.S_ISREG(os.stat(path).st_mode):
            return 2, f"cannot write {path}: it is not a regular file. Fix: name a regular file"
        if _is_sqlite(path):
            return 2, f"cannot write {path}: it is a SQLite database. Fix: name another file"
        for suffix in ("-wal", "-shm", "-journal"):  # where a database keeps its latest writes
            if path.endswith(suffix) and _is_sqlite(path.removesuffix(suffix)):
                return (
                    2,
                    f"cannot write {path}: SQLite keeps it beside the database"
                    f" {os.path.basename(path.removesuffix(suffix))}. Fix: name another file",
                )
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        private = tempfile.mkdtemp(prefix=".diagnose.", dir=folder)  # 0700: no planted links
        try:
            tmp = os.path.join(private, "report")
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            with os.fdopen(os.open(tmp, flags, 0o644), "w", encoding="utf-8") as fh:
                fh.write(text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)  # replaces a link made meanwhile, never its target
        finally:
            shutil.rmtree(private, ignore_errors=True)
    except OSError as exc:
        full = exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
        why = "the disk is full" if full else (exc.strerror or type(exc).__name__)
        return (3 if full else 2), f"cannot write {path}: {why}. Fix: pick another path"
    return None
