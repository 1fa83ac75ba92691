r"""ProxConnect: a proximal-map binary weight quantizer with an annealed sharpness.

Dockhorn, Yu, Sari, Zolnouri and Partovi Nia, "Demystifying and Generalizing
BinaryConnect", NeurIPS 2021 (arXiv:2110.13220), argue that the forward
quantizer of BinaryConnect-style training should be a *proximal map* and
propose ProxConnect: the latent weights are kept in full precision and the
network is evaluated at ``w = L_ρ(θ)``, a piecewise-linear proximal map that
moves from clipping to ``[-1, 1]`` (``ρ = 0``) to ``sign`` (``ρ → ∞``) as ρ is
raised during training (:class:`lcr_larq.callbacks.ProxConnectSchedule`):

.. math::

    L_\rho(w) = \operatorname{sign}(w)\,\min\bigl(1, (1+\rho)\,|w|\bigr)

It is the proximal map of the regulariser ``r_ρ(z) = ρ (1 − z²) / (2 (1 + ρ))``
on ``[-1, 1]`` (+∞ outside): inside, ``w − z = r_ρ'(z) = −ρ z / (1 + ρ)`` gives
the ramp ``z = (1 + ρ) w``; at ``±1`` the normal cone of the interval makes the
map flat. ``gradient="prox"`` back-propagates the almost-everywhere derivative
(``1 + ρ`` on the ramp, 0 on the flat parts); ``gradient="ste"`` passes the
gradient straight through (BinaryConnect's update).
"""

from __future__ import annotations

import math
from typing import Any

import larq as lq
import tensorflow as tf

__all__ = ["ProxSign", "prox_sign", "prox_sign_grad"]

GRADIENT_MODES = ("prox", "ste")


def prox_sign(w: tf.Tensor, rho: float | tf.Tensor) -> tf.Tensor:
    """``L_ρ(w) = sign(w)·min(1, (1 + ρ)|w|)``: clipping at ρ = 0, ``sign`` as ρ → ∞.

    Example:
        >>> prox_sign(tf.constant([-2.0, -0.25, 0.1, 0.6]), 1.0).numpy().tolist()
        [-1.0, -0.5, 0.20000000298023224, 1.0]
    """
    w = tf.convert_to_tensor(w)
    rho = tf.cast(rho, w.dtype)
    return tf.sign(w) * tf.minimum(tf.ones_like(w), (1.0 + rho) * tf.abs(w))


def prox_sign_grad(w: tf.Tensor, rho: float | tf.Tensor) -> tf.Tensor:
    """``dL_ρ/dw``: ``1 + ρ`` where ``|w| < 1/(1 + ρ)``, else 0."""
    w = tf.convert_to_tensor(w)
    rho = tf.cast(rho, w.dtype)
    on_ramp = (1.0 + rho) * tf.abs(w) < 1.0
    return tf.where(on_ramp, (1.0 + rho) * tf.ones_like(w), tf.zeros_like(w))


def _check_rho(rho: float) -> float:
    rho = float(rho)
    if not math.isfinite(rho) or rho < 0.0:
        raise ValueError(f"rho must be a finite number >= 0, got {rho}")
    return rho


@tf.keras.utils.register_keras_serializable(package="lcr_larq")
class ProxSign(lq.quantizers.Quantizer):
    """ProxConnect's binary weight quantizer (precision 1).

    Forward: :func:`prox_sign` with the current ρ, or, once ``hard`` is on
    (the last epochs of training, inference and export), ``larq.math.sign``
    (exactly ±1, ``sign(0) = +1``). Backward: ``gradient="prox"``
    (:func:`prox_sign_grad`, also in the hard phase) or ``"ste"`` (identity).
    ρ and ``hard`` live in non-trainable variables, so a callback changes them
    between steps without retracing; they are saved with the model.

    Example:
        >>> q = ProxSign(rho=1.0)
        >>> q(tf.constant([-2.0, -0.25, 0.6])).numpy().tolist()
        [-1.0, -0.5, 1.0]
        >>> q.set_hard(True)
        >>> q(tf.constant([-2.0, -0.25, 0.6])).numpy().tolist()
        [-1.0, -1.0, 1.0]
    """

    precision = 1

    def __init__(self, rho: float = 0.0, gradient: str = "prox", hard: bool = False, **kwargs):
        if gradient not in GRADIENT_MODES:
            raise ValueError(f"gradient must be one of {GRADIENT_MODES}, got {gradient!r}")
        super().__init__(**kwargs)
        self.gradient = gradient
        self._initial_rho = _check_rho(rho)
        self._initial_hard = bool(hard)

    def build(self, input_shape: Any) -> None:
        self.rho = self.add_weight(
            name="rho", shape=(), dtype=tf.float32, trainable=False,
            initializer=tf.keras.initializers.Constant(self._initial_rho),
        )
        self.hard = self.add_weight(
            name="hard", shape=(), dtype=tf.float32, trainable=False,
            initializer=tf.keras.initializers.Constant(float(self._initial_hard)),
        )
        super().build(input_shape)

    @property
    def rho_value(self) -> float:
        """The current ρ (before ``build`` too)."""
        return float(self.rho.numpy()) if self.built else self._initial_rho

    @property
    def hard_value(self) -> bool:
        """Whether the forward pass is the hard ``sign``."""
        return bool(self.hard.numpy() > 0.5) if self.built else self._initial_hard

    def set_rho(self, rho: float) -> None:
        """Sets ρ; before ``build`` this changes its initial value."""
        rho = _check_rho(rho)
        if self.built:
            self.rho.assign(rho)
        else:
            self._initial_rho = rho

    def set_hard(self, hard: bool) -> None:
        """Switches the forward pass between ``L_ρ`` and the hard ``sign``."""
        if self.built:
            self.hard.assign(1.0 if hard else 0.0)
        else:
            self._initial_hard = bool(hard)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        inputs = tf.convert_to_tensor(inputs)
        rho = tf.cast(self.rho, inputs.dtype)
        use_hard = self.hard > 0.5
        straight_through = self.gradient == "ste"

        @tf.custom_gradient
        def quantize(w: tf.Tensor):
            outputs = tf.where(use_hard, lq.math.sign(w), prox_sign(w, rho))

            def grad(dy: tf.Tensor) -> tf.Tensor:
                return dy if straight_through else dy * prox_sign_grad(w, rho)

            return outputs, grad

        return quantize(inputs)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "rho": self.rho_value,
            "gradient": self.gradient,
            "hard": self.hard_value,
        }


# ``kernel_quantizer="prox_sign"`` in Larq layers.
tf.keras.utils.get_custom_objects()["prox_sign"] = ProxSign
