"""The operator of one binary convolution and its spectral norm by each method.

A binary convolution's operator is the convolution acting on its (binarized)
input with the effective binary kernel, or with the latent weights, at the
layer's input size, stride and padding (zero padding: a constant pad value
only adds an offset); grouped, depthwise and dilated kernels are expanded to
the equivalent dense kernel first. :func:`kernel_norms` measures such a kernel
with the methods of :mod:`lcr_larq.lipschitz`; the batch norm that follows a
layer can be folded in with :func:`batchnorm_scale`. The report built from
these is :mod:`lcr_larq.diagnostics.report` (which explains the conventions).

Example:
    >>> k = np.zeros((3, 3, 1, 1)); k[1, 1] = 3.0
    >>> geo = {"input_shape": [6, 6, 1], "strides": [1, 1], "padding": "same"}
    >>> round(kernel_norms(k, geo, ["exact"])[0]["exact"], 6)
    3.0
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import larq as lq
import numpy as np
import tensorflow as tf

from lcr_larq import lipschitz
from lcr_larq.errors import RunError
from lcr_larq.graph import full_precision_path

__all__ = [
    "batchnorm_scale",
    "expand_kernel",
    "following_batchnorm",
    "kernel_norms",
    "latent_output_variances",
    "layer_geometry",
    "layer_kernels",
    "operator_check",
]


def expand_kernel(
    kernel: np.ndarray, groups: int = 1, depthwise: bool = False, dilation=(1, 1)
) -> np.ndarray:
    """The dense ``(kh, kw, c_in, c_out)`` kernel of a grouped, depthwise or
    dilated convolution (same operator, dilation 1, one group).

    Depthwise ``(kh, kw, C, m)``: output channel ``c m + j`` reads channel
    ``c`` only. Groups: output group ``g`` reads input group ``g`` only.
    Dilation ``d``: zeros between the taps, size ``(k - 1) d + 1`` (TensorFlow's
    "same" padding uses that size too).

    Example:
        >>> k = np.ones((3, 3, 2, 1))
        >>> expand_kernel(k, depthwise=True)[..., 0, 1].sum()  # channel 0 -> output 1
        0.0
        >>> expand_kernel(np.ones((3, 3, 1, 1)), dilation=(2, 2)).shape
        (5, 5, 1, 1)
    """
    k = np.asarray(kernel, np.float64)
    kh, kw, cin, cout = k.shape
    if depthwise:
        dense = np.zeros((kh, kw, cin, cin * cout))
        for c in range(cin):
            dense[:, :, c, c * cout : (c + 1) * cout] = k[:, :, c, :]
        k = dense
    elif groups > 1:
        cin_g, cout_g = cin, cout // groups
        dense = np.zeros((kh, kw, cin_g * groups, cout))
        for g in range(groups):
            dense[:, :, g * cin_g : (g + 1) * cin_g, g * cout_g : (g + 1) * cout_g] = (
                k[:, :, :, g * cout_g : (g + 1) * cout_g]
            )
        k = dense
    dh, dw = (int(d) for d in dilation)
    if (dh, dw) != (1, 1):
        kh, kw, cin, cout = k.shape
        dilated = np.zeros(((kh - 1) * dh + 1, (kw - 1) * dw + 1, cin, cout))
        dilated[::dh, ::dw] = k
        k = dilated
    return k


def layer_kernels(layer) -> tuple[np.ndarray, np.ndarray]:
    """``(effective binary kernel, latent kernel)`` of a binary conv, both dense
    ``(kh, kw, c_in, c_out)`` float64 (see :func:`expand_kernel`)."""

    depthwise = isinstance(layer, lq.layers.QuantDepthwiseConv2D)
    variable = layer.depthwise_kernel if depthwise else layer.kernel
    with lq.context.quantized_scope(True):
        binary = tf.convert_to_tensor(variable).numpy()
    latent_variable = getattr(variable, "latent_variable", variable)
    latent = latent_variable.numpy()
    groups = 1 if depthwise else int(getattr(layer, "groups", 1))
    dilation = layer.dilation_rate
    return (
        expand_kernel(binary, groups, depthwise, dilation),
        expand_kernel(latent, groups, depthwise, dilation),
    )


def layer_geometry(layer) -> dict[str, Any]:
    """Input size, strides, padding and pad value of a conv layer."""
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise RunError(f"layer {layer.name!r} is channels_first: only NHWC is supported")
    shape = tuple(layer.input_shape[1:])
    if any(d is None for d in shape):
        raise RunError(
            f"layer {layer.name!r} has an unknown input size {shape}: build the model "
            "for a fixed input size"
        )
    return {
        "input_shape": [int(d) for d in shape],
        "strides": [int(s) for s in layer.strides],
        "padding": layer.padding,
        "pad_values": float(getattr(layer, "pad_values", 0.0)),
    }


def operator_check(layer, kernel: np.ndarray, geometry: dict, seed: int = 0) -> float:
    """Relative error of ``layer(a) - layer(b)`` against ``conv_pad0(a - b, kernel)``
    for random ±1 inputs ``a, b``: ~1e-7 when ``kernel``, stride and padding
    are the layer's linear part."""

    rng = np.random.default_rng(seed)
    shape = (2, *geometry["input_shape"])
    a, b = (np.where(rng.random(shape) < 0.5, -1.0, 1.0).astype(np.float32) for _ in range(2))
    got = (layer(tf.constant(a)) - layer(tf.constant(b))).numpy().astype(np.float64)
    want = tf.nn.conv2d(
        tf.constant(a - b, tf.float64), tf.constant(kernel),
        strides=geometry["strides"], padding=geometry["padding"].upper(),
    ).numpy()
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-12))


