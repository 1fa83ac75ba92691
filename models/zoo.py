"""Larq-Zoo networks, ready for LCR.

:func:`zoo_model` builds a Larq-Zoo network (random initialization,
``weights=None``: nothing is downloaded) for any input shape and class count
and prepares it for this project:

* the final softmax is cut off, so the model outputs logits
  (:func:`logits_model`);
* ``precision="1w32a"`` and ``quantized=False`` clone it with the input
  quantizers, or all quantizers and weight clipping, off
  (:func:`lcr_larq.surgery.without_quantizers`) — the full-precision version is the
  ``teacher`` reference of LCR;
* its stock Larq layers and batch norms become the full-precision-aware
  layers of :mod:`lcr_larq.layers`
  (:func:`lcr_larq.make_full_precision_aware`), so the latent
  full-precision path of LCR can replay it.

The zoo networks keep their published quantizers (e.g. Bi-Real Net's
``approx_sign`` activations and ``magnitude_aware_sign`` weights);
:func:`lcr_larq.find_blocks` regularizes every residual add of them.

Example:
    >>> model = zoo_model("birealnet", (32, 32, 3), 10)
    >>> model.output_shape, model.layers[-1].__class__.__name__
    ((None, 10), 'Dense')
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import larq_zoo
import tensorflow as tf

from lcr_larq.graph import make_full_precision_aware
from lcr_larq.quantizers import PRECISIONS, QuantizationSpec
from lcr_larq.surgery import without_quantizers
from models.registry import register_model

__all__ = [
    "PUBLISHED_SIZE",
    "ZOO_MODELS",
    "logits_model",
    "zoo_model",
]

#: name → (Larq-Zoo network, description, minimum input size): the smallest
#: image side on which no downsampling layer is handed a single pixel.
ZOO_MODELS: dict[str, tuple[Callable[..., tf.keras.Model], str, int]] = {
    "birealnet": (larq_zoo.literature.BiRealNet, "Larq-Zoo Bi-Real Net-18", 32),
    "resnet_e": (larq_zoo.literature.BinaryResNetE18, "Larq-Zoo BinaryResNetE18", 8),
    "quicknet": (larq_zoo.sota.QuickNet, "Larq-Zoo QuickNet", 64),
    "quicknet_small": (larq_zoo.sota.QuickNetSmall, "Larq-Zoo QuickNetSmall", 64),
    "quicknet_large": (larq_zoo.sota.QuickNetLarge, "Larq-Zoo QuickNetLarge", 64),
}
#: Larq-Zoo's networks are published for ImageNet.
PUBLISHED_SIZE = 224

def _is_softmax(layer: tf.keras.layers.Layer) -> bool:
    return isinstance(layer, tf.keras.layers.Softmax) or (
        isinstance(layer, tf.keras.layers.Activation)
        and layer.get_config()["activation"] == "softmax"
    )


def logits_model(model: tf.keras.Model, name: str | None = None) -> tf.keras.Model:
    """``model`` without its final softmax layer, so that it outputs logits.

    A model whose output layer is not a softmax is returned as it is
    (renamed when ``name`` is given).

    Example:
        >>> inputs = tf.keras.Input((4,))
        >>> probs = tf.keras.layers.Activation("softmax")(tf.keras.layers.Dense(3)(inputs))
        >>> logits_model(tf.keras.Model(inputs, probs)).layers[-1].__class__.__name__
        'Dense'
    """
    last = model.layers[-1]
    outputs = last.input if _is_softmax(last) else model.outputs[0]
    if outputs.dtype != tf.float32:
        # Under a mixed-precision policy: float32 logits, as the float32
        # softmax cut off gave (Keras' mixed-precision guide).
        outputs = tf.keras.layers.Activation("linear", dtype="float32", name="logits_float32")(
            outputs
        )
    return tf.keras.Model(model.inputs, outputs, name=name or model.name)


def zoo_model(name: str, input_shape: tuple[int, int, int], num_classes: int,
              precision: str = "1w1a", quantized: bool = True) -> tf.keras.Model:
    """Larq-Zoo network ``name`` (see :data:`ZOO_MODELS`), randomly initialized,
    outputting logits, with full-precision-aware layers.

    Args:
        name: a key of :data:`ZOO_MODELS`.
        input_shape: ``(height, width, channels)``.
        num_classes: width of the logits.
        precision: ``"1w1a"`` (the published network) or ``"1w32a"`` (its
            input quantizers off).
        quantized: ``False`` gives the full-precision version.
    """
    if name not in ZOO_MODELS:
        raise ValueError(f"unknown Larq-Zoo model {name!r}; choose one of {sorted(ZOO_MODELS)}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    network, _, _ = ZOO_MODELS[name]
    with warnings.catch_warnings():
        # Larq-Zoo's QuickNets give plain functions as initializers, and
        # tf-keras warns each time it serializes one, as cloning here does.
        warnings.filterwarnings("ignore", message=r"The `keras\.initializers\.serialize\(\)`")
        model = network(input_shape=tuple(input_shape), num_classes=num_classes, weights=None)
        label = precision if quantized else f"fp_{precision}"
        model = logits_model(model, name=f"{name}_{label}")
        if not quantized or precision == "1w32a":
            model = without_quantizers(model, inputs=True, weights=not quantized)
        return make_full_precision_aware(model)


def _zoo_builder(name: str):
    def build(input_shape, num_classes: int, spec: QuantizationSpec) -> tf.keras.Model:
        return zoo_model(name, input_shape, num_classes, spec.precision, spec.quantized)

    return build


def _register_all() -> None:
    for name, (_, description, least) in ZOO_MODELS.items():
        register_model(name, description, min_input_size=least,
                       published_input_size=PUBLISHED_SIZE)(_zoo_builder(name))


_register_all()
