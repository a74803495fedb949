"""Compiled engines on a GPU (issue 29): cold build, warm load, and auto mode's answer against
the torch.compile peer, per model, as a user runs them.

For each model, one after another on one GPU (nothing overlaps):

1. cold: ``bench --auto --with-compile`` at the batch: auto mode builds the compiled engine
   (an AOTInductor package, max-autotune, FP16 channels-last) and caches it;
2. warm: ``bench --auto`` again, in a fresh process: the engine is loaded from the cache
   (its notes say so) and is one of the ladder's candidates;
3. head-to-head: the warm winner's configuration and the torch.compile peer (max-autotune,
   FP16, channels-last, just in time, as a user compiles it; Inductor's own caches as they
   are after step 1), each prepared once in its own process (two compiled runtimes in one
   process crashed once on an H100), its outputs judged against FP32 on the CPU, then timed
   in turn, one round each, for ``--rounds`` rounds: the ratio per round and whether the
   winner is slower beyond the rounds' spread. A process that dies is recorded with its exit
   and its log (each step said as it starts; Python's stack if it dies in native code);
4. only if the winner's process died before it was ready: the winner benched alone by
   ``bench`` in a fresh worker, then the head-to-head again with each process running the
   eager model once on the device first, as a bench's worker has by then.

Wall times of each command, the notes and the rows go to ``<out>/<model>.json``, written after
each step; ``--merge`` writes ``<out>/compiled.md``. A model whose JSON is complete is skipped;
one cut short resumes at its first step not done, on the same boot of the same machine only
(an engine cached on one machine is not on the next: its steps are redone there), unless
its engine is carried. One lease's device time (30 minutes) holds the cold build, warm run
and head-to-head of a small model, not of efficientnet_b1 (cold 873 s, then the peer's
compile): with ``--carry-out DIR`` each engine a cold step builds is packed into DIR as a
tar in parts of under 16 MiB (what a lease hands back), and ``--carry-in DIR`` unpacks such
parts into this machine's cache first and resumes a record of another machine whose engine
is now cached here (same GPU model and library versions, or the product rebuilds it: its key
says so), at the head-to-head. ``--only-build`` stops each model before its head-to-head (after
the cold and warm steps): a lease builds the next model's engine, the next lease judges it.

    python benchmarks/compiled_engines.py --out benchmarks/results/compiled \\
        --models regnet_x_400mf,convnext_tiny --budget-s 900
    python benchmarks/compiled_engines.py --out benchmarks/results/compiled --merge
"""

from __future__ import annotations

import argparse
import json
import select
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import engine_carry as carry
import load_profile

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_MODELS = "regnet_x_400mf,convnext_tiny,efficientnet_b1,resnet50,efficientnet_b0"
PEER = {"backend": "torch_compile", "precision": "fp16", "options": {"channels_last": True}}


def _cli(args: argparse.Namespace, *extra: str, json_out: Path) -> dict[str, Any]:
    """One ``python -m engine bench`` as a user runs it: wall time, exit code, notes, rows."""
    cmd = [sys.executable, "-m", "engine", "bench", "--model", args.model_name]
    cmd += ["--image-size", str(args.image_size)]
    cmd += ["--device", args.device, "--batch", str(args.batch), "--json", str(json_out)]
    cmd += ["--iters", str(args.iters), "--warmup", str(args.warmup), "--quiet", *extra]
    t0 = time.monotonic()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    wall = round(time.monotonic() - t0, 1)
    doc = json.loads(json_out.read_text()) if json_out.is_file() else {}
    notes = [ln[6:] for ln in done.stderr.splitlines() if ln.startswith("note: ")]
    return {
        "command": " ".join(cmd[1:]).replace(str(json_out), json_out.name),
        "exit": done.returncode,
        "wall_s": wall,
        "notes": notes,
        "stderr_tail": done.stderr[-1500:] if done.returncode else "",
        "rows": doc.get("rows", []),
        "run": {k: _no_path(v, json_out) for k, v in doc.get("run", {}).items()},
    }


def _no_path(value: Any, json_out: Path) -> Any:
    """The run's record without this machine's scratch path (in its reproduce command)."""
    return value.replace(str(json_out), json_out.name) if isinstance(value, str) else value


