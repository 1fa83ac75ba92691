"""BinaryConnect's weight quantizer: ``sign`` forward, the straight-through
estimator backward (Larq's ``SteSign``), the latent weights clipped to
[−1, 1]. Registered as the weight quantizer ``ste_sign``.

Example:
    >>> from lcr_larq.quantizers import quantization
    >>> type(quantization("1w1a", "ste_sign").kernel_quantizer()).__name__
    'SteSign'
"""

from __future__ import annotations

import larq as lq

from lcr_larq.quantizers.registry import WeightQuantizer, register_weight_quantizer

__all__: list[str] = []  # it registers what it defines

register_weight_quantizer(WeightQuantizer(
    "ste_sign",
    "BinaryConnect: sign with the straight-through estimator, weights clipped to [-1, 1]",
    kernel=lambda options: lq.quantizers.SteSign(),
    activation=lq.quantizers.SteSign,
    clip=1.0,
))
