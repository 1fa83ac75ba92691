"""How a model's binary layers quantize: one place for every architecture.

Example:
    >>> spec = quantization("1w1a", "irnet")
    >>> sorted(spec.conv_kwargs())
    ['input_quantizer', 'kernel_constraint', 'kernel_quantizer', 'pad_values']
"""

from __future__ import annotations

from dataclasses import dataclass

import larq as lq

from lcr_larq import quantizers

PRECISIONS = ("1w1a", "1w32a")
WEIGHT_QUANTIZERS = ("irnet", "ste_sign", "proxconnect")
PROX_GRADIENTS = ("prox", "ste")


@dataclass(frozen=True)
class QuantizationSpec:
    """Quantizers of a model's binary layers (``None`` when not quantized)."""

    precision: str
    weight_quantizer: str
    quantized: bool
    prox_gradient: str = "prox"

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

    def input_quantizer(self):
        if not (self.quantized and self.binary_activations):
            return None
        if self.weight_quantizer == "irnet":
            return quantizers.EDESign()
        return lq.quantizers.SteSign()

    def kernel_quantizer(self):
        if not self.quantized:
            return None
        if self.weight_quantizer == "irnet":
            return quantizers.LibraSign()
        if self.weight_quantizer == "proxconnect":
            # ρ starts at 0 (clipping) and is raised by ProxConnectSchedule.
            return quantizers.ProxSign(rho=0.0, gradient=self.prox_gradient)
        return lq.quantizers.SteSign()

    def conv_kwargs(self) -> dict:
        """Keyword arguments of a binary Larq layer of this quantization."""
        # Standardized IR-Net weights need no clipping; sign/STE weights do,
        # or their gradient starves outside [−1, 1].
        constraint = (
            lq.constraints.WeightClip(1.0)
            if self.quantized and self.weight_quantizer != "irnet"
            else None
        )
        return {
            "input_quantizer": self.input_quantizer(),
            "kernel_quantizer": self.kernel_quantizer(),
            "kernel_constraint": constraint,
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
    prox_gradient: str = "prox",
) -> QuantizationSpec:
    """A :class:`QuantizationSpec`, validated."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if weight_quantizer not in WEIGHT_QUANTIZERS:
        raise ValueError(
            f"weight quantizer must be one of {WEIGHT_QUANTIZERS}, got {weight_quantizer!r}"
        )
    if prox_gradient not in PROX_GRADIENTS:
        raise ValueError(
            f"ProxConnect gradient must be one of {PROX_GRADIENTS}, got {prox_gradient!r}"
        )
    return QuantizationSpec(precision, weight_quantizer, quantized, prox_gradient)
