"""``python -m engine``: bench, export, diagnose, and the commands of later modules.

Every subcommand shares one error policy: an :class:`EngineError` becomes one line on
stderr and its exit code (2 bad input, 3 unavailable); tracebacks are for our bugs.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shlex
import signal
import sys

from engine.cli.args import (
    Parser,
    add_image_size,
    model_spec,
    parse_list,
    utf8_arguments,
    weights_file,
)
from engine.core.commands import engine_command, pip_command
from engine.core.errors import BadInput, EngineError, Unavailable
from engine.core.text import raw_stream, safe_stdio, safe_text
from engine.storage.runend import (
    STOP_SIGNALS,
    WORKER_TERMINATED,
    Terminated,
    install_sigterm,
    restore_signals,
)

SOME_FAILED = 4  # exit code: a run measured some points, and others failed (README table)
DEFAULT_BATCHES = (1, 8, 32)  # bench without --batch

# subcommand → "module:function" taking argv (list[str]) and returning an exit code
COMMANDS: dict[str, tuple[str, str]] = {
    "bench": ("engine.cli.main:bench_main", "measure backends × precisions × batch sizes"),
    "export": ("engine.cli.main:export_main", "export a torchvision model to ONNX"),
    "diagnose": ("engine.diagnostics.cli:main", "explain where ONNX Runtime will run, and why"),
    "history": ("engine.cli.history:main", "list and compare stored runs"),
    "import": ("engine.cli.imports:main", "import bench --json documents"),
    "report": ("engine.cli.report:main", "write an HTML or markdown report"),
    "cache": ("engine.cli.cache:main", "list, size and prune the artifact cache"),
    "build": (
        "engine.cli.build:main",
        "build and cache engines (compiled, TensorRT) ahead of time",
    ),
    "trt-build": ("engine.cli.trt_build:main", "build a TensorRT plan without running it"),
}


# import name → pip name of every package requirements.txt installs (TensorRT is optional
# and each backend reports its own absence).
REQUIRED_MODULES: dict[str, str] = {
    "torch": "torch",
    "torchvision": "torchvision",
    "onnx": "onnx",
    "onnxscript": "onnxscript",
    "onnxruntime": "onnxruntime-gpu",
    "numpy": "numpy",
    "pandas": "pandas",
    "PIL": "pillow",
    "streamlit": "streamlit",
    "plotly": "plotly",
    "filelock": "filelock",
    "pynvml": "nvidia-ml-py",
}


def missing_package(package: str) -> Unavailable:
    """A required package that this Python lacks: almost always the wrong interpreter."""
    return Unavailable(
        f"the package {package} is not installed for this Python ({sys.executable})",
        "the commands need the environment the README's install command creates",
        "run them with .venv/bin/python -m engine … (or activate it: source .venv/bin/activate),"
        f" or install the requirements: {pip_command()} install -r requirements.txt",
    )


def bench_parser() -> argparse.ArgumentParser:
    p = Parser(prog=engine_command("bench"), description=COMMANDS["bench"][1])
    src = p.add_argument_group("model")
    src.add_argument("--model", help="torchvision classifier name (default resnet50)")
    src.add_argument("--onnx", help="a user ONNX file (one NCHW float input) instead of --model")
    src.add_argument("--weights", help="random | pretrained | FILE (default random)")
    add_image_size(src)
    src.add_argument("--seed", type=int, default=0, help="seed of the random weights and inputs")
    run = p.add_argument_group("what to run")
    from engine.backends import backend_names

    run.add_argument(
        "--backend", default="torch,ort", help=f"comma list: {', '.join(backend_names())}"
    )
    run.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (comma list allowed)")
    run.add_argument("--precision", default="fp32", help="comma list: fp32 tf32 fp16 bf16 int8")
    default = ",".join(map(str, DEFAULT_BATCHES))
    run.add_argument(
        "--batch",
        help=f"comma list of batch sizes (default {default}; an ONNX file's own batch where"
        " its input fixes one)",
    )
    run.add_argument(
        "--only-runnable",
        action="store_true",
        help="leave out backend × precision pairs that can never run (as the dashboard does)",
    )
    run.add_argument("--calibration-dir", help="folder of images for int8 calibration")
    run.add_argument("--auto", action="store_true", help="find the fastest agreeing setting")
    run.add_argument(
        "--with-compile", action="store_true", help="auto: also try torch.compile (minutes)"
    )
    tm = p.add_argument_group("timing")
    from engine.core import config
    from engine.core.options import add_setting_flags

    add_setting_flags(tm, config.SWEEP_SETTINGS)  # generated from the settings' declaration
    tm.add_argument("--no-parity", action="store_true", help="skip the output comparison")
    out = p.add_argument_group("output")
    out.add_argument("--json", help="write the run as a JSON document")
    out.add_argument("--db", help="results database (default: the user data folder)")
    out.add_argument("--cache-dir", help="artifact cache (default: the user cache folder)")
    out.add_argument("--quiet", action="store_true", help="no progress output")
    out.add_argument(
        "--inline",
        action="store_true",
        help="run in this process (default: a worker process, so a native crash is a row)",
    )
    from engine.backends import declared_options
    from engine.core.options import add_cli_flags

    # Every registered backend's options, generated from their declarations.
    add_cli_flags(p.add_argument_group("backend options"), declared_options())
    return p


def build_choice(args: argparse.Namespace):
    """What the flags ask for, as a :class:`~engine.core.config.Choice` (nothing planned yet)."""
    from engine.artifacts.models import check_batches
    from engine.backends import declared_options
    from engine.cli.args import model_spec
    from engine.core import config
    from engine.core.config import Choice
    from engine.core.limits import check_threads
    from engine.core.options import from_cli, settings_from_cli

    model, args.size_note = model_spec(args)
    asked = tuple(parse_list(args.batch, int, "batch size")) if args.batch is not None else None
    if model.onnx_path:  # a file that fixes its batch: that batch, unless one is asked
        from engine.artifacts.onnx_source import file_batches

        batches = check_batches(file_batches(model.onnx_path, asked, DEFAULT_BATCHES))
    else:
        batches = check_batches(DEFAULT_BATCHES if asked is None else asked)
    if args.threads is not None:
        check_threads(args.threads)
    bench = settings_from_cli(args, config.SWEEP_SETTINGS)
    if bench.iters < 1 or bench.warmup < 0 or bench.max_time_s <= 0 or bench.min_iters < 1:
        raise BadInput("--iters and --min-iters must be ≥ 1, --warmup ≥ 0 and --max-time > 0")
    return Choice(
        model=model,
        backends=tuple(parse_list(args.backend, str, "backend")),
        devices=tuple(parse_list(args.device, str, "device")),
        precisions=tuple(parse_list(args.precision, str, "precision")),
        batches=tuple(batches),
        options=tuple(sorted(from_cli(args, declared_options()).items())),
        bench=bench,
        parity=not args.no_parity,
        calibration_dir=args.calibration_dir,
        only_runnable=args.only_runnable,
        auto=args.auto,
        include_compile=args.with_compile,
    )


def build_config(args: argparse.Namespace):
    """The sweep the flags ask for, auto mode aside (its candidates come from this)."""
    from dataclasses import replace

    from engine.running.plan import make_plan

    return make_plan(replace(build_choice(args), auto=False)).config


class Progress:
    """A one-line progress bar on a terminal, plain lines otherwise."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.last = ""

    def __call__(self, done: int, total: int, msg: str) -> None:
        if self.quiet or msg == self.last:
            return
        self.last = msg
        if self.tty:
            width = 24
            fill = int(width * done / max(total, 1))
            # Our own erase-line escape goes under the sanitiser; the message goes through it.
            raw = raw_stream(sys.stderr)
            raw.write(f"\r\x1b[K[{'#' * fill}{'.' * (width - fill)}] {done}/{total} ")
            raw.write(safe_text(msg))
            raw.flush()
        else:
            print(f"[{done}/{total}] {msg}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.tty and not self.quiet:
            sys.stderr.write("\n")


def format_table(rows) -> str:
    from engine.backends import precision_text
    from engine.core.config import parity_label
    from engine.core.stability import POINT_COLUMNS, point_cells  # numpy: not at CLI start-up
    from engine.core.text import short_clause

    head = [
        "backend",
        "precision",
        "device",
        "provider",
        "batch",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "img/s",
        "parity",
        *POINT_COLUMNS,
    ]
    lines = []
    for r in rows:
        if r.status != "ok":
            lines.append(
                [
                    r.backend,
                    r.precision,
                    r.device,
                    r.status,
                    str(r.batch),
                    "-",
                    "-",
                    "-",
                    "-",
                    short_clause(r.reason),
                    *("-" * len(POINT_COLUMNS)),
                ]
            )
            continue
        parity = parity_label(r.parity_status)
        lines.append(
            [
                r.backend,
                precision_text(r.backend, r.precision, r.device, r.options),
                r.device,
                r.provider,
                str(r.batch),
                f"{r.p50_ms:.2f}",
                f"{r.p90_ms:.2f}",
                f"{r.p99_ms:.2f}",
                f"{r.throughput_ips:.1f}",
                parity,
                *point_cells(r),
            ]
        )
    widths = [
        max(len(h), *(len(line[i]) for line in lines)) if lines else len(h)
        for i, h in enumerate(head)
    ]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*line) for line in lines]
    return "\n".join(out)


