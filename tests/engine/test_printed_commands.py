"""Every command the product prints starts the way the README's install runs it.

The README installs into the checkout's ``.venv`` and promises ``.venv/bin/python``; a fix
that says bare ``pip install …`` or ``python -m …`` there reaches the system's Python
(item 8 of issue 27). Each printed command is built by engine/core/commands.py; this scans
every string in engine/ and pages/ (docstrings aside) for one written by hand, and checks
what the helpers print in and out of that environment.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

from engine.core.commands import engine_command, pip_command, python_command

ROOT = Path(__file__).resolve().parents[2]
# "pip install", "pip uninstall", "python -m", "python3 -m" typed into a string by hand
BARE = re.compile(r"(?<![\w/.{-])(pip3?|python3?) (install|uninstall|-m)\b")


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            if isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def hand_written_commands(folder: Path, root: Path = ROOT) -> list[str]:
    found = []
    for path in sorted(folder.rglob("*.py")):
        tree = ast.parse(path.read_text())
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if id(node) not in docs and BARE.search(node.value):
                    found.append(f"{path.relative_to(root)}:{node.lineno}: {node.value[:80]}")
    return found


@pytest.mark.parametrize("folder", ["engine", "pages"])
def test_no_printed_command_names_a_bare_python_or_pip(folder):
    assert hand_written_commands(ROOT / folder) == []


def test_the_scan_sees_a_hand_written_command(tmp_path):
    (tmp_path / "m.py").write_text(
        '"""Docstrings may say python -m engine."""\nFIX = "pip install torch"\n'
        'OK = f"{pip} install torch"\n'
    )
    found = hand_written_commands(tmp_path, tmp_path)
    assert [x.split(": ", 1)[1] for x in found] == ["pip install torch"]


def test_in_the_checkout_s_venv_fixes_name_it_and_elsewhere_the_plain_names(monkeypatch, capsys):
    from engine.backends.tensorrt.flavour import install_command
    from engine.cli.main import main
    from engine.diagnostics.cuda_wheels import pip_install

    monkeypatch.setattr(sys, "prefix", str(ROOT / ".venv"))
    assert (python_command(), pip_command()) == (".venv/bin/python", ".venv/bin/pip")
    assert engine_command("diagnose") == ".venv/bin/python -m engine diagnose"
    assert install_command().startswith(".venv/bin/pip install tensorrt-cu")
    assert pip_install(["libcudnn.so.9"], 13).startswith('.venv/bin/pip install "nvidia-cudnn')
    assert main(["bench", "--no-such-flag"]) == 2
    assert "see `.venv/bin/python -m engine bench --help`" in capsys.readouterr().err
    monkeypatch.setattr(sys, "prefix", "/usr")
    assert (python_command(), pip_command()) == ("python", "pip")
    assert install_command().startswith("pip install tensorrt-cu")
    assert main(["history", "--no-such-flag"]) == 2
    assert "see `python -m engine history --help`" in capsys.readouterr().err
