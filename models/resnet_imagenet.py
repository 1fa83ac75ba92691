"""ImageNet-style binary ResNets (He et al. 2016) in the IR-Net layout.

The network the LCR paper measures on ImageNet (its Table 5: 1.676×10⁹ BOPs
for ResNet-18): a full-precision 7×7 stride-2 stem with batch norm and a 3×3
stride-2 max-pool, then the basic blocks of :mod:`models.resnet_cifar` —
binary 3×3 convolutions, full-precision downsampling shortcuts (average pool
+ 1×1 conv + batch norm) — and a full-precision classifier. Only the stem
differs from the CIFAR layout.

* ``1w1a`` / ``1w32a`` / ``quantized=False`` / ``bireal=True``: as in
  :mod:`models.resnet_cifar`.

The stem ends in ``stem_out`` (the max-pool) and basic block k in
``block{k}_out``, the chain :func:`lcr_larq.find_blocks` regularizes.

Registered: ``resnet18`` and ``resnet34``, in the CIFAR layout
(:mod:`models.resnet_cifar`) below :data:`IMAGENET_MIN_SIZE` pixels and in
this one from there on.

Example:
    >>> model = resnet_imagenet(18, (224, 224, 3), 1000)
    >>> model.get_layer("stem_out").output_shape
    (None, 56, 56, 64)
    >>> sum(layer.name.startswith("block") and layer.name.endswith("_out")
    ...     for layer in model.layers)
    8
"""

from __future__ import annotations

import tensorflow as tf

from lcr_larq.quantizers import QuantizationSpec, quantization
from models.registry import register_model
from models.resnet_cifar import (
    IMAGENET_STAGES,
    ResNetOptions,
    activation,
    assemble,
    default_shortcut,
    resnet_cifar,
    stem,
)

__all__ = [
    "IMAGENET_MIN_SIZE",
    "resnet_imagenet",
]

#: Inputs at least this many pixels high get the ImageNet layout of ResNet-18/34.
IMAGENET_MIN_SIZE = 100


def resnet_imagenet(depth: int, input_shape: tuple[int, int, int], num_classes: int,
                    spec: QuantizationSpec | None = None, bireal: bool = False,
                    shortcut: str | None = None) -> tf.keras.Model:
    """ImageNet ResNet-18 or ResNet-34 (7×7 stride-2 stem + max-pool); outputs logits.

    Args:
        depth: 18 or 34.
        input_shape: ``(height, width, channels)``, 224×224×3 on ImageNet.
        num_classes: width of the logits.
        spec: precision, weight quantizer and whether quantized at all
            (default: 1w1a, IR-Net's quantizers), see
            :func:`lcr_larq.quantizers.quantization`.
        bireal: a real-valued shortcut around every binary convolution.
        shortcut: the downsampling shortcut (default: Bi-Real's average pool +
            1×1 conv + BN), see :func:`models.resnet_cifar.downsample`.
    """
    if depth not in IMAGENET_STAGES:
        raise ValueError(
            f"ImageNet ResNet depth must be one of {sorted(IMAGENET_STAGES)}, got {depth}"
        )
    spec = spec or quantization("1w1a")
    stages = IMAGENET_STAGES[depth]
    inputs = tf.keras.Input(input_shape, name="image")
    x = stem(inputs, spec, stages[0][0], kernel_size=7, strides=2)
    x = activation(spec, "stem_act")(x)
    x = tf.keras.layers.MaxPool2D(3, strides=2, padding="same", name="stem_out")(x)
    return assemble(inputs, x, num_classes, spec, stages, bireal,
                    shortcut or default_shortcut(depth, imagenet_layout=True),
                    f"resnet{depth}_imagenet")


def _resnet_builder(depth: int):
    def build(input_shape, num_classes: int, spec: QuantizationSpec, bireal: bool = False,
              shortcut: str | None = None) -> tf.keras.Model:
        layout = resnet_imagenet if input_shape[0] >= IMAGENET_MIN_SIZE else resnet_cifar
        return layout(depth, input_shape, num_classes, spec, bireal, shortcut)

    return build


# Three stride-2 stages in the CIFAR layout: 8×8 images leave the last one 2×2 inputs.
register_model(
    "resnet18", "ResNet-18: CIFAR layout below 100 px, ImageNet layout from 100 px",
    min_input_size=8, published_input_size=224, resnet_options=True, options=ResNetOptions,
)(_resnet_builder(18))
register_model(
    "resnet34", "ResNet-34, layouts as ResNet-18",
    min_input_size=8, published_input_size=224, resnet_options=True, options=ResNetOptions,
)(_resnet_builder(34))
