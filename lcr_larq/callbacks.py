"""Keras callbacks of lcr-larq: the schedules its quantizers train with.

:func:`schedules_for` gives the callbacks a model needs (what ``lcr-train``
uses; pass them to ``fit``): it asks every registered weight quantizer
(:data:`lcr_larq.quantizers.WEIGHT_QUANTIZERS`) for the schedule of the
quantizers it finds in the model, e.g. IR-Net's :class:`EDESchedule` (EDE's t
from 0.1 to 10) or :class:`ProxConnectSchedule` (ProxConnect's ρ, then the
hard sign). Each schedule is defined beside its quantizer.

Example:
    >>> import larq as lq
    >>> from lcr_larq.quantizers import EDESign, LibraSign
    >>> inputs = tf.keras.Input((8, 8, 3))
    >>> conv = lq.layers.QuantConv2D(4, 3, input_quantizer=EDESign(), kernel_quantizer=LibraSign())
    >>> model = tf.keras.Model(inputs, conv(inputs))
    >>> [type(c).__name__ for c in schedules_for(model, epochs=40, steps_per_epoch=12)]
    ['EDESchedule']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tensorflow as tf

from lcr_larq.quantizers import WEIGHT_QUANTIZERS
from lcr_larq.quantizers.irnet import EDESchedule
from lcr_larq.quantizers.proxconnect import ProxConnectSchedule

__all__ = ["EDESchedule", "ProxConnectSchedule", "schedules_for"]


def schedules_for(
    model: tf.keras.Model,
    epochs: int,
    steps_per_epoch: int,
    settings: Mapping[str, Any] | Any = None,
) -> list[tf.keras.callbacks.Callback]:
    """The schedule callbacks the quantizers of ``model`` train with.

    ``settings`` hold the quantizers' options: a run's
    :class:`~lcr_larq.training.TrainConfig`, an options object, or a mapping
    by name (e.g. ``{"prox_rho_end": 20}``); each quantizer takes its own
    (:meth:`~lcr_larq.quantizers.WeightQuantizer.options_of`), its defaults
    for the others. A model without scheduled quantizers needs none (an
    empty list).
    """
    found = []
    for _, entry in WEIGHT_QUANTIZERS.items():
        if entry.schedule is not None:
            options = entry.options_of(settings)
            callback = entry.schedule(model, epochs, steps_per_epoch, options)
            if callback is not None:
                found.append(callback)
    return found
