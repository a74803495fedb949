"""The artifact cache as something a user can see and bound: list, size, prune.

Every build (ONNX export, int8 model, converted user file, TensorRT plan) lands in
``<cache>/<kind>/<key>/``; nothing is ever deleted automatically, so without this the
cache grows with every model, image size and precision tried. ``python -m engine cache``
and the dashboard call the same three functions. Pruning only removes entries directly
under a kind folder of the cache root, never follows a link out of it, keeps the device
locks, and leaves an entry alone while a build is still writing into it.

A build that holds a lock of its own while it writes (``locks/<key>.lock``, taken with
:func:`build_lock`: compiled engines and TensorRT plans) says for certain whether it is
alive; two processes asking for one entry build it once. Prune takes that lock
(without waiting) for the time it decides and removes, so a free lock means the entry's
``pre.*`` leftovers are a dead build's (a SIGKILL), removed at once, and a build that
starts meanwhile waits. Entries without such a lock keep the rule of the clock: a
temporary file younger than an hour means a build is writing there.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.artifacts.export import USE_PREFIX, pid_alive
from engine.core.errors import BadInput
from engine.core.paths import cache_dir, short_path
from engine.core.safeio import open_lock_file

KEEP = {"locks"}  # device locks live in the cache folder but are not artifacts
BUSY_S = 3600.0  # a temporary file younger than this means a build is writing here
GB = 1024**3


@dataclass
class CacheItem:
    """One cache entry: a ``<kind>/<key>`` folder (or a loose file under a kind)."""

    kind: str
    key: str
    path: Path
    size_bytes: int
    created_s: float  # POSIX time: the build's record, else the file time
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def age_days(self) -> float:
        return max(0.0, (time.time() - self.created_s) / 86400.0)

    @property
    def what(self) -> str:
        bits = [str(self.meta[k]) for k in ("model", "source", "precision") if self.meta.get(k)]
        if bits and self.kind == "weights":  # engine/artifacts/settled.py
            seed, size = self.meta.get("seed"), self.meta.get("image_size")
            bits.append(f"random weights, seed {seed}, settled at {size} px")
        if bits and isinstance(self.meta.get("batch"), int):  # an engine built for one batch
            bits.append(f"batch {self.meta['batch']}")
        if not bits and self.meta.get("format") == "QDQ":
            # An int8 record names its fp32 file by hash, not by model: say what it is.
            source = str(self.meta.get("calibration") or "")
            seen = "an image folder" if source.startswith("folder:") else "generated images"
            bits = [f"int8 QDQ model, calibrated on {seen}"]
        return " ".join(bits)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = short_path(self.path)
        d["age_days"] = round(self.age_days, 3)
        return d


def _size(path: Path) -> int:
    if not _real_dir(path):
        return path.lstat().st_size
    total = 0
    for root, _, files in os.walk(path):  # os.walk does not follow links by default
        for f in files:
            try:
                total += (Path(root) / f).lstat().st_size
            except OSError:
                pass
    return total


def build_lock_file(entry: Path) -> Path:
    """The lock a build of the cache entry ``entry`` (``<cache>/<kind>/<key>``) holds while
    it writes there, if that build takes one: ``<cache>/locks/<key>.lock``."""
    return entry.parent.parent / "locks" / f"{entry.name}.lock"


@contextlib.contextmanager
def build_lock(
    entry: Path, what: str, progress: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Held while a build of the cache entry ``entry`` (``what``: "compiled engine",
    "TensorRT plan") looks it up and writes it: a second process asking for it waits,
    saying so (a build can last minutes with nothing else printed), then finds what the
    first made. Prune reads it (:func:`_build_locks`)."""
    lock = build_lock_file(entry)
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = open_lock_file(lock, f"the {what}'s lock file")
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if progress:
                progress(f"another process is building the {what} {entry.name}; waiting")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


