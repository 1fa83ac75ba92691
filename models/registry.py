"""The architectures of ``--model``: one registry, :func:`build_model`, for every network.

Each architecture registers itself where it is defined, with
:func:`register_model` on its builder: its name, a line for
``--list-models``, whether it takes the options of the IR-Net-style ResNets
(``bireal``, ``shortcut`` and ``weight_quantizer``; the other networks keep
their published quantizers and shortcuts), its minimum input size (the
smallest square image on which no downsampling layer is handed a single
pixel) and its published input size. A builder takes
``(input_shape, num_classes, spec)`` — ``spec`` a
:class:`~lcr_larq.quantizers.QuantizationSpec` — plus ``bireal`` and
``shortcut`` where it takes the ResNet options, and returns a functional
model that outputs logits.

Example:
    >>> model = build_model("resnet20", (32, 32, 1), 10)
    >>> model.output_shape
    (None, 10)
    >>> describe("reactnet")
    'ReActNet-A (RSign, RPReLU, MobileNet-style binary blocks)'
    >>> check_input_size("reactnet", 16)
    Traceback (most recent call last):
    ...
    lcr_larq.errors.ConfigError: --model reactnet needs images of at least 32×32, got \
--input-size 16: pass --input-size 32 (or larger) or another --model
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import tensorflow as tf

from lcr_larq.data import INPUT_SIZES
from lcr_larq.errors import ConfigError
from lcr_larq.quantizers import quantization
from lcr_larq.registry import Registry

__all__ = [
    "MODELS", "Architecture", "build_model", "check_input_size", "describe", "register_model",
]


@dataclass(frozen=True)
class Architecture:
    """A registered network: see :func:`register_model`."""

    name: str
    description: str
    build: Callable[..., tf.keras.Model]
    min_input_size: int
    published_input_size: int
    resnet_options: bool = False
    options: type | None = None


MODELS: Registry[Architecture] = Registry("model")


def register_model(name: str, description: str, *, min_input_size: int,
                   published_input_size: int, resnet_options: bool = False,
                   options: type | None = None):
    """A decorator that registers a builder as the architecture ``name``.

    Args:
        description: one line for ``--list-models``.
        min_input_size: the smallest image side on which no downsampling
            layer is handed a single pixel: a dataset's own size is raised to
            it (:func:`lcr_larq.data.resolve_input_size`), smaller images
            given are refused (:func:`check_input_size`).
        published_input_size: the image side of the published network
            (``--list-models`` shows it).
        resnet_options: the builder takes ``bireal`` and ``shortcut`` and its
            binary layers the ``--weight-quantizer``.
        options: the settings dataclass of its own options, declared in its
            file (the ResNets': :class:`models.resnet_cifar.ResNetOptions`);
            ``lcr-train``'s settings include it, so its fields are flags and
            recipe keys.
    """

    def add(build: Callable[..., tf.keras.Model]) -> Callable[..., tf.keras.Model]:
        MODELS.add(name, Architecture(name, description, build, min_input_size,
                                      published_input_size, resnet_options, options))
        return build

    return add


def check_input_size(
    name: str, height: int, width: int | None = None, *, images: str | None = None
) -> None:
    """Refuses images smaller than architecture ``name``'s minimum, in one
    line naming the fix: the smallest ``--input-size`` every check accepts.

    ``height`` alone is an ``--input-size`` the user gave; ``height`` and
    ``width`` the size of the images of ``images`` (a ``--dataset``), as
    they are.

    Example:
        >>> check_input_size("resnet8", 1, 4000, images="npz:thin.npz")
        Traceback (most recent call last):
        ...
        lcr_larq.errors.ConfigError: --model resnet8 needs images of at least 4×4, \
npz:thin.npz has 1×4000: pass --input-size 8 (or larger) or another --model
    """
    least = MODELS[name].min_input_size
    width = height if width is None else width
    if min(height, width) < least:
        got = f"{images} has {height}×{width}" if images else f"got --input-size {height}"
        raise ConfigError(
            f"--model {name} needs images of at least {least}×{least}, {got}: pass "
            f"--input-size {max(least, INPUT_SIZES[0])} (or larger) or another --model"
        )


def describe(name: str) -> str:
    """One line about architecture ``name``."""
    return MODELS[name].description


def _resnet_names() -> str:
    return ", ".join(name for name, entry in MODELS.items() if entry.resnet_options)


def build_model(
    name: str,
    input_shape: tuple[int, int, int],
    num_classes: int,
    precision: str = "1w1a",
    quantized: bool = True,
    bireal: bool = False,
    weight_quantizer: str = "irnet",
    shortcut: str | None = None,
    quantizer_settings: Any = None,
) -> tf.keras.Model:
    """Builds model ``name`` for ``input_shape`` images and ``num_classes``.

    ``quantized=False`` gives the full-precision counterpart (same layers,
    quantizers off). The model outputs logits. The ResNets also take
    ``bireal``, ``weight_quantizer`` (a name of
    :data:`lcr_larq.quantizers.WEIGHT_QUANTIZERS`, whose options, e.g.
    ``prox_gradient``, come in ``quantizer_settings``: a run's settings, the
    quantizer's options object or a mapping of them by name) and ``shortcut``
    (the downsampling shortcut; None: the paper baselines'; both are
    :class:`models.resnet_cifar.ResNetOptions`); the other networks refuse
    them (a :class:`~lcr_larq.errors.ConfigError` naming the flag).
    """
    architecture = MODELS[name]
    spec = quantization(precision, weight_quantizer, quantized, quantizer_settings)
    if architecture.resnet_options:
        return architecture.build(tuple(input_shape), num_classes, spec, bireal=bireal,
                                  shortcut=shortcut)
    given = {"--bireal": bireal, f"--weight-quantizer {weight_quantizer}":
             weight_quantizer != "irnet", f"--shortcut {shortcut}": shortcut is not None}
    for flag, wrong in given.items():
        if wrong:
            raise ConfigError(
                f"{flag} applies to {_resnet_names()}; {name} keeps its published "
                "quantizers and shortcuts (drop the flag)"
            )
    return architecture.build(tuple(input_shape), num_classes, spec)
