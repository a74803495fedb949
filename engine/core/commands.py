"""How a printed command starts, so that pasting it runs the Python the user runs.

Every fix, reproduce command and hint the product prints (``pip install …``, ``python -m
engine …``) starts with :func:`python_command` or :func:`pip_command`. The README installs
into the checkout's ``.venv`` and promises ``.venv/bin/python``: a bare ``python`` or
``pip`` there is the system's, which lacks our packages (or installs into the wrong
place). Outside that environment (an activated venv of the user's own, a scenario
environment of the diagnostics) the plain names are the ones on the user's PATH.

Standard library only: the provider diagnostics import it when they run as a plain
script in an environment that has nothing else.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def in_checkout_venv() -> bool:
    """Whether this Python is the checkout's ``.venv`` (the README's install)."""
    try:
        return Path(sys.prefix).resolve() == (ROOT / ".venv").resolve()
    except OSError:
        return False


def python_command() -> str:
    """``.venv/bin/python`` in the checkout's environment, else ``python``."""
    return ".venv/bin/python" if in_checkout_venv() else "python"


def pip_command() -> str:
    """``.venv/bin/pip`` in the checkout's environment, else ``pip``."""
    return ".venv/bin/pip" if in_checkout_venv() else "pip"


def engine_command(rest: str) -> str:
    """``python -m engine REST`` started the way :func:`python_command` says."""
    return f"{python_command()} -m engine {rest}"
