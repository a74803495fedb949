"""Dense peak throughput per exact GPU product and precision, with the source of each number.

A row's achieved TFLOP/s is set against the peak of the product that ran it, for the
precision it ran at. Only exact product names are looked up (the name NVML or
``torch.cuda.get_device_name`` reports, or the short product name in :data:`PEAKS`);
an unknown GPU, or any CPU, gets no percentage rather than a guess.

All figures are *dense* (NVIDIA's datasheets print sparse tensor figures with an asterisk;
the dense ones are half of those). FP32 is the non-tensor FP32 rate; TF32, FP16, BF16 and
INT8 (TOPS) are tensor-core rates. For GeForce cards FP16/BF16 are the FP32-accumulate
figures of NVIDIA's architecture whitepapers, since cuBLAS/cuDNN under PyTorch, ONNX
Runtime and TensorRT accumulate in FP32 by default (data-centre parts run both at one rate).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.core.devices import is_cuda

_HOPPER = "https://resources.nvidia.com/en-us-tensor-core/nvidia-tensor-core-gpu-datasheet"
_H200 = "https://www.nvidia.com/en-us/data-center/h200/"
_A100 = (
    "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a100/pdf/"
    "nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf"
)
_L4 = "https://www.nvidia.com/en-us/data-center/l4/"
_T4 = (
    "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/tesla-t4/"
    "t4-tensor-core-datasheet-951643.pdf"
)
_A10 = (
    "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a10/pdf/"
    "datasheet-new/nvidia-a10-datasheet.pdf"
)
_L40S = "https://www.nvidia.com/en-us/data-center/l40s/"
_L40 = "https://www.nvidia.com/en-us/data-center/l40/"
_ADA = "https://images.nvidia.com/aem-dam/Solutions/geforce/ada/nvidia-ada-gpu-architecture.pdf"
_GA102 = (
    "https://www.nvidia.com/content/PDF/nvidia-ampere-ga-102-gpu-architecture-whitepaper-v2.pdf"
)


@dataclass(frozen=True)
class Product:
    """Dense peaks in TFLOP/s (INT8 in TOP/s); None where the part has no such unit."""

    name: str
    fp32: float
    tf32: float | None
    fp16: float | None
    bf16: float | None
    int8: float | None
    source: str
    aliases: tuple[str, ...] = ()


PRODUCTS: tuple[Product, ...] = (
    Product("H100 SXM", 67, 494.5, 989.5, 989.5, 1979, _HOPPER, ("NVIDIA H100 80GB HBM3",)),
    Product("H100 PCIe", 51, 378, 756.5, 756.5, 1513, _HOPPER, ("NVIDIA H100 PCIe",)),
    Product("H100 NVL", 60, 417.5, 835.5, 835.5, 1670.5, _HOPPER, ("NVIDIA H100 NVL",)),
    Product("H200 SXM", 67, 494.5, 989.5, 989.5, 1979, _H200, ("NVIDIA H200",)),
    Product("H200 NVL", 60, 417.5, 835.5, 835.5, 1670.5, _H200, ("NVIDIA H200 NVL",)),
    Product("A100 SXM 40GB", 19.5, 156, 312, 312, 624, _A100, ("NVIDIA A100-SXM4-40GB",)),
    Product("A100 SXM 80GB", 19.5, 156, 312, 312, 624, _A100, ("NVIDIA A100-SXM4-80GB",)),
    Product("A100 PCIe 40GB", 19.5, 156, 312, 312, 624, _A100, ("NVIDIA A100-PCIE-40GB",)),
    Product("A100 PCIe 80GB", 19.5, 156, 312, 312, 624, _A100, ("NVIDIA A100 80GB PCIe",)),
    Product("L4", 30.3, 60, 121, 121, 242.5, _L4, ("NVIDIA L4",)),
    # Turing: no TF32 or BF16 units; the datasheet's figures are dense (no sparsity).
    Product("T4", 8.1, None, 65, None, 130, _T4, ("Tesla T4",)),
    Product("A10", 31.2, 62.5, 125, 125, 250, _A10, ("NVIDIA A10",)),
    Product("L40S", 91.6, 183, 366, 366, 733, _L40S, ("NVIDIA L40S",)),
    Product("L40", 90.5, 90.5, 181, 181, 362, _L40, ("NVIDIA L40",)),
    Product("RTX 4090", 82.6, 82.6, 165.2, 165.2, 660.6, _ADA, ("NVIDIA GeForce RTX 4090",)),
    Product(
        "RTX 6000 Ada", 91.1, 182.1, 364.2, 364.2, 728.5, _ADA, ("NVIDIA RTX 6000 Ada Generation",)
    ),
    Product("RTX 3090", 35.6, 35.6, 71, 71, 284, _GA102, ("NVIDIA GeForce RTX 3090",)),
)


def _norm(name: str) -> str:
    return " ".join(name.split()).casefold()


_BY_NAME = {_norm(n): p for p in PRODUCTS for n in (p.name, *p.aliases)}


def product(name: str | None) -> Product | None:
    """The product of exactly this name (case and spacing aside), else None."""
    return _BY_NAME.get(_norm(name)) if name else None


def peak(name: str | None, precision: str) -> tuple[float, str] | None:
    """(dense peak in TFLOP/s or TOP/s, source URL) for ``precision`` on product ``name``."""
    p = product(name)
    value = getattr(p, precision, None) if p and precision in _PRECISIONS else None
    return (float(value), p.source) if value else None


_PRECISIONS = ("fp32", "tf32", "fp16", "bf16", "int8")


def achieved_tflops(gflop_per_image: float | None, throughput_ips: float | None) -> float | None:
    """Useful work per second: FLOPs of one image's forward pass × images per second."""
    if not gflop_per_image or not throughput_ips:
        return None
    return gflop_per_image * throughput_ips / 1000.0


def annotate(
    row: object, gflop_per_image: float | None, gpu_name: str | None, math: str | None = None
) -> None:
    """Set ``gflop``, ``tflops`` and, on a known GPU, ``peak_tflops``/``peak_pct``/source.

    ``math`` is the precision the arithmetic really used when it differs from the row's
    label: ONNX Runtime's FP32 on CUDA allows TF32 by default, so its peak is TF32's.
    """
    row.gflop = gflop_per_image  # type: ignore[attr-defined]
    row.tflops = achieved_tflops(gflop_per_image, getattr(row, "throughput_ips", None))  # type: ignore[attr-defined]
    if not is_cuda(str(getattr(row, "device", ""))):
        return  # CPUs: no table of peaks, so no percentage
    found = peak(gpu_name, math or getattr(row, "precision", ""))
    if found is None or row.tflops is None:  # type: ignore[attr-defined]
        return
    row.peak_tflops, row.peak_source = found  # type: ignore[attr-defined]
    row.peak_pct = 100.0 * row.tflops / found[0]  # type: ignore[attr-defined]