_STOP_CODES = {str(Terminated(s)): Terminated(s).exit_code for s in STOP_SIGNALS}
_STOP_CODES[WORKER_TERMINATED] = Terminated(signal.SIGTERM).exit_code


def _exit_code(outcome) -> int:
    """The README's exit codes for a finished sweep: 0 all measured (or not applicable), 4
    some failed or the worker died, 130/143 interrupted, the worst error when none ran."""
    if outcome.interrupted:
        said = (
            "interrupted: the points measured so far are stored"
            if outcome.run_id is not None
            else "interrupted before any point was measured: nothing was stored"
        )
        print(said, file=sys.stderr)
        return _STOP_CODES.get(outcome.end_reason, 130)
    if not outcome.measured:
        codes = [e.exit_code for e in outcome.errors] or [1]
        code = 3 if 3 in codes else max(codes)
        first = outcome.errors[0].user_message() if outcome.errors else "nothing was measured"
        print(f"error: nothing requested could run. {first}", file=sys.stderr)
        return code
    failed = [r for r in outcome.rows if r.status in ("failed", "oom")]
    died = getattr(outcome, "failure", "")  # a worker launcher's: how its child ended
    if failed or died:
        print(
            f"error: {len(failed)} of {len(outcome.rows)} point(s) failed"
            f"{f' ({died})' if died else ''}; every point measured is stored",
            file=sys.stderr,
        )
        return SOME_FAILED
    return 0


