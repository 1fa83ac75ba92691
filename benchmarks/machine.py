"""What a benchmark ran on, in one line: step-time ratios depend on the CPU
(its vector units, its caches), so every table says which one it came from.

Example:
    >>> vector_extensions(["avx2", "avx512f", "avx512_bf16"])
    'avx2 avx512f avx512_bf16; without avx512_fp16 amx_bf16'
"""

from __future__ import annotations

import os
import platform

import lcr_larq  # noqa: F401  (before TensorFlow: tf.keras must be Keras 2)

# isort: split
import tensorflow as tf

# Vector extensions that change which kernels oneDNN picks, most capable last
# (Linux's names in /proc/cpuinfo).
VECTOR_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile",
                "amx_bf16")
#: The extensions 16-bit math needs, named when absent: bfloat16 arithmetic
#: (AVX-512 BF16, AMX-BF16) and float16 arithmetic (AVX-512 FP16), without
#: which TensorFlow's float16 convolutions fall back to slow kernels.
SIXTEEN_BIT_FLAGS = ("avx512_bf16", "avx512_fp16", "amx_bf16")


def cpu_name_and_flags(cpuinfo: str) -> tuple[str, list[str]]:
    """The model name and the :data:`VECTOR_FLAGS` present in ``/proc/cpuinfo`` text."""
    name, flags = platform.processor() or platform.machine(), set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            name = value.strip()
        elif key.strip() == "flags":
            flags.update(value.split())
    return name, [flag for flag in VECTOR_FLAGS if flag in flags]


def vector_extensions(flags: list[str]) -> str:
    """The :data:`VECTOR_FLAGS` present, then the :data:`SIXTEEN_BIT_FLAGS`
    absent ("without …")."""
    missing = [flag for flag in SIXTEEN_BIT_FLAGS if flag not in flags]
    parts = [" ".join(flags)] if flags else []
    if missing:
        parts.append(f"without {' '.join(missing)}")
    return "; ".join(parts)


def describe_machine() -> str:
    """CPU, vector extensions, cores, load average and TensorFlow version."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpuinfo = handle.read()
    except OSError:  # not Linux: the platform's own name, no flags
        cpuinfo = ""
    name, flags = cpu_name_and_flags(cpuinfo)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    extensions = f" ({vector_extensions(flags)})" if cpuinfo else ""
    return (
        f"{name}{extensions}, {platform.machine()}, {os.cpu_count()} cores, "
        f"load average {load:.1f}, tensorflow {tf.__version__}"
    )
