"""visionbench's engine: export, build, run and time vision models on several backends.

Never imports Streamlit. Heavy libraries (torch, onnxruntime, tensorrt) are imported
lazily by the modules that need them, so ``import engine`` always works.

Its sub-packages are layers, lowest first; each imports only the layers below it
(tests/engine/test_architecture.py enforces it): ``core`` (values and options),
``hardware`` (machine facts), ``diagnostics`` (where ONNX Runtime runs), ``artifacts``
(models and the files made from them), ``backends``, ``storage`` (the results store and
history), ``running`` (plans, timing, sweeps, auto mode, launchers), ``reporting`` (charts
and reports) and ``cli`` (``python -m engine``).
"""

__version__ = "0.1.0"
