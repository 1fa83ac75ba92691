"""Binary quantizers on Larq's quantizer API.

* :mod:`lcr_larq.quantizers.irnet` — IR-Net (Qin et al., CVPR 2020):
  :class:`EDESign` (sign with the Error Decay Estimator) for activations,
  :class:`LibraSign` (Libra Parameter Binarization) for weights.
* :mod:`lcr_larq.quantizers.proxconnect` — ProxConnect (Dockhorn et al.,
  NeurIPS 2021): :class:`ProxSign`, a proximal-map weight quantizer.

Their schedules (EDE's t, ProxConnect's ρ) are Keras callbacks in
:mod:`lcr_larq.callbacks`; :func:`quantizers_of` finds every quantizer of a model.

Example:
    >>> from lcr_larq.models import build_model
    >>> model = build_model("resnet20", (32, 32, 1), 10)
    >>> sorted({type(q).__name__ for q in quantizers_of(model)})
    ['EDESign', 'LibraSign']
"""

from __future__ import annotations

from collections.abc import Iterator

import larq as lq
import tensorflow as tf

from lcr_larq.quantizers.irnet import (
    EDE_T_MAX,
    EDE_T_MIN,
    EDEQuantizer,
    EDESign,
    LibraSign,
    ede_parameters,
    ede_sign,
    libra_standardize,
    power_of_two_scale,
)
from lcr_larq.quantizers.proxconnect import ProxSign, prox_sign, prox_sign_grad

__all__ = [
    "EDE_T_MAX",
    "EDE_T_MIN",
    "EDEQuantizer",
    "EDESign",
    "LibraSign",
    "ProxSign",
    "ede_parameters",
    "ede_sign",
    "libra_standardize",
    "power_of_two_scale",
    "prox_sign",
    "prox_sign_grad",
    "quantized_convolutions",
    "quantizers_of",
]

def quantizers_of(model: tf.keras.layers.Layer) -> Iterator[tf.keras.layers.Layer]:
    """Every distinct quantizer that ``model`` tracks, nested models and
    custom layers included: Larq's quantizers (also those given to a layer
    by name, e.g. ``"ste_sign"``) and layers that quantize themselves (a
    ``precision``, e.g. ReActNet's RSign)."""
    seen: set[int] = set()
    for module in (model, *model.submodules):
        quantizes = isinstance(module, lq.quantizers.Quantizer) or (
            isinstance(module, tf.keras.layers.Layer)
            and not isinstance(module, tf.keras.Model)
            and getattr(type(module), "precision", None) is not None
        )
        if quantizes and id(module) not in seen:
            seen.add(id(module))
            yield module


def quantized_convolutions(model: tf.keras.Model, binary: bool = False) -> list:
    """The convolutions of ``model`` with a weight quantizer (Larq's
    ``QuantConv2D`` and ``QuantDepthwiseConv2D``), in layer order.

    With ``binary``, only what Larq Compute Engine runs as a binary kernel
    (``LceBconv2d``): ``QuantConv2D`` layers whose input and kernel quantizers
    are both 1-bit.

    Example:
        >>> from lcr_larq.models import build_model
        >>> bnn = build_model("resnet20", (32, 32, 1), 10, precision="1w32a")
        >>> len(quantized_convolutions(bnn)), len(quantized_convolutions(bnn, binary=True))
        (18, 0)
    """

    def one_bit(quantizer) -> bool:
        return quantizer is not None and getattr(quantizer, "precision", None) == 1

    found = []
    for layer in model.layers:
        if isinstance(layer, lq.layers.QuantDepthwiseConv2D):
            if layer.depthwise_quantizer is not None and not binary:
                found.append(layer)
        elif isinstance(layer, lq.layers.QuantConv2D) and layer.kernel_quantizer is not None:
            if not binary or (one_bit(layer.input_quantizer) and one_bit(layer.kernel_quantizer)):
                found.append(layer)
    return found
