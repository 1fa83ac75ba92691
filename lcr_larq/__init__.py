"""lcr-larq: binary neural networks with Lipschitz Continuity Retention, on Larq."""

from lcr_larq import callbacks, layers, quantizers, spectral
from lcr_larq.graph import (
    Block,
    attach_lcr,
    find_blocks,
    full_precision_path,
    lcr_layer,
    make_full_precision_aware,
    strip_lcr,
)
from lcr_larq.layers import LipschitzRetention

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
