"""Which arithmetic OpenVINO computes in: ``f32``, ``bf16`` or ``auto``.

``f32`` matches eager PyTorch; ``bf16`` lets OpenVINO compute in bfloat16 (1.5-4x faster encoders,
masks at IoU 0.98-0.99 with f32, benchmark DICE within 0.002: ``bench/backend_parity.py``); ``auto``
(the default of ``MEDSAM_PRECISION``) is OpenVINO's own choice: bf16 on CPUs that compute it
natively (AVX512-BF16 or AMX), else f32. ONNX Runtime and eager PyTorch always run in f32.

Benchmarks, studies and finetuning run in ``measured_precision()`` (f32 unless ``MEDSAM_PRECISION``
says otherwise), so that their figures and cached features do not depend on the CPU they ran on.
"""

from __future__ import annotations

import functools

from .settings import settings


@functools.cache
def _openvino_default_precision() -> str:
    try:
        import openvino as ov
        hint = ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT")
    except Exception:  # noqa: BLE001 - no OpenVINO, or no CPU plugin: nothing runs in bf16
        return "f32"
    return "bf16" if hint == ov.Type.bf16 else "f32"


def resolve_precision(precision: str | None = None) -> str:
    """``f32`` or ``bf16``: ``precision``, else ``MEDSAM_PRECISION``; ``auto`` is OpenVINO's default on
    this CPU (bf16 where it computes bfloat16 natively)."""
    precision = precision or settings().precision
    return _openvino_default_precision() if precision == "auto" else precision


def measured_precision() -> str:
    """The precision of benchmark and study runs: ``MEDSAM_PRECISION`` when set to f32 or bf16, else
    f32, so that committed figures and cached features do not depend on the CPU."""
    return "f32" if settings().precision == "auto" else settings().precision


def variant_tag(backend: str, precision: str | None = None) -> str:
    """A backend as named in ``perf.json`` and embedding caches: ``openvino-bf16`` for OpenVINO in bf16."""
    return f"{backend}-bf16" if backend == "openvino" and resolve_precision(precision) == "bf16" else backend
