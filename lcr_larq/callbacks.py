"""Keras callbacks of lcr-larq: the schedules its quantizers train with.

* :class:`EDESchedule` — IR-Net's Error Decay Estimator, t from 0.1 to 10.
* :class:`ProxConnectSchedule` — ProxConnect's ρ, then the hard sign.
* :func:`schedules_for` — the callbacks a model needs (what ``train.py``
  uses); pass them to ``fit``.

Example:
    >>> from lcr_larq.models import build_model
    >>> model = build_model("resnet20", (32, 32, 1), 10)
    >>> [type(c).__name__ for c in schedules_for(model, epochs=40, steps_per_epoch=12)]
    ['EDESchedule']
    >>> schedule = EDESchedule(epochs=10)
    >>> [round(t, 3) for t in (schedule.parameters(0)[0], schedule.parameters(5)[0])]
    [0.1, 1.0]
"""

from __future__ import annotations

import warnings
from typing import Any

import tensorflow as tf

from lcr_larq.quantizers import EDEQuantizer, ProxSign, quantizers_of
from lcr_larq.quantizers.irnet import EDE_T_MAX, EDE_T_MIN, ede_parameters


class EDESchedule(tf.keras.callbacks.Callback):
    """IR-Net's Error Decay Estimator schedule, per epoch.

    ``t = t_min · (t_max / t_min)^(epoch / epochs)`` and ``k = max(1/t, 1)``
    on every :class:`~lcr_larq.quantizers.EDESign` and
    :class:`~lcr_larq.quantizers.LibraSign` of the model. ``t`` is logged as
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
    * :class:`ProxConnectSchedule` when it holds ProxConnect quantizers: ρ
      from 0 to ``prox_rho_end`` per step, the last ``prox_hard_epochs`` with
      the hard sign, validation and everything after ``fit`` with the hard
      sign (the deployed weights).

    ``train.py`` trains with exactly these; a model without such quantizers
    needs none (an empty list).
    """
    found = list(quantizers_of(model))
    callbacks: list[tf.keras.callbacks.Callback] = []
    if any(isinstance(q, EDEQuantizer) for q in found):
        callbacks.append(EDESchedule(epochs))
    if any(isinstance(q, ProxSign) for q in found):
        callbacks.append(ProxConnectSchedule(
            epochs, steps_per_epoch, rho_end=prox_rho_end, hard_epochs=prox_hard_epochs,
            hard_at_end=True, hard_validation=True,
        ))
    return callbacks
