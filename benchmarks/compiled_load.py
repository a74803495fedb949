"""Which compiled artifact starts faster in a fresh process (issue 29): an AOTInductor package,
or torch.compile with Inductor's portable cache artifacts (``torch.compiler.save_cache_artifacts``
/ ``load_cache_artifacts``) saved for the same model and shape.

Every step but the first runs in a new Python process with an empty Inductor cache folder, so
only the saved artifact can help it:

1. cold: ``torch.compile`` (just in time) compiles; its cache artifacts are saved to a file;
2. warm JIT: load those artifacts, ``torch.compile``, first call;
3. package build: ``torch.export`` + ``aoti_compile_and_package``;
4. package load: ``aoti_load_package``, first call.

The time to first output is what a user waits for. Writes ``--out`` (JSON and a .md beside).

    python benchmarks/compiled_load.py --model squeezenet1_1 --image-size 32 --batch 2 \\
        --device cpu --mode default --out benchmarks/results/compiled/cpu-load.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEP = r"""
import json, os, sys, time
t0 = time.perf_counter()
import torch, torchvision
step, model_name, size, batch, device, mode, folder = sys.argv[1:8]
size, batch = int(size), int(batch)
imported = time.perf_counter() - t0
torch.manual_seed(0)
model = torchvision.models.get_model(model_name).eval().to(device)
x = torch.randn(batch, 3, size, size, device=device)
sync = (lambda: torch.cuda.synchronize()) if device.startswith("cuda") else (lambda: None)
artifacts, package = os.path.join(folder, "mega.bin"), os.path.join(folder, "model.pt2")
t0 = time.perf_counter()
if step in ("cold", "warm"):
    if step == "warm":
        with open(artifacts, "rb") as f:
            torch.compiler.load_cache_artifacts(f.read())
    fn = torch.compile(model, mode=mode)
    with torch.no_grad():
        fn(x); sync()
    if step == "cold":
        data, _ = torch.compiler.save_cache_artifacts()
        with open(artifacts, "wb") as f:
            f.write(data)
elif step == "build":
    configs = dict(torch._inductor.list_mode_options(mode))
    configs.pop("triton.cudagraphs", None)
    with torch.no_grad():
        program = torch.export.export(model, (x,))
    torch._inductor.aoti_compile_and_package(program, package_path=package, inductor_configs=configs)
else:
    fn = torch._inductor.aoti_load_package(package)
    with torch.no_grad():
        fn(x); sync()
print(json.dumps({"step": step, "seconds": time.perf_counter() - t0, "import_s": imported}))
"""

STEPS = ("cold", "warm", "build", "load")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="squeezenet1_1")
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--mode", default="default")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    import torch

    results = {}
    with tempfile.TemporaryDirectory(prefix="vb-load-") as folder:
        for step in STEPS:
            inductor = tempfile.mkdtemp(dir=folder, prefix=f"inductor-{step}-")
            env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": inductor}
            cmd = [sys.executable, "-c", STEP, step, args.model, str(args.image_size)]
            cmd += [str(args.batch), args.device, args.mode, folder]
            t0 = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
            if done.returncode:
                sys.exit(f"{step} failed:\n{done.stderr[-3000:]}")
            line = json.loads(done.stdout.strip().splitlines()[-1])
            results[step] = {**line, "process_s": round(time.perf_counter() - t0, 2)}
            print(step, results[step], flush=True)
    doc = {
        "what": "time to first output in a fresh process: JIT with cache artifacts vs a package",
        "model": args.model, "image_size": args.image_size, "batch": args.batch,
        "device": args.device, "mode": args.mode, "torch": torch.__version__,
        "machine": f"{os.cpu_count()} CPUs, {_cpu_name()}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "results": results,
    }  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1))
    rows = [f"| {s} | {results[s]['seconds']:.2f} | {results[s]['process_s']:.2f} |" for s in STEPS]
    out.with_suffix(".md").write_text(
        f"# Compiled artifacts: time to first output ({args.model}, {args.image_size} px, batch"
        f" {args.batch}, {args.device}, mode {args.mode}, torch {torch.__version__}, {doc['date']})"
        "\n\n| step | seconds (compile/load + first call) | whole process (s) |\n|---|---|---|\n"
        + "\n".join(rows)
        + "\n\ncold: torch.compile just in time; warm: the same after loading its saved cache"
        " artifacts; build: the AOTInductor package; load: the package in a fresh process.\n"
    )


if __name__ == "__main__":
    main()