def _winner(rows: list[dict]) -> dict | None:
    from engine.core.config import ResultRow
    from engine.running.auto import ladders_from_rows

    ladders = ladders_from_rows([ResultRow.from_dict(r) for r in rows])
    best = [s for steps in ladders.values() for s in steps if s.best]
    return best[0].to_dict() if best else None


def _serve(request: str) -> None:
    """The head-to-head's child: prepare one runner, say ``ready``, then time one round per
    ``time`` line read, until stdin closes. Each step is said on stderr (the child's log,
    with Python's stack should the process die in native code) as it starts."""
    from engine.artifacts.models import load_artifacts
    from engine.backends import get_backend
    from engine.backends.base import PrepareContext
    from engine.core.config import BenchSettings, ModelSpec, RunnerSpec
    from engine.core.parity import compare
    from engine.running.measure import time_point
    from engine.running.reference import reference_outputs

    def step(what: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} serve: {what}", file=sys.stderr, flush=True)

    r = json.loads(request)
    step("loading the model")
    art = load_artifacts(ModelSpec(r["model"], "random", r["image_size"]))
    x = art.sample_input(r["batch"])
    settings = BenchSettings(warmup=r["warmup"], iters=r["iters"], max_time_s=5.0)
    spec = RunnerSpec(r["backend"], r["device"], r["precision"], r["options"])
    t0 = time.monotonic()
    step("the FP32 reference on the CPU (first, as a sweep computes it)")
    reference = reference_outputs(art, x)
    if r.get("prelude") == "eager":
        step("one eager forward pass on the device first, as a bench's earlier rows run")
        _eager_pass(art, x, r["device"])
    ctx = PrepareContext(batches=(r["batch"],), progress=step)
    step(f"preparing {r['backend']} {r['precision']} {r['options']}")
    with get_backend(spec.backend).prepare(spec, art, ctx) as runner:
        step("first inference")
        y = runner.infer(x)
        ready = {"ready_s": round(time.monotonic() - t0, 1), "notes": list(ctx.notes)}
        ready["parity"] = compare(
            reference, y, get_backend(spec.backend).parity_precision(spec)
        ).status
        step("ready")
        print(json.dumps(ready), flush=True)
        for line in sys.stdin:
            if line.strip() == "time":
                print(json.dumps({"p50_ms": time_point(runner, x, settings).p50_ms}), flush=True)


def _eager_pass(art, x, device: str) -> None:
    """One FP32 forward pass of the eager model on ``device``, as the rows a bench runs
    before a compiled engine's have run in its worker by then."""
    from engine.backends import get_backend
    from engine.backends.base import PrepareContext
    from engine.core.config import RunnerSpec

    spec = RunnerSpec("torch", device, "fp32")
    with get_backend("torch").prepare(spec, art, PrepareContext(batches=(x.shape[0],))) as eager:
        eager.infer(x)


class _Child:
    """One configuration in its own process, driven one line at a time."""

    def __init__(self, args: argparse.Namespace, row: dict, log: Path, prelude: str = "") -> None:
        request = {
            "model": args.model_name, "image_size": args.image_size, "batch": args.batch,
            "device": args.device, "warmup": args.warmup, "iters": args.iters,
            "prelude": prelude, **{k: row[k] for k in ("backend", "precision", "options")},
        }  # fmt: skip
        self.log = log
        script = str(Path(__file__).resolve())
        cmd = [sys.executable, "-X", "faulthandler", script, "--serve", json.dumps(request)]
        with log.open("w") as err:
            self.proc = subprocess.Popen(
                cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True
            )

    def read(self, timeout_s: float) -> dict:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.proc.kill()
            code = self.proc.wait()
            tail = self.log.read_text(errors="replace")[-4000:]
            raise ChildError(f"exit {code}" if ready else f"no answer in {timeout_s:.0f} s", tail)
        return json.loads(line)

    def time(self) -> float:
        self.proc.stdin.write("time\n")
        self.proc.stdin.flush()
        return self.read(600)["p50_ms"]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class ChildError(RuntimeError):
    pass