@contextlib.contextmanager
def _build_locks(items: list[CacheItem]) -> Iterator[dict[Path, bool]]:
    """For each entry whose build lock file exists: True when that lock was free (it is
    held here until the block ends, so no build of it starts meanwhile), False when a live
    build holds it. Entries without one (or with something else at its name) are left out."""
    held: list[int] = []
    state: dict[Path, bool] = {}
    try:
        for item in items:
            try:
                fd = os.open(
                    build_lock_file(item.path), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
                )
            except OSError:
                continue  # no lock file: this entry's builds take none
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                state[item.path] = False
                continue
            held.append(fd)
            state[item.path] = True
        yield state
    finally:
        for fd in held:
            os.close(fd)  # closing drops the lock


def _busy(path: Path, build_lock: bool | None = None) -> bool:
    """True while something writes ``path``: a live run's mark, a held build lock, or
    (for entries whose builds take no lock) a temporary file younger than an hour.
    ``build_lock`` is :func:`_build_locks`' word on the entry (None: it has no lock)."""
    if not _real_dir(path):
        return False
    if build_lock is False:
        return True  # its build is running
    now = time.time()
    for f in path.iterdir():
        if f.name.startswith(USE_PREFIX) and f.name.endswith(".tmp"):
            pid = f.name[len(USE_PREFIX) : -len(".tmp")]
            if pid.isdigit() and pid_alive(int(pid)) and _younger(f, now):
                return True  # a live process took this entry for a run
            continue
        if build_lock:
            continue  # its build lock was free: what a build left here is a dead one's
        if ".tmp" in f.name or f.name.startswith("pre."):
            try:
                if now - f.lstat().st_mtime < BUSY_S:
                    return True
            except OSError:
                pass
    return False


def _younger(f: Path, now: float) -> bool:
    try:
        return now - f.lstat().st_mtime < BUSY_S
    except OSError:
        return False


def _read_meta(folder: Path) -> dict[str, Any]:
    meta = folder / "meta.json"
    if not _real_dir(folder) or not meta.is_file() or meta.is_symlink():
        return {}
    try:
        data = json.loads(meta.read_text())
    except (OSError, ValueError):
        return {"error": "meta.json is unreadable"}
    return data if isinstance(data, dict) else {}


def cache_entries(root: str | os.PathLike[str] | None = None) -> list[CacheItem]:
    """Every entry of the cache, oldest first."""
    base = Path(root) if root else cache_dir()
    items: list[CacheItem] = []
    if not base.is_dir():
        return items
    for kind_dir in sorted(base.iterdir()):
        if kind_dir.name in KEEP or kind_dir.is_symlink() or not kind_dir.is_dir():
            continue
        for entry in sorted(kind_dir.iterdir()):
            meta = _read_meta(entry)
            created = meta.get("created")
            if not _plausible_time(created):  # a meta file is data: -1e18 or nan is no date
                created = entry.lstat().st_mtime
            items.append(
                CacheItem(kind_dir.name, entry.name, entry, _size(entry), float(created), meta)
            )
    return sorted(items, key=lambda i: i.created_s)


def _plausible_time(value: Any) -> bool:
    seconds = recorded_seconds(value)  # an integer of 400 digits is no date either
    return seconds is not None and seconds <= time.time() + 86400 * 366