def bench_main(argv: list[str]) -> int:
    args = bench_parser().parse_args(argv)
    if args.cache_dir:
        from engine.core.paths import set_cache_dir

        set_cache_dir(args.cache_dir)
    if args.json:  # before anything is read or measured; never the store or the input model
        from engine.core.paths import check_output

        check_output(
            args.json,
            "--json",
            {
                "the --db store": args.db,
                "the --onnx model": args.onnx,
                "the --weights file": weights_file(args.weights),
                "the --calibration-dir folder": args.calibration_dir,
            },
        )
    choice = build_choice(args)
    from engine.backends import get_backend
    from engine.cli.args import check_some_device_runs

    for name in choice.backends:  # an unknown name is bad input before any device is asked
        get_backend(name)
    check_some_device_runs(list(dict.fromkeys(choice.devices)))
    from engine.core.paths import python_command
    from engine.running.plan import make_plan

    plan = make_plan(choice, shlex.join([python_command(), "-m", "engine", "bench", *argv]))
    config = plan.config
    from engine.storage.store import Store

    store = Store(args.db)
    progress = Progress(args.quiet)
    from engine.running.launch import Callbacks, Job, launcher_for

    launcher = launcher_for(inline=args.inline)
    outcome = launcher.launch(Job(plan), store, Callbacks(progress=progress))
    progress.close()
    for note in outcome.notes:
        print(f"note: {note}", file=sys.stderr)
    from engine.artifacts.onnx_source import inputs_words

    if args.size_note:
        print(f"note: {args.size_note}", file=sys.stderr)
        if outcome.run_id is not None:  # the sweep's own notes are stored as it goes
            store.add_notes(outcome.run_id, [args.size_note])
    print(f"model: {config.model.label}, image size {config.model.size_text}")
    print(f"inputs: {inputs_words(config.model.onnx_path)}")
    print(format_table(outcome.rows))
    if args.auto:
        from engine.running.auto import format_ladder

        print(format_ladder(outcome))
    reasons = {
        (r.backend, r.precision, r.device, r.status, r.reason)
        for r in outcome.rows
        if r.status != "ok"
    }
    for backend, precision, device, status, reason in sorted(reasons):
        print(f"{status} {backend} {precision} on {device}: {reason}", file=sys.stderr)
    if outcome.run_id is not None:
        print(f"stored as run {outcome.run_id} in {store.path.name}", file=sys.stderr)
    if args.json and outcome.run_id is not None:
        try:
            store.export_json(outcome.run_id, args.json)
        except EngineError as exc:  # the run is stored: say so, and how to write it again
            print(
                f"error: {exc.user_message()} The run is kept: run {outcome.run_id} and its"
                f" {len(outcome.rows)} rows are stored in {store.path.name}",
                file=sys.stderr,
            )
            return exc.exit_code
        print(f"wrote {args.json}", file=sys.stderr)
    return _exit_code(outcome)


