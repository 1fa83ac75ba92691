"""What a benchmark ran on, in one line: step-time ratios depend on the CPU
(its vector units, its caches), so every table says which one it came from.

The CPU's name and vector extensions are read as a run's provenance reads them
(:mod:`lcr_larq.training.provenance`).

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

from lcr_larq.training.provenance import (  # noqa: F401  (the benchmarks' names for them)
    SIXTEEN_BIT_FLAGS,
    VECTOR_FLAGS,
    cpu_name_and_flags,
    read_cpuinfo,
    vector_extensions,
)


def describe_machine() -> str:
    """CPU, vector extensions, cores, load average and TensorFlow version."""
    cpuinfo = read_cpuinfo()  # not Linux: the platform's own name, no flags
    name, flags = cpu_name_and_flags(cpuinfo)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    extensions = f" ({vector_extensions(flags)})" if cpuinfo else ""
    return (
        f"{name}{extensions}, {platform.machine()}, {os.cpu_count()} cores, "
        f"load average {load:.1f}, tensorflow {tf.__version__}"
    )
