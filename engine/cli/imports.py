"""``python -m engine import FILE...``: bench documents from other machines into the store.

Every file is read (capped, regular files only) and checked by :mod:`engine.storage.documents`
before any is stored, so a bad second file leaves the store as it was.
"""

from __future__ import annotations

from collections.abc import Callable

from engine.cli.args import Parser
from engine.core.commands import engine_command
from engine.core.text import safe_text
from engine.storage.documents import check_files, store_document
from engine.storage.store import Store


def main(argv: list[str], out: Callable[[str], None] = print) -> int:
    """Import every file, or none when one of them is not a valid bench document."""
    p = Parser(prog=engine_command("import"), description="import bench --json documents")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--db", help="results database (default: the user data folder)")
    args = p.parse_args(argv)
    checked = check_files(args.files)
    store = Store(args.db)
    for doc in checked:
        run_id, created = store_document(store, doc)
        name = safe_text(doc.name)
        if created:
            out(f"imported {name} as run {run_id} ({len(doc.rows)} rows, {doc.machine})")
        else:
            out(f"{name} is already run {run_id}; not imported again")
    return 0
