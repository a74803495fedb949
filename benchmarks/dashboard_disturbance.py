"""Issue 14: does the dashboard's own work (polling, redraws, the browser) disturb a sweep?

The same sweep runs alternately from the CLI and from a running ``streamlit run
dashboard.py`` driven by Playwright/Chromium (the page's own "Run sweep" button, its sweep
worker, its live charts), ``--trials`` times each, in the order CLI, dashboard, CLI, ...
so a slow drift of the machine hits both alike. Per point (backend, batch) it reports the
p50 of every trial, the dashboard/CLI ratio of the medians, and whether the two are within
noise (engine.core.stability: the medians' 95 % intervals overlap). It also counts the CPU time
the Streamlit server process (not its sweep worker) and Chromium spent during each
dashboard sweep: that is the disturbance itself, in cores.

A busy machine makes the comparison meaningless: the busy check runs before each trial,
and ``--require-idle`` stops instead of measuring. Run it on an otherwise idle machine:

    python benchmarks/dashboard_disturbance.py --require-idle \\
        --out benchmarks/results/dashboard-disturbance/cpu.json

Defaults: resnet18 at 64 px, PyTorch and ONNX Runtime fp32 on the CPU, batches 1,2,4,8,
50 iterations, 5 warm-up, 3 trials each (about 5 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.backends import environment  # noqa: E402
from engine.core.config import ResultRow  # noqa: E402
from engine.core.stability import within_noise  # noqa: E402
from engine.hardware.machine import busy_check, own_tree, read_procs  # noqa: E402

CHROMIUM = os.environ.get("VISIONBENCH_CHROMIUM") or "/usr/bin/chromium"


def cli_rows(args: argparse.Namespace, work: Path, trial: int) -> list[ResultRow]:
    out = work / f"cli-{trial}.json"
    cmd = [sys.executable, "-m", "engine", "bench", "--model", args.model,
           "--image-size", str(args.image_size), "--backend", "torch,ort", "--batch", args.batches,
           "--iters", str(args.iters), "--warmup", str(args.warmup), "--max-time", "30",
           "--no-parity", "--db", str(work / "cli.sqlite"), "--json", str(out), "--quiet"]  # fmt: skip
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, timeout=3600)
    return [ResultRow.from_dict(r) for r in json.loads(out.read_text())["rows"]]


def start_server(data: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "dashboard.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "VISIONBENCH_DATA": str(data)},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("streamlit did not come up")


def _settle(page) -> None:
    quiet = 0
    while quiet < 3:
        busy = page.locator(
            '[data-testid="stApp"]:not([data-test-script-state="notRunning"]), [data-stale="true"]'
        ).count()
        quiet = 0 if busy else quiet + 1
        page.wait_for_timeout(400)


def _fill(page, label: str, value: str) -> None:
    box = page.locator('[data-testid="stSidebar"]').get_by_label(label, exact=True)
    box.fill(value)
    box.press("Enter")
    _settle(page)


def dashboard_sweep(page, url: str, args: argparse.Namespace) -> None:
    """Set the sidebar like the CLI run and press Run sweep; wait for the end."""
    import re

    page.goto(url)
    page.get_by_role("button", name="Run sweep").wait_for()
    _settle(page)
    model = page.get_by_role("combobox", name="Model")
    model.click()
    model.fill(args.model)
    page.get_by_role("option", name=args.model, exact=True).click()
    _settle(page)
    _fill(page, "Image size (pixels)", str(args.image_size))
    _fill(page, "Batch sizes (comma-separated)", args.batches)
    _fill(page, "Timed iterations", str(args.iters))
    _fill(page, "Warm-up iterations", str(args.warmup))
    page.get_by_role("button", name="Run sweep").click()
    page.get_by_text(re.compile(r"Sweep (finished|stopped early)")).wait_for(timeout=3_600_000)


def _ticks(pids: set[int]) -> int:
    procs = read_procs()
    return sum(procs[p].ticks for p in pids if p in procs)


def dashboard_overhead_pids(server_pid: int) -> set[int]:
    """The Streamlit server process itself and every Chromium process; not the sweep worker."""
    procs = read_procs()
    chromium = {p.pid for p in procs.values() if "chrom" in p.name.lower()}
    return {server_pid} | {c for pid in chromium for c in own_tree(procs, pid)}


def last_run_rows(db: Path) -> list[ResultRow]:
    from engine.storage.store import Store

    store = Store(db)
    try:
        run_id = max(r["id"] for r in store.runs())
        return store.rows(run_id)
    finally:
        store.close()


def compare(cli: list[list[ResultRow]], dash: list[list[ResultRow]]) -> list[dict[str, Any]]:
    """Per point: p50 per trial on each side, ratio of medians, within-noise verdicts."""

    def key(r: ResultRow) -> tuple[str, int]:
        return (r.backend, r.batch)

    out = []
    points = sorted({key(r) for rows in cli + dash for r in rows if r.status == "ok"})
    for point in points:
        c = [r for rows in cli for r in rows if key(r) == point and r.status == "ok"]
        d = [r for rows in dash for r in rows if key(r) == point and r.status == "ok"]
        if not c or not d:
            continue
        cm, dm = statistics.median(r.p50_ms for r in c), statistics.median(r.p50_ms for r in d)
        out.append({
            "backend": point[0], "batch": point[1],
            "cli_p50_ms": [r.p50_ms for r in c], "dashboard_p50_ms": [r.p50_ms for r in d],
            "dashboard_over_cli": dm / cm,
            "pairs_within_noise": [within_noise(a, b) for a, b in zip(c, d, strict=False)],
            "cli_trials_within_noise": [within_noise(c[0], b) for b in c[1:]],
            "unstable": sum(r.stable is False for r in c + d),
        })  # fmt: skip
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet18")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--batches", default="1,2,4,8")
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--require-idle", action="store_true", help="stop if the machine is busy")
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="disturbance-"))
    data = work / "dashboard-data"
    server, url = start_server(data)
    cli, dash, checks, overhead = [], [], [], []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.set_default_timeout(120_000)
            for trial in range(args.trials):
                for side in ("cli", "dashboard"):
                    check = busy_check(window_s=1.0)
                    checks.append({"trial": trial, "side": side, **check.to_dict()})
                    if check.busy and args.require_idle:
                        raise SystemExit(f"not measured: {check.notes[0]}")
                    if side == "cli":
                        cli.append(cli_rows(args, work, trial))
                        continue
                    pids = dashboard_overhead_pids(server.pid)
                    t0, k0 = time.monotonic(), _ticks(pids)
                    dashboard_sweep(page, url, args)
                    seconds = time.monotonic() - t0
                    cores = (_ticks(pids) - k0) / os.sysconf("SC_CLK_TCK") / seconds
                    overhead.append({"trial": trial, "seconds": seconds, "cores": cores})
                    dash.append(last_run_rows(data / "results.sqlite"))
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    result = {
        "what": "the same sweep from the CLI and from the dashboard (Playwright/Chromium)",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": environment("cpu"),
        "settings": vars(args),
        "busy_checks": checks,
        "dashboard_cpu_during_sweep": overhead,
        "points": compare(cli, dash),
    }
    for pt in result["points"]:
        print(f"{pt['backend']:<6} batch {pt['batch']:<3} dashboard/CLI {pt['dashboard_over_cli']:.3f}"
              f"  within noise {pt['pairs_within_noise']}  (CLI vs CLI {pt['cli_trials_within_noise']})")  # fmt: skip
    for o in overhead:
        print(f"dashboard trial {o['trial']}: server + Chromium used {o['cores']:.2f} cores")
    if any(c["notes"] for c in checks):
        print("WARNING: the machine was busy during some trials; see busy_checks")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
