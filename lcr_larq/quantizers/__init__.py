"""Binary quantizers on Larq's quantizer API, one file per family.

* :mod:`lcr_larq.quantizers.irnet` — IR-Net (Qin et al., CVPR 2020):
  :class:`EDESign` (sign with the Error Decay Estimator) for activations,
  :class:`LibraSign` (Libra Parameter Binarization) for weights, and
  :class:`EDESchedule`;
* :mod:`lcr_larq.quantizers.proxconnect` — ProxConnect (Dockhorn et al.,
  NeurIPS 2021): :class:`ProxSign`, a proximal-map weight quantizer, and
  :class:`ProxConnectSchedule`;
* :mod:`lcr_larq.quantizers.ste` — BinaryConnect's sign with the
  straight-through estimator (Larq's ``SteSign``).

Each registers itself as a ``--weight-quantizer``
(:mod:`lcr_larq.quantizers.registry`): a new quantizer is one new file in
this folder. :func:`quantizers_of` finds every quantizer of a model.

Example:
    >>> list(WEIGHT_QUANTIZERS)
    ['irnet', 'proxconnect', 'ste_sign']
    >>> sorted(type(q).__name__ for q in (quantization("1w1a").input_quantizer(),
    ...                                   quantization("1w1a").kernel_quantizer()))
    ['EDESign', 'LibraSign']
"""

from __future__ import annotations

from lcr_larq.quantizers.irnet import (
    EDE_T_MAX,
    EDE_T_MIN,
    EDEQuantizer,
    EDESchedule,
    EDESign,
    LibraSign,
    ede_parameters,
    ede_sign,
    libra_standardize,
    power_of_two_scale,
)
from lcr_larq.quantizers.lookup import quantized_convolutions, quantizers_of
from lcr_larq.quantizers.proxconnect import (
    ProxConnectSchedule,
    ProxSign,
    prox_sign,
    prox_sign_grad,
)
from lcr_larq.quantizers.registry import (
    PRECISIONS,
    WEIGHT_QUANTIZERS,
    QuantizationSpec,
    WeightQuantizer,
    quantization,
    register_weight_quantizer,
)
from lcr_larq.registry import import_submodules

import_submodules(__name__)  # every quantizer file registers itself

__all__ = [
    "EDE_T_MAX",
    "EDE_T_MIN",
    "PRECISIONS",
    "WEIGHT_QUANTIZERS",
    "EDEQuantizer",
    "EDESchedule",
    "EDESign",
    "LibraSign",
    "ProxConnectSchedule",
    "ProxSign",
    "QuantizationSpec",
    "WeightQuantizer",
    "ede_parameters",
    "ede_sign",
    "libra_standardize",
    "power_of_two_scale",
    "prox_sign",
    "prox_sign_grad",
    "quantization",
    "quantized_convolutions",
    "quantizers_of",
    "register_weight_quantizer",
]
