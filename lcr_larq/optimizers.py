"""Optimizers and learning-rate schedules in the papers' (PyTorch's) semantics.

The papers LCR builds on trained with PyTorch, and their hyperparameters mean
what PyTorch does with them:

* **SGD** (:class:`SGD`): ``g ← g + wd·w`` (weight decay is an L2 term added to
  the gradient *before* momentum), ``v ← μ·v + g``, ``w ← w − lr·v``. Momentum
  amplifies the decay by ``1/(1 − μ)``: Keras' ``SGD(weight_decay=…)`` is
  decoupled (``w ← w − lr·wd·w``, outside the momentum) and decays about 10×
  less at μ = 0.9. The velocity holds gradients, not steps, so a changing
  learning rate scales the whole velocity, as in PyTorch.
* **Adam** (:class:`Adam`): PyTorch's Adam, ``ε`` added to the bias-corrected
  ``√v̂`` (Keras adds it to ``√v``); ``weight_decay`` is again coupled (L2 in
  the gradient). With ``decoupled=True`` it is PyTorch's AdamW
  (``w ← w·(1 − lr·wd)`` before the step).

``decoupled=True`` on either optimizer is Keras' decoupled weight decay
(``w ← w − lr·wd·w`` before the update), the same rule as PyTorch's AdamW.

Mixed precision (``--mixed-precision``, :data:`MIXED_PRECISION`): the
Keras dtype policy of a run (:func:`keras_policy`), set while its model is
made (:func:`dtype_policy`), and the optimizer with loss scaling where the
policy computes in float16 (:func:`for_policy`).

Example:
    >>> import tensorflow as tf
    >>> w = tf.Variable([1.0])
    >>> sgd = SGD(0.1, momentum=0.9, weight_decay=0.1)
    >>> for _ in range(2):  # zero loss gradient: only the decay acts
    ...     _ = sgd.apply_gradients([(tf.zeros(1), w)])
    >>> round(float(w[0]), 6)  # 1 − 0.01, then − 0.1·(0.9·0.1 + 0.099)
    0.9711
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import tensorflow as tf

__all__ = [
    "DECAY_TARGETS",
    "LR_SCHEDULES",
    "LR_UPDATES",
    "MIXED_PRECISION",
    "OPTIMIZERS",
    "SGD",
    "WEIGHT_DECAY_MODES",
    "Adam",
    "WarmupDecay",
    "dtype_policy",
    "for_policy",
    "keras_policy",
    "make_optimizer",
]

register = tf.keras.utils.register_keras_serializable(package="lcr_larq")

OPTIMIZERS = ("sgd", "adam", "adamw")
DECAY_TARGETS = ("all", "conv-kernels")
WEIGHT_DECAY_MODES = ("coupled", "decoupled")
LR_SCHEDULES = ("cosine", "linear", "constant")
#: When the learning rate changes: once per epoch (the papers' PyTorch schedulers) or every step.
LR_UPDATES = ("epoch", "step")
#: ``--mixed-precision``: the Keras dtype policy of each choice. Under a mixed
#: policy the layers compute in 16 bits on float32 variables (LCR's math and
#: the logits stay float32); float16 needs loss scaling (:func:`for_policy`).
MIXED_PRECISION = {"off": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}


def _slot(optimizer: tf.keras.optimizers.Optimizer, slots: list, variable) -> tf.Variable:
    """The optimizer state of ``variable`` in ``slots`` (made in ``build``).

    Keras' optimizer API offers no public lookup from a model variable to its
    state; every built-in Keras optimizer (``SGD``, ``Adam`` … of tf.keras 2.15
    and tf-keras 2.19) finds it through ``_index_dict[_var_key(variable)]``,
    which also resolves a ``tf.distribute`` replica's component. This is the
    one place that relies on it.
    """
    return slots[optimizer._index_dict[optimizer._var_key(variable)]]


class _PaperOptimizer(tf.keras.optimizers.Optimizer):
    """Shared weight-decay handling: coupled (``g ← g + wd·w``) or decoupled
    (``w ← w − lr·wd·w`` just before the variable's update, Keras' rule), on
    every variable or only on convolution kernels (``decay_on``); the
    learning rate and the per-variable state named by ``SLOTS``."""

    #: The state kept per model variable, made in :meth:`build`.
    SLOTS: tuple[str, ...] = ()

    def __init__(self, name: str, learning_rate, weight_decay: float = 0.0,
                 decoupled: bool = False, decay_on: str = "all", **kwargs):
        super().__init__(name=name, **kwargs)
        if decay_on not in DECAY_TARGETS:
            raise ValueError(f"decay_on must be one of {DECAY_TARGETS}, got {decay_on!r}")
        self._learning_rate = self._build_learning_rate(learning_rate)
        self.decay_rate = float(weight_decay or 0.0)
        self.decoupled = bool(decoupled)
        self.decay_on = decay_on

    def build(self, var_list):
        super().build(var_list)
        if getattr(self, "_built", False):
            return
        self.slots = {
            name: [self.add_variable_from_reference(model_variable=v, variable_name=name)
                   for v in var_list]
            for name in self.SLOTS
        }
        self._built = True

    def slot(self, name: str, variable) -> tf.Variable:
        """The state ``name`` (one of ``SLOTS``) of ``variable``."""
        return _slot(self, self.slots[name], variable)

    def _decays(self, variable) -> bool:
        if not self.decay_rate:
            return False
        return self.decay_on == "all" or variable.shape.rank == 4

    def _decayed_gradient(self, gradient, variable, lr) -> tf.Tensor:
        """The gradient with coupled decay added, or the variable decayed."""
        gradient = tf.convert_to_tensor(gradient)
        if not self._decays(variable):
            return gradient
        wd = tf.cast(self.decay_rate, variable.dtype)
        if self.decoupled:
            variable.assign_sub(variable * wd * lr)
            return gradient
        return gradient + wd * variable

    def get_config(self):
        return {
            **super().get_config(),
            "learning_rate": self._serialize_hyperparameter(self._learning_rate),
            "weight_decay": self.decay_rate,
            "decoupled": self.decoupled,
            "decay_on": self.decay_on,
        }


@register
class SGD(_PaperOptimizer):
    """PyTorch's SGD (dampening 0, no Nesterov) as a Keras optimizer.

    ``g ← g + wd·w`` (coupled; ``decoupled=True``: ``w ← w − lr·wd·w`` first),
    ``v ← μ·v + g``, ``w ← w − lr·v``.

    Args:
        learning_rate: a float or a Keras learning-rate schedule.
        momentum: μ in [0, 1).
        **options: ``weight_decay`` (wd ≥ 0), ``decoupled`` (Keras' decoupled
            weight decay instead of PyTorch's L2 term), ``decay_on``
            (``"all"`` trainable variables, PyTorch's default, or
            ``"conv-kernels"`` only: rank-4 variables, as ReActNet's code) and
            Keras' optimizer arguments.
    """

    SLOTS = ("velocity",)

    def __init__(self, learning_rate=0.1, momentum: float = 0.9, name: str = "SGD", **options):
        super().__init__(name, learning_rate, **options)
        self.momentum = float(momentum)

    def update_step(self, gradient, variable):
        lr = tf.cast(self.learning_rate, variable.dtype)
        gradient = self._decayed_gradient(gradient, variable, lr)
        if not self.momentum:
            variable.assign_sub(lr * gradient)
            return
        velocity = self.slot("velocity", variable)
        velocity.assign(tf.cast(self.momentum, variable.dtype) * velocity + gradient)
        variable.assign_sub(lr * velocity)

    def get_config(self):
        return {
            **super().get_config(),
            "momentum": self.momentum,
        }


@register
class Adam(_PaperOptimizer):
    """PyTorch's Adam (``decoupled=True``: AdamW) as a Keras optimizer.

    ``g ← g + wd·w`` (coupled), ``m ← β1·m + (1−β1)·g``,
    ``v ← β2·v + (1−β2)·g²``, ``w ← w − lr·m̂ / (√v̂ + ε)`` with the
    bias-corrected ``m̂ = m/(1−β1^t)``, ``v̂ = v/(1−β2^t)``; ``**options`` as
    :class:`SGD`'s.
    """

    SLOTS = ("m", "v")

    def __init__(self, learning_rate=1e-3, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-8, name: str = "Adam", **options):
        super().__init__(name, learning_rate, **options)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)

    def update_step(self, gradient, variable):
        dtype = variable.dtype
        lr = tf.cast(self.learning_rate, dtype)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        gradient = self._decayed_gradient(gradient, variable, lr)
        m, v = self.slot("m", variable), self.slot("v", variable)
        m.assign(beta_1 * m + (1.0 - beta_1) * gradient)
        v.assign(beta_2 * v + (1.0 - beta_2) * tf.square(gradient))
        m_hat = m / (1.0 - tf.pow(beta_1, step))
        v_hat = v / (1.0 - tf.pow(beta_2, step))
        variable.assign_sub(lr * m_hat / (tf.sqrt(v_hat) + tf.cast(self.epsilon, dtype)))

    def get_config(self):
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
        }


@register
class WarmupDecay(tf.keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, then cosine, linear or no decay to 0.

    Time runs in units of ``steps_per_unit`` optimizer steps: the steps of
    an epoch for PyTorch's schedulers stepped once per epoch (the papers'),
    or 1 to change the rate every step. For ``warmup`` units the rate grows
    linearly (unit u gets ``lr·(u+1)/warmup``), then decays over the other
    units of ``total``: ``cosine`` ``lr·(1 + cos(π·u'/D))/2`` (PyTorch's
    ``CosineAnnealingLR`` with ``T_max = D``), ``linear`` ``lr·(1 − u'/D)``,
    or ``constant``, with u' the units since the warm-up and D their number.

    Example:
        >>> per_step = WarmupDecay(0.1, total=10, warmup=2)
        >>> [round(float(per_step(s)), 4) for s in (0, 1, 2, 6, 10)]
        [0.05, 0.1, 0.1, 0.05, 0.0]
        >>> per_epoch = WarmupDecay(0.1, total=2, steps_per_unit=5)  # 2 epochs of 5 steps
        >>> [round(float(per_epoch(s)), 4) for s in (0, 4, 5, 9)]
        [0.1, 0.1, 0.05, 0.05]
    """

    def __init__(
        self,
        learning_rate: float,
        total: int,
        warmup: int = 0,
        decay: str = "cosine",
        steps_per_unit: int = 1,
    ):
        if decay not in LR_SCHEDULES:
            raise ValueError(f"decay must be one of {LR_SCHEDULES}, got {decay!r}")
        self.learning_rate = float(learning_rate)
        self.total = max(1, int(total))
        self.warmup = max(0, min(int(warmup), self.total - 1))
        self.decay = decay
        self.steps_per_unit = max(1, int(steps_per_unit))

    def __call__(self, step):
        unit = tf.floor(tf.cast(step, tf.float32) / self.steps_per_unit)
        lr = tf.constant(self.learning_rate, tf.float32)
        progress = tf.clip_by_value(
            (unit - self.warmup) / float(self.total - self.warmup), 0.0, 1.0
        )
        if self.decay == "cosine":
            decayed = lr * 0.5 * (1.0 + tf.cos(math.pi * progress))
        elif self.decay == "linear":
            decayed = lr * (1.0 - progress)
        else:
            decayed = lr
        if not self.warmup:
            return decayed
        return tf.where(unit < self.warmup, lr * (unit + 1.0) / self.warmup, decayed)

    def get_config(self):
        return {
            "learning_rate": self.learning_rate,
            "total": self.total,
            "warmup": self.warmup,
            "decay": self.decay,
            "steps_per_unit": self.steps_per_unit,
        }


def make_optimizer(
    name: str,
    learning_rate,
    weight_decay: float = 0.0,
    weight_decay_mode: str = "auto",
    momentum: float = 0.9,
    decay_on: str = "all",
) -> tf.keras.optimizers.Optimizer:
    """The optimizer of ``--optimizer``: ``sgd`` (PyTorch SGD), ``adam``
    (PyTorch Adam) or ``adamw`` (PyTorch AdamW).

    ``weight_decay_mode`` ``coupled`` (L2 in the gradient, PyTorch's
    ``weight_decay`` of SGD and Adam), ``decoupled``, or ``auto``: the
    optimizer's own (decoupled for ``adamw`` only).

    Example:
        >>> adamw = make_optimizer("adamw", 1e-3, 1e-2)
        >>> type(adamw).__name__, adamw.decoupled
        ('Adam', True)
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    mode = weight_decay_mode
    if mode == "auto":
        mode = "decoupled" if name == "adamw" else "coupled"
    if mode not in WEIGHT_DECAY_MODES:
        raise ValueError(f"weight decay mode must be one of {WEIGHT_DECAY_MODES}, got {mode!r}")
    if name == "adamw" and mode == "coupled":
        raise ValueError("adamw is Adam with decoupled weight decay: for coupled, use adam")
    decay = dict(weight_decay=weight_decay, decoupled=mode == "decoupled", decay_on=decay_on)
    if name == "sgd":
        return SGD(learning_rate, momentum=momentum, **decay)
    return Adam(learning_rate, name="AdamW" if decay["decoupled"] else "Adam", **decay)


def keras_policy(mixed_precision: str) -> str:
    """The Keras dtype policy of a ``--mixed-precision`` choice.

    Example:
        >>> keras_policy("bfloat16"), keras_policy("off")
        ('mixed_bfloat16', 'float32')
    """
    if mixed_precision not in MIXED_PRECISION:
        raise ValueError(
            f"mixed precision must be one of {', '.join(MIXED_PRECISION)}, got {mixed_precision!r}"
        )
    return MIXED_PRECISION[mixed_precision]


@contextlib.contextmanager
def dtype_policy(policy: str | tf.keras.mixed_precision.Policy) -> Iterator[None]:
    """Keras' global dtype policy is ``policy`` while the block runs (the
    layers made meanwhile take it) and the one before afterwards, also when
    the block raises.

    Example:
        >>> with dtype_policy("mixed_bfloat16"):
        ...     dense = tf.keras.layers.Dense(2)
        >>> dense.compute_dtype, dense.variable_dtype, tf.keras.mixed_precision.global_policy().name
        ('bfloat16', 'float32', 'float32')
    """
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)


def for_policy(
    optimizer: tf.keras.optimizers.Optimizer, policy: str | tf.keras.mixed_precision.Policy
) -> tf.keras.optimizers.Optimizer:
    """``optimizer`` ready for the mixed-precision ``policy`` (a name or a
    Keras ``Policy``): wrapped in Keras' dynamic loss scaling when it computes
    in float16, whose range loses small gradients; as it is otherwise
    (bfloat16 has float32's range). Weight decay, its mode and the learning-rate
    schedule stay the wrapped optimizer's.

    Example:
        >>> sgd = make_optimizer("sgd", 0.1, 1e-4)
        >>> type(for_policy(sgd, "mixed_float16")).__name__
        'LossScaleOptimizerV3'
        >>> for_policy(sgd, "mixed_bfloat16") is sgd
        True
    """
    if isinstance(policy, str):
        try:
            policy = tf.keras.mixed_precision.Policy(policy)
        except ValueError:
            raise ValueError(
                f"unknown dtype policy {policy!r}: use float32, mixed_float16 or mixed_bfloat16"
            ) from None
    scaled = isinstance(optimizer, tf.keras.mixed_precision.LossScaleOptimizer)
    if policy.compute_dtype != "float16" or scaled:
        return optimizer
    return tf.keras.mixed_precision.LossScaleOptimizer(optimizer)
