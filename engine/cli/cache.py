"""``python -m engine cache``: list, size and prune the artifact cache."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

from engine.artifacts.cache import (
    GB,
    MAX_DAYS,
    MAX_GB,
    CacheItem,
    cache_entries,
    cache_size_bytes,
    check_amount,
    human_bytes,
    prune,
    recorded_seconds,
)
from engine.cli.args import Parser
from engine.core.commands import engine_command
from engine.core.errors import BadInput
from engine.core.paths import cache_dir, set_cache_dir, short_path
from engine.core.safeio import json_text


def _stamp(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M")


def _build_s(item: CacheItem) -> str:
    value = recorded_seconds(item.meta.get("build_s"))
    return "" if value is None else f"{value:.0f}"


def _what(item: CacheItem) -> str:
    """The entry's own words, then what its key means as its backend says (the settings
    a compiled engine serves)."""
    from engine.backends import cache_detail

    return ", ".join(bit for bit in (item.what, cache_detail(item.kind, item.meta)) if bit)


def _table(items: list[CacheItem]) -> str:
    from engine.backends import cache_state

    lines = [("kind", "key", "size", "age (days)", "created (UTC)", "build (s)", "what")]
    for i in items:
        state = cache_state(i.kind, i.meta)
        what = _what(i)
        lines.append(
            (
                i.kind,
                i.key[:48],
                human_bytes(i.size_bytes),
                f"{i.age_days:.1f}",
                _stamp(i.created_s),
                _build_s(i),
                f"{what} ({state})" if state else what,
            )
        )
    widths = [max(len(row[c]) for row in lines) for c in range(len(lines[0]))]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in lines
    )


def main(argv: list[str]) -> int:
    p = Parser(prog=engine_command("cache"), description="list, size and prune the cache")
    p.add_argument("action", choices=["list", "size", "prune"])
    p.add_argument("--older-than", type=float, metavar="DAYS", help="prune: entries older")
    p.add_argument("--max-size", type=float, metavar="GB", help="prune: oldest until it fits")
    p.add_argument("--all", action="store_true", help="prune: every entry")
    p.add_argument(
        "--key", action="append", help="prune: the entry whose key starts so (repeatable)"
    )
    p.add_argument("--dry-run", action="store_true", help="prune: only say what would go")
    p.add_argument("--cache-dir", help="the cache folder (default: the user cache folder)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    args = p.parse_args(argv)
    if args.cache_dir:
        if not Path(args.cache_dir).is_dir():
            raise BadInput(f"cache folder {args.cache_dir} does not exist", fix="check the path")
        set_cache_dir(args.cache_dir)
    root = cache_dir()
    if args.action != "prune" and (
        args.older_than is not None or args.max_size is not None or args.key
    ):
        raise BadInput("--older-than, --max-size and --key only go with prune")
    if args.action == "list":
        items = cache_entries(root)
        if args.json:
            from engine.backends import cache_detail, cache_state

            docs = [
                {
                    **i.to_dict(),
                    "state": cache_state(i.kind, i.meta),
                    "detail": cache_detail(i.kind, i.meta),
                }
                for i in items
            ]
            print(json_text(docs, indent=1))
        else:
            print(_table(items))
            print(f"{len(items)} entries, {human_bytes(sum(i.size_bytes for i in items))}")
    elif args.action == "size":
        total = cache_size_bytes(root)
        if args.json:
            print(json.dumps({"location": short_path(root), "size_bytes": total}))
        else:
            print(f"{human_bytes(total)} in {short_path(root)}")
    else:
        check_amount("--older-than", args.older_than, MAX_DAYS)
        check_amount("--max-size", args.max_size, MAX_GB)
        max_bytes = None if args.max_size is None else int(args.max_size * GB)
        gone = prune(args.older_than, max_bytes, args.all, root, args.dry_run, args.key)
        freed = sum(i.size_bytes for i in gone)
        verb = "would remove" if args.dry_run else "removed"
        if args.json:
            print(json_text({"removed": [i.to_dict() for i in gone], "freed_bytes": freed}))
        else:
            for i in gone:
                print(f"{verb} {i.kind}/{i.key[:48]} ({human_bytes(i.size_bytes)})")
            left = cache_size_bytes(root)
            print(
                f"{verb} {len(gone)} entries, {human_bytes(freed)}; {human_bytes(left)} left",
                file=sys.stderr,
            )
    return 0