def _head_to_head(
    args: argparse.Namespace, winner: dict, peer: dict, logs: Path, prelude: str = ""
) -> dict:
    """Both configurations prepared once, each in its own process, then timed in turn.
    With ``prelude="eager"`` each process runs the eager model once on the device before it
    prepares its configuration."""
    children: dict[str, _Child] = {}
    out: dict[str, Any] = {"prepare": {}, **({"prelude": prelude} if prelude else {})}
    k = "winner"
    try:
        for k, row in (("winner", winner), ("peer", peer)):  # one at a time: nothing overlaps
            log = logs / f"{args.model_name}-{k}{'-' + prelude if prelude else ''}.log"
            children[k] = _Child(args, row, log, prelude)
            out["prepare"][k] = children[k].read(3600)
        p50: dict[str, list[float]] = {k: [] for k in children}
        for _ in range(args.rounds):
            for k, child in children.items():
                p50[k].append(child.time())
    except ChildError as exc:  # ``k``: the process that died, preparing or timing
        return {**out, "error": f"{exc.args[0]}", "died": k, "stderr_tail": exc.args[1]}
    finally:
        for child in children.values():
            child.close()
    ratios = [w / p for w, p in zip(p50["winner"], p50["peer"], strict=True)]
    spread = max(ratios) - min(ratios)
    ratio = statistics.median(ratios)
    slower = ratio > 1 and min(ratios) > 1 and ratio - 1 > spread / 2
    return {
        **out,
        "rounds_p50_ms": p50,
        "ratio_winner_over_peer": [round(r, 4) for r in ratios],
        "median_ratio": round(ratio, 4),
        "verdict": "SLOWER than the peer beyond noise" if slower else "not slower beyond noise",
    }


def _boot() -> str:
    """This boot of this machine: a step done on another cannot be resumed here (its engine
    is not in this machine's cache)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def run_model(name: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    from zoo import _commit, _stamp

    args.model_name = name
    path = out / f"{name}.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    rec: dict[str, Any] = old if old.get("boot") == _boot() != "unknown" else {}
    if not rec and args.carry_in and carry.carried(old):  # its engine was carried here
        rec = {**old, "boot": _boot(), "resumed": {**_stamp(args.device), "from_boot": old["boot"]}}
    if not rec:
        rec = {"model": name, "batch": args.batch, **_stamp(args.device), "boot": _boot()}
        rec["tree"] = _commit()[1]
    scratch = out / "runs"
    scratch.mkdir(parents=True, exist_ok=True)
    for step, flags in {"cold": ("--auto", "--with-compile"), "warm": ("--auto",)}.items():
        if rec.get(step, {}).get("exit") != 0:
            rec[step] = _cli(args, *flags, json_out=scratch / f"{name}-{step}.json")
            path.write_text(json.dumps(rec, indent=1))
        key = carry.engine_key(rec) if step == "cold" else ""
        if key and args.carry_out and "carried_out" not in rec:
            rec["carried_out"] = carry.pack(key, Path(args.carry_out))
            path.write_text(json.dumps(rec, indent=1))
    if args.only_build:  # built, and reused by a second bench: the head-to-head is left
        return rec
    rec["winner"] = winner = _winner(rec["warm"]["rows"])
    if winner and args.profile_load and "load_profile" not in rec:
        rec["load_profile"] = _profiled(args, winner, scratch)
        args.profile_load = False  # once a session: the cost is the machine's, not the model's
        path.write_text(json.dumps(rec, indent=1))
    if winner and args.rounds and "median_ratio" not in rec.get("head_to_head", {}):
        rec["head_to_head"] = h2h = _head_to_head(args, winner, PEER, scratch)
        if h2h.get("died") == "winner" and "winner" not in h2h["prepare"]:
            _winner_died(args, rec, winner, scratch, path)
    rec["complete"] = "median_ratio" in rec.get("head_to_head", {})
    return rec


def _profiled(args: argparse.Namespace, winner: dict, scratch: Path) -> dict[str, Any]:
    """``load_profile.profile_load`` in a fresh process: its exit, wall time, and where the profile went."""
    request = {
        "model": args.model_name, "image_size": args.image_size, "batch": args.batch,
        "device": args.device, **{k: winner[k] for k in ("backend", "precision", "options")},
    }  # fmt: skip
    text = scratch / f"{args.model_name}-load-profile.txt"
    cmd = [sys.executable, "-X", "faulthandler", str(Path(__file__).resolve())]
    cmd += ["--profile-load", json.dumps(request)]
    t0 = time.monotonic()
    with text.open("w") as fh:
        done = subprocess.run(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, timeout=1800)
    return {"exit": done.returncode, "wall_s": round(time.monotonic() - t0, 1), "file": text.name}


def _winner_died(args: argparse.Namespace, rec: dict, winner: dict, scratch: Path, path) -> None:
    """The winner's process died before it was ready (on an H100 on 2026-12-07, twice, with
    an AOTInductor package that ``bench`` itself ran). Recorded, then: the winner benched
    alone by the product in a fresh worker, as a user would, and the head-to-head again with
    each process running the eager model on the device first, as the bench's worker had."""
    from engine.backends import declared_options
    from engine.core.options import cli_args

    rec["head_to_head_first"] = rec["head_to_head"]
    flags = cli_args(declared_options(), winner["options"])
    rec["alone"] = _cli(
        args, "--backend", winner["backend"], "--precision", winner["precision"], *flags,
        json_out=scratch / f"{args.model_name}-alone.json",
    )  # fmt: skip
    path.write_text(json.dumps(rec, indent=1))
    rec["head_to_head"] = _head_to_head(args, winner, PEER, scratch, prelude="eager")