def following_batchnorm(layer):
    """The batch normalization fed directly by ``layer`` (its only consumer,
    normalizing the channel axis), or ``None``."""

    consumers = {id(node.layer): node.layer for node in layer._outbound_nodes}
    if len(consumers) != 1:
        return None
    (bn,) = consumers.values()
    if not isinstance(bn, tf.keras.layers.BatchNormalization):
        return None
    rank = len(layer.output_shape)
    if [a % rank for a in bn.axis] != [rank - 1]:
        return None
    return bn


def batchnorm_scale(bn, variance: np.ndarray | None = None) -> np.ndarray:
    """Per-channel factor ``gamma / sqrt(variance + eps)`` of a batch norm: the
    linear part of its affine map. ``variance`` defaults to the moving
    variance (inference mode, what the deployed binary path uses).

    Example:
        >>> import tensorflow as tf
        >>> bn = tf.keras.layers.BatchNormalization(epsilon=0.0)
        >>> bn.build((None, 2)); bn.moving_variance.assign([4.0, 1.0])  # doctest: +ELLIPSIS
        <...>
        >>> batchnorm_scale(bn).tolist()
        [0.5, 1.0]
    """
    var = bn.moving_variance.numpy() if variance is None else np.asarray(variance)
    gamma = bn.gamma.numpy() if bn.scale else np.ones_like(var)
    return np.asarray(gamma, np.float64) / np.sqrt(np.asarray(var, np.float64) + bn.epsilon)


def latent_output_variances(
    model, layers: Sequence, images: np.ndarray, batch_size: int = 64
) -> dict[str, np.ndarray]:
    """Per-channel variance of each layer's output on the latent full-precision
    path, averaged over batches of ``images``: the statistics its batch norm
    normalizes with on that path (batch statistics, see
    :class:`lcr_larq.layers.BatchNormalization`)."""

    if not layers:
        return {}
    outputs = full_precision_path(model, [layer.output for layer in layers])
    probe = tf.keras.Model(model.inputs, outputs)
    sums = [0.0] * len(layers)
    batches = 0
    for start in range(0, len(images), batch_size):
        outs = probe(tf.constant(images[start : start + batch_size], tf.float32))
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for i, out in enumerate(outs):
            axes = list(range(len(out.shape) - 1))
            sums[i] = sums[i] + tf.math.reduce_variance(out, axis=axes).numpy()
        batches += 1
    return {layer.name: np.asarray(s) / batches for layer, s in zip(layers, sums)}


def kernel_norms(
    kernel: np.ndarray,
    geometry: dict,
    methods: Sequence[str],
    exact_iterations: int = 500,
    exact_tol: float = 1e-6,
) -> tuple[dict[str, float], dict[str, float], dict[str, Any]]:
    """``(values, seconds, exact_info)`` of the kernel methods for one kernel.

    Example:
        >>> k = np.zeros((3, 3, 1, 1)); k[1, 1] = 2.0
        >>> geo = {"input_shape": [8, 8, 1], "strides": [1, 1], "padding": "same"}
        >>> values, _, _ = kernel_norms(k, geo, ["exact", "gram_bound"])
        >>> round(values["exact"], 6), round(values["gram_bound"], 6)
        (2.0, 2.0)
    """

    shape, strides, padding = geometry["input_shape"], geometry["strides"], geometry["padding"]
    values: dict[str, float] = {}
    seconds: dict[str, float] = {}
    info: dict[str, Any] = {}
    for method in methods:
        t0 = time.perf_counter()
        if method == "exact":
            value, raw = lipschitz.conv_operator_norm(
                kernel, shape, strides, padding, iterations=exact_iterations, tol=exact_tol
            )
            info = {k: raw[k] for k in ("iterations", "converged", "residual")}
        elif method == "toeplitz_bound":
            value = lipschitz.toeplitz_bound(kernel, method="araujo")
        elif method == "toeplitz_symbol":
            value = lipschitz.toeplitz_bound(kernel, method="symbol")
        elif method == "gram_bound":
            value = lipschitz.gram_bound(kernel, shape)
        elif method == "reshaped_kernel":
            value = lipschitz.reshaped_kernel_norm(kernel)
        else:
            continue
        values[method] = float(value)
        seconds[method] = time.perf_counter() - t0
    return values, seconds, info
