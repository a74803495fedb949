"""A compiled engine's cache key for tests that need one without compiling anything."""

from __future__ import annotations

from engine.backends.compiled_engine import EngineKey


def key_of(**changes) -> EngineKey:
    base = dict(
        model="tiny", weights_hash="w" * 8, batch=4, channels=3, height=32, width=32,
        precision="fp32", compiled_mode="default", freezing=True, channels_last=False,
        torch_version="2.14.1", triton_version="", cuda_version="13.0",
        device_name="cpu AVX2", compute_capability="",
    )  # fmt: skip
    return EngineKey(**{**base, **changes})
