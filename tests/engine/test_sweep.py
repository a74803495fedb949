from engine.backends import PrepareContext, get_backend
from engine.core.config import BenchSettings, RunnerSpec, SweepConfig
from engine.running.plan import Callbacks
from engine.running.sweep import reproduce_command, run_sweep
from engine.running.timing import time_runner
from engine.storage.store import Store


def test_time_runner_bounds_and_modes(small_artifacts):
    runner = get_backend("ort").prepare(
        RunnerSpec("ort", "cpu", "fp32"), small_artifacts, PrepareContext(batches=(2,))
    )
    x = small_artifacts.sample_input(2)
    t = time_runner(runner, x, BenchSettings(warmup=1, iters=7, max_time_s=60))
    assert t.iters == 7 and t.p10_ms <= t.p50_ms <= t.p90_ms <= t.p99_ms
    asst = time_runner(runner, x, BenchSettings(warmup=0, iters=10_000, max_time_s=0.2, mode="e2e"))
    assert 3 <= asst.iters < 10_000  # the time budget stopped it
    assert abs(t.throughput_ips - 2 * 1000 / t.p50_ms) < 1e-6


def test_sweep_stores_rows_skips_and_parity(tmp_path, small_spec, small_artifacts):
    store = Store(tmp_path / "s.sqlite")
    config = SweepConfig(
        model=small_spec,
        runners=[
            RunnerSpec("torch", "cpu", "fp32"),
            RunnerSpec("torch", "cpu", "int8"),
            RunnerSpec("ort", "cpu", "fp32"),
        ],
        batches=[1, 4],
        bench=BenchSettings(warmup=1, iters=3),
    )
    seen = []
    out = run_sweep(
        config, store=store, callbacks=Callbacks(on_row=seen.append), artifacts=small_artifacts
    )
    assert len(out.rows) == 6 and seen == out.rows
    by = {(r.backend, r.precision, r.batch): r for r in store.rows(out.run_id)}
    assert by[("torch", "int8", 1)].status == "skipped"
    assert "int8" in by[("torch", "int8", 1)].reason
    ok = by[("ort", "fp32", 4)]
    assert ok.status == "ok" and ok.provider == "CPUExecutionProvider" and ok.parity_ok
    assert ok.p50_ms > 0 and ok.weights == "random weights"
    run = store.run(out.run_id)
    assert run["status"] == "done" and "--batch 1,4" in run["command"]


def test_stop_keeps_measured_points(tmp_path, small_spec, small_artifacts):
    store = Store(tmp_path / "s.sqlite")
    config = SweepConfig(
        model=small_spec,
        runners=[RunnerSpec("ort", "cpu", "fp32")],
        batches=[1, 2, 3],
        bench=BenchSettings(warmup=0, iters=2),
        parity=False,
    )
    rows = []
    out = run_sweep(
        config,
        store=store,
        callbacks=Callbacks(on_row=rows.append, should_stop=lambda: len(rows) >= 1),
        artifacts=small_artifacts,
    )
    assert out.interrupted and len(store.rows(out.run_id)) == 1
    assert store.run(out.run_id)["status"] == "interrupted"


def test_reproduce_command_round_trips():
    import shlex

    from engine.cli.main import bench_parser, build_config
    from engine.core.config import ModelSpec

    config = SweepConfig(
        model=ModelSpec("mobilenet_v3_small", image_size=96),
        runners=[RunnerSpec("torch", "cpu", "fp32"), RunnerSpec("ort", "cpu", "int8")],
        batches=[1, 16],
        bench=BenchSettings(warmup=2, iters=9),
    )
    argv = shlex.split(reproduce_command(config))[4:]
    again = build_config(bench_parser().parse_args(argv))
    assert again.model == config.model and again.batches == config.batches
    assert {(r.backend, r.precision) for r in again.runners} >= {("torch", "fp32"), ("ort", "int8")}


def test_options_that_changed_nothing_leave_the_label(tmp_path):
    # SqueezeNet has no batch norm: BN folding changes nothing, so the row must not be
    # labelled "BN folded"; its reason says why. ResNet18's BNs fold and the option stays.
    from engine.backends import describe
    from engine.core.config import BenchSettings, ModelSpec, RunnerSpec, SweepConfig
    from engine.running.sweep import run_sweep

    bench = BenchSettings(warmup=1, iters=2, max_time_s=1.0)
    fold = RunnerSpec("torch", "cpu", "fp32", (("fuse_bn", True),))
    rows = {}
    for name in ("squeezenet1_1", "resnet18"):
        config = SweepConfig(ModelSpec(name, image_size=32), [fold], [1], bench, parity=False)
        (rows[name],) = run_sweep(config).rows
    plain, folded = rows["squeezenet1_1"], rows["resnet18"]
    assert plain.status == "ok" and plain.options == {}
    assert "no batch norm follows a convolution" in plain.reason
    assert "BN folded" not in describe(plain, "short")
    assert folded.options == {"fuse_bn": True} and folded.reason == ""
    assert "BN folded" in describe(folded, "short")
