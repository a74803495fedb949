"""Where the product keeps its files: the artifact cache and the results database.

Defaults live under the user's cache / data folders; ``VISIONBENCH_CACHE`` and
``VISIONBENCH_DATA`` (or the CLI's ``--cache-dir`` / ``--db``) override them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from engine.core.errors import BadInput
from engine.core.safeio import os_problem, unwritable_folder

APP = "visionbench"
ROOT = Path(__file__).resolve().parents[2]


def python_command() -> str:
    """How a printed command should start so that pasting it works.

    The README installs into the checkout's ``.venv``; the system ``python`` there lacks
    our packages, so commands run from that environment say ``.venv/bin/python``.
    """
    if Path(sys.prefix).resolve() == (ROOT / ".venv").resolve():
        return ".venv/bin/python"
    return "python"


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
