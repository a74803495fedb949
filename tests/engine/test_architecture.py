"""The size and import rules of the developer guide, checked on engine/ by reading its source.

No import circles between engine modules, counting imports inside functions; no function
over 80 lines; no module over 500 lines. Read with ``ast``, nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[2] / "engine"
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 500
# No exceptions: the splits of diagnostics, tensorrt and history have landed.
TEMPORARY_EXCEPTIONS: set[str] = set()
LONG_FUNCTIONS_ELSEWHERE: set[str] = set()


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ENGINE.rglob("*.py")):
        parts = list(path.relative_to(ENGINE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Engine modules ``name`` imports anywhere in its file (functions included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    tree = ast.parse(path.read_text())
    # Imports only a type checker runs are no dependency at run time.
    typing_only = {
        id(sub)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING"
        for sub in ast.walk(node)
    }
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
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
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


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


def test_no_import_circles_in_engine():
    mods = _modules()
    graph = {n: _imports(n, p, set(mods)) for n, p in mods.items()}
    # A package's __init__ importing its own submodules is how a package exposes them,
    # not a circle: only a submodule that imports the package back would close one.
    for n in graph:
        graph[n] = {m for m in graph[n] if not m.startswith(n + ".")}
    assert _cycle(graph) is None, " → ".join(_cycle(graph) or [])


def test_no_function_over_80_lines():
    long = []
    for name, path in _modules().items():
        if name in TEMPORARY_EXCEPTIONS:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES and f"{name}.{node.name}" not in LONG_FUNCTIONS_ELSEWHERE:
                    long.append(f"{name}.{node.name}: {n} lines")
    assert not long, long


def test_no_module_over_500_lines():
    big = [
        f"{name}: {n} lines"
        for name, path in _modules().items()
        if name not in TEMPORARY_EXCEPTIONS
        and (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert not big, big


def test_the_checker_sees_a_circle_and_a_function_import():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}}
    assert _cycle(graph) == ["a", "b", "c", "a"]
    src = ENGINE / "models.py"
    assert _imports("engine.models", src, set(_modules())) >= {"engine.config", "engine.errors"}
