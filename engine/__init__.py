"""visionbench's engine: export, build, run and time vision models on several backends.

Never imports Streamlit. Heavy libraries (torch, onnxruntime, tensorrt) are imported
lazily by the modules that need them, so ``import engine`` always works.
"""

__version__ = "0.1.0"