def _row_text(rec: dict) -> str:
    cold, warm = rec["cold"], rec["warm"]
    winner = rec.get("winner") or {}
    compiled = next((r for r in warm["rows"] if r["provider"].startswith("torch-aoti")), {})
    h2h = rec.get("head_to_head") or {}
    p50 = h2h.get("rounds_p50_ms") or {}
    return (
        f"| {rec['model']} | {cold['wall_s']:.0f} s (build"
        f" {_seconds(cold['notes'], 'built the compiled engine')} s) | {warm['wall_s']:.0f} s"
        f" (engine loaded in {_seconds(warm['notes'], 'loaded the cached compiled engine')} s)"
        f" | {_ms(compiled)} | {winner.get('label', '-')} {_ms(winner)} | {_peer(rec)} |"
        f" {_median(p50.get('winner'))} / {_median(p50.get('peer'))} ="
        f" {h2h.get('median_ratio', '-')}: {h2h.get('verdict') or _failed(h2h)}"
        f"{' (each process ran the eager model first: see below)' if h2h.get('prelude') else ''} |"
    )


def _died_text(rec: dict) -> str:
    """What happened when the winner's process died before it was ready, for the notes."""
    first, again, alone = rec["head_to_head_first"], rec["head_to_head"], rec.get("alone", {})
    steps = [ln for ln in first.get("stderr_tail", "").splitlines() if " serve: " in ln]
    last = steps[-1].split(" serve: ", 1)[1] if steps else "before its first step"
    row = next((r for r in alone.get("rows", []) if r.get("status") == "ok"), {})
    command = alone.get("command", "?").replace("-m engine bench ", "", 1)
    return (
        f'- {rec["model"]}: the winner\'s process ended ({first["error"]}) at "{last}";'
        f" the winner benched alone in a fresh worker (`bench {command}`):"
        f" exit {alone.get('exit', '?')}, {_ms(row)}; the head-to-head again with an eager pass"
        f" first in each process: {again.get('verdict') or _failed(again)}"
    )


def _seconds(notes: list[str], start: str) -> str:
    """The seconds a note starting with ``start`` gives ("... in 132 s ..."); "-": none."""
    note = next((n for n in notes if n.startswith(start)), "")
    return note.split(" in ", 1)[1].split(" s", 1)[0] if " in " in note else "-"


def _peer(rec: dict) -> str:
    """The peer as its own process made it: compile time, parity; or, in runs made before
    2026-12-07 04:30 UTC, as a separate ``bench --backend torch_compile`` run."""
    ready = (rec.get("head_to_head") or {}).get("prepare", {}).get("peer")
    if ready:
        compiled = _seconds(ready.get("notes", []), "compiled for input")
        return f"compiled in {compiled} s, parity {ready.get('parity', '?')}"
    cli = rec.get("peer") or {"rows": [], "wall_s": 0}
    row = next((r for r in cli["rows"] if r["status"] == "ok"), {})
    return f"`bench` run: {_ms(row)}, parity {row.get('parity_status', '?')}, {cli['wall_s']:.0f} s"


