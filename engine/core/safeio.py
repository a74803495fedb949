"""Writing the files a user names, and reading operating-system errors as user messages.

Every output path a command takes (``report --out``, ``export --out``, ``bench --json``,
``diagnose --json``) goes through :func:`write_bytes`: it refuses a folder, a device or a
FIFO (``/dev/full``, a pipe someone left there) or a symbolic link before opening
anything, writes to a temporary file in a private (0700) folder beside the target and
renames it into place, so a full disk or a killed process never leaves half a file under
the user's name and a link planted at the target never redirects the bytes. :func:`os_problem` turns an
``OSError`` into the what / why / fix message of :mod:`engine.core.errors`, and
:func:`json_text` never writes ``NaN`` or ``Infinity``, which most JSON parsers refuse.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.core.errors import BadInput, EngineError, Unavailable

_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_DENIED = {errno.EACCES, errno.EPERM}
_KINDS = (
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
)


def disk_full(exc: BaseException) -> bool:
    """An OSError or SQLite error that means the disk (or a quota) has no room left."""
    if isinstance(exc, OSError) and exc.errno in _FULL:
        return True
    text = str(exc).lower()
    return "disk is full" in text or "no space left" in text or "disk quota" in text


def disk_full_anywhere(exc: BaseException) -> bool:
    """:func:`disk_full` for ``exc`` or any exception it was raised from (exporters wrap)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if disk_full(cur):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


def cache_full(what: str, folder: str | os.PathLike[str]) -> Unavailable:
    return Unavailable(
        what,
        "the disk holding the artifact cache is full",
        f"free some space in {folder}, or pass --cache-dir on another disk",
    )


def os_problem(exc: OSError, path: str | os.PathLike[str], doing: str = "write") -> EngineError:
    """``exc`` (met while doing ``doing`` on ``path``) as a message a user can act on."""
    name = str(path)
    what = f"cannot {doing} {name}"
    code = exc.errno
    if disk_full(exc):
        return Unavailable(
            what, "the disk is full", "free some space on that disk, or use a path on another one"
        )
    if code == errno.EROFS:
        return BadInput(what, "the file system is read-only", "use a path on a writable disk")
    if code in _DENIED:
        return BadInput(
            what,
            "permission denied (the folder is not writable, or the file is read-only or immutable)",
            "pick a location you can write, or fix its permissions",
        )
    if code == errno.ENAMETOOLONG:
        return BadInput(
            what, "a name in the path is longer than the file system allows", "use shorter names"
        )
    if code in (errno.ENOTDIR, errno.EEXIST):
        return BadInput(what, "a part of the path is a file, not a folder", "check the path")
    if code == errno.EISDIR:
        return BadInput(what, "it is a folder", "name a file inside it")
    if code == errno.ENOENT:
        return BadInput(what, "its folder does not exist", "check the path")
    reason = exc.strerror or type(exc).__name__
    return BadInput(what, reason, "check the path and the disk")


def unwritable_folder(folder: Path) -> str | None:
    """Why files cannot be created in ``folder`` (None: they can). ``os.access`` says yes
    to root on a read-only mount, so the mount flags are asked too."""
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return "the file system is read-only"
    except OSError:
        pass
    if not os.access(folder, os.W_OK | os.X_OK):
        return "permission denied"
    return None


def check_regular_target(path: Path, what: str = "the output") -> None:
    """Refuse a target that exists but is not a regular file (a folder, a device, a FIFO)
    or is a symbolic link: a link planted in a shared folder could point at anyone's file."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise os_problem(exc, path) from exc
    if stat.S_ISLNK(st.st_mode):
        raise BadInput(
            f"{what} {path} is a symbolic link, not a regular file",
            "outputs are never written through a link (it may point at another file)",
            "name the file itself, or remove the link",
        )
    if stat.S_ISDIR(st.st_mode):
        raise BadInput(f"{what} {path} is a folder", fix="name a file, e.g. inside that folder")
    for test, kind in _KINDS:
        if test(st.st_mode):
            raise BadInput(
                f"{what} {path} is {kind}, not a regular file",
                "results are only written to regular files",
                "name a regular file",
            )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def create_new(path: str | os.PathLike[str], mode: int = 0o600) -> int:
    """A new file's descriptor, opened for writing without following a link: an existing
    file or link at ``path`` is an ``OSError`` (EEXIST / ELOOP), never replaced."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)


def private_folder(parent: str | os.PathLike[str] | None = None, prefix: str = "vb-") -> Path:
    """A new folder only this user can enter (0700), for files with predictable names."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))


def open_lock_file(path: str | os.PathLike[str], what: str = "the lock file") -> int:
    """A descriptor on the lock file ``path``, created if missing, never through a link,
    never truncated, and only a regular file (a FIFO planted there would block a lock)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise BadInput(
                f"{what} {path} is a symbolic link",
                "lock files are never opened through a link",
                "remove the link (nothing of ours is stored in it)",
            ) from exc
        raise os_problem(exc, path, "create") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise BadInput(
            f"{what} {path} is not a regular file",
            "something else was put under its name",
            "remove it (nothing of ours is stored in it)",
        )
    return fd


@contextlib.contextmanager
def file_lock(path: str | os.PathLike[str], what: str = "the lock file") -> Iterator[None]:
    """An exclusive lock on ``path`` (waits for it); see :func:`open_lock_file`."""
    fd = open_lock_file(path, what)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def _write_with(path: Path, fill, what: str) -> Path:
    check_regular_target(path, what)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # The temporary file lives in a folder of our own: nobody can plant a link under
        # its name, and the rename replaces whatever sits at ``path`` (even a link made
        # since the check above), never the file a link points at.
        private = private_folder(path.parent, f".{path.name[:40]}.")
    except OSError as exc:
        raise os_problem(exc, path) from exc
    tmp = private / "data"
    try:
        with os.fdopen(create_new(tmp), "wb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as exc:
        raise os_problem(exc, path) from exc
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return path


def write_bytes(path: str | os.PathLike[str], data: bytes, what: str = "the output") -> Path:
    """Write ``data`` to ``path`` whole or not at all; EngineError on any path problem."""
    return _write_with(Path(path), lambda f: f.write(data), what)


def write_text(path: str | os.PathLike[str], text: str, what: str = "the output") -> Path:
    return write_bytes(path, text.encode("utf-8"), what)


def copy_file(
    src: str | os.PathLike[str], dest: str | os.PathLike[str], what: str = "the output"
) -> Path:
    """Copy ``src`` to ``dest`` with the same guarantees as :func:`write_bytes`."""

    def fill(f) -> None:
        with open(src, "rb") as s:
            shutil.copyfileobj(s, f, 1 << 20)

    return _write_with(Path(dest), fill, what)


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float (at any depth) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def json_text(obj: Any, **kw: Any) -> str:
    """JSON that every parser reads: NaN and infinities become null."""
    return json.dumps(finite(obj), allow_nan=False, **kw)
