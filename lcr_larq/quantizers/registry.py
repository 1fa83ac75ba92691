"""The binary weight quantizers of ``--weight-quantizer``, and how a model's
binary layers quantize.

Each weight quantizer registers itself where it is defined
(:func:`register_weight_quantizer`), with everything a binary layer and its
training need: the kernel quantizer, the activation quantizer that goes with
it in ``1w1a`` networks, the clipping of the latent weights, and the
schedule callback that trains its state (:func:`lcr_larq.schedules_for`
asks every entry). :class:`QuantizationSpec` hands an architecture the
keyword arguments of its binary layers.

Example:
    >>> spec = quantization("1w1a", "irnet")
    >>> sorted(spec.conv_kwargs())
    ['input_quantizer', 'kernel_constraint', 'kernel_quantizer', 'pad_values']
    >>> list(WEIGHT_QUANTIZERS)
    ['irnet', 'proxconnect', 'ste_sign']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import larq as lq
import tensorflow as tf

from lcr_larq.errors import ConfigError
from lcr_larq.quantizers.lookup import quantizers_of
from lcr_larq.registry import Registry

#: ``1w1a``: binary weights and activations; ``1w32a``: binary weights only.
PRECISIONS = ("1w1a", "1w32a")

#: A schedule: ``(model, epochs, steps_per_epoch, settings)`` → the callback
#: that trains the quantizer's state in ``model``, or None when ``model``
#: holds none of its quantizers.
Schedule = Callable[[tf.keras.Model, int, int, Mapping[str, Any]],
                    "tf.keras.callbacks.Callback | None"]


@dataclass(frozen=True)
class WeightQuantizer:
    """A binary weight quantizer and what trains with it.

    Args:
        name: its ``--weight-quantizer`` name.
        description: one line for ``--help`` and the docs.
        kernel: ``settings`` → a new kernel quantizer (``settings`` are the
            run's settings by name, e.g. ``prox_gradient``; a quantizer reads
            the ones it has).
        activation: → a new activation quantizer for ``1w1a`` networks.
        clip: the latent weights are clipped to ``[−clip, clip]`` (Larq's
            ``WeightClip``: sign/STE weights need it, or their gradient
            starves outside the clip range); None: not clipped.
        schedule: see :data:`Schedule`; None: no state to train.
    """

    name: str
    description: str
    kernel: Callable[[Mapping[str, Any]], lq.quantizers.Quantizer]
    activation: Callable[[], lq.quantizers.Quantizer]
    clip: float | None = None
    schedule: Schedule | None = None


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
        settings: the run's settings a quantizer may read (see
            :class:`WeightQuantizer`).
    """

    precision: str
    weight_quantizer: str = "irnet"
    quantized: bool = True
    settings: Mapping[str, Any] = field(default_factory=dict, compare=False)

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
        return self.entry.kernel(self.settings) if self.quantized else None

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
    settings: Mapping[str, Any] | None = None,
) -> QuantizationSpec:
    """A :class:`QuantizationSpec`, checked: a precision of
    :data:`PRECISIONS`, a registered weight quantizer."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    WEIGHT_QUANTIZERS[weight_quantizer]  # an unknown name is a ConfigError naming the choices
    return QuantizationSpec(precision, weight_quantizer, quantized, dict(settings or {}))


def holds(model: tf.keras.layers.Layer, kind: type) -> bool:
    """Whether ``model`` tracks a quantizer of class ``kind``."""
    return any(isinstance(q, kind) for q in quantizers_of(model))