def _resumed_text(rec: dict) -> str:
    """Where a record's head-to-head ran when its engine was carried to another machine."""
    r = rec.get("resumed")
    if not r:
        return ""
    return (
        f"; head-to-head on another {r.get('machine', '?')}, {r.get('date', '?')}, commit"
        f" {r.get('commit', '?')}, with the engine built on the first carried to it"
    )


def _median(values: list[float] | None) -> str:
    return f"{statistics.median(values):.3f} ms" if values else "-"


def _failed(h2h: dict) -> str:
    return f"not judged: a process ended ({h2h['error']})" if "error" in h2h else "not run"


def _ms(row: dict) -> str:
    return f"{row['p50_ms']:.3f} ms" if row.get("p50_ms") else "-"


def merge(out: Path) -> Path:
    docs = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    recs = [d for d in docs if "cold" in d]  # cpu-load.json, the CPU's load test, is not one
    died = [r for r in recs if "head_to_head_first" in r]
    lines = [
        "# Compiled engines on a GPU (issue 29)",
        "",
        "Written by `benchmarks/compiled_engines.py --merge` from the JSONs here. p50 in ms at"
        " the batch shown; wall times are whole commands in fresh processes.",
        "",
        "| model | cold `bench --auto --with-compile` | warm `bench --auto` |"
        " compiled engine p50 (warm) | auto's winner (warm) | torch.compile peer |"
        " head-to-head p50, winner / peer = median ratio: verdict |",
        "|---|---|---|---|---|---|---|",
        *[_row_text(r) for r in recs if r.get("complete")],
        "",
        *[f"- {r['model']}: {r.get('machine', '?')}, {r.get('date', '?')}, commit"
          f" {r.get('commit', '?')} ({r.get('tree', '?')}){_resumed_text(r)}" for r in recs],
        *(["", "Winner processes that died before they were ready:", ""] if died else []),
        *[_died_text(r) for r in died],
    ]  # fmt: skip
    path = out / "compiled.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="the results folder (required)")
    ap.add_argument("--models", default=DEFAULT_MODELS)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=5, help="head-to-head rounds (0: none)")
    ap.add_argument("--budget-s", type=float, default=900.0, help="start no model after")
    ap.add_argument("--merge", action="store_true")
    ap.add_argument("--carry-out", help="pack each engine a cold step builds into this folder")
    ap.add_argument("--carry-in", help="unpack engines carried into this folder first")
    ap.add_argument("--only-build", action="store_true", help="no head-to-head: cold, warm")
    ap.add_argument("--serve", help=argparse.SUPPRESS)  # the head-to-head's child
    ap.add_argument("--profile-load", dest="profile_request", help=argparse.SUPPRESS)
    ap.add_argument(
        "--no-load-profile", dest="profile_load", action="store_false",
        help="profile no warm start (default: the first model's winner, once)",
    )  # fmt: skip
    args = ap.parse_args()
    if args.serve:
        return _serve(args.serve)
    if args.profile_request:  # the load profile's process
        return load_profile.profile_load(args.profile_request)
    if not args.out:
        ap.error("the following argument is required: --out")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + args.budget_s
    if args.carry_in:
        print(
            f"engines carried in: {', '.join(carry.unpack(Path(args.carry_in))) or 'none'}",
            flush=True,
        )
    for name in filter(None, args.models.split(",") if not args.merge else []):
        path = out / f"{name}.json"
        if path.is_file() and json.loads(path.read_text()).get("complete"):
            print(f"{name}: complete already", flush=True)
            continue
        if time.monotonic() > deadline:
            print(f"{name}: not started, the budget is spent", flush=True)
            continue
        rec = run_model(name, args, out)
        path.write_text(json.dumps(rec, indent=1))
        steps = [k for k in ("cold", "carried_out", "warm", "head_to_head") if k in rec]
        print(f"{name}: {_row_text(rec) if rec.get('complete') else steps}", flush=True)
    print(merge(out))


if __name__ == "__main__":
    main()
