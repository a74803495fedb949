"""Every registered backend through the same checks: the contract of engine/backends/base.py.

Availability answered here (with a reason and a fix when not), a clear Unavailable error
from prepare where it cannot run, a real run on the CPU where it can (a tiny model),
declared options with help and consistent shared names, and the hooks' defaults.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from engine.backends import (
    Availability,
    Backend,
    PrepareContext,
    backend_names,
    declared_options,
    describe,
    get_backend,
)
from engine.core.config import ModelSpec, RunnerSpec
from engine.core.errors import BadInput, EngineError, Unavailable
from engine.core.options import fields_of

NAMES = backend_names()


@pytest.mark.parametrize("name", NAMES)
def test_declares_what_the_product_reads(name):
    b = get_backend(name)
    assert b.NAME == name and b.TITLE and b.PRECISIONS and b.DEVICES
    assert dataclasses.is_dataclass(b.Options)
    for f in fields_of(b.Options):
        assert f.help, f"{name}.{f.name} has no help"
        assert f.kind in (bool, int, float, str)
    spec = RunnerSpec(name, b.DEVICES[0], b.PRECISIONS[0])
    assert isinstance(b.per_batch(spec), bool)
    assert all(isinstance(x, int) for x in b.build_batches(spec, 4, (1, 4, 8)))
    assert b.parity_precision(spec) in ("fp32", "tf32", "fp16", "bf16", "int8")


@pytest.mark.parametrize("name", NAMES)
def test_availability_is_answered_with_reason_and_fix(name):
    b = get_backend(name)
    for device in ("cpu", "cuda"):
        a = b.availability(device)
        assert isinstance(a, Availability)
        if not a.ok:
            assert a.reason and a.fix, (name, device, a)


@pytest.mark.parametrize("name", NAMES)
def test_unavailable_is_a_clear_error(name, small_artifacts):
    b = get_backend(name)
    device = next((d for d in ("cuda", "cpu") if d in b.DEVICES and not b.availability(d).ok), None)
    if device is None:
        pytest.skip(f"{name} is available on every device it supports here")
    spec = RunnerSpec(name, device, b.PRECISIONS[0])
    with pytest.raises((Unavailable, BadInput)) as info:
        b.prepare(spec, small_artifacts, PrepareContext())
    err = info.value
    assert isinstance(err, EngineError) and err.what and (err.why or err.fix)
    assert "\n" not in err.user_message().strip() or "Traceback" not in err.user_message()


@pytest.mark.parametrize("name", NAMES)
def test_prepare_refuses_an_option_the_backend_does_not_declare(name, small_artifacts):
    """Through the Python API a misspelt option was dropped without a word and the runner
    ran with the default; a sweep drops another backend's names with a note before this."""
    b = get_backend(name)
    declared = sorted(f.name for f in fields_of(b.Options))
    spec = RunnerSpec(name, b.DEVICES[0], b.PRECISIONS[0], (("no_such_option", 1),))
    with pytest.raises(BadInput) as info:
        b.prepare(spec, small_artifacts, PrepareContext())
    message = info.value.user_message()
    assert f"{b.TITLE} has no option 'no_such_option'" in message
    assert all(option in message for option in declared)
    if declared:  # a near miss is named
        near = RunnerSpec(name, b.DEVICES[0], b.PRECISIONS[0], ((declared[0] + "s", 1),))
        with pytest.raises(BadInput, match=f"did you mean {declared[0]}"):
            b.prepare(near, small_artifacts, PrepareContext())


@pytest.mark.parametrize("name", NAMES)
def test_refuses_a_precision_it_does_not_have(name):
    b = get_backend(name)
    missing = next(p for p in ("int8", "bf16", "tf32", "fp16") if p not in b.PRECISIONS)
    with pytest.raises(BadInput):
        b.check(RunnerSpec(name, b.DEVICES[0], missing))


@pytest.mark.parametrize("name", NAMES)
def test_real_run_on_the_cpu_where_it_can(name, small_artifacts):
    b = get_backend(name)
    if "cpu" not in b.DEVICES or not b.availability("cpu").ok:
        pytest.skip(f"{name} does not run on this machine's CPU")
    if name == "torch_compile":
        pytest.skip(
            "covered by tests/backends/test_compiled.py (an Inductor compile takes minutes)"
        )
    spec = RunnerSpec(name, "cpu", "fp32")
    x = small_artifacts.sample_input(2)
    with b.prepare(spec, small_artifacts, PrepareContext(batches=(2,))) as runner:
        y = runner.infer(x)
        assert runner.provider
        assert isinstance(runner.facts(), dict) and isinstance(runner.inspect(), list)
    assert y.shape[0] == 2 and np.isfinite(y).all()
    assert describe(spec).startswith(b.TITLE)


def test_a_shared_option_name_means_one_thing():
    for name, (field, owners) in declared_options().items():
        for owner in owners:
            mine = next(f for f in fields_of(get_backend(owner).Options) if f.name == name)
            assert (mine.kind, mine.default) == (field.kind, field.default), (name, owner)


def test_prepare_is_a_template_no_backend_overrides():
    with pytest.raises(TypeError, match="_build"):

        class Bad(Backend):  # noqa: F841 - defining it is the test
            NAME = "bad"
            TITLE = "Bad"
            PRECISIONS = ("fp32",)

            @classmethod
            def prepare(cls, spec, artifacts, ctx):
                return None


def test_an_onnx_file_is_refused_by_backends_that_need_the_torch_module():
    model = ModelSpec(onnx_path="model.onnx")
    for name in NAMES:
        b = get_backend(name)
        if b.RUNS_ONNX_FILES:
            b.check_model(model)
        else:
            with pytest.raises(BadInput, match="ONNX file"):
                b.check_model(model)


def test_an_option_a_backend_lacks_is_dropped_with_a_note():
    ort = get_backend("ort")
    spec = RunnerSpec("ort", "cpu", "fp32", (("channels_last", True), ("intra_threads", 2)))
    own, notes = ort.own_spec(spec)
    assert own.opts == {"intra_threads": 2}
    assert notes == ["ort ignores channels_last: not one of its options"]
    # a declared option set to its default is not stored: equal specs run the same thing
    same, _ = ort.own_spec(RunnerSpec("ort", "cpu", "fp32", (("prefer_nhwc", False),)))
    assert same == RunnerSpec("ort", "cpu", "fp32")


def test_wrong_option_types_are_bad_input():
    with pytest.raises(BadInput, match="whole number"):
        get_backend("ort").check(RunnerSpec("ort", "cpu", "fp32", (("inter_threads", "2"),)))
    with pytest.raises(BadInput, match="not one of"):
        get_backend("ort").check(
            RunnerSpec("ort", "cpu", "fp32", (("cudnn_conv_algo_search", "FAST"),))
        )
