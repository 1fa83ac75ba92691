"""Architectures: one registry, :func:`build_model`, for every network.

Example:
    >>> model = build_model("resnet20", (32, 32, 1), 10)
    >>> model.output_shape
    (None, 10)
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from models.resnet_cifar import resnet_cifar

MODELS: dict[str, Callable[..., tf.keras.Model]] = {
    "resnet20": lambda shape, classes, **kw: resnet_cifar(20, shape, classes, **kw),
    "resnet18": lambda shape, classes, **kw: resnet_cifar(18, shape, classes, **kw),
}


def build_model(
    name: str,
    input_shape: tuple[int, int, int],
    num_classes: int,
    precision: str = "1w1a",
    quantized: bool = True,
    bireal: bool = False,
    weight_quantizer: str = "irnet",
) -> tf.keras.Model:
    """Builds model ``name`` for ``input_shape`` images and ``num_classes``.

    ``quantized=False`` gives the full-precision counterpart (same layers,
    quantizers off). The model outputs logits.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name](
        tuple(input_shape),
        num_classes,
        precision=precision,
        quantized=quantized,
        bireal=bireal,
        weight_quantizer=weight_quantizer,
    )
