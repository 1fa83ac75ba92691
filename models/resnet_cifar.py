"""CIFAR-style binary ResNets (He et al. 2016) in the IR-Net layout.

3×3 full-precision stem without max-pool, binary 3×3 convolutions in every
basic block, full-precision downsampling shortcuts and a full-precision
classifier, as in IR-Net and LCR-BNN. The downsampling shortcut is that of
the papers' baselines unless chosen (:data:`SHORTCUTS`): IR-Net's ResNet-20
pads with zeros (option A of He et al.), its ResNet-18 uses a strided 1×1
conv + BN (option B).

* ``1w1a``: binary weights and activations, HardTanh after each residual add.
* ``1w32a``: binary weights, real-valued activations, ReLU.
* ``quantized=False``: the same network with every quantizer off (the
  full-precision counterpart, e.g. a ``teacher``).
* ``bireal=True``: a real-valued shortcut around every binary convolution
  (Bi-Real Net) instead of one per basic block.

ResNet-18 and ResNet-34 have the stages of the ImageNet networks; their
ImageNet layout (7×7 stride-2 stem and max-pool) is in
:mod:`models.resnet_imagenet`, which shares :func:`basic_block`,
:func:`residual_stages` and :func:`classifier` with this module.

Registered: ``resnet20`` (He et al.'s CIFAR ResNet-20, IR-Net's layout) and
``resnet8`` (one block per stage, for quick checks). Their options (and
those of :mod:`models.resnet_imagenet`'s ResNets), ``bireal`` and
``shortcut``, are :class:`ResNetOptions`: flags of ``lcr-train`` and keys of
its recipes.

The blocks are named for LCR: the stem ends in ``stem_out`` and basic block k
in ``block{k}_out`` (see :func:`lcr_larq.find_blocks`).

Example:
    >>> model = resnet_cifar(20, (32, 32, 3), 10)
    >>> sum(layer.name.startswith("block") and layer.name.endswith("_out")
    ...     for layer in model.layers)
    9
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from lcr_larq import layers as L
from lcr_larq.quantizers import QuantizationSpec, quantization
from lcr_larq.settings import Settings, setting
from models.registry import register_model

__all__ = [
    "DEPTHS",
    "IMAGENET_STAGES",
    "SHORTCUTS",
    "ResNetOptions",
    "activation",
    "assemble",
    "basic_block",
    "binary_conv",
    "classifier",
    "default_shortcut",
    "downsample",
    "residual_stages",
    "resnet_cifar",
    "stem",
]

# (filters, basic blocks) of every stage.
IMAGENET_STAGES = {
    18: ((64, 2), (128, 2), (256, 2), (512, 2)),
    34: ((64, 3), (128, 4), (256, 6), (512, 3)),
}
# He et al.'s CIFAR ResNets have 6n + 2 layers: n basic blocks per stage.
DEPTHS = {8: ((16, 1), (32, 1), (64, 1)), 20: ((16, 3), (32, 3), (64, 3)), **IMAGENET_STAGES}


def activation(spec: QuantizationSpec, name: str) -> tf.keras.layers.Layer:
    """The block activation of ``spec``: HardTanh (1w1a) or ReLU (1w32a)."""
    if spec.activation == "hardtanh":
        return L.HardTanh(name=name)
    return tf.keras.layers.ReLU(name=name)


def binary_conv(spec: QuantizationSpec, filters: int, strides: int, name: str):
    """A 3×3 binary convolution of the given quantization."""
    return L.QuantConv2D(
        filters,
        3,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        name=name,
        **spec.conv_kwargs(),
    )


#: The downsampling shortcuts of ``--shortcut``.
SHORTCUTS = ("zero-pad", "conv", "avgpool-conv")


@dataclass
class ResNetOptions(Settings):
    """The options of the IR-Net-style ResNets (``resnet8``, ``resnet20``,
    ``resnet18``, ``resnet34``): flags of ``lcr-train`` (``--bireal``,
    ``--shortcut``) and keys of its recipes; the other networks keep their
    published shortcuts (:func:`models.build_model` refuses these there).

    Example:
        >>> ResNetOptions(shortcut="conv").bireal
        False
    """

    bireal: bool = setting(False, "real-valued shortcut around every binary conv (Bi-Real)")
    shortcut: str = setting(
        "auto",
        "downsampling shortcut of the ResNets: zero-pad (option A, IR-Net's ResNet-20), conv "
        "(strided 1x1 conv + BN, IR-Net's ResNet-18), avgpool-conv (Bi-Real's); auto: the "
        "paper baselines' (zero-pad for resnet20, conv for CIFAR resnet18/34, avgpool-conv "
        "from 100 px)",
        choices=("auto", *SHORTCUTS),
    )


def default_shortcut(depth: int, imagenet_layout: bool = False) -> str:
    """The downsampling shortcut of the papers' baselines: IR-Net's released
    CIFAR ResNet-20 pads with zeros (He et al.'s option A, as every 6n + 2
    CIFAR ResNet here), its CIFAR ResNet-18 uses a strided 1×1 convolution +
    BN (option B); the ImageNet layout uses Bi-Real's average pool + 1×1
    convolution + BN."""
    if imagenet_layout:
        return "avgpool-conv"
    return "conv" if depth in IMAGENET_STAGES else "zero-pad"


def downsample(x, filters: int, strides: int, name: str, shortcut: str = "avgpool-conv"):
    """The full-precision downsampling shortcut of a basic block.

    * ``zero-pad``: every ``strides``-th position, channels zero-padded
      (parameter-free; :class:`~lcr_larq.layers.ZeroPadShortcut`);
    * ``conv``: a strided 1×1 convolution and batch norm;
    * ``avgpool-conv``: an average pool, a 1×1 convolution and batch norm.
    """
    if shortcut not in SHORTCUTS:
        raise ValueError(f"shortcut must be one of {SHORTCUTS}, got {shortcut!r}")
    if shortcut == "zero-pad":
        return L.ZeroPadShortcut(filters, strides, name=f"{name}_pad")(x)
    conv_strides = strides if shortcut == "conv" else 1
    if strides > 1 and shortcut == "avgpool-conv":
        # "same": ⌈n/2⌉ like the strided convolution, also for odd sizes.
        x = tf.keras.layers.AveragePooling2D(strides, padding="same", name=f"{name}_pool")(x)
    x = tf.keras.layers.Conv2D(
        filters, 1, strides=conv_strides, use_bias=False, kernel_initializer="he_normal",
        name=f"{name}_conv",
    )(x)
    return L.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn")(x)


def basic_block(
    x, spec: QuantizationSpec, filters: int, strides: int, bireal: bool, index: int,
    shortcut: str = "avgpool-conv",
):
    """One basic block; its output layer is named ``block{index}_out``."""
    p = f"block{index}"
    identity = x
    if strides > 1 or x.shape[-1] != filters:
        identity = downsample(x, filters, strides, f"{p}_shortcut", shortcut)
    bn = lambda n: L.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{p}_bn{n}")  # noqa: E731
    h = bn(1)(binary_conv(spec, filters, strides, f"{p}_conv1")(x))
    if bireal:
        h = tf.keras.layers.Add(name=f"{p}_add1")([h, identity])
        h = activation(spec, f"{p}_act1")(h)
        identity = h
    else:
        h = activation(spec, f"{p}_act1")(h)
    h = bn(2)(binary_conv(spec, filters, 1, f"{p}_conv2")(h))
    h = tf.keras.layers.Add(name=f"{p}_add{2 if bireal else ''}")([h, identity])
    return activation(spec, f"{p}_out")(h)


def residual_stages(
    x, spec: QuantizationSpec, stages, bireal: bool, shortcut: str = "avgpool-conv"
):
    """The basic blocks of ``stages`` (``(filters, blocks)`` pairs), named
    ``block1_out`` … ``blockK_out``; every stage but the first starts with a
    stride-2 block."""
    index = 0
    for stage, (filters, blocks) in enumerate(stages):
        for b in range(blocks):
            index += 1
            strides = 2 if stage > 0 and b == 0 else 1
            x = basic_block(x, spec, filters, strides, bireal, index, shortcut)
    return x


def classifier(x, num_classes: int):
    """Full-precision head: global average pool and a dense layer (logits).

    The logits are float32 under a mixed-precision policy too (the softmax
    and the loss want float32, Keras' mixed-precision guide): the dense
    layer computes in float32, a policy float32 models have anyway.
    """
    x = tf.keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return tf.keras.layers.Dense(num_classes, name="logits", dtype="float32")(x)


def resnet_cifar(depth: int, input_shape: tuple[int, int, int], num_classes: int,
                 spec: QuantizationSpec | None = None, bireal: bool = False,
                 shortcut: str | None = None) -> tf.keras.Model:
    """CIFAR ResNet-20, -18 or -34 (3×3 stem, no max-pool); outputs logits.

    ``shortcut`` is the downsampling shortcut (:data:`SHORTCUTS`); None takes
    the paper baselines' (:func:`default_shortcut`).
    """
    if depth not in DEPTHS:
        raise ValueError(f"CIFAR ResNet depth must be one of {sorted(DEPTHS)}, got {depth}")
    spec = spec or quantization("1w1a")
    inputs = tf.keras.Input(input_shape, name="image")
    x = stem(inputs, spec, DEPTHS[depth][0][0], kernel_size=3, strides=1)
    x = activation(spec, "stem_out")(x)
    return assemble(inputs, x, num_classes, spec, DEPTHS[depth], bireal,
                    shortcut or default_shortcut(depth), f"resnet{depth}")


def stem(inputs, spec: QuantizationSpec, filters: int, kernel_size: int, strides: int):
    """The full-precision stem convolution and its batch norm (before the activation)."""
    x = tf.keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding="same", use_bias=False,
        kernel_initializer="he_normal", name="stem_conv",
    )(inputs)
    return L.BatchNormalization(momentum=0.9, epsilon=1e-5, name="stem_bn")(x)


def assemble(inputs, x, num_classes: int, spec: QuantizationSpec, stages, bireal: bool,
             shortcut: str, name: str) -> tf.keras.Model:
    """The model from the stem's output ``x``: the residual stages, the
    classifier, and a name that says the variant."""
    logits = classifier(residual_stages(x, spec, stages, bireal, shortcut), num_classes)
    return tf.keras.Model(inputs, logits, name=f"{name}{'_bireal' if bireal else ''}_{spec.label}")


def _cifar_builder(depth: int):
    def build(input_shape, num_classes: int, spec: QuantizationSpec, bireal: bool = False,
              shortcut: str | None = None) -> tf.keras.Model:
        return resnet_cifar(depth, input_shape, num_classes, spec, bireal, shortcut)

    return build


# Two stride-2 stages: 4×4 images leave the last one 2×2 inputs.
register_model(
    "resnet20", "CIFAR ResNet-20 (IR-Net layout), at every input size",
    min_input_size=4, published_input_size=32, resnet_options=True, options=ResNetOptions,
)(_cifar_builder(20))
register_model(
    "resnet8", "CIFAR ResNet-8 (one block per stage, IR-Net layout): for quick checks",
    min_input_size=4, published_input_size=32, resnet_options=True, options=ResNetOptions,
)(_cifar_builder(8))
