"""One long-lived results store per process and path, shared by the process's threads.

The dashboard reruns its pages many times a minute and serves several tabs (threads); a
new connection per rerun left connections open behind it, and every extra open of the
file is one more chance to lose the locks the others hold. :func:`shared_store` hands out
one :class:`Store` per path (its own lock serialises the threads' calls) and opens a new
one when the file at that path was deleted or replaced.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sqlite3
import threading
from pathlib import Path

from engine.core.paths import default_db
from engine.storage.store import Store

_SHARED: dict[Path, tuple[Store, tuple[int, int]]] = {}
_SHARED_LOCK = threading.Lock()


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def shared_store(path: str | Path | None = None) -> Store:
    """This process's one writable :class:`Store` for ``path`` (default: the default store).

    A long-lived process (the dashboard) keeps one connection per store, shared by its
    threads under the store's lock, instead of a new connection on every page rerun. When
    the file at ``path`` is no longer the one opened (deleted, replaced), the old connection
    is closed and a new one opened, so the process never holds a deleted store file.
    """
    key = Path(os.path.abspath(Path(path) if path else default_db()))
    with _SHARED_LOCK:
        held = _SHARED.get(key)
        if held is not None and _identity(key) == held[1]:
            return held[0]
        if held is not None:
            _SHARED.pop(key)
            held[0].close()
        store = Store(key)
        ident = _identity(key)
        if ident is not None:
            _SHARED[key] = (store, ident)
        return store


def close_shared() -> None:
    """Close every store :func:`shared_store` opened (at exit, or between tests)."""
    with _SHARED_LOCK:
        for store, _ in _SHARED.values():
            with contextlib.suppress(sqlite3.Error):
                store.close()
        _SHARED.clear()


atexit.register(close_shared)
