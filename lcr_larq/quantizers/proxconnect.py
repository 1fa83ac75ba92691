r"""ProxConnect: a proximal-map binary weight quantizer with an annealed sharpness.

Dockhorn, Yu, Sari, Zolnouri and Partovi Nia, "Demystifying and Generalizing
BinaryConnect", NeurIPS 2021 (arXiv:2110.13220), argue that the forward
quantizer of BinaryConnect-style training should be a *proximal map* and
propose ProxConnect: the latent weights are kept in full precision and the
network is evaluated at ``w = L_ρ(θ)``, a piecewise-linear proximal map that
moves from clipping to ``[-1, 1]`` (``ρ = 0``) to ``sign`` (``ρ → ∞``) as ρ is
raised during training (:class:`ProxConnectSchedule`, a Keras callback):

.. math::

    L_\rho(w) = \operatorname{sign}(w)\,\min\bigl(1, (1+\rho)\,|w|\bigr)

It is the proximal map of the regulariser ``r_ρ(z) = ρ (1 − z²) / (2 (1 + ρ))``
on ``[-1, 1]`` (+∞ outside): inside, ``w − z = r_ρ'(z) = −ρ z / (1 + ρ)`` gives
the ramp ``z = (1 + ρ) w``; at ``±1`` the normal cone of the interval makes the
map flat. ``gradient="prox"`` back-propagates the almost-everywhere derivative
(``1 + ρ`` on the ramp, 0 on the flat parts); ``gradient="ste"`` passes the
gradient straight through (BinaryConnect's update).

Registered as the weight quantizer ``proxconnect``, whose options
(:class:`ProxConnectOptions`: flags of ``lcr-train`` and keys of its recipes)
are ``prox_rho_end`` (the final ρ), ``prox_hard_epochs`` (the last epochs with
the hard sign) and ``prox_gradient``; and as ``prox_sign`` for Larq layers.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import larq as lq
import tensorflow as tf

from lcr_larq.quantizers.lookup import quantizers_of
from lcr_larq.quantizers.registry import WeightQuantizer, holds, register_weight_quantizer
from lcr_larq.settings import Settings, setting

__all__ = [
    "GRADIENT_MODES",
    "ProxConnectOptions",
    "ProxConnectSchedule",
    "ProxSign",
    "prox_sign",
    "prox_sign_grad",
]

#: ProxConnect's backward passes: ``dL_ρ/dw``, or the identity (BinaryConnect's).
GRADIENT_MODES = ("prox", "ste")


@dataclass
class ProxConnectOptions(Settings):
    """ProxConnect's options: the ρ schedule and the backward pass
    (``--prox-rho-end``, ``--prox-gradient``, ``--prox-hard-epochs`` of
    ``lcr-train``, keys of its recipes).

    Example:
        >>> ProxConnectOptions(prox_rho_end=10.0).prox_gradient
        'prox'
    """

    prox_rho_end: float = setting(
        20.0, "ProxConnect: final ρ of the linear schedule (from 0)", low=0, high=1e6
    )
    prox_gradient: str = setting(
        "prox", "ProxConnect backward: prox (dL_ρ/dw) or ste (identity)", choices=GRADIENT_MODES,
    )
    prox_hard_epochs: int = setting(1, "ProxConnect: final epochs with the hard sign", low=0)


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


@lq.utils.register_alias("prox_sign")
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


class ProxConnectSchedule(tf.keras.callbacks.Callback):
    """Anneal ``rho`` of every ProxConnect quantizer and finish with a hard phase.

    At the beginning of every training batch, with ``step`` the global step
    (``model.optimizer.iterations``, so a resumed run continues the schedule)::

        total_steps = (epochs - hard_epochs) * steps_per_epoch
        rho = rho_start + (rho_end - rho_start) * min(1, step / total_steps)
        hard = step >= total_steps

    so ``rho`` grows linearly per step and the last ``hard_epochs`` epochs train
    with the hard quantizer (weights seen by the network are exactly in Q).  With
    ``hard_epochs=0`` the hard phase never starts during training;
    ``hard_at_end=True`` then switches it on when training ends.  If
    ``hard_validation`` is set, validation/evaluation inside ``fit`` runs with the
    hard quantizer and the previous state is restored afterwards.  The current
    ``rho`` (and the hard flag) is added to the epoch logs as ``logs["rho"]`` and
    ``logs["prox_hard"]`` when ``log_rho`` is true.

    Example:
        >>> schedule = ProxConnectSchedule(epochs=10, steps_per_epoch=5, rho_end=20.0)
        >>> schedule.rho_at(0), schedule.rho_at(45), schedule.hard_at(45)
        (0.0, 20.0, True)
    """

    def __init__(
        self,
        epochs: int,
        steps_per_epoch: int,
        rho_end: float,
        rho_start: float = 0.0,
        hard_epochs: int = 1,
        hard_at_end: bool = False,
        hard_validation: bool = False,
        log_rho: bool = True,
    ) -> None:
        super().__init__()
        if epochs < 1 or steps_per_epoch < 1:
            raise ValueError("epochs and steps_per_epoch must be >= 1.")
        if not 0 <= hard_epochs <= epochs:
            raise ValueError(f"hard_epochs must be in [0, epochs], got {hard_epochs}.")
        if rho_start < 0 or rho_end < 0:
            raise ValueError("rho_start and rho_end must be >= 0.")
        self.epochs = int(epochs)
        self.steps_per_epoch = int(steps_per_epoch)
        self.rho_start = float(rho_start)
        self.rho_end = float(rho_end)
        self.hard_epochs = int(hard_epochs)
        self.hard_at_end = bool(hard_at_end)
        self.hard_validation = bool(hard_validation)
        self.log_rho = bool(log_rho)
        self.total_steps = (self.epochs - self.hard_epochs) * self.steps_per_epoch
        self.quantizers: list[ProxSign] = []
        self._fallback_step = 0
        self._saved_hard: list[bool] | None = None

    # -- schedule --------------------------------------------------------------------
    def rho_at(self, step: int) -> float:
        """``rho`` used for the batch that starts at global step ``step``."""
        if self.total_steps <= 0:
            return self.rho_end
        frac = min(1.0, max(0.0, step / self.total_steps))
        return self.rho_start + (self.rho_end - self.rho_start) * frac

    def hard_at(self, step: int) -> bool:
        """Whether the batch starting at global step ``step`` is in the hard phase."""
        return self.hard_epochs > 0 and step >= self.total_steps

    def _global_step(self) -> int:
        optimizer = getattr(self.model, "optimizer", None)
        iterations = getattr(optimizer, "iterations", None)
        if iterations is None:
            return self._fallback_step
        return int(tf.keras.backend.get_value(iterations))

    def _apply(self, step: int) -> None:
        rho, hard = self.rho_at(step), self.hard_at(step)
        for quantizer in self.quantizers:
            quantizer.set_rho(rho)
            quantizer.set_hard(hard)

    # -- callback hooks --------------------------------------------------------------
    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.quantizers = [q for q in quantizers_of(self.model) if isinstance(q, ProxSign)]
        if not self.quantizers:
            warnings.warn(
                "ProxConnectSchedule: the model has no ProxSign quantizer; the schedule "
                "has no effect.",
                stacklevel=2,
            )
        self._apply(self._global_step())

    def on_train_batch_begin(
        self, batch: int, logs: dict[str, Any] | None = None
    ) -> None:
        self._apply(self._global_step())

    def on_train_batch_end(
        self, batch: int, logs: dict[str, Any] | None = None
    ) -> None:
        self._fallback_step += 1

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.log_rho and logs is not None and self.quantizers:
            logs["rho"] = self.quantizers[0].rho_value
            logs["prox_hard"] = float(self.quantizers[0].hard_value)

    def on_test_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self.hard_validation and self.quantizers:
            self._saved_hard = [q.hard_value for q in self.quantizers]
            for quantizer in self.quantizers:
                quantizer.set_hard(True)

    def on_test_end(self, logs: dict[str, Any] | None = None) -> None:
        if self._saved_hard is not None:
            for quantizer, hard in zip(self.quantizers, self._saved_hard, strict=True):
                quantizer.set_hard(hard)
            self._saved_hard = None

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.hard_at_end:
            for quantizer in self.quantizers:
                quantizer.set_hard(True)


def _schedule(model: tf.keras.Model, epochs: int, steps_per_epoch: int,
              options: ProxConnectOptions) -> ProxConnectSchedule | None:
    """ρ from 0 to ``prox_rho_end`` per step, the last ``prox_hard_epochs``
    with the hard sign; validation and everything after ``fit`` with the hard
    sign (the deployed weights)."""
    if not holds(model, ProxSign):
        return None
    return ProxConnectSchedule(
        epochs, steps_per_epoch, rho_end=options.prox_rho_end,
        hard_epochs=options.prox_hard_epochs, hard_at_end=True, hard_validation=True,
    )


register_weight_quantizer(WeightQuantizer(
    "proxconnect",
    "ProxConnect: the proximal map sign(w)·min(1, (1+ρ)|w|), ρ from 0 to --prox-rho-end, "
    "then the hard sign",
    kernel=lambda options: ProxSign(rho=0.0, gradient=options.prox_gradient),
    activation=lq.quantizers.SteSign,
    clip=1.0,
    schedule=_schedule,
    options=ProxConnectOptions,
))
