"""What an installed Python package says about itself, read from its files without
importing it (importing PyTorch costs about 1.2 s; a broken package still answers)."""

from __future__ import annotations

import ast
import importlib.util
import os


def read_constants(path: str) -> dict:
    """Top-level `NAME = literal` assignments of a Python file, without importing it."""
    try:
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read())
    except (OSError, SyntaxError, ValueError):
        return {}
    out = {}
    for node in tree.body:
        target = value = None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        if isinstance(target, ast.Name):
            try:
                out[target.id] = ast.literal_eval(value)
            except ValueError:
                pass
    return out


def package_dir(name: str) -> str | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.normpath(list(spec.submodule_search_locations)[0])
