"""Command-line entry points that are not part of ``engine/cli.py`` itself.

Each module has a ``main(argv) -> exit code`` registered by one line in
``engine.cli.COMMANDS``; the library code they call lives elsewhere in ``engine/``.
"""