def export_main(argv: list[str]) -> int:
    p = Parser(prog=engine_command("export"), description=COMMANDS["export"][1])
    p.add_argument("--model", help="torchvision classifier name (default resnet50)")
    p.add_argument("--weights", help="random | pretrained | FILE (default random)")
    add_image_size(p, onnx=False)
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    p.add_argument("--out", required=True, help="where to write the .onnx file")
    p.add_argument("--cache-dir")
    args = p.parse_args(argv)
    if args.cache_dir:
        from engine.core.paths import set_cache_dir

        set_cache_dir(args.cache_dir)
    from engine.artifacts.models import load_artifacts
    from engine.core.paths import check_output
    from engine.core.safeio import copy_file

    # before minutes of export, not after
    check_output(args.out, "--out", {"the --weights file": weights_file(args.weights)})

    spec, _ = model_spec(args)
    art = load_artifacts(spec)
    path = art.onnx_path(args.precision, progress=lambda m: print(m, file=sys.stderr))
    for note in art.notes:
        print(f"note: {note}", file=sys.stderr)
    out = copy_file(path, args.out, "--out")
    print(
        json.dumps(
            {
                "out": str(out),
                "bytes": out.stat().st_size,
                "model": spec.name,
                "image_size": spec.size_text,
                "precision": args.precision,
                "weights": art.weights_label,
            }
        )
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    old = install_sigterm()  # SIGTERM (SIGHUP) ends a run like Ctrl-C: recorded, exit 143 (129)
    try:
        with safe_stdio():  # results and ONNX names come from files: no escapes reach a terminal
            return _dispatch(list(sys.argv[1:] if argv is None else argv))
    except BrokenPipeError:  # `python -m engine ... | head`: the reader left, not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        restore_signals(old)


def _dispatch(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: {engine_command('COMMAND [options]')}\n\ncommands:")
        for name, (_, help_) in COMMANDS.items():
            print(f"  {name:<10} {help_}")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command '{name}'; commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module, _, func = COMMANDS[name][0].partition(":")
    try:
        utf8_arguments(rest)
        fn = getattr(importlib.import_module(module), func)
        return int(fn(rest) or 0)
    except EngineError as exc:
        print(f"error: {safe_text(exc.user_message())}", file=sys.stderr)
        return exc.exit_code
    except ModuleNotFoundError as exc:
        package = REQUIRED_MODULES.get((exc.name or "").partition(".")[0])
        if package is None:
            raise  # not one of our requirements: our bug, keep the traceback
        print(f"error: {missing_package(package).user_message()}", file=sys.stderr)
        return 3
    except Terminated as exc:
        print(str(exc), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("error: out of memory. Fix: use a smaller --batch or image size", file=sys.stderr)
        return 3
    except SystemExit as exc:  # argparse --help
        return int(exc.code or 0)
