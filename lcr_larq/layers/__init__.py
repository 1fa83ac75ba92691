"""Keras layers of lcr-larq, each registered as a Keras custom object.

* :mod:`lcr_larq.layers.lcr` — :class:`LipschitzRetention` (the regularizer)
  and the sample layers that feed it;
* :mod:`lcr_larq.layers.quant` — Larq's quantized layers and batch
  normalization with a latent full-precision path (``full_precision=True``);
* :mod:`lcr_larq.layers.blocks` — the papers' building blocks: HardTanh, the
  zero-padding shortcut, ReActNet's RSign and RPReLU.
"""

from lcr_larq.layers.blocks import HardTanh, RPReLU, RSign, ZeroPadShortcut
from lcr_larq.layers.lcr import (
    XLA_NEEDS_COUNT,
    LipschitzRetention,
    SampleSlice,
    SampleTap,
    ScheduledSampleCount,
)
from lcr_larq.layers.quant import (
    BatchNormalization,
    QuantConv2D,
    QuantDense,
    QuantDepthwiseConv2D,
    normalize_with_batch_statistics,
)

__all__ = [
    "XLA_NEEDS_COUNT",
    "BatchNormalization",
    "HardTanh",
    "LipschitzRetention",
    "QuantConv2D",
    "QuantDense",
    "QuantDepthwiseConv2D",
    "RPReLU",
    "RSign",
    "SampleSlice",
    "SampleTap",
    "ScheduledSampleCount",
    "ZeroPadShortcut",
    "normalize_with_batch_statistics",
]
