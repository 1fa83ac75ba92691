"""Model surgery: a BNN's quantizers switched off, its latent weights carried over.

* :func:`without_quantizers` — a copy of a functional Larq model with its input
  quantizers, or all quantizers and weight clipping, off;
* :func:`copy_latent_weights` — the latent (full-precision) weights of a BNN
  into the same-named layers of another model;
* :func:`strip_quantizers` — both: the full-precision version of any
  functional Larq model, with its latent weights;
* :func:`float_counterpart` — the full-precision version of a BNN's
  architecture with its latent weights: rebuilt where the caller can (a
  registered model), else stripped.

What the attacks' transfer source, ``lcr-export``'s float flatbuffer and the
architectures that keep their published quantizers (Larq-Zoo's
``precision="1w32a"``) are made with.

Example:
    >>> import larq as lq
    >>> inputs = tf.keras.Input((4,))
    >>> layer = lq.layers.QuantDense(2, input_quantizer="ste_sign", kernel_quantizer="ste_sign",
    ...                              kernel_constraint="weight_clip", name="dense")
    >>> bnn = tf.keras.Model(inputs, layer(inputs))
    >>> fp = strip_quantizers(bnn)
    >>> fp.get_layer("dense").kernel_quantizer, fp.get_layer("dense").input_quantizer
    (None, None)
    >>> bool((fp.get_layer("dense").kernel.numpy() == layer.kernel.latent_variable.numpy()).all())
    True
"""

from __future__ import annotations

from collections.abc import Callable

import larq as lq
import numpy as np
import tensorflow as tf
from larq.layers_base import BaseLayer

from lcr_larq.errors import RunError

__all__ = ["copy_latent_weights", "float_counterpart", "strip_quantizers", "without_quantizers"]

_INPUT_KEYS = ("input_quantizer",)
_WEIGHT_KEYS = (
    "kernel_quantizer", "depthwise_quantizer", "pointwise_quantizer",
    "kernel_constraint", "depthwise_constraint", "pointwise_constraint",
)


def without_quantizers(
    model: tf.keras.Model, inputs: bool = True, weights: bool = True, copy_weights: bool = True
) -> tf.keras.Model:
    """A copy of ``model`` (same weights) with its quantizers off.

    Args:
        model: a functional model with Larq layers.
        inputs: remove the input quantizers (and pass standalone quantizer
            layers through) — real-valued activations.
        weights: remove the kernel quantizers and their weight clipping —
            real-valued weights.
        copy_weights: copy ``model``'s weights list as it is (the layers keep
            their variables); off for a caller that copies weights itself,
            e.g. when quantizer state disappears with the quantizers.

    Example:
        >>> x = inputs = tf.keras.Input((8, 8, 3))
        >>> x = lq.layers.QuantConv2D(4, 3, input_quantizer="ste_sign",
        ...                           kernel_quantizer="ste_sign")(x)
        >>> x = lq.quantizers.SteSign()(x)
        >>> real_activations = without_quantizers(tf.keras.Model(inputs, x), weights=False)
        >>> [type(layer).__name__ for layer in real_activations.layers]
        ['InputLayer', 'QuantConv2D', 'Activation']
        >>> conv = real_activations.layers[1]
        >>> conv.input_quantizer, type(conv.kernel_quantizer).__name__
        (None, 'SteSign')
    """
    removed = (_INPUT_KEYS if inputs else ()) + (_WEIGHT_KEYS if weights else ())

    def clone(layer):
        if inputs and isinstance(layer, lq.quantizers.Quantizer):
            return tf.keras.layers.Activation("linear", name=layer.name)
        config = layer.get_config()
        if isinstance(layer, BaseLayer):
            config.update({key: None for key in removed if key in config})
        return layer.__class__.from_config(config)

    copy = tf.keras.models.clone_model(model, clone_function=clone)
    if copy_weights:
        copy.set_weights(model.get_weights())
    return copy


def _short_name(variable: tf.Variable) -> str:
    return variable.name.split("/")[-1].split(":")[0]


def _latent_value(variable) -> np.ndarray:
    latent = getattr(variable, "latent_variable", variable)
    return np.asarray(tf.keras.backend.get_value(latent))


def copy_latent_weights(source: tf.keras.Model, target: tf.keras.Model) -> None:
    """Copies the latent weights of ``source`` into the same-named layers of
    ``target`` (matched by variable name; quantizer state is skipped).

    Raises :class:`~lcr_larq.errors.RunError` when a layer or a weight has no
    counterpart.
    """
    for layer in target.layers:
        if not layer.weights:
            continue
        try:
            origin = source.get_layer(layer.name)
        except ValueError:
            raise RunError(
                f"layer {layer.name!r} of the float model is not in the BNN: "
                "the architectures differ"
            ) from None
        by_name = {}
        for variable in origin.weights:
            by_name.setdefault(_short_name(variable), variable)
        values = []
        for variable in layer.weights:
            match = by_name.get(_short_name(variable))
            if match is None or tuple(match.shape) != tuple(variable.shape):
                raise RunError(
                    f"weight {variable.name} of the float model has no counterpart "
                    f"of shape {tuple(variable.shape)} in the BNN"
                )
            values.append(_latent_value(match))
        layer.set_weights(values)


def strip_quantizers(model: tf.keras.Model) -> tf.keras.Model:
    """A copy of ``model`` with every Larq quantizer off and the latent weights.

    Works for any functional Larq model (e.g. Larq-Zoo's).

    Example:
        >>> import larq_zoo as lqz
        >>> bnn = lqz.literature.BiRealNet(weights=None, input_shape=(64, 64, 3))
        >>> fp = strip_quantizers(bnn)
        >>> any(getattr(l, "kernel_quantizer", None) for l in fp.layers)
        False
    """
    clone_model = without_quantizers(model, copy_weights=False)
    copy_latent_weights(model, clone_model)
    return clone_model


def float_counterpart(
    bnn: tf.keras.Model, rebuild: Callable[[], tf.keras.Model] | None = None
) -> tf.keras.Model:
    """The full-precision version of ``bnn``'s architecture, with its latent weights.

    ``rebuild()`` builds that architecture with its quantizers off (a
    registered model built with ``quantized=False``: for a trained run,
    :meth:`lcr_larq.training.runs.Run.float_counterpart`); ``bnn``'s latent
    weights are copied into it layer by layer. Without ``rebuild``, or when
    it fails or its layers do not match ``bnn``'s (a ``ValueError``, e.g. a
    registry whose version of the model differs from the run's), every
    quantizer of a copy of ``bnn`` is switched off (:func:`strip_quantizers`).

    Example:
        >>> def network(quantized):
        ...     inputs = tf.keras.Input((4,))
        ...     sign = "ste_sign" if quantized else None
        ...     layer = lq.layers.QuantDense(2, input_quantizer=sign, kernel_quantizer=sign,
        ...                                  name="dense")
        ...     return tf.keras.Model(inputs, layer(inputs), name="fp" if not quantized else "bnn")
        >>> float_counterpart(network(True), lambda: network(False)).name
        'fp'
        >>> float_counterpart(network(True)).name  # a stripped copy of the BNN
        'bnn'
    """
    if rebuild is not None:
        try:
            rebuilt = rebuild()
            copy_latent_weights(bnn, rebuilt)
            return rebuilt
        except ValueError:  # the rebuilt architecture is not bnn's
            pass
    return strip_quantizers(bnn)
