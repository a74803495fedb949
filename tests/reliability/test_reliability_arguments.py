"""Hostile command lines (issue 26): numbers out of range, bytes that are not UTF-8,
repeated values. Each ends in one ``error:`` line with exit 2, or runs once, never in a
traceback. Driven through ``engine.cli.main.main`` in this process: the same entry point
``python -m engine`` uses, without a child per case.
"""

from __future__ import annotations

import pytest

from engine.cli import main as cli
from engine.core.options import max_threads


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_error(code: int, err: str, *expected: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for word in expected:
        assert word in lines[0], lines[0]


# -- numbers are finite and in range, with the range in the message -------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["cache", "prune", "--max-size", "1e300"], "from 0 to 1e+09"),
        (["cache", "prune", "--max-size", "nan"], "from 0 to 1e+09"),
        (["cache", "prune", "--older-than", "1e300"], "from 0 to 36500"),
        (["cache", "prune", "--older-than=-inf"], "from 0 to 36500"),
        (["diagnose", "--no-probe", "--timeout", "inf"], "above 0 and at most 3600"),
        (["diagnose", "--no-probe", "--timeout", "nan"], "above 0 and at most 3600"),
        (["diagnose", "--no-probe", "--timeout", "-1"], "above 0 and at most 3600"),
        (["diagnose", "--no-probe", "--timeout", "0"], "above 0 and at most 3600"),
        (["bench", "--inter-threads", "0"], f"from 1 to {max_threads()}"),
        (["bench", "--inter-threads", "100000"], f"from 1 to {max_threads()}"),
        (["bench", "--threads", "100000"], f"at most {max_threads()}"),
        (["bench", "--threads", "0"], "≥ 1"),
        (["bench", "--warmup", "-1"], "from 0 to"),
        (["bench", "--iters", "0"], "from 1 to"),
        (["bench", "--max-time", "inf"], "above 0 and at most 86400"),
        (["bench", "--batch", "1e400"], "whole number"),
        (["bench", "--batch", "99999"], "between 1 and 4096"),
    ],
)
def test_a_number_out_of_range_is_one_line_naming_the_range(tmp_path, capsys, argv, expected):
    extra = ["--cache-dir", str(tmp_path)] if argv[0] == "cache" else []
    if argv[0] == "bench":
        extra = ["--model", "resnet18", "--image-size", "32", "--db", str(tmp_path / "r.sqlite")]
    code, _, err = run_main(capsys, *argv, *extra)
    assert_one_error(code, err, expected)
    assert not (tmp_path / "r.sqlite").exists()  # refused before a run was created


# -- bytes that are not UTF-8 (issue 26.7) ---------------------------------------------------

# What Python makes of the byte 0xff in a command line: a lone surrogate (surrogateescape).
NOT_UTF8 = "\udcff"
QUICK = ["--model", "resnet18", "--image-size", "32", "--batch", "1",
         "--iters", "1", "--warmup", "0", "--no-parity"]  # fmt: skip


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", *QUICK, "--db", f"a{NOT_UTF8}.sqlite"],
        ["bench", *QUICK, "--json", f"j{NOT_UTF8}.json"],
        ["bench", "--onnx", f"m{NOT_UTF8}.onnx"],
        ["history", "--db", f"a{NOT_UTF8}.sqlite"],
        ["report", "--out", f"r{NOT_UTF8}.md"],
        ["cache", "list", "--cache-dir", f"c{NOT_UTF8}"],
    ],
)
def test_an_argument_that_is_not_utf8_is_one_line(tmp_path, capsys, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(capsys, *argv)
    assert_one_error(code, err, "not UTF-8", "\\udcff")
    assert list(tmp_path.iterdir()) == []  # no database, document or report was started


def test_real_non_utf8_bytes_from_the_shell_never_end_in_a_traceback(tmp_path):
    from tests.conftest import run_cli

    db = tmp_path / f"a{NOT_UTF8}.sqlite"  # sent to the child as the byte 0xff
    res = run_cli("bench", *QUICK, "--db", str(db), timeout=300)
    assert_one_error(res.returncode, res.stderr, "not UTF-8")
    assert list(tmp_path.iterdir()) == []


# -- repeated values are measured once (issue 26.10) -----------------------------------------


def test_repeated_backends_devices_and_precisions_are_measured_once(tmp_path, capsys):
    db = tmp_path / "r.sqlite"
    argv = [*QUICK, "--backend", ",".join(["torch"] * 1000), "--device", "cpu,cpu",
            "--precision", "fp32,fp32", "--db", str(db)]  # fmt: skip
    code, out, err = run_main(capsys, "bench", *argv)
    assert code == 0, err
    assert "PyTorch FP32 on cpu was asked for 4000 times: measured once" in err
    from engine.storage.store import Store

    store = Store(db)
    assert [(r.backend, r.status) for r in store.rows(1)] == [("torch", "ok")]
    store.close()


# -- a weights file is judged by its first bytes (issue 26.11) --------------------------------


@pytest.mark.parametrize("head", [b"\x00" * 8, b"\x89PNG\r\n\x1a\n"])
def test_a_huge_file_that_is_no_torch_save_is_refused_before_hashing(tmp_path, capsys, head):
    weights = tmp_path / "huge.pt"
    with open(weights, "wb") as f:  # sparse: 16 GiB that cost nothing to make
        f.write(head)
        f.truncate(16 * 2**30)
    argv = [
        *QUICK,
        "--backend",
        "torch",
        "--weights",
        str(weights),
        "--db",
        str(tmp_path / "r.sqlite"),
    ]
    code, _, err = run_main(capsys, "bench", *argv)
    assert_one_error(code, err, "huge.pt is not a PyTorch save", "zip archive")
