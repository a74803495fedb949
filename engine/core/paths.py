"""Where the product keeps its files: the artifact cache and the results database.

Defaults live under the user's cache / data folders; ``VISIONBENCH_CACHE`` and
``VISIONBENCH_DATA`` (or the CLI's ``--cache-dir`` / ``--db``) override them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from engine.core.commands import python_command  # noqa: F401 - callers import it from here
from engine.core.errors import BadInput
from engine.core.safeio import check_regular_target, os_problem, unwritable_folder

APP = "visionbench"
ROOT = Path(__file__).resolve().parents[2]


def engine_child_env(**extra: str) -> dict[str, str]:
    """This process's environment for a child that runs ``python -m engine...``: with this
    checkout first on PYTHONPATH, so it imports this engine wherever it was started from."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, **extra, "PYTHONPATH": path}


def cache_dir() -> Path:
    env = os.environ.get("VISIONBENCH_CACHE")
    if env:
        root = Path(env).expanduser()
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = Path(base) / APP
    return _folder(root, "VISIONBENCH_CACHE or --cache-dir")


def data_dir() -> Path:
    env = os.environ.get("VISIONBENCH_DATA")
    if env:
        root = Path(env).expanduser()
    else:
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        root = Path(base) / APP
    return _folder(root, "VISIONBENCH_DATA or --db")


def _folder(root: Path, setting: str) -> Path:
    # A file where the folder should be, or a folder we cannot write, is the user's setting
    # to fix: say which, instead of a FileExistsError (or a lock library's PermissionError)
    # from deep inside a build.
    if root.exists() and not root.is_dir():
        raise BadInput(
            f"the folder {root} is a file", f"it comes from {setting}", "point it at a folder"
        )
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise os_problem(exc, root, "create the folder") from exc
    why = unwritable_folder(root)
    if why:
        raise BadInput(
            f"the folder {root} is not writable",
            f"{why}; it comes from {setting}",
            "point it at a folder you can write, or fix its permissions",
        )
    return root


def default_db() -> Path:
    return data_dir() / "results.sqlite"


def uploads_dir() -> Path:
    d = data_dir() / "uploads"
    d.mkdir(parents=True, exist_ok=True)
    return d


def set_cache_dir(path: str | os.PathLike[str]) -> None:
    os.environ["VISIONBENCH_CACHE"] = str(path)


def short_path(path: str | os.PathLike[str]) -> str:
    """A path for display: the home folder as ``~``."""
    p = str(path)
    home = str(Path.home())
    return "~" + p[len(home) :] if home != "/" and p.startswith(home) else p


_SQLITE_MAGIC = b"SQLite format 3\x00"


def check_output(
    path: str | os.PathLike[str],
    what: str,
    keep: Mapping[str, str | os.PathLike[str] | None] | None = None,
) -> Path:
    """Refuse, with exit 2, an output path that would replace something the user keeps:
    a link, a folder or a device (:func:`check_regular_target`), one of the files in ``keep``
    (description → path: the store, an input model or weights; a folder there, such as
    the calibration images, guards every file inside it), the default store, any SQLite
    database, a file SQLite or this tool keeps beside one (``-wal``, ``-shm``,
    ``-journal``, the migration lock, a run's reserve), or a file inside the artifact
    cache. Run it before opening any store."""
    out = Path(path)
    check_regular_target(out, what)
    guarded = {"the default results database": default_db(), **(keep or {})}
    for desc, other in guarded.items():
        if not other:
            continue
        kept = Path(other)
        if _same(out, kept) or (kept.is_dir() and _inside(out, kept)):
            inside = "" if _same(out, kept) else "inside "
            raise BadInput(
                f"{what} {out} is {inside}{desc}",
                "writing there would replace it",
                "name another file",
            )
        side = _side_file(out, kept)
        if side:
            raise BadInput(
                f"{what} {out} is {side} of {desc}",
                "replacing it would lose the store's latest writes or its locks",
                "name another file",
            )
    cache = cache_dir().resolve()
    if out.parent.resolve() == cache or cache in out.parent.resolve().parents:
        raise BadInput(
            f"{what} {out} is inside the artifact cache {cache}",
            "the cache is the tool's own: a build may overwrite it and a prune deletes it",
            "name a file outside the cache folder",
        )
    if _is_sqlite(out):
        raise BadInput(
            f"{what} {out} is a SQLite database",
            "results and reports are never written over a database",
            "name another file",
        )
    for suffix, kind in _SQLITE_SIDE.items():
        base = out.with_name(out.name.removesuffix(suffix))
        if out.name.endswith(suffix) and _is_sqlite(base):
            raise BadInput(
                f"{what} {out} is {kind} of the SQLite database {base.name}",
                "replacing it would lose that database's latest writes or its locks",
                "name another file",
            )
    return out


# What SQLite keeps beside a database while it is in use (the store's latest writes live
# in the WAL until a checkpoint), and what this tool keeps there (engine/storage/store.py).
_SQLITE_SIDE = {
    "-wal": "the write-ahead log",
    "-shm": "the shared-memory index",
    "-journal": "the rollback journal",
}
_OUR_SIDE = re.compile(r"\.migrate\.lock|\.run\d+\.reserve")


def _side_file(out: Path, store: Path) -> str | None:
    """What ``out`` is among the files kept beside ``store`` (None: none of them)."""
    for suffix, kind in _SQLITE_SIDE.items():
        if _same(out, Path(f"{store}{suffix}")):
            return kind
    here, there = os.path.realpath(out), os.path.realpath(store)
    name, base = os.path.basename(here), os.path.basename(there)
    if os.path.dirname(here) == os.path.dirname(there) and name.startswith(base):
        if _OUR_SIDE.fullmatch(name[len(base) :]):
            return "a lock or reserve file"
    return None


def _inside(out: Path, folder: Path) -> bool:
    return Path(os.path.realpath(folder)) in Path(os.path.realpath(out)).parents


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one is not made yet (a new store): the same name is the same file
        return os.path.realpath(a) == os.path.realpath(b)


def _is_sqlite(path: Path) -> bool:
    # Read only after the samefile checks: a store this process may hold a connection to
    # is never opened here (closing any descriptor of it would drop that connection's locks).
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        return os.read(fd, len(_SQLITE_MAGIC)) == _SQLITE_MAGIC
    finally:
        os.close(fd)
