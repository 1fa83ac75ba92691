"""lcr-larq: binary neural networks with Lipschitz Continuity Retention, on Larq."""

import os

# TensorFlow's C++ start-up chatter would bury the one-line errors of the CLIs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from lcr_larq import callbacks  # noqa: E402, layers, quantizers, spectral
from lcr_larq.graph import (  # noqa: E402
    Block,
    attach_lcr,
    find_blocks,
    full_precision_path,
    lcr_layer,
    make_full_precision_aware,
    strip_lcr,
)
from lcr_larq.layers import LipschitzRetention  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Block",
    "LipschitzRetention",
    "attach_lcr",
    "callbacks",
    "find_blocks",
    "full_precision_path",
    "layers",
    "lcr_layer",
    "make_full_precision_aware",
    "quantizers",
    "spectral",
    "strip_lcr",
]
