"""Keras callbacks of lcr-larq: the schedules its quantizers train with.

:func:`schedules_for` gives the callbacks a model needs (what ``train.py``
uses); pass them to ``fit``.

Example:
    >>> from models import build_model
    >>> model = build_model("resnet20", (32, 32, 1), 10)
    >>> [type(c).__name__ for c in schedules_for(model, epochs=40, steps_per_epoch=12)]
    ['EDESchedule']
    >>> schedule = EDESchedule(epochs=10)
    >>> [round(t, 3) for t in (schedule.parameters(0)[0], schedule.parameters(5)[0])]
    [0.1, 1.0]
"""

from __future__ import annotations

import tensorflow as tf

from lcr_larq import quantizers
from lcr_larq.proxconnect import ProxConnectSchedule, find_prox_quantizers


def iter_quantizers(model: tf.keras.Model):
    """Every quantizer object of every layer of ``model`` (nested models too)."""
    for layer in model.layers:
        if isinstance(layer, tf.keras.Model):
            yield from iter_quantizers(layer)
            continue
        for attr in ("input_quantizer", "kernel_quantizer", "depthwise_quantizer"):
            quantizer = getattr(layer, attr, None)
            if quantizer is not None:
                yield quantizer
        if isinstance(layer, tf.keras.layers.Layer) and hasattr(layer, "precision"):
            yield layer


class EDESchedule(tf.keras.callbacks.Callback):
    """IR-Net's Error Decay Estimator schedule, per epoch.

    ``t = t_min · (t_max / t_min)^(epoch / epochs)`` and ``k = max(1/t, 1)``
    on every :class:`~lcr_larq.quantizers.EDESign` and
    :class:`~lcr_larq.quantizers.LibraSign` of the model. ``t`` is logged as
    ``ede_t``.
    """

    def __init__(
        self,
        epochs: int,
        t_min: float = quantizers.EDE_T_MIN,
        t_max: float = quantizers.EDE_T_MAX,
    ):
        super().__init__()
        self.epochs = epochs
        self.t_min = t_min
        self.t_max = t_max
        self._t: float | None = None

    def parameters(self, epoch: int) -> tuple[float, float]:
        return quantizers.ede_parameters(epoch / max(self.epochs, 1), self.t_min, self.t_max)

    def on_train_begin(self, logs=None):
        for quantizer in iter_quantizers(self.model):
            if isinstance(quantizer, quantizers._EDEQuantizer):
                quantizer.schedule_attached = True

    def on_epoch_begin(self, epoch, logs=None):
        t, k = self.parameters(epoch)
        self._t = None
        for quantizer in iter_quantizers(self.model):
            if isinstance(quantizer, quantizers._EDEQuantizer):
                quantizer.set_ede(t, k)
                self._t = t

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self._t is not None:
            logs["ede_t"] = self._t


def schedules_for(
    model: tf.keras.Model,
    epochs: int,
    steps_per_epoch: int,
    prox_rho_end: float = 20.0,
    prox_hard_epochs: int = 1,
) -> list[tf.keras.callbacks.Callback]:
    """The schedule callbacks the quantizers of ``model`` train with.

    * :class:`EDESchedule` when it holds IR-Net quantizers (EDE's t from 0.1
      to 10 over ``epochs``);
    * :class:`~lcr_larq.proxconnect.ProxConnectSchedule` when it holds
      ProxConnect quantizers: ρ from 0 to ``prox_rho_end`` per step, the
      last ``prox_hard_epochs`` with the hard sign, validation and everything
      after ``fit`` with the hard sign (the deployed weights).

    ``train.py`` trains with exactly these; a model without such quantizers
    needs none (an empty list).
    """
    found = list(iter_quantizers(model))
    callbacks: list[tf.keras.callbacks.Callback] = []
    if any(isinstance(q, quantizers._EDEQuantizer) for q in found):
        callbacks.append(EDESchedule(epochs))
    if find_prox_quantizers(model):
        callbacks.append(ProxConnectSchedule(
            epochs, steps_per_epoch, rho_end=prox_rho_end, hard_epochs=prox_hard_epochs,
            hard_at_end=True, hard_validation=True,
        ))
    return callbacks
