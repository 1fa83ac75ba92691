"""The binary weight quantizers of ``--weight-quantizer``, and how a model's
binary layers quantize.

Each weight quantizer registers itself where it is defined
(:func:`register_weight_quantizer`), with everything a binary layer and its
training need: the kernel quantizer, the activation quantizer that goes with
it in ``1w1a`` networks, the clipping of the latent weights, the schedule
callback that trains its state (:func:`lcr_larq.schedules_for` asks every
entry) and its own options, a settings dataclass declared in its file (e.g.
ProxConnect's ρ schedule), which ``lcr-train`` takes as flags.
:class:`QuantizationSpec` hands an architecture the keyword arguments of its
binary layers.

Example:
    >>> spec = quantization("1w1a", "irnet")
    >>> sorted(spec.conv_kwargs())
    ['input_quantizer', 'kernel_constraint', 'kernel_quantizer', 'pad_values']
    >>> list(WEIGHT_QUANTIZERS)
    ['irnet', 'proxconnect', 'ste_sign']
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import larq as lq
import tensorflow as tf

from lcr_larq.errors import ConfigError
from lcr_larq.quantizers.lookup import quantizers_of
from lcr_larq.registry import Registry

__all__ = [
    "PRECISIONS",
    "WEIGHT_QUANTIZERS",
    "QuantizationSpec",
    "Schedule",
    "WeightQuantizer",
    "holds",
    "quantization",
    "register_weight_quantizer",
]

#: ``1w1a``: binary weights and activations; ``1w32a``: binary weights only.
PRECISIONS = ("1w1a", "1w32a")

#: A schedule: ``(model, epochs, steps_per_epoch, options)`` → the callback
#: that trains the quantizer's state in ``model``, or None when ``model``
#: holds none of its quantizers (``options``: see :class:`WeightQuantizer`).
Schedule = Callable[[tf.keras.Model, int, int, Any], "tf.keras.callbacks.Callback | None"]


@dataclass(frozen=True)
class WeightQuantizer:
    """A binary weight quantizer and what trains with it.

    Args:
        name: its ``--weight-quantizer`` name.
        description: one line for ``--help`` and the docs.
        kernel: ``options`` → a new kernel quantizer.
        activation: → a new activation quantizer for ``1w1a`` networks.
        clip: the latent weights are clipped to ``[−clip, clip]`` (Larq's
            ``WeightClip``: sign/STE weights need it, or their gradient
            starves outside the clip range); None: not clipped.
        schedule: see :data:`Schedule`; None: no state to train.
        options: the settings dataclass of its own options (e.g.
            ProxConnect's ρ schedule), declared in its file; ``lcr-train``'s
            settings include it, so its fields are flags and recipe keys.
            ``kernel`` and ``schedule`` get an instance (:meth:`options_of`);
            None: no options (they get None).
    """

    name: str
    description: str
    kernel: Callable[[Any], lq.quantizers.Quantizer]
    activation: Callable[[], lq.quantizers.Quantizer]
    clip: float | None = None
    schedule: Schedule | None = None
    options: type | None = None

    def options_of(self, settings: Any = None) -> Any:
        """The quantizer's options in ``settings``: ``settings`` itself when it
        is an instance of ``options`` (a run's ``TrainConfig`` is), else an
        instance made from those of its attributes, or keys of a mapping, that
        name an option (the others are left out; the values are checked), or
        the defaults (None).

        Example:
            >>> entry = WEIGHT_QUANTIZERS["proxconnect"]
            >>> entry.options_of({"prox_rho_end": 5.0, "lr": 0.1}).prox_rho_end
            5.0
            >>> entry.options_of().prox_gradient, WEIGHT_QUANTIZERS["irnet"].options_of({})
            ('prox', None)
        """
        if self.options is None:
            return None
        if isinstance(settings, self.options):
            return settings
        names = [f.name for f in dataclasses.fields(self.options)]
        if isinstance(settings, Mapping):
            given = {name: settings[name] for name in names if name in settings}
        else:
            given = {name: getattr(settings, name) for name in names if hasattr(settings, name)}
        return self.options(**given)


#: The weight quantizers of ``--weight-quantizer``, by name.
WEIGHT_QUANTIZERS: Registry[WeightQuantizer] = Registry("weight quantizer")


def register_weight_quantizer(entry: WeightQuantizer) -> WeightQuantizer:
    """Registers ``entry`` under its name (once, where it is defined)."""
    WEIGHT_QUANTIZERS.add(entry.name, entry)
    return entry


@dataclass(frozen=True)
class QuantizationSpec:
    """Quantizers of a model's binary layers (``None`` when not quantized).

    Args:
        precision: one of :data:`PRECISIONS`.
        weight_quantizer: a name of :data:`WEIGHT_QUANTIZERS`.
        quantized: ``False`` for the full-precision counterpart.
        options: the weight quantizer's options (see
            :meth:`WeightQuantizer.options_of`).
    """

    precision: str
    weight_quantizer: str = "irnet"
    quantized: bool = True
    options: Any = field(default=None, compare=False)

    @property
    def binary_activations(self) -> bool:
        return self.precision == "1w1a"

    @property
    def activation(self) -> str:
        # A sign after ReLU would be constant: 1w1a networks use HardTanh.
        return "hardtanh" if self.binary_activations else "relu"

    @property
    def label(self) -> str:
        return self.precision if self.quantized else f"fp_{self.precision}"

    @property
    def entry(self) -> WeightQuantizer:
        return WEIGHT_QUANTIZERS[self.weight_quantizer]

    def input_quantizer(self) -> lq.quantizers.Quantizer | None:
        if not (self.quantized and self.binary_activations):
            return None
        return self.entry.activation()

    def kernel_quantizer(self) -> lq.quantizers.Quantizer | None:
        return self.entry.kernel(self.options) if self.quantized else None

    def conv_kwargs(self) -> dict:
        """Keyword arguments of a binary Larq layer of this quantization."""
        clip = self.entry.clip if self.quantized else None
        return {
            "input_quantizer": self.input_quantizer(),
            "kernel_quantizer": self.kernel_quantizer(),
            "kernel_constraint": None if clip is None else lq.constraints.WeightClip(clip),
            # One-padding keeps binary activations binary at the borders:
            # Larq Compute Engine computes it natively, while zero padding
            # (IR-Net's, a third value) needs an edge correction there, only
            # with float output and no fused activation.
            "pad_values": 1.0 if self.binary_activations else 0.0,
        }


def quantization(
    precision: str,
    weight_quantizer: str = "irnet",
    quantized: bool = True,
    settings: Any = None,
) -> QuantizationSpec:
    """A :class:`QuantizationSpec`, checked: a precision of
    :data:`PRECISIONS`, a registered weight quantizer, and its options from
    ``settings`` (a run's settings, the quantizer's options, or a mapping of
    them by name: :meth:`WeightQuantizer.options_of`)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    entry = WEIGHT_QUANTIZERS[weight_quantizer]  # an unknown name: a ConfigError naming the choices
    return QuantizationSpec(precision, weight_quantizer, quantized, entry.options_of(settings))


def holds(model: tf.keras.layers.Layer, kind: type) -> bool:
    """Whether ``model`` tracks a quantizer of class ``kind``."""
    return any(isinstance(q, kind) for q in quantizers_of(model))
