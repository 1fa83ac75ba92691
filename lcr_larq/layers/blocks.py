"""Building blocks of the papers' architectures.

* :class:`HardTanh` — ``clip(x, −1, 1)``, the activation of IR-Net's blocks.
* :class:`ZeroPadShortcut` — the parameter-free downsampling shortcut
  ("option A") of IR-Net's CIFAR ResNet-20.
* :class:`RSign` and :class:`RPReLU` — ReActNet's learnable-threshold sign and
  shifted PReLU.

They live in the core, not beside the architectures, so that ``import
lcr_larq`` alone loads every saved model.

Example:
    >>> HardTanh()(tf.constant([-2.0, 0.5, 3.0])).numpy().tolist()
    [-1.0, 0.5, 1.0]
"""

from __future__ import annotations

import larq as lq
import tensorflow as tf

__all__ = [
    "HardTanh",
    "RPReLU",
    "RSign",
    "ZeroPadShortcut",
]

register = tf.keras.utils.register_keras_serializable(package="lcr_larq")


@register
class HardTanh(tf.keras.layers.Layer):
    """``clip(x, −1, 1)``."""

    def call(self, inputs):
        return tf.clip_by_value(inputs, -1.0, 1.0)


@register
class ZeroPadShortcut(tf.keras.layers.Layer):
    """The parameter-free downsampling shortcut of He et al.'s CIFAR ResNets
    ("option A", as in IR-Net's ResNet-20): every ``strides``-th position,
    and the channels padded with zeros on both sides up to ``filters``.

    Example:
        >>> shortcut = ZeroPadShortcut(filters=8, strides=2)
        >>> y = shortcut(tf.ones((1, 5, 5, 4)))
        >>> tuple(y.shape), y.numpy()[0, 0, 0].tolist()
        ((1, 3, 3, 8), [0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0])
    """

    def __init__(self, filters: int, strides: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.strides = int(strides)

    def call(self, inputs):
        x = inputs[:, :: self.strides, :: self.strides, :]
        extra = self.filters - int(inputs.shape[-1])
        if extra < 0:
            raise ValueError(
                f"a zero-padding shortcut cannot reduce {inputs.shape[-1]} channels to "
                f"{self.filters}"
            )
        return tf.pad(x, [[0, 0], [0, 0], [0, 0], [extra // 2, extra - extra // 2]])

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "strides": self.strides}


def _channel_weight(layer, name, input_shape, initializer, regularizer=None):
    channels = int(input_shape[-1])
    return layer.add_weight(
        name=name, shape=(channels,), initializer=initializer, regularizer=regularizer,
        trainable=True,
    )


@register
class RSign(tf.keras.layers.Layer):
    """ReActNet's RSign (Liu et al., ECCV 2020): ``sign(x − α)``, one learnable
    threshold α per channel (last axis).

    Forward ``sign(x − α)`` with ``sign(0) = +1`` (Larq's convention); backward
    the ApproxSign estimator ``2 − 2|x − α|`` on ``|x − α| ≤ 1``, 0 elsewhere,
    which reaches both ``x`` and ``α``. With ``full_precision=True`` (the
    latent full-precision path of LCR) and in a layer built with
    ``binarize=False`` (a full-precision network) it returns the real value
    before the sign, ``x − α``.

    Args:
        binarize: ``False`` keeps only the learnable shift ``x − α``.
        threshold_initializer: initializer of α (zeros: RSign starts as sign).
        threshold_regularizer: optional regularizer of α.

    Example:
        >>> rsign = RSign()
        >>> rsign(tf.constant([[-0.5, 0.0, 2.0]])).numpy().tolist()
        [[-1.0, 1.0, 1.0]]
        >>> rsign(tf.constant([[-0.5, 0.0, 2.0]]), full_precision=True).numpy().tolist()
        [[-0.5, 0.0, 2.0]]
    """

    def __init__(
        self,
        binarize: bool = True,
        threshold_initializer="zeros",
        threshold_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.binarize = bool(binarize)
        self.threshold_initializer = tf.keras.initializers.get(threshold_initializer)
        self.threshold_regularizer = tf.keras.regularizers.get(threshold_regularizer)

    @property
    def precision(self) -> int | None:
        """1 when binarizing (as Larq's quantizers declare it), else None."""
        return 1 if self.binarize else None

    def build(self, input_shape):
        self.threshold = _channel_weight(
            self, "threshold", input_shape, self.threshold_initializer,
            self.threshold_regularizer,
        )
        super().build(input_shape)

    def call(self, inputs, full_precision: bool = False):
        shifted = inputs - self.threshold
        if full_precision or not self.binarize:
            return shifted
        return lq.quantizers.approx_sign(shifted)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "binarize": self.binarize,
            "threshold_initializer": tf.keras.initializers.serialize(
                self.threshold_initializer
            ),
            "threshold_regularizer": tf.keras.regularizers.serialize(
                self.threshold_regularizer
            )
            if self.threshold_regularizer
            else None,
        }


@register
class RPReLU(tf.keras.layers.Layer):
    """ReActNet's RPReLU (Liu et al., ECCV 2020): a PReLU with learnable shifts.

    Per channel (last axis) ``y = (x − γ) + ζ`` where ``x > γ`` and
    ``y = β·(x − γ) + ζ`` elsewhere, with learnable input shift γ
    (``shift_in``), slope β (``slope``) and output shift ζ (``shift_out``).
    It holds no quantizer, so both paths of LCR compute the same function.

    Args:
        shift_initializer: initializer of γ and ζ.
        slope_initializer: initializer of β (0.25, as PyTorch's PReLU).

    Example:
        >>> act = RPReLU()
        >>> act(tf.constant([[-2.0, 3.0]])).numpy().tolist()
        [[-0.5, 3.0]]
    """

    def __init__(
        self,
        shift_initializer="zeros",
        slope_initializer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.shift_initializer = tf.keras.initializers.get(shift_initializer)
        self.slope_initializer = tf.keras.initializers.get(
            slope_initializer or tf.keras.initializers.Constant(0.25)
        )

    def build(self, input_shape):
        self.shift_in = _channel_weight(self, "shift_in", input_shape, self.shift_initializer)
        self.slope = _channel_weight(self, "slope", input_shape, self.slope_initializer)
        self.shift_out = _channel_weight(self, "shift_out", input_shape, self.shift_initializer)
        super().build(input_shape)

    def call(self, inputs):
        shifted = inputs - self.shift_in
        return tf.where(shifted > 0, shifted, self.slope * shifted) + self.shift_out

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "shift_initializer": tf.keras.initializers.serialize(self.shift_initializer),
            "slope_initializer": tf.keras.initializers.serialize(self.slope_initializer),
        }
