"""IR-Net quantizers (Qin et al., CVPR 2020) on Larq's quantizer API.

* :class:`EDESign` — the activation quantizer: ``sign`` forward, Error Decay
  Estimator backward ``k·t·(1 − tanh²(t·x))``.
* :class:`LibraSign` — the weight quantizer (Libra Parameter Binarization):
  per output channel the latent weights are balanced (minus their mean) and
  standardized (divided by their std) before ``sign``, and scaled by the power
  of two ``2^round(log2(mean|ŵ|))``; backward through EDE and the
  standardization.

``t`` and ``k`` live in non-trainable variables of each quantizer, so they are
saved with the model; :class:`EDESchedule` (a Keras callback) moves them from
``t = 0.1`` to ``t = 10`` over training, ``k = max(1/t, 1)``: the paper's range
(IR-Net's released 1w1a CIFAR code starts at ``t = 10⁻³``).

Registered as the weight quantizer ``irnet`` (the default of
``--weight-quantizer``), and under the names ``ede_sign`` and ``libra_sign``
for Larq layers.

Example:
    >>> import larq as lq, tensorflow as tf
    >>> layer = lq.layers.QuantConv2D(
    ...     8, 3, input_quantizer=EDESign(), kernel_quantizer=LibraSign(),
    ...     use_bias=False)
    >>> y = layer(tf.random.normal((2, 8, 8, 4)))
    >>> tuple(y.shape)
    (2, 6, 6, 8)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import larq as lq
import numpy as np
import tensorflow as tf

from lcr_larq.quantizers.lookup import quantizers_of
from lcr_larq.quantizers.registry import WeightQuantizer, holds, register_weight_quantizer

__all__ = [
    "EDE_T_MAX",
    "EDE_T_MIN",
    "EDEQuantizer",
    "EDESchedule",
    "EDESign",
    "LibraSign",
    "ede_parameters",
    "ede_sign",
    "libra_standardize",
    "power_of_two_scale",
]

EDE_T_MIN = 0.1
EDE_T_MAX = 10.0


def ede_parameters(progress: float, t_min: float = EDE_T_MIN, t_max: float = EDE_T_MAX):
    """``(t, k)`` of the EDE at a training ``progress`` in [0, 1].

    ``t`` grows on a log scale from ``t_min`` to ``t_max``; ``k = max(1/t, 1)``.
    """
    progress = float(np.clip(progress, 0.0, 1.0))
    t = t_min * (t_max / t_min) ** progress
    return t, max(1.0 / t, 1.0)


def ede_sign(
    x: tf.Tensor, t: tf.Tensor, k: tf.Tensor, on_backward: Callable[[], None] | None = None
) -> tf.Tensor:
    """``sign(x)`` with the Error Decay Estimator gradient ``k·t·(1 − tanh²(t x))``.

    ``on_backward()`` is called (in Python) when the backward pass is built:
    once per trace of a training step, at the start of ``fit``.
    """

    @tf.custom_gradient
    def _sign(x):
        def grad(dy):
            if on_backward is not None:
                on_backward()
            t_ = tf.cast(t, x.dtype)
            k_ = tf.cast(k, x.dtype)
            return dy * k_ * t_ * (1.0 - tf.square(tf.tanh(t_ * x)))

        return lq.math.sign(x), grad

    return _sign(x)


def libra_standardize(w: tf.Tensor) -> tf.Tensor:
    """Balances and standardizes a kernel per output channel (the last axis)."""
    axes = list(range(w.shape.rank - 1))
    mean, variance = tf.nn.moments(w, axes=axes, keepdims=True)
    # Unbiased std, as the reference implementation; tiny epsilon keeps a
    # constant channel finite.
    count = tf.cast(tf.reduce_prod(tf.shape(w)[:-1]), w.dtype)
    std = tf.sqrt(variance * count / tf.maximum(count - 1.0, 1.0) + 1e-12)
    return (w - mean) / std


def power_of_two_scale(w_hat: tf.Tensor) -> tf.Tensor:
    """``2^round(log2(mean|ŵ|))`` per output channel, a constant for the gradient."""
    axes = list(range(w_hat.shape.rank - 1))
    mean_abs = tf.reduce_mean(tf.abs(tf.stop_gradient(w_hat)), axis=axes, keepdims=True)
    exponent = tf.round(tf.math.log(tf.maximum(mean_abs, 1e-12)) / np.log(2.0))
    return tf.pow(tf.constant(2.0, w_hat.dtype), exponent)


class EDEQuantizer(lq.quantizers.Quantizer):
    """Holds the EDE's ``t`` and ``k`` in non-trainable variables.

    ``schedule_attached`` is set by :class:`EDESchedule`
    when training begins; a quantizer trained without it warns once, when its
    backward pass is first built, since ``t`` would stay at its initial value
    (0.1, i.e. k = 10) for the whole run.
    """

    precision = 1
    schedule_attached = False

    def __init__(self, t: float = EDE_T_MIN, k: float | None = None, **kwargs):
        super().__init__(**kwargs)
        k = max(1.0 / t, 1.0) if k is None else k
        self.t = self.add_weight(
            name="ede_t", shape=(), trainable=False,
            initializer=tf.keras.initializers.Constant(t),
        )
        self.k = self.add_weight(
            name="ede_k", shape=(), trainable=False,
            initializer=tf.keras.initializers.Constant(k),
        )

    @tf.autograph.experimental.do_not_convert
    def _check_schedule(self) -> None:
        if not self.schedule_attached:
            warnings.warn(
                f"{type(self).__name__} trains without EDESchedule: the EDE's t stays at its "
                "initial value for the whole run; pass the callbacks of "
                "lcr_larq.callbacks.schedules_for(model, epochs, steps_per_epoch) to fit",
                UserWarning,
                stacklevel=2,
            )

    def set_ede(self, t: float, k: float) -> None:
        """Sets the EDE parameters (used by the schedule callback)."""
        self.t.assign(t)
        self.k.assign(k)

    def get_config(self):
        return {
            **super().get_config(),
            "t": float(tf.keras.backend.get_value(self.t)),
            "k": float(tf.keras.backend.get_value(self.k)),
        }


@lq.utils.register_alias("ede_sign")
@tf.keras.utils.register_keras_serializable(package="lcr_larq")
class EDESign(EDEQuantizer):
    """IR-Net activation quantizer: ``sign`` with the EDE backward pass.

    Example:
        >>> q = EDESign(t=1.0)
        >>> q(tf.constant([-0.5, 0.0, 2.0])).numpy().tolist()
        [-1.0, 1.0, 1.0]
    """

    def call(self, inputs):
        return ede_sign(inputs, self.t, self.k, self._check_schedule)


@lq.utils.register_alias("libra_sign")
@tf.keras.utils.register_keras_serializable(package="lcr_larq")
class LibraSign(EDEQuantizer):
    """IR-Net weight quantizer: Libra-PB standardization, sign, power-of-two scale.

    Example:
        >>> q = LibraSign()
        >>> w = tf.random.normal((3, 3, 16, 2), mean=5.0)
        >>> abs(q(w)).numpy().max(axis=(0, 1, 2)).tolist()  # 2^round(log2(≈0.8))
        [1.0, 1.0]
    """

    #: Its gradient reaches every latent weight without clipping (the weights are
    #: standardized first): Larq's warning about binary kernels without a
    #: ``kernel_constraint`` does not apply (see :mod:`lcr_larq.layers.quant`).
    trains_without_clipping = True

    def call(self, inputs):
        w_hat = libra_standardize(inputs)
        return ede_sign(w_hat, self.t, self.k, self._check_schedule) * power_of_two_scale(w_hat)


class EDESchedule(tf.keras.callbacks.Callback):
    """IR-Net's Error Decay Estimator schedule, per epoch.

    ``t = t_min · (t_max / t_min)^(epoch / epochs)`` and ``k = max(1/t, 1)``
    on every :class:`EDESign` and :class:`LibraSign` of the model. ``t`` is logged as
    ``ede_t``.
    """

    def __init__(self, epochs: int, t_min: float = EDE_T_MIN, t_max: float = EDE_T_MAX):
        super().__init__()
        self.epochs = epochs
        self.t_min = t_min
        self.t_max = t_max
        self._t: float | None = None

    def parameters(self, epoch: int) -> tuple[float, float]:
        return ede_parameters(epoch / max(self.epochs, 1), self.t_min, self.t_max)

    def _quantizers(self) -> list[EDEQuantizer]:
        return [q for q in quantizers_of(self.model) if isinstance(q, EDEQuantizer)]

    def on_train_begin(self, logs=None):
        for quantizer in self._quantizers():
            quantizer.schedule_attached = True

    def on_epoch_begin(self, epoch, logs=None):
        t, k = self.parameters(epoch)
        found = self._quantizers()
        for quantizer in found:
            quantizer.set_ede(t, k)
        self._t = t if found else None

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self._t is not None:
            logs["ede_t"] = self._t


register_weight_quantizer(WeightQuantizer(
    "irnet",
    "IR-Net: Libra-PB weights (balanced, standardized, power-of-two scale), EDE backward "
    "with t from 0.1 to 10",
    kernel=lambda options: LibraSign(),
    activation=EDESign,
    # Standardized weights need no clipping: the gradient reaches every one.
    clip=None,
    schedule=lambda model, epochs, steps, options: (
        EDESchedule(epochs) if holds(model, EDEQuantizer) else None
    ),
))
