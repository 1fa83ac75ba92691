r"""ProxConnect: proximal-map weight quantizers with an annealed sharpness.

Background
----------
Dockhorn, Yu, Sari, Zolnouri and Partovi Nia, "Demystifying and Generalizing
BinaryConnect", NeurIPS 2021 (arXiv:2110.13220), argue that the forward quantizer
of BinaryConnect-style training should be a *proximal map* and propose
ProxConnect (PC): the latent weights ``theta`` are kept in full precision and the
network is evaluated at ``w = L_rho(theta)``, where ``L_rho`` is a piecewise-linear
proximal map that moves from "clip to conv(Q)" (``rho = 0``) to "round onto Q"
(``rho -> inf``) as ``rho`` is increased during training.

Binary quantizer, Q = {-1, +1}
------------------------------
.. math::

    L_\rho(w) = \operatorname{sign}(w)\,\min\bigl(1, (1+\rho)\,|w|\bigr)

It is flat at ``+-1`` for ``|w| >= 1/(1+rho)`` and linear with slope ``1+rho``
in between.  ``rho = 0`` is clipping to ``[-1, 1]``; ``rho -> inf`` is ``sign``.

Derivation for a general finite set Q (and the ternary case)
------------------------------------------------------------
Let ``Q = {q_1 < ... < q_k}``.  Take the regulariser that is ``+inf`` outside
``conv Q = [q_1, q_k]`` and, on each cell ``[q_i, q_{i+1}]``,

.. math::

    r_\rho(z) = \frac{\rho}{2(1+\rho)}\,(z - q_i)\,(q_{i+1} - z),

i.e. a multiple of the product of the distances from ``z`` to its two
neighbouring points of Q.  It is continuous, zero exactly on Q and positive
between the points of Q.  Although ``r_rho`` is not convex, ``z^2 / 2 + r_rho(z)``
is (curvature ``1 / (1 + rho) > 0`` inside each cell, upward kinks at the points
of Q), so the proximal map ``prox(w) = argmin_z 1/2 (z - w)^2 + r_rho(z)`` is
single valued and given by the optimality condition ``w - z in d r_rho(z)``:

* inside a cell, ``w = z + r_rho'(z) = m_i + (z - m_i) / (1 + rho)`` with the
  midpoint ``m_i = (q_i + q_{i+1}) / 2``, so ``z = m_i + (1 + rho)(w - m_i)``:
  a ramp of slope ``1 + rho`` through ``(m_i, m_i)``;
* at an interior point ``q_i`` the subdifferential of ``r_rho`` is the interval
  ``[-rho/(2(1+rho)) g_{i-1}, rho/(2(1+rho)) g_i]`` (``g_i = q_{i+1} - q_i``),
  so ``z = q_i`` for every ``w`` in a flat zone of half-widths
  ``rho g / (2(1+rho))`` around ``q_i``;
* at the end points the indicator of ``conv Q`` adds a normal cone, so the
  map is flat at ``q_1`` / ``q_k`` for all ``w`` beyond the last ramp.

Hence ``L_rho`` is piecewise linear: flat around each point of Q and joined by
ramps of slope ``1 + rho`` centred at the midpoints.  Equivalently, for ``w`` in
``[q_i, q_{i+1}]``: ``L_rho(w) = clip(m_i + (1 + rho)(w - m_i), q_i, q_{i+1})``,
and ``L_rho(w) = q_1`` (``q_k``) below (above) ``conv Q``.
For ``rho = 0`` (``r = `` indicator of conv Q) it is clipping; for
``rho -> inf`` the ramps become vertical and it is rounding to the nearest point
of Q.  For Q = {-1, +1} the cell formula gives ``r_rho(z) = rho (1 - z^2) /
(2 (1 + rho))`` and the binary ``L_rho`` above.  For Q = {-1, 0, +1}:

.. math::

    L_\rho(w) = \operatorname{sign}(w)\,
        \operatorname{clip}\bigl((1+\rho)(|w| - \tfrac12) + \tfrac12,\ 0,\ 1\bigr).

The regulariser, the ternary formula and the gradient options below are this
module's concrete instantiation of the paper's framework.

Gradients
---------
``gradient="prox"`` back-propagates the exact (almost-everywhere) derivative of
``L_rho``: ``1 + rho`` on the ramps, ``0`` on the flat parts (kinks count as
flat).  ``gradient="ste"`` passes the incoming gradient straight through
(identity), which is the BinaryConnect update applied to the latent weights.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from typing import Any

import larq as lq
import tensorflow as tf
from larq.quantizers import _BaseQuantizer

__all__ = [
    "ProxConnectSchedule",
    "ProxQuantizer",
    "ProxSign",
    "ProxTernary",
    "find_prox_quantizers",
    "prox_sign",
    "prox_sign_grad",
    "prox_ternary",
    "prox_ternary_grad",
]

GRADIENT_MODES = ("prox", "ste")

_QUANTIZER_ATTRIBUTES = (
    "kernel_quantizer",
    "input_quantizer",
    "depthwise_quantizer",
    "pointwise_quantizer",
    "activation",
)


def _rho_like(rho: Any, x: tf.Tensor) -> tf.Tensor:
    return tf.cast(rho, x.dtype)


def prox_sign(w: tf.Tensor, rho: float | tf.Tensor) -> tf.Tensor:
    r"""Binary proximal quantizer ``L_rho(w) = sign(w) * min(1, (1 + rho) |w|)``.

    Piecewise linear and non-decreasing, with values in ``[-1, 1]``: ``rho = 0``
    clips to ``[-1, 1]``, large ``rho`` approaches ``sign``.

    ```python
    import tensorflow as tf
    from lcr_larq.proxconnect import prox_sign

    prox_sign(tf.constant([-2.0, -0.25, 0.1, 0.6]), 1.0)  # [-1, -0.5, 0.2, 1]
    ```
    """
    w = tf.convert_to_tensor(w)
    rho = _rho_like(rho, w)
    return tf.sign(w) * tf.minimum(tf.ones_like(w), (1.0 + rho) * tf.abs(w))


def prox_sign_grad(w: tf.Tensor, rho: float | tf.Tensor) -> tf.Tensor:
    """Derivative of `prox_sign` w.r.t. ``w``: ``1 + rho`` if ``|w| < 1/(1+rho)``."""
    w = tf.convert_to_tensor(w)
    rho = _rho_like(rho, w)
    on_ramp = (1.0 + rho) * tf.abs(w) < 1.0
    return tf.where(on_ramp, (1.0 + rho) * tf.ones_like(w), tf.zeros_like(w))


def prox_ternary(w: tf.Tensor, rho: float | tf.Tensor) -> tf.Tensor:
    r"""Ternary proximal quantizer for ``Q = {-1, 0, +1}``.

    ``L_rho(w) = sign(w) * clip((1 + rho)(|w| - 1/2) + 1/2, 0, 1)``: flat at 0 for
    ``|w| <= rho / (2 (1 + rho))``, flat at ``+-1`` for
    ``|w| >= (2 + rho) / (2 (1 + rho))``, slope ``1 + rho`` in between.  ``rho = 0``
    clips to ``[-1, 1]``; large ``rho`` rounds to the nearest of ``{-1, 0, 1}``.

    ```python
    import tensorflow as tf
    from lcr_larq.proxconnect import prox_ternary

    prox_ternary(tf.constant([-0.9, -0.2, 0.5, 0.7]), 1.0)  # [-1, 0, 0.5, 0.9]
    ```
    """
    w = tf.convert_to_tensor(w)
    rho = _rho_like(rho, w)
    ramp = (1.0 + rho) * (tf.abs(w) - 0.5) + 0.5
    return tf.sign(w) * tf.clip_by_value(ramp, 0.0, 1.0)


def prox_ternary_grad(w: tf.Tensor, rho: float | tf.Tensor) -> tf.Tensor:
    """Derivative of `prox_ternary` w.r.t. ``w`` (``1 + rho`` on the ramps, else 0)."""
    w = tf.convert_to_tensor(w)
    rho = _rho_like(rho, w)
    abs_w = tf.abs(w)
    lower = rho / (2.0 * (1.0 + rho))
    upper = 0.5 + 1.0 / (2.0 * (1.0 + rho))
    # For rho == 0 there is no flat zone around 0, so w == 0 lies on the ramp.
    above_lower = tf.logical_or(abs_w > lower, tf.equal(rho, 0.0))
    on_ramp = tf.logical_and(above_lower, abs_w < upper)
    return tf.where(on_ramp, (1.0 + rho) * tf.ones_like(w), tf.zeros_like(w))


def _hard_ternary(w: tf.Tensor) -> tf.Tensor:
    """Round to the nearest of {-1, 0, +1}; ``|w| == 1/2`` rounds to 0."""
    return tf.sign(w) * tf.cast(tf.abs(w) > 0.5, w.dtype)


class ProxQuantizer(_BaseQuantizer):
    """Base class of the ProxConnect quantizers: ``rho`` / ``hard`` state, gradients.

    Subclasses define the soft map ``_soft(w, rho)``, its derivative
    ``_soft_grad(w, rho)`` and the hard map ``_hard(w)``.
    """

    def __init__(
        self,
        rho: float = 0.0,
        gradient: str = "prox",
        hard: bool = False,
        **kwargs: Any,
    ) -> None:
        if gradient not in GRADIENT_MODES:
            raise ValueError(
                f"gradient must be one of {GRADIENT_MODES}, got {gradient!r}."
            )
        rho = float(rho)
        if not math.isfinite(rho) or rho < 0.0:
            raise ValueError(f"rho must be a finite number >= 0, got {rho}.")
        self.gradient = gradient
        self._initial_rho = rho
        self._initial_hard = bool(hard)
        super().__init__(**kwargs)

    # -- forward / backward definitions supplied by subclasses -------------------
    @staticmethod
    def _soft(w: tf.Tensor, rho: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    @staticmethod
    def _soft_grad(w: tf.Tensor, rho: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    @staticmethod
    def _hard(w: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    # -- state -------------------------------------------------------------------
    def build(self, input_shape: Any) -> None:
        self.rho = self.add_weight(
            name="rho",
            shape=(),
            dtype=tf.float32,
            initializer=tf.keras.initializers.Constant(self._initial_rho),
            trainable=False,
        )
        self.hard = self.add_weight(
            name="hard",
            shape=(),
            dtype=tf.float32,
            initializer=tf.keras.initializers.Constant(float(self._initial_hard)),
            trainable=False,
        )
        super().build(input_shape)

    @property
    def rho_value(self) -> float:
        """Current ``rho`` (works before and after `build`)."""
        if self.built:
            return float(self.rho.numpy())
        return self._initial_rho

    @property
    def hard_value(self) -> bool:
        """Whether the forward pass is currently the hard quantizer."""
        if self.built:
            return bool(self.hard.numpy() > 0.5)
        return self._initial_hard

    def set_rho(self, rho: float) -> None:
        """Set ``rho``; before `build` this changes the initial value."""
        rho = float(rho)
        if not math.isfinite(rho) or rho < 0.0:
            raise ValueError(f"rho must be a finite number >= 0, got {rho}.")
        if self.built:
            self.rho.assign(rho)
        else:
            self._initial_rho = rho

    def set_hard(self, hard: bool) -> None:
        """Switch the forward pass between ``L_rho`` and the hard quantizer."""
        if self.built:
            self.hard.assign(1.0 if hard else 0.0)
        else:
            self._initial_hard = bool(hard)

    # -- computation ---------------------------------------------------------------
    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        inputs = tf.convert_to_tensor(inputs)
        rho = tf.cast(self.rho, inputs.dtype)
        use_hard = self.hard > 0.5
        soft_fn, grad_fn, hard_fn = self._soft, self._soft_grad, self._hard
        straight_through = self.gradient == "ste"

        @tf.custom_gradient
        def _quantize(w: tf.Tensor) -> tuple[tf.Tensor, Any]:
            outputs = tf.where(use_hard, hard_fn(w), soft_fn(w, rho))

            def grad(dy: tf.Tensor) -> tf.Tensor:
                if straight_through:
                    return dy
                return dy * grad_fn(w, rho)

            return outputs, grad

        return super().call(_quantize(inputs))

    # -- serialization ---------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "rho": self.rho_value,
            "gradient": self.gradient,
            "hard": self.hard_value,
        }

    def save_own_variables(self, store: Any) -> None:
        store["rho"] = tf.constant(self.rho_value, dtype=tf.float32).numpy()
        store["hard"] = tf.constant(float(self.hard_value), dtype=tf.float32).numpy()

    def load_own_variables(self, store: Any) -> None:
        keys = set(store.keys())
        if "rho" in keys:
            self.set_rho(float(store["rho"][()]))
        if "hard" in keys:
            self.set_hard(float(store["hard"][()]) > 0.5)


@tf.keras.utils.register_keras_serializable(package="lcr_larq")
class ProxSign(ProxQuantizer):
    r"""ProxConnect binary weight quantizer (precision 1).

    Forward pass (``hard`` off):

    \\[ L_\rho(w) = \operatorname{sign}(w)\,\min(1, (1+\rho)|w|) \\]

    i.e. the proximal map of ``r_rho(z) = rho (1 - z^2) / (2 (1 + rho))`` restricted
    to ``[-1, 1]`` (see the module docstring for the derivation).  ``rho = 0`` is
    clipping, ``rho -> inf`` is ``sign``.  With ``hard`` on, the forward pass is
    ``larq.math.sign`` (outputs exactly ``+-1``; ``sign(0) = +1``) for the final
    phase of training and for inference.

    Backward pass: ``gradient="prox"`` uses ``dL_rho/dw`` (``1 + rho`` for
    ``|w| < 1/(1+rho)``, else 0), also while ``hard`` is on; ``gradient="ste"`` is
    the straight-through identity of BinaryConnect.

    ``rho`` and ``hard`` live in non-trainable scalar variables created in `build`,
    so a callback (see `ProxConnectSchedule`) can change them between steps
    without retracing.  `get_config` stores their current values.

    Reference: Dockhorn et al., "Demystifying and Generalizing BinaryConnect",
    NeurIPS 2021, https://arxiv.org/abs/2110.13220.

    ```python
    import larq as lq
    import tensorflow as tf
    from lcr_larq.proxconnect import ProxSign

    q = ProxSign(rho=1.0)
    q(tf.constant([-2.0, -0.25, 0.1, 0.6]))  # [-1.0, -0.5, 0.2, 1.0]
    q.set_hard(True)
    q(tf.constant([-2.0, -0.25, 0.1, 0.6]))  # [-1.0, -1.0, 1.0, 1.0]

    layer = lq.layers.QuantDense(
        8,
        kernel_quantizer=ProxSign(rho=0.0, gradient="prox"),
        kernel_constraint="weight_clip",
    )
    ```

    # Arguments
        rho: initial sharpness ``rho >= 0``.
        gradient: ``"prox"`` (derivative of ``L_rho``) or ``"ste"`` (identity).
        hard: start with the hard ``sign`` forward pass.
        metrics: larq quantizer metrics (e.g. ``["flip_ratio"]``).
    """

    precision = 1

    @staticmethod
    def _soft(w: tf.Tensor, rho: tf.Tensor) -> tf.Tensor:
        return prox_sign(w, rho)

    @staticmethod
    def _soft_grad(w: tf.Tensor, rho: tf.Tensor) -> tf.Tensor:
        return prox_sign_grad(w, rho)

    @staticmethod
    def _hard(w: tf.Tensor) -> tf.Tensor:
        return lq.math.sign(w)


@tf.keras.utils.register_keras_serializable(package="lcr_larq")
class ProxTernary(ProxQuantizer):
    r"""ProxConnect ternary weight quantizer for ``Q = {-1, 0, +1}`` (precision 2).

    Forward pass (``hard`` off):

    \\[ L_\rho(w) = \operatorname{sign}(w)\,
        \operatorname{clip}((1+\rho)(|w| - 1/2) + 1/2,\ 0,\ 1) \\]

    the proximal map of ``r_rho(z) = rho |z| (1 - |z|) / (2 (1 + rho))`` on
    ``[-1, 1]`` (derivation in the module docstring).  With ``hard`` on, the
    forward pass rounds to the nearest of ``{-1, 0, +1}`` (threshold ``|w| > 1/2``),
    the ``rho -> inf`` limit.  Gradients as for `ProxSign`: ``"prox"`` uses
    ``dL_rho/dw`` (``1 + rho`` on ``rho/(2(1+rho)) < |w| < (2+rho)/(2(1+rho))``),
    ``"ste"`` the identity.

    Reference: Dockhorn et al., NeurIPS 2021, https://arxiv.org/abs/2110.13220.

    ```python
    import tensorflow as tf
    from lcr_larq.proxconnect import ProxTernary

    q = ProxTernary(rho=1.0)
    q(tf.constant([-0.9, -0.2, 0.5, 0.7]))  # [-1.0, 0.0, 0.5, 0.9]
    ```
    """

    precision = 2

    @staticmethod
    def _soft(w: tf.Tensor, rho: tf.Tensor) -> tf.Tensor:
        return prox_ternary(w, rho)

    @staticmethod
    def _soft_grad(w: tf.Tensor, rho: tf.Tensor) -> tf.Tensor:
        return prox_ternary_grad(w, rho)

    @staticmethod
    def _hard(w: tf.Tensor) -> tf.Tensor:
        return _hard_ternary(w)


tf.keras.utils.get_custom_objects()["prox_sign"] = ProxSign
tf.keras.utils.get_custom_objects()["prox_ternary"] = ProxTernary


def _iter_layers(layer: tf.Module) -> Iterator[tf.Module]:
    yield layer
    for child in getattr(layer, "layers", None) or []:
        yield from _iter_layers(child)
    wrapped = getattr(layer, "layer", None)
    if isinstance(wrapped, tf.keras.layers.Layer):
        yield from _iter_layers(wrapped)


def find_prox_quantizers(model: tf.keras.layers.Layer) -> list[ProxQuantizer]:
    """All distinct `ProxSign` / `ProxTernary` instances used in ``model``.

    Walks ``model.layers`` recursively (nested models and wrapper layers), checks
    the ``kernel_quantizer``, ``input_quantizer``, ``depthwise_quantizer``,
    ``pointwise_quantizer`` and ``activation`` attributes, quantizers used directly
    as layers, and quantizers tracked inside custom layers (``submodules``).
    """
    found: dict[int, ProxQuantizer] = {}

    def add(obj: Any) -> None:
        if isinstance(obj, ProxQuantizer):
            found.setdefault(id(obj), obj)

    for layer in _iter_layers(model):
        add(layer)
        for attr in _QUANTIZER_ATTRIBUTES:
            add(getattr(layer, attr, None))
        for sub in getattr(layer, "submodules", ()):
            add(sub)
    return list(found.values())


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

    ```python
    schedule = ProxConnectSchedule(epochs=10, steps_per_epoch=len(train_ds),
                                   rho_end=100.0)
    model.fit(train_ds, epochs=10, callbacks=[schedule])
    ```
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
        self.quantizers: list[ProxQuantizer] = []
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
        self.quantizers = find_prox_quantizers(self.model)
        if not self.quantizers:
            warnings.warn(
                "ProxConnectSchedule: no ProxSign/ProxTernary quantizer found in the "
                "model; the schedule has no effect.",
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
