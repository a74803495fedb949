"""The layers, the no-circle rule and the size rule of the developer guide, read from source.

``engine/`` is a stack of layer packages (the order below, lowest first); a module may import
its own layer and the layers below it, never one above. No import circle of any kind anywhere
in the repository's Python (imports inside functions and ``TYPE_CHECKING`` imports count).
No function over 80 lines and no module over 500 in ``engine/``, ``pages/``, ``dashboard.py``,
``benchmarks/*.py`` and ``scripts/*.py``; a page's top-level code counts as one function.
Read with ``ast``; nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "engine"
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 500
# Lowest first. A layer may import itself and the layers before it.
LAYERS = [
    "core",
    "hardware",
    "diagnostics",
    "artifacts",
    "backends",
    "storage",
    "running",
    "reporting",
    "cli",
]
# Modules of the package root, above every layer (``python -m engine`` and the package face).
ROOT_MODULES = {"engine", "engine.__main__"}


def _name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _files() -> dict[str, Path]:
    """Every Python module the rules cover, by dotted name."""
    paths = [
        *ENGINE.rglob("*.py"),
        *(ROOT / "pages").glob("*.py"),
        ROOT / "dashboard.py",
        *(ROOT / "benchmarks").glob("*.py"),
        *(ROOT / "scripts").glob("*.py"),
    ]
    return {_name(p): p for p in sorted(paths)}


def _engine_modules() -> dict[str, Path]:
    return {n: p for n, p in _files().items() if n == "engine" or n.startswith("engine.")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Known modules ``name`` imports anywhere in its file: in functions and under
    ``TYPE_CHECKING`` too, since a circle a type checker sees is still a circle."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        for t in targets:
            found.add(_resolve(t, name, known))
    found.discard("")
    found.discard(name)
    return found


def _resolve(target: str, importer: str, known: set[str]) -> str:
    """The known module ``target`` names; a benchmark or script importing a sibling by its
    bare name (its folder is on ``sys.path``) names that sibling."""
    folder = importer.rpartition(".")[0]
    if folder in ("benchmarks", "scripts") and f"{folder}.{target.partition('.')[0]}" in known:
        target = f"{folder}.{target}"
    while target and target not in known:
        target = target.rpartition(".")[0]
    return target


def _graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    graph = {n: _imports(n, p, set(mods)) for n, p in mods.items()}
    # A package's __init__ importing its own submodules is how a package exposes them,
    # not a circle: only a submodule that imports the package back would close one.
    return {n: {m for m in deps if not m.startswith(n + ".")} for n, deps in graph.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                return stack[stack.index(m) :] + [m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


def _layer(module: str) -> int | None:
    """The rank of ``module``'s layer; None for the package root's own modules."""
    if module in ROOT_MODULES:
        return None
    parts = module.split(".")
    assert len(parts) >= 2 and parts[1] in LAYERS, (
        f"{module} is in no layer: put it in one of engine/{{{','.join(LAYERS)}}}/"
    )
    return LAYERS.index(parts[1])


def _layer_violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for mod, deps in sorted(graph.items()):
        rank = _layer(mod)
        for dep in sorted(deps):
            dep_rank = _layer(dep)
            if rank is not None and (dep_rank is None or dep_rank > rank):
                bad.append(f"{mod} imports {dep}, a higher layer")
    return bad


def _top_level_lines(tree: ast.Module) -> int:
    """Lines of a file's top-level code: everything but imports, definitions, the
    docstring and the ``if __name__ == "__main__"`` call that starts it."""
    n = 0
    for i, node in enumerate(tree.body):
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)):
            continue
        if i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue
        n += node.end_lineno - node.lineno + 1
    return n


def _long_functions(mods: dict[str, Path]) -> list[str]:
    long = []
    for name, path in mods.items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{name}.{node.name}: {n} lines")
        if not name.startswith("engine") and (n := _top_level_lines(tree)) > MAX_FUNCTION_LINES:
            long.append(f"{name} (top-level code): {n} lines")
    return long


def test_every_engine_module_is_in_a_layer_and_imports_only_downwards():
    mods = _engine_modules()
    assert _layer_violations(_graph(mods)) == []


def test_each_layer_package_says_what_it_owns_and_may_import():
    for layer in LAYERS:
        doc = ast.get_docstring(ast.parse((ENGINE / layer / "__init__.py").read_text()))
        assert doc and "import" in doc, f"engine/{layer}/__init__.py must say what it may import"


def test_no_import_circles_anywhere():
    graph = _graph(_files())
    assert _cycle(graph) is None, " → ".join(_cycle(graph) or [])


def test_no_function_over_80_lines():
    assert _long_functions(_files()) == []


def test_no_module_over_500_lines():
    big = [
        f"{name}: {n} lines"
        for name, path in _files().items()
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert not big, big


def test_the_checker_sees_a_circle_an_upward_import_and_typing_imports(tmp_path):
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    graph = {"engine.core.x": {"engine.running.y"}, "engine.running.y": {"engine.core.x"}}
    assert _layer_violations(graph) == ["engine.core.x imports engine.running.y, a higher layer"]
    src = tmp_path / "m.py"
    src.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from engine.core import config\n"
        "def f():\n    from engine.core.errors import BadInput\n"
    )
    known = {"engine.core.config", "engine.core.errors"}
    assert _imports("engine.artifacts.m", src, known) == known
    assert _resolve("sweep", "benchmarks.zoo", {"benchmarks.sweep"}) == "benchmarks.sweep"
    with pytest.raises(AssertionError, match="in no layer"):
        _layer("engine.stray")


def test_the_size_rule_counts_a_page_s_top_level_code_as_one_function():
    body = "\n".join(f"x{i} = {i}" for i in range(MAX_FUNCTION_LINES + 1))
    tree = ast.parse('"""doc"""\nimport os\n' + body + "\ndef f():\n    pass\n")
    assert _top_level_lines(tree) == MAX_FUNCTION_LINES + 1
