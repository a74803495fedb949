#!/usr/bin/env bash
# Installs everything the tests need into .venv (and Debian's chromium for the browser
# test, when run as root), then runs the linter and the whole test suite (TEST_WORKERS=0
# runs it in one process).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-trt-rtx.txt || echo "TensorRT-RTX wheels did not install; tests/backends/test_tensorrt_rtx.py will say why it is skipped"
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
    || echo "could not install chromium; the browser test will say why it is skipped"
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# Two worker processes (pytest-xdist): much of the suite waits on child processes, servers
# and a browser. Each takes whole files (a file's servers, builds and models are made once),
# files with more tests first (pytest-xdist's order; tests/conftest.py says what was tried).
exec .venv/bin/python -m pytest -n "${TEST_WORKERS:-2}" --dist loadfile "$@"