def recorded_seconds(value: Any) -> float | None:
    """A build time from a cache record as a float, None unless it is one: a record is
    data, and a bool, a string, NaN or an integer too large for a float is no time."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        value = float(value)
    except OverflowError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(path.lstat().st_mode)
    except OSError:
        return False


# The largest amounts prune takes: a century of days, an exabyte. Beyond them the day
# count overflows a timestamp and the size an integer of bytes (1e300 GB did).
MAX_DAYS = 36_500.0
MAX_GB = 1e9


def check_amount(flag: str, value: float | None, high: float = math.inf) -> float | None:
    """A finite number from 0 to ``high`` (nan would silently match nothing, inf overflow)."""
    if value is None:
        return None
    if not math.isfinite(value) or not 0 <= value <= high:
        raise BadInput(
            f"{flag} {value:g} is out of range",
            f"it must be a finite number from 0 to {high:g}",
            f"use e.g. {flag} 30",
        )
    return value


def cache_size_bytes(root: str | os.PathLike[str] | None = None) -> int:
    """Total bytes of all cache entries (locks not counted)."""
    return sum(i.size_bytes for i in cache_entries(root))


def prune(
    older_than_days: float | None = None,
    max_size_bytes: int | None = None,
    everything: bool = False,
    root: str | os.PathLike[str] | None = None,
    dry_run: bool = False,
    keys: list[str] | None = None,
) -> list[CacheItem]:
    """Remove entries older than ``older_than_days``, then the oldest until the cache
    fits ``max_size_bytes``; ``everything`` removes all; ``keys`` removes the entries
    whose key starts with one of them (one engine on its own). Returns what was (or,
    with ``dry_run``, would be) removed. Entries a build is still writing are kept.
    """
    if keys is not None:
        return _prune_keys(keys, root, dry_run)
    if older_than_days is None and max_size_bytes is None and not everything:
        raise BadInput(
            "nothing to prune was named",
            fix="pass --older-than DAYS, --max-size GB, --key KEY or --all",
        )
    if older_than_days is not None and older_than_days < 0:
        raise BadInput(f"--older-than {older_than_days:g} is negative", fix="use e.g. 30")
    if max_size_bytes is not None and max_size_bytes < 0:
        raise BadInput("--max-size is negative", fix="use e.g. 20 (GB)")
    check_amount("--older-than", older_than_days, MAX_DAYS)
    check_amount("--max-size", max_size_bytes, MAX_GB * GB)
    found = cache_entries(root)
    with _build_locks(found) as locks:
        busy = [i for i in found if _busy(i.path, locks.get(i.path))]
        items = [i for i in found if i not in busy]
        doomed: list[CacheItem] = []
        if everything:
            doomed = items
        else:
            if older_than_days is not None:
                doomed = [i for i in items if i.age_days > older_than_days]
            if max_size_bytes is not None:
                left = [i for i in items if i not in doomed]
                total = sum(i.size_bytes for i in left) + sum(i.size_bytes for i in busy)
                for i in left:  # oldest first
                    if total <= max_size_bytes:
                        break
                    doomed.append(i)
                    total -= i.size_bytes
        if not dry_run:
            for i in doomed:
                _remove(i.path, Path(root) if root else cache_dir())
    return doomed


MIN_KEY = 6  # a shorter prefix could match entries the user did not mean


def _prune_keys(keys: list[str], root: str | os.PathLike[str] | None, dry_run: bool):
    short = [k for k in keys if len(k) < MIN_KEY]
    if not keys or short:
        raise BadInput(
            f"--key needs at least {MIN_KEY} characters of a key",
            fix="copy the key from `cache list`",
        )
    items = cache_entries(root)
    doomed = [i for i in items if any(i.key.startswith(k) for k in keys)]
    unmatched = [k for k in keys if not any(i.key.startswith(k) for i in items)]
    if unmatched:
        raise BadInput(f"no cache entry has the key {unmatched[0]}", fix="see `cache list`")
    with _build_locks(doomed) as locks:
        busy = [i for i in doomed if _busy(i.path, locks.get(i.path))]
        if busy:
            raise BadInput(
                f"{busy[0].kind}/{busy[0].key} is being written by a build",
                fix="wait for the build to finish, then prune it",
            )
        if not dry_run:
            for i in doomed:
                _remove(i.path, Path(root) if root else cache_dir())
    return doomed


def _remove(path: Path, base: Path) -> None:
    # Only a direct child of a kind folder of this cache; a link is removed, not followed.
    if path.parent.parent.resolve() != base.resolve():
        raise BadInput(f"{path.name} is not an entry of the cache", fix="report this as a bug")
    # Anything but a real folder (a file, a link, a FIFO, a socket) is unlinked: rmtree
    # would open a FIFO given as its top path, and wait forever for a writer.
    if not _real_dir(path):
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"
