"""Machine paths in reports replaced by placeholders, so reports can be committed and pasted.

The home folder becomes `~`, any `.../site-packages` `<site-packages>`, a virtual environment's
prefix `<env>`, the interpreter's prefix `<python>` and the temp folder `<tmp>`.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from typing import Any


def _shortening_rules() -> list[tuple[re.Pattern, str]]:
    rules = [
        # Whole site-packages paths first: in venvs, user sites and system installs alike.
        (
            re.compile(r"(?:[A-Za-z]:)?[^\s'\"=:;,()\[\]<>]*[/\\](?:site|dist)-packages"),
            "<site-packages>",
        ),
    ]
    prefixes = []
    if sys.prefix != sys.base_prefix:
        prefixes.append((sys.prefix, "<env>"))
    # A system interpreter's prefix (/usr) is no machine-specific path, and replacing it would
    # hide where system libraries such as /usr/lib/x86_64-linux-gnu/libcuda.so.1 live.
    if os.path.normpath(sys.base_prefix) not in ("/usr", "/usr/local", "/"):
        prefixes.append((sys.base_prefix, "<python>"))
    home = os.path.expanduser("~")
    if home and home not in ("/", "~"):
        prefixes.append((home, "~"))
    tmp = tempfile.gettempdir()
    if tmp and tmp != "/":
        prefixes.append((tmp, "<tmp>"))
    for prefix, label in prefixes:
        prefix = prefix.rstrip("/\\")
        if len(prefix) > 1:
            rules.append((re.compile(re.escape(prefix) + r"(?=[/\\]|\b|$)"), label))
    return rules


def shorten_paths(value: Any) -> Any:
    """Replace machine paths (home folder, site-packages, the interpreter prefix, the temp dir)
    with placeholders, in a string or recursively in lists and dicts."""
    rules = _shortening_rules()

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            for pattern, label in rules:
                v = pattern.sub(label, v)
            return v
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [walk(x) for x in v]
        return v

    return walk(value)
