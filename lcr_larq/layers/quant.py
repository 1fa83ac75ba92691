"""Larq's quantized layers and Keras' batch normalization with a latent
full-precision path.

Each layer takes one more call argument, ``full_precision``: when true, it
computes its latent full-precision counterpart with the *same* variables
(quantizers bypassed; batch statistics without touching the moving
averages). Calling a layer twice, once per path, is what ties LCR's reference
to the BNN's latent weights in a functional model
(:func:`lcr_larq.full_precision_path`).

Example:
    >>> import tensorflow as tf
    >>> conv = QuantConv2D(4, 3, padding="same", input_quantizer="ste_sign",
    ...                    kernel_quantizer="ste_sign", use_bias=False)
    >>> x = tf.random.normal((2, 6, 6, 3))
    >>> binary, latent = conv(x), conv(x, full_precision=True)
    >>> bool(tf.reduce_all(tf.abs(binary) == tf.round(tf.abs(binary))))
    True
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import larq as lq
import tensorflow as tf
from larq.layers_base import BaseLayer

__all__ = [
    "BatchNormalization",
    "QuantConv2D",
    "QuantDense",
    "QuantDepthwiseConv2D",
    "normalize_with_batch_statistics",
]

register = tf.keras.utils.register_keras_serializable(package="lcr_larq")


class _UnclippedKernelWarning(logging.Filter):
    """Drops Larq's warning that a binary kernel without a ``kernel_constraint``
    "may result in starved weights"."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "kernel_constraint" not in record.getMessage()


@contextlib.contextmanager
def _unclipped_kernel_accepted(quantizer) -> Iterator[None]:
    """While a layer with ``quantizer`` as its kernel quantizer is made.

    Larq logs a warning (logger ``larq.layers_base``) for every binary kernel
    quantizer without a ``kernel_constraint``: right for sign/STE weights, whose
    gradient vanishes outside the clip range. A quantizer whose gradient reaches
    every weight without clipping says so with ``trains_without_clipping = True``
    (IR-Net's :class:`~lcr_larq.quantizers.LibraSign`): for its layers the
    warning is dropped, through the logger's public filters, only while the
    layer is made.
    """
    if not getattr(quantizer, "trains_without_clipping", False):
        yield
        return
    logger = logging.getLogger("larq.layers_base")
    quiet = _UnclippedKernelWarning()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


class _KernelQuantized:
    """The constructor of a layer with a ``kernel_quantizer``: see
    :func:`_unclipped_kernel_accepted`."""

    def __init__(self, *args, kernel_quantizer=None, **kwargs):
        kernel_quantizer = lq.quantizers.get_kernel_quantizer(kernel_quantizer)
        with _unclipped_kernel_accepted(kernel_quantizer):
            super().__init__(*args, kernel_quantizer=kernel_quantizer, **kwargs)


class _FullPrecisionCall:
    """Adds ``full_precision`` to the call of a Larq quantized layer."""

    def call(self, inputs, full_precision: bool = False):
        if not full_precision:
            return super().call(inputs)
        # Skip BaseLayer.call (input quantizer + quantized scope): outside the
        # quantized scope a QuantizedVariable reads as its latent value.
        with lq.context.quantized_scope(False):
            return super(BaseLayer, self).call(inputs)


@register
class QuantConv2D(_KernelQuantized, _FullPrecisionCall, lq.layers.QuantConv2D):
    """``larq.layers.QuantConv2D`` with a ``full_precision`` call argument."""


@register
class QuantDense(_KernelQuantized, _FullPrecisionCall, lq.layers.QuantDense):
    """``larq.layers.QuantDense`` with a ``full_precision`` call argument."""


@register
class QuantDepthwiseConv2D(_FullPrecisionCall, lq.layers.QuantDepthwiseConv2D):
    """``larq.layers.QuantDepthwiseConv2D`` with a ``full_precision`` argument."""


@register
class BatchNormalization(tf.keras.layers.BatchNormalization):
    """Batch normalization with a ``full_precision`` path.

    The full-precision path normalizes with the statistics of its own batch
    and never updates the moving averages: those belong to the binary
    activations the deployed network sees.
    """

    def call(self, inputs, training=None, full_precision: bool = False):
        if not full_precision:
            return super().call(inputs, training=training)
        return normalize_with_batch_statistics(self, inputs)


def normalize_with_batch_statistics(
    layer: tf.keras.layers.BatchNormalization, inputs: tf.Tensor
) -> tf.Tensor:
    """``layer``'s normalization of ``inputs`` with their own batch mean and
    (biased) variance, as in training, but without touching its moving
    averages. Any Keras ``BatchNormalization`` (``center``/``scale`` off too).

    Example:
        >>> bn = tf.keras.layers.BatchNormalization(epsilon=0.0)
        >>> x = tf.constant([[1.0], [3.0]])
        >>> _ = bn(x)  # builds it; moving mean 0, variance 1
        >>> normalize_with_batch_statistics(bn, x).numpy().ravel().tolist()
        [-1.0, 1.0]
        >>> float(bn.moving_mean[0])
        0.0
    """
    # Under a mixed-precision policy the inputs are 16-bit and the layer's
    # parameters float32; the statistics are computed in float32 either way,
    # as Keras' own batch normalization does.
    fusable = (tf.float16, tf.bfloat16, tf.float32)
    if inputs.shape.rank == 4 and list(layer.axis) == [3] and inputs.dtype in fusable:
        # The fused kernel is about 10 % faster for the whole reference path
        # than moments + normalization; it returns the batch mean and
        # variance, which are dropped here (no moving-average update). With
        # 16-bit inputs it takes float32 scale and offset and accumulates in
        # float32.
        ones = tf.ones(inputs.shape[-1:], layer.moving_mean.dtype)
        outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
            inputs,
            layer.gamma if layer.scale else ones,
            layer.beta if layer.center else tf.zeros_like(ones),
            epsilon=layer.epsilon,
            is_training=True,
        )
        return outputs
    x = inputs
    if x.dtype in (tf.float16, tf.bfloat16):
        x = tf.cast(x, tf.float32)
    axes = [i for i in range(x.shape.rank) if i not in layer.axis]
    mean, variance = tf.nn.moments(x, axes=axes, keepdims=True)
    shape = [1] * x.shape.rank
    for axis in layer.axis:
        shape[axis] = x.shape[axis]
    gamma = tf.reshape(layer.gamma, shape) if layer.scale else None
    beta = tf.reshape(layer.beta, shape) if layer.center else None
    outputs = tf.nn.batch_normalization(x, mean, variance, beta, gamma, layer.epsilon)
    return tf.cast(outputs, inputs.dtype)
