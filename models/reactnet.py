"""ReActNet-A (Liu et al., ECCV 2020) on Larq.

The MobileNet-V1 layout with every depthwise-separable layer replaced by a
binary block of two residual parts:

1. ``RSign`` (learnable thresholds) → binary 3×3 convolution (stride 1 or 2)
   → batch norm, plus the block input (average-pooled 2×2 when strided),
   → ``RPReLU``;
2. ``RSign`` → binary 1×1 convolution → batch norm, plus the part-1 output,
   → ``RPReLU``. Where the block doubles the channels, two 1×1
   convolutions of the same width each add the part-1 output and are
   concatenated.

Channels ``32 → 64 → 128 ×2 → 256 ×2 → 512 ×6 → 1024 ×2``: a
full-precision 3×3 stride-2 stem with batch norm, 13 binary blocks, global
average pooling and a full-precision classifier. At 224×224 it has
4.82×10⁹ binary and 1.2×10⁷ float MACs, the BOPs/FLOPs of the ReActNet paper.

Binary convolutions use ``magnitude_aware_sign`` weights (``sign(w)``
scaled by the mean ``|w|`` of each output channel, straight-through gradient)
and take the ±1 output of the ``RSign`` before them; their
``input_quantizer`` is Larq's ``NoOp(precision=1)``, which only declares the
inputs binary (for ``larq.models.summary``, the Larq Compute Engine) and
changes nothing. On the latent full-precision path of LCR, RSign returns
``x − α`` and the convolutions use their latent weights.

* ``precision="1w32a"``: real-valued activations (RSign keeps only its
  shift).
* ``quantized=False``: the full-precision counterpart (no quantizer at all).

The stem ends in ``stem_out`` and block k in ``block{k}_out``, so
:func:`lcr_larq.find_blocks` regularizes the 13 blocks.

Example:
    >>> model = reactnet((224, 224, 3), 1000)
    >>> model.get_layer("block13_out").output_shape
    (None, 7, 7, 1024)
"""

from __future__ import annotations

import larq as lq
import tensorflow as tf

from lcr_larq import layers as L
from lcr_larq.quantizers import PRECISIONS, QuantizationSpec
from models.registry import register_model

__all__ = [
    "CHANNELS",
    "reactnet",
    "reactnet_block",
]

# Output channels of the stem and the 13 blocks of ReActNet-A.
CHANNELS = (32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024)


def _bn(name: str) -> L.BatchNormalization:
    return L.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)


class _Binary:
    """The quantization of ReActNet's binary convolutions."""

    def __init__(self, precision: str, quantized: bool):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.quantized = quantized
        self.binary_activations = quantized and precision == "1w1a"

    def rsign(self, name: str) -> L.RSign:
        return L.RSign(binarize=self.binary_activations, name=name)

    def conv(self, filters: int, kernel_size: int, strides: int, name: str) -> L.QuantConv2D:
        return L.QuantConv2D(
            filters,
            kernel_size,
            strides=strides,
            padding="same",
            use_bias=False,
            kernel_initializer="glorot_normal",
            input_quantizer=lq.quantizers.NoOp(precision=1) if self.binary_activations else None,
            kernel_quantizer="magnitude_aware_sign" if self.quantized else None,
            kernel_constraint="weight_clip" if self.quantized else None,
            # One-padding keeps ±1 activations binary at the borders.
            pad_values=1.0 if self.binary_activations else 0.0,
            name=name,
        )


def reactnet_block(x, binary: _Binary, filters: int, strides: int, index: int):
    """One ReActNet-A block; its output layer is named ``block{index}_out``."""
    p = f"block{index}"
    channels = x.shape[-1]
    shortcut = x
    if strides > 1:
        shortcut = tf.keras.layers.AveragePooling2D(
            strides, padding="same", name=f"{p}_pool"
        )(x)
    h = binary.rsign(f"{p}_sign1")(x)
    h = _bn(f"{p}_bn1")(binary.conv(channels, 3, strides, f"{p}_conv3x3")(h))
    h = tf.keras.layers.Add(name=f"{p}_add1")([h, shortcut])
    h = L.RPReLU(name=f"{p}_act1")(h)

    signs = binary.rsign(f"{p}_sign2")(h)
    if filters == channels:
        out = _bn(f"{p}_bn2")(binary.conv(filters, 1, 1, f"{p}_conv1x1")(signs))
        out = tf.keras.layers.Add(name=f"{p}_add2")([out, h])
    elif filters == 2 * channels:
        halves = []
        for part in (1, 2):
            y = binary.conv(channels, 1, 1, f"{p}_conv1x1_{part}")(signs)
            y = _bn(f"{p}_bn2_{part}")(y)
            halves.append(tf.keras.layers.Add(name=f"{p}_add2_{part}")([y, h]))
        out = tf.keras.layers.Concatenate(name=f"{p}_concat")(halves)
    else:
        raise ValueError(f"a ReActNet block keeps or doubles channels, not {channels}→{filters}")
    return L.RPReLU(name=f"{p}_out")(out)


def reactnet(
    input_shape: tuple[int, int, int],
    num_classes: int,
    precision: str = "1w1a",
    quantized: bool = True,
) -> tf.keras.Model:
    """ReActNet-A for ``input_shape`` images; outputs logits.

    Args:
        input_shape: ``(height, width, channels)``, 224×224×3 on ImageNet.
        num_classes: width of the logits.
        precision: ``"1w1a"`` or ``"1w32a"``.
        quantized: ``False`` gives the full-precision counterpart.
    """
    binary = _Binary(precision, quantized)
    inputs = tf.keras.Input(input_shape, name="image")
    x = tf.keras.layers.Conv2D(
        CHANNELS[0], 3, strides=2, padding="same", use_bias=False,
        kernel_initializer="he_normal", name="stem_conv",
    )(inputs)
    x = _bn("stem_out")(x)
    for index, filters in enumerate(CHANNELS[1:], start=1):
        # Every widening block halves the resolution, except the first (32→64).
        strides = 2 if filters != x.shape[-1] and index > 1 else 1
        x = reactnet_block(x, binary, filters, strides, index)
    x = tf.keras.layers.GlobalAveragePooling2D(name="pool")(x)
    # float32 logits under a mixed-precision policy too (as resnet_cifar.classifier).
    logits = tf.keras.layers.Dense(num_classes, name="logits", dtype="float32")(x)
    label = precision if quantized else f"fp_{precision}"
    return tf.keras.Model(inputs, logits, name=f"reactnet_a_{label}")


# A stride-2 stem and four stride-2 blocks: 32×32 images leave the last 2×2 inputs.
@register_model("reactnet", "ReActNet-A (RSign, RPReLU, MobileNet-style binary blocks)",
                min_input_size=32, published_input_size=224)
def build(input_shape, num_classes: int, spec: QuantizationSpec) -> tf.keras.Model:
    """:func:`reactnet` of ``spec``'s precision, quantized or not."""
    return reactnet(input_shape, num_classes, spec.precision, spec.quantized)
