"""Is the engine's tuned ONNX Runtime path as fast as a plain script? (issue 12 item 5)

In one process, alternating for ``--rounds`` rounds at each batch size: the engine's runner
(``engine.backends`` → ``engine.running.timing.time_runner``) and ``ort_plain.py`` (which does not
import ``engine``), on the same FP16 model file with the same provider options (exhaustive
search, NHWC, CUDA graph, I/O binding). A third arm is the plain script with profiling on,
which isolates what profiling costs. Writes JSON and prints a table.

    python benchmarks/ort_gap.py --model resnet50 --batch 32,256 --rounds 5 --out gap.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ort_plain import plain_session, provider_options, time_plain  # noqa: E402

OPTIONS = {
    "cudnn_conv_algo_search": "EXHAUSTIVE",
    "prefer_nhwc": True,
    "cuda_graph": True,
}


def engine_runner(art, batch: int):
    from engine.backends import PrepareContext, get_backend
    from engine.core.config import RunnerSpec

    spec = RunnerSpec("ort", "cuda", "fp16").with_options(**OPTIONS)
    return get_backend("ort").prepare(spec, art, PrepareContext(batches=(batch,)))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="resnet50")
    p.add_argument("--batch", default="32,256")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--iters", type=int, default=200)
    p.add_argument("--out", required=True)
    args = p.parse_args()

    from engine.artifacts.models import load_artifacts
    from engine.backends import environment
    from engine.core.config import BenchSettings, ModelSpec
    from engine.running.timing import time_runner

    art = load_artifacts(ModelSpec(name=args.model))
    art.onnx_path("fp16")  # export before timing anything
    settings = BenchSettings(warmup=20, iters=args.iters, max_time_s=60.0)
    opts = provider_options(True, True, "EXHAUSTIVE")
    doc = {"environment": environment("cuda:0"), "model": args.model, "rounds": {}}
    for batch in [int(b) for b in args.batch.split(",")]:
        runner = engine_runner(art, batch)
        # The same file the engine runs: for a CUDA graph, its static-shape copy for this batch.
        model_file = runner.info["model_path"]
        plain = plain_session(model_file, opts)
        profiled = plain_session(model_file, opts, profiling=True)
        arms: dict[str, list[float]] = {"engine": [], "plain": [], "plain+profiling": []}
        x = art.sample_input(batch)
        for _ in range(args.rounds):
            arms["engine"].append(time_runner(runner, x, settings).p50_ms)
            arms["plain"].append(
                statistics.median(time_plain(plain, batch, 224, True, True, args.iters, 20))
            )
            arms["plain+profiling"].append(
                statistics.median(time_plain(profiled, batch, 224, True, True, args.iters, 20))
            )
        engine_options = runner.session.get_provider_options()
        runner.close()
        med = {k: statistics.median(v) for k, v in arms.items()}
        doc["rounds"][str(batch)] = {
            "p50_ms_per_round": arms,
            "median_of_rounds_ms": med,
            "engine_over_plain": med["engine"] / med["plain"],
            "engine_options": engine_options,
        }
        print(batch, json.dumps(doc["rounds"][str(batch)], default=str), flush=True)
        Path(args.out).write_text(json.dumps(doc, indent=1, default=str))


if __name__ == "__main__":
    main()
