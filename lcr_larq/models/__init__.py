"""Architectures: one registry, :func:`build_model`, for every network.

One module per published architecture: :mod:`~lcr_larq.models.resnet_cifar`
and :mod:`~lcr_larq.models.resnet_imagenet` (IR-Net's binary ResNets),
:mod:`~lcr_larq.models.reactnet` (ReActNet-A) and
:mod:`~lcr_larq.models.zoo` (Larq-Zoo's networks, built with
``weights=None``); :data:`DESCRIPTIONS` (``lcr-train --list-models``) says
what each name builds.

Every model outputs logits and is built for the dataset's input shape and
class count. ``quantized=False`` gives its full-precision version (the same
network, quantizers off), e.g. a ``teacher``. ``precision`` (``1w1a`` or
``1w32a``) applies to every model; ``bireal`` and ``weight_quantizer`` to the
ResNets only: ReActNet and the Larq-Zoo networks keep their published
quantizers.

Example:
    >>> model = build_model("resnet20", (32, 32, 1), 10)
    >>> model.output_shape
    (None, 10)
    >>> build_model("resnet18", (224, 224, 3), 1000).name
    'resnet18_imagenet_1w1a'
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

# Modules, not their functions, so that ``models.reactnet`` etc. stay importable.
from lcr_larq.models import reactnet, resnet_cifar, resnet_imagenet, zoo
from lcr_larq.models.quantization import QuantizationSpec, quantization

SHORTCUTS = resnet_cifar.SHORTCUTS
# Inputs at least this many pixels high get the ImageNet layout of ResNet-18/34.
IMAGENET_MIN_SIZE = 100


def _resnet(depth: int, imagenet_layout: bool = True) -> Callable[..., tf.keras.Model]:
    def build(shape, classes, spec: QuantizationSpec, bireal: bool, shortcut: str | None):
        if imagenet_layout and shape[0] >= IMAGENET_MIN_SIZE:
            return resnet_imagenet.resnet_imagenet(depth, shape, classes, spec, bireal, shortcut)
        return resnet_cifar.resnet_cifar(depth, shape, classes, spec, bireal, shortcut)

    return build


#: The IR-Net-style ResNets, which take --bireal, --weight-quantizer and --shortcut.
RESNETS = {
    "resnet8": _resnet(8, imagenet_layout=False),
    "resnet20": _resnet(20, imagenet_layout=False),
    "resnet18": _resnet(18),
    "resnet34": _resnet(34),
}
_RESNET_NAMES = ", ".join(sorted(RESNETS))


def _no_resnet_options(name: str, build: Callable[..., tf.keras.Model]):
    def checked(shape, classes, spec: QuantizationSpec, bireal: bool, shortcut: str | None):
        if bireal:
            raise ValueError(f"--bireal applies to {_RESNET_NAMES}, not {name}")
        if spec.weight_quantizer != "irnet":
            raise ValueError(
                f"--weight-quantizer {spec.weight_quantizer} applies to {_RESNET_NAMES}; "
                f"{name} keeps its published quantizers (drop the flag)"
            )
        if shortcut is not None:
            raise ValueError(
                f"--shortcut {shortcut} applies to {_RESNET_NAMES}; {name} "
                "keeps its published shortcuts (drop the flag)"
            )
        return build(shape, classes, precision=spec.precision, quantized=spec.quantized)

    return checked


MODELS: dict[str, Callable[..., tf.keras.Model]] = {
    **RESNETS,
    "reactnet": _no_resnet_options("reactnet", reactnet.reactnet),
    **{
        name: _no_resnet_options(
            name,
            lambda shape, classes, _name=name, **kw: zoo.zoo_model(_name, shape, classes, **kw),
        )
        for name in zoo.ZOO_MODELS
    },
}


DESCRIPTIONS = {
    "resnet8": "CIFAR ResNet-8 (one block per stage, IR-Net layout): for quick checks",
    "resnet20": "CIFAR ResNet-20 (IR-Net layout), at every input size",
    "resnet18": "ResNet-18: CIFAR layout below 100 px, ImageNet layout from 100 px",
    "resnet34": "ResNet-34, layouts as ResNet-18",
    "reactnet": "ReActNet-A (RSign, RPReLU, MobileNet-style binary blocks)",
    "birealnet": "Larq-Zoo Bi-Real Net-18",
    "resnet_e": "Larq-Zoo BinaryResNetE18",
    "quicknet": "Larq-Zoo QuickNet",
    "quicknet_small": "Larq-Zoo QuickNetSmall",
    "quicknet_large": "Larq-Zoo QuickNetLarge",
}


def describe(name: str) -> str:
    """One line about architecture ``name``.

    Example:
        >>> describe("reactnet")
        'ReActNet-A (RSign, RPReLU, MobileNet-style binary blocks)'
    """
    return DESCRIPTIONS.get(name, name)


def build_model(
    name: str,
    input_shape: tuple[int, int, int],
    num_classes: int,
    precision: str = "1w1a",
    quantized: bool = True,
    bireal: bool = False,
    weight_quantizer: str = "irnet",
    shortcut: str | None = None,
    prox_gradient: str = "prox",
) -> tf.keras.Model:
    """Builds model ``name`` for ``input_shape`` images and ``num_classes``.

    ``quantized=False`` gives the full-precision counterpart (same layers,
    quantizers off). The model outputs logits. The ResNets also take
    ``shortcut`` (the downsampling shortcut, :data:`SHORTCUTS`; None: the
    paper baselines', see :func:`models.resnet_cifar.default_shortcut`) and
    ``prox_gradient`` (the ProxConnect backward, ``prox`` or ``ste``).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    spec = quantization(precision, weight_quantizer, quantized, prox_gradient)
    return MODELS[name](tuple(input_shape), num_classes, spec, bireal, shortcut)
