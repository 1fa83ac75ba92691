"""Finding the quantizers and quantized convolutions of a model.

Example:
    >>> import larq as lq
    >>> inputs = tf.keras.Input((8, 8, 3))
    >>> conv = lq.layers.QuantConv2D(4, 3, input_quantizer="ste_sign",
    ...                               kernel_quantizer="ste_sign")
    >>> model = tf.keras.Model(inputs, conv(inputs))
    >>> [type(q).__name__ for q in quantizers_of(model)], len(quantized_convolutions(model))
    (['SteSign', 'SteSign'], 1)
"""

from __future__ import annotations

from collections.abc import Iterator

import larq as lq
import tensorflow as tf

__all__ = [
    "quantized_convolutions",
    "quantizers_of",
]


def quantizers_of(model: tf.keras.layers.Layer) -> Iterator[tf.keras.layers.Layer]:
    """Every distinct quantizer that ``model`` tracks, nested models and
    custom layers included: Larq's quantizers (also those given to a layer
    by name, e.g. ``"ste_sign"``) and layers that quantize themselves (a
    ``precision``, e.g. ReActNet's RSign)."""
    seen: set[int] = set()
    for module in (model, *model.submodules):
        quantizes = isinstance(module, lq.quantizers.Quantizer) or (
            isinstance(module, tf.keras.layers.Layer)
            and not isinstance(module, tf.keras.Model)
            and getattr(type(module), "precision", None) is not None
        )
        if quantizes and id(module) not in seen:
            seen.add(id(module))
            yield module


def quantized_convolutions(model: tf.keras.Model, binary: bool = False) -> list:
    """The convolutions of ``model`` with a weight quantizer (Larq's
    ``QuantConv2D`` and ``QuantDepthwiseConv2D``), in layer order.

    With ``binary``, only what Larq Compute Engine runs as a binary kernel
    (``LceBconv2d``): ``QuantConv2D`` layers whose input and kernel quantizers
    are both 1-bit.

    Example:
        >>> inputs = tf.keras.Input((8, 8, 3))
        >>> conv = lq.layers.QuantConv2D(4, 3, kernel_quantizer="ste_sign")
        >>> real_activations = tf.keras.Model(inputs, conv(inputs))
        >>> len(quantized_convolutions(real_activations, binary=True))
        0
    """

    def one_bit(quantizer) -> bool:
        return quantizer is not None and getattr(quantizer, "precision", None) == 1

    found = []
    for layer in model.layers:
        if isinstance(layer, lq.layers.QuantDepthwiseConv2D):
            if layer.depthwise_quantizer is not None and not binary:
                found.append(layer)
        elif isinstance(layer, lq.layers.QuantConv2D) and layer.kernel_quantizer is not None:
            if not binary or (one_bit(layer.input_quantizer) and one_bit(layer.kernel_quantizer)):
                found.append(layer)
    return found
