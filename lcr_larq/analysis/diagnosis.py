"""Lipschitz diagnostics of a trained BNN: how good is each spectral-norm estimate?

``lcr-diagnose --model-dir DIR`` computes, for every binary
convolution of the run's plain BNN, the spectral norm of the operator the
layer really applies, and of the same layer with its latent weights, with
five methods, and writes ``DIR/lipschitz.json`` (a list ``layers``, one row
per layer) and ``DIR/lipschitz.png``, and prints a table.

The operator. A binary convolution computes ``y = conv(q(x), Q(W))`` with the
input quantizer ``q`` (sign, for 1w1a) and the effective binary kernel
``Q(W)`` (read inside ``larq.context.quantized_scope(True)``: IR-Net's
LibraSign gives the sign of the standardized weights times a per-channel
power of two, ``ste_sign`` gives ±1). The sign of the input is not linear:
the operator measured is the convolution acting on the layer's (binarized)
input, ``x_b -> conv(x_b, Q(W))``, with the layer's stride and padding at
its input size (``layer.input_shape``). The "latent" operator is the same
convolution with the latent weights ``W`` (``kernel.latent_variable``).

Padding. The 1w1a layers pad with ``pad_values=1.0`` (so that the padded
input stays binary). A constant non-zero padding makes the layer *affine*:
``conv_pad1(x) = conv_pad0(x) + conv_pad0(P)`` where ``P`` is 1 on the
padding frame and 0 inside; the offset does not depend on ``x``. The
Lipschitz constant (the norm of the linear part) is therefore the norm of the
zero-padded convolution, which is what every method below computes.
``operator_check`` in each row verifies this on the layer itself:
``layer(a) - layer(b) == conv_pad0(a - b, Q(W))`` for random ±1 inputs.
Grouped, depthwise and dilated convolutions are expanded to the equivalent
dense kernel (block-diagonal channels, zero-inserted taps) first.

Methods (keys of each row; ``<key>_latent`` holds the latent value and
``seconds[<key>]`` the time each took):

* ``exact`` — block power iteration on ``A^T A`` with ``tf.nn.conv2d`` and
  its transpose until converged (:func:`lcr_larq.lipschitz.conv_operator_norm`),
  the reference;
* ``toeplitz_bound`` — the upper bound of Araujo et al. (AAAI 2021) from
  Toeplitz matrix theory, with a provable grid correction
  (:func:`lcr_larq.lipschitz.toeplitz_bound`); ``toeplitz_symbol`` (on
  request) is the tighter ``sup_w sigma_max`` of the symbol;
* ``gram_bound`` — the Gram-iteration upper bound of Delattre et al.
  (ICML 2023) (:func:`lcr_larq.lipschitz.gram_bound`);
* ``reshaped_kernel`` — ``||W reshaped to C_out x (C_in k k)||_2``, the
  spectral-normalization heuristic (not a bound);
* ``retention_estimate`` — ``sigma = sqrt(lambda_max(RM))`` of the LCR
  retention matrix of the *block* holding the layer, on real test batches
  (mean over samples; binary path and latent full-precision path,
  :func:`lcr_larq.graph.full_precision_path`), many power iterations.

The retention matrix is defined per block (residual block: two binary convs,
batch norms, activations and the shortcut), so it cannot be compared with one
layer's norm alone. ``blocks`` in the report puts each block's ``sigma_RM``
beside the exact norms of its binary convs and their product (a Lipschitz
bound of the block's conv path), and ``summary.retention_tracking`` gives
the correlation over blocks of ``log sigma_RM`` with ``log`` of that
product, for the binary and the latent path, and of the binary/latent
ratios (what LCR pulls towards 1) — the assumption of the paper, measured.

Example:
    >>> from models import build_model
    >>> model = build_model("resnet20", (8, 8, 1), 10)
    >>> report = diagnose(model, None, ["exact", "toeplitz_bound"], max_layers=2)
    >>> all(r["toeplitz_bound"] >= r["exact"] * (1 - 1e-6) for r in report["layers"])
    True

Command line: ``lcr-diagnose`` (:mod:`lcr_larq.cli.diagnose`).
"""

from __future__ import annotations

import fnmatch
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import larq as lq
import numpy as np
import tensorflow as tf

from lcr_larq import lipschitz, spectral
from lcr_larq.analysis import ReportSettings
from lcr_larq.errors import ConfigError, RunError
from lcr_larq.graph import find_blocks, full_precision_path
from lcr_larq.quantizers import quantized_convolutions
from lcr_larq.settings import expand_names, setting
from lcr_larq.training import runs

REPORT_FILE = "lipschitz.json"
PLOT_FILE = "lipschitz.png"
KERNEL_METHODS = ("exact", "toeplitz_bound", "toeplitz_symbol", "gram_bound", "reshaped_kernel")
METHODS = (*KERNEL_METHODS, "retention_estimate")
DEFAULT_METHODS = ("exact", "toeplitz_bound", "gram_bound", "reshaped_kernel", "retention_estimate")
BOUNDS = ("toeplitz_bound", "toeplitz_symbol", "gram_bound")


@dataclass
class DiagnoseSettings(ReportSettings):
    """The settings of ``lcr-diagnose``."""

    report_file: ClassVar[str] = REPORT_FILE
    methods: tuple[str, ...] = setting(
        ("default",),
        f"default ({' '.join(DEFAULT_METHODS)}), all, or names of {' '.join(METHODS)}",
        metavar="METHOD",
    )
    layers: tuple[str, ...] | None = setting(
        None, "layer names or wildcards, e.g. 'block9_*' (default: every binary conv)",
        metavar="NAME",
    )
    max_layers: int | None = setting(None, "diagnose at most N binary convolutions", low=1)
    samples: int = setting(128, "test images for the retention estimate", low=1, high=10**6)
    batch_size: int = setting(64, "batch size of the retention estimate", low=1, high=2**16)
    rm_iterations: int = setting(
        100, "power iterations of the retention estimate", low=1, high=100_000
    )
    exact_iterations: int = setting(
        500, "maximum iterations of the exact method", low=1, high=1_000_000
    )
    exact_tol: float = setting(1e-6, "relative tolerance of the exact method", above=0, high=1)
    data_dir: str | None = setting(None, "dataset directory (default: the run's)")
    dataset: str | None = setting(None, "dataset of the retention estimate, if not the run's")
    output: str | None = setting(None, f"report path (default: DIR/{REPORT_FILE})")
    no_plot: bool = setting(False, f"do not draw {PLOT_FILE}")
    quiet: bool = setting(False, "no progress lines")

    @property
    def method_list(self) -> list[str]:
        return parse_methods(self.methods)

    def check(self) -> None:
        super().check()
        parse_methods(self.methods)


def parse_methods(parts) -> list[str]:
    """Methods of ``--methods``: ``default``, ``all`` or names.

    Example:
        >>> parse_methods(["exact", "gram_bound"])
        ['exact', 'gram_bound']
        >>> parse_methods(["all"])[-1]
        'retention_estimate'
    """
    names = expand_names(parts, {"default": DEFAULT_METHODS, "all": METHODS}, METHODS, "method")
    return [m for m in METHODS if m in names]


# --------------------------------------------------------------------------- layers
def select_layers(
    layers: Sequence, patterns: Sequence[str] | None = None, max_layers: int | None = None
) -> list:
    """Layers whose name matches one of ``patterns`` (shell wildcards), at most
    ``max_layers`` of them, in model order.

    Example:
        >>> class L:  # a stand-in with a name
        ...     def __init__(self, name): self.name = name
        >>> [l.name for l in select_layers([L("a1"), L("b1"), L("a2")], ["a*"], 1)]
        ['a1']
    """
    chosen = [
        layer for layer in layers
        if not patterns or any(fnmatch.fnmatchcase(layer.name, p) for p in patterns)
    ]
    if patterns and not chosen:
        raise RunError(
            f"no binary convolution matches --layers {','.join(patterns)}; the layers are "
            + ", ".join(layer.name for layer in layers)
        )
    return chosen[:max_layers] if max_layers else chosen


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


# --------------------------------------------------------------------------- blocks
def _producer(tensor):
    layer, node_index, _ = tensor._keras_history
    return layer, layer._inbound_nodes[node_index]


def block_layer_names(model, block) -> list[str]:
    """Names of the layers between a block's input and output tensors, in model order."""
    stop = {id(block.input)} | {id(t) for t in model.inputs}
    seen, names, frontier = set(), set(), [block.output]
    while frontier:
        tensor = frontier.pop()
        if id(tensor) in seen or id(tensor) in stop:
            continue
        seen.add(id(tensor))
        layer, node = _producer(tensor)
        names.add(layer.name)
        frontier.extend(node.keras_inputs)
    return [layer.name for layer in model.layers if layer.name in names]


def latent_weights(model) -> dict[str, np.ndarray]:
    """Latent (pre-binarization) weights of every binary convolution, flattened.

    Example:
        >>> from models import build_model
        >>> w = latent_weights(build_model("resnet20", (16, 16, 1), 10))
        >>> len(w), w["block1_conv1"].shape
        (18, (2304,))
    """
    out = {}
    for layer in quantized_convolutions(model):
        variable = getattr(layer, "depthwise_kernel", None)
        if variable is None:
            variable = layer.kernel
        latent = getattr(variable, "latent_variable", variable)
        out[layer.name] = np.asarray(latent.numpy(), np.float64).ravel()
    return out


def block_activations(model, images: np.ndarray, block: str | None = None):
    """``(block name, binary, latent)`` activations entering a block (default:
    the last one) for ``images``, binary path in inference mode."""

    blocks = find_blocks(model)
    if block is None:
        chosen = blocks[-1]
    else:
        matches = [b for b in blocks if b.name == block]
        if not matches:
            raise ConfigError(
                f"no block {block!r}; the blocks are {', '.join(b.name for b in blocks)}"
            )
        chosen = matches[0]
    (latent,) = full_precision_path(model, [chosen.input])
    probe = tf.keras.Model(model.inputs, [chosen.input, latent])
    binary, full = probe(tf.constant(images, tf.float32), training=False)
    return chosen.name, binary.numpy(), full.numpy()


def sample_images(dataset, count: int, seed: int = 0) -> np.ndarray:
    """``count`` normalized test images (model inputs), a fixed random subset.

    Example:
        >>> from lcr_larq.data import load_dataset
        >>> sample_images(load_dataset("digits"), 4).shape
        (4, 16, 16, 1)
    """

    images, _ = runs.test_images(dataset, None if dataset.test_arrays is not None else count)
    if len(images) > count:
        pick = np.sort(np.random.default_rng(seed).choice(len(images), count, replace=False))
        images = images[pick]
    return dataset.normalize(images).numpy()


def retention_sigmas(
    model, images: np.ndarray, iterations: int = 100, batch_size: int = 64
) -> list[dict[str, Any]]:
    """``sigma_RM`` of every block of ``model`` on ``images``, binary and latent path.

    The binary path is the BNN in inference mode; the latent path is
    :func:`lcr_larq.graph.full_precision_path` (latent weights, real-valued
    activations, batch statistics), run on the same batches. Per block:
    mean and std over samples of ``sigma_B`` and ``sigma_F``, the mean of the
    per-sample ratio, and the seconds the power iterations took.

    Example:
        >>> from models import build_model
        >>> model = build_model("resnet20", (16, 16, 1), 10)
        >>> rows = retention_sigmas(model, np.random.rand(4, 16, 16, 1), iterations=10)
        >>> len(rows), sorted(rows[0])[:3]
        (9, ['block', 'forward_seconds', 'layers'])
    """

    blocks = find_blocks(model)
    tensors = [t for b in blocks for t in (b.input, b.output)]
    try:
        latent = full_precision_path(model, tensors)
    except ValueError as error:
        raise RunError(f"no latent path for the retention estimate: {error}") from None
    probe = tf.keras.Model(model.inputs, [*tensors, *latent])
    n = len(tensors)
    sig_b: list[list[np.ndarray]] = [[] for _ in blocks]
    sig_f: list[list[np.ndarray]] = [[] for _ in blocks]
    power_seconds = [0.0] * len(blocks)
    forward = 0.0
    def sigma(x, y):
        return spectral.block_sigma(x, y, iterations)

    for start in range(0, len(images), batch_size):
        batch = tf.constant(images[start : start + batch_size], tf.float32)
        t0 = time.perf_counter()
        outs = probe(batch, training=False)
        forward += time.perf_counter() - t0
        for k in range(len(blocks)):
            t0 = time.perf_counter()
            sb = sigma(outs[2 * k], outs[2 * k + 1]).numpy()
            sf = sigma(outs[n + 2 * k], outs[n + 2 * k + 1]).numpy()
            power_seconds[k] += time.perf_counter() - t0
            sig_b[k].append(np.atleast_1d(sb))
            sig_f[k].append(np.atleast_1d(sf))
    rows = []
    for k, block in enumerate(blocks):
        b, f = np.concatenate(sig_b[k]), np.concatenate(sig_f[k])
        ratio = np.divide(b, f, out=np.zeros_like(b), where=f > 0)
        rows.append({
            "block": block.name,
            "layers": block_layer_names(model, block),
            "sigma_binary": float(b.mean()),
            "sigma_binary_std": float(b.std()),
            "sigma_latent": float(f.mean()),
            "sigma_latent_std": float(f.std()),
            "sigma_ratio": float(ratio.mean()),
            "samples": int(len(b)),
            "power_iterations": int(iterations),
            "seconds": power_seconds[k],
            "forward_seconds": forward / len(blocks),
        })
    return rows


# --------------------------------------------------------------------------- report
def _pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 3 or x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def _log(values) -> list[float]:
    return [math.log(v) if v and v > 0 else math.nan for v in values]


def _product(rows: list[dict], key: str) -> float | None:
    values = [r.get(key) for r in rows]
    if not values or any(v is None for v in values):
        return None
    return float(np.prod(values))


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def block_rows(retention: list[dict], layers: list[dict]) -> list[dict]:
    """Each block's ``sigma_RM`` beside the exact norms of its binary convs.

    ``exact_product`` is the product of the exact norms of the block's binary
    convs (``_latent``: latent kernels); ``exact_bn_product`` the same with
    each conv's batch norm folded in (the linear map between the input sign
    and the activation: a Lipschitz bound of the residual branch with the
    sign taken as the identity). Ratios ``*_ratio`` are binary over latent;
    ``rm_over_*`` divide ``sigma_RM`` by a product.

    Example:
        >>> ret = [{"block": "b1", "layers": ["c1", "c2", "bn"], "sigma_binary": 3.0,
        ...         "sigma_latent": 1.5, "sigma_ratio": 2.0}]
        >>> lay = [{"name": "c1", "exact": 2.0, "exact_latent": 1.0},
        ...        {"name": "c2", "exact": 4.0, "exact_latent": 2.0}]
        >>> row = block_rows(ret, lay)[0]
        >>> row["exact_product"], row["exact_ratio"], row["rm_over_exact_product"]
        (8.0, 4.0, 0.375)
    """
    by_name = {row["name"]: row for row in layers}
    rows = []
    for r in retention:
        convs = [by_name[name] for name in r["layers"] if name in by_name]
        out: dict[str, Any] = {
            "block": r["block"],
            "binary_convs": [c["name"] for c in convs],
            "sigma_rm_binary": r["sigma_binary"],
            "sigma_rm_latent": r["sigma_latent"],
            "sigma_rm_ratio": r["sigma_ratio"],
            "exact": {c["name"]: c.get("exact") for c in convs},
            "exact_latent": {c["name"]: c.get("exact_latent") for c in convs},
        }
        for key in ("exact", "exact_bn"):
            prod_b = _product(convs, key)
            prod_f = _product(convs, key + "_latent")
            out[f"{key}_product"] = prod_b
            out[f"{key}_product_latent"] = prod_f
            out[f"{key}_ratio"] = _div(prod_b, prod_f)
            out[f"rm_over_{key}_product"] = _div(r["sigma_binary"], prod_b)
            out[f"rm_over_{key}_product_latent"] = _div(r["sigma_latent"], prod_f)
        rows.append(out)
    return rows


def summarize(layers: list[dict], blocks: list[dict], methods: Sequence[str]) -> dict:
    """Per method: ratio to ``exact`` (median, min, max; binary and latent) and
    seconds; whether every bound held; how the retention estimate tracks."""
    out: dict[str, Any] = {"methods": {}}
    for m in methods:
        if m == "retention_estimate":
            continue
        entry: dict[str, Any] = {
            "seconds_total": float(sum(r["seconds"].get(m, 0.0) for r in layers)),
            "seconds_total_latent": float(
                sum(r["seconds"].get(f"{m}_latent", 0.0) for r in layers)
            ),
        }
        if m != "exact" and "exact" in methods:
            for suffix in ("", "_latent"):
                ratios = [
                    r[m + suffix] / r["exact" + suffix]
                    for r in layers if r.get("exact" + suffix)
                ]
                if ratios:
                    entry[f"ratio_to_exact{suffix}"] = {
                        "median": float(np.median(ratios)),
                        "min": float(np.min(ratios)),
                        "max": float(np.max(ratios)),
                    }
        out["methods"][m] = entry
    if "exact" in methods:
        held = {
            m: all(
                r[m + s] >= r["exact" + s] * (1 - 1e-6) for r in layers for s in ("", "_latent")
            )
            for m in methods if m in BOUNDS
        }
        out["bounds_hold"] = held
    tracking: dict[str, Any] = {}
    for key in ("exact", "exact_bn"):
        done = [b for b in blocks if b[f"{key}_product"] is not None]
        if not done:
            continue
        latent = [b for b in done if b[f"{key}_product_latent"] is not None]
        tracking[key] = {
            "blocks_compared": len(done),
            "pearson_log_binary": _pearson(
                _log(b["sigma_rm_binary"] for b in done),
                _log(b[f"{key}_product"] for b in done),
            ),
            "pearson_log_latent": _pearson(
                _log(b["sigma_rm_latent"] for b in latent),
                _log(b[f"{key}_product_latent"] for b in latent),
            ),
            "pearson_ratio": _pearson(
                [b["sigma_rm_ratio"] for b in latent], [b[f"{key}_ratio"] for b in latent]
            ),
            "median_rm_over_product": float(
                np.median([b[f"rm_over_{key}_product"] for b in done])
            ),
            "median_rm_over_product_latent": (
                float(np.median([b[f"rm_over_{key}_product_latent"] for b in latent]))
                if latent else None
            ),
        }
    if tracking:
        out["retention_tracking"] = tracking
    return out


NOTES = [
    "operator: the convolution applied to the layer's (binarized) input, x_b -> "
    "conv(x_b, Q(W)); the input sign is not linear and is not part of it",
    "padding: pad_values=1 makes the layer affine, conv_pad1(x) = conv_pad0(x) + const; "
    "its Lipschitz constant is the norm of the zero-padded convolution, measured here "
    "(operator_check verifies layer(a) - layer(b) = conv_pad0(a - b) on the layer)",
    "exact: block power iteration (a lower bound converging to the norm; see exact_info); "
    "toeplitz_bound, toeplitz_symbol, gram_bound: upper bounds; reshaped_kernel: heuristic",
    "retention_estimate: sigma of the retention matrix of the block holding the layer "
    "(block-level, mean over test samples); compare blocks[*] for the block-level view",
]


def diagnose(
    model,
    images: np.ndarray | None,
    methods: Sequence[str] = DEFAULT_METHODS,
    layers: Sequence[str] | None = None,
    max_layers: int | None = None,
    exact_iterations: int = 500,
    exact_tol: float = 1e-6,
    rm_iterations: int = 100,
    batch_size: int = 64,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """The Lipschitz report of ``model``'s binary convolutions (see module doc).

    ``images`` (normalized model inputs) feed the retention estimate; they
    may be ``None`` when ``retention_estimate`` is not among ``methods``.
    """
    start = time.perf_counter()
    convs = quantized_convolutions(model)
    if not convs:
        raise RunError(
            f"model {model.name!r} has no binary convolution (a full-precision model?)"
        )
    chosen = select_layers(convs, layers, max_layers)
    kernel_methods = [m for m in methods if m in KERNEL_METHODS]
    batchnorms = {layer.name: following_batchnorm(layer) for layer in chosen}
    variances: dict[str, np.ndarray] = {}
    if "exact" in methods and images is not None:
        with_bn = [layer for layer in chosen if batchnorms[layer.name] is not None]
        try:
            variances = latent_output_variances(model, with_bn, images, batch_size)
        except ValueError:  # no latent path (stock Larq layers): binary side only
            variances = {}
    rows: list[dict] = []
    for layer in chosen:
        geometry = layer_geometry(layer)
        binary, latent = layer_kernels(layer)
        row: dict[str, Any] = {
            "name": layer.name,
            "type": type(layer).__name__,
            "kernel_shape": list(binary.shape),
            **geometry,
            "operator_check": operator_check(layer, binary, geometry),
        }
        seconds: dict[str, float] = {}
        for suffix, kernel in (("", binary), ("_latent", latent)):
            values, secs, info = kernel_norms(
                kernel, geometry, kernel_methods, exact_iterations, exact_tol
            )
            row.update({m + suffix: v for m, v in values.items()})
            seconds.update({m + suffix: round(s, 4) for m, s in secs.items()})
            if info:
                row["exact_info" + suffix] = info
        bn = batchnorms[layer.name]
        if "exact" in methods and bn is not None:
            row["batchnorm"] = bn.name
            scales = [("", batchnorm_scale(bn), binary)]
            if layer.name in variances:
                scales.append(("_latent", batchnorm_scale(bn, variances[layer.name]), latent))
            for suffix, scale, kernel in scales:
                values, secs, _ = kernel_norms(
                    kernel * scale, geometry, ["exact"], exact_iterations, exact_tol
                )
                row["exact_bn" + suffix] = values["exact"]
                seconds["exact_bn" + suffix] = round(secs["exact"], 4)
        row["seconds"] = seconds
        rows.append(row)
        if progress:
            progress(f"{layer.name}: " + ", ".join(
                f"{m} {row[m]:.3g}" for m in kernel_methods
            ))

    retention: list[dict] = []
    if "retention_estimate" in methods:
        if images is None:
            raise RunError("the retention estimate needs test images")
        retention = retention_sigmas(model, images, rm_iterations, batch_size)
        by_layer = {name: r for r in retention for name in r["layers"]}
        for row in rows:
            r = by_layer.get(row["name"])
            row["block"] = r["block"] if r else None
            row["retention_estimate"] = r["sigma_binary"] if r else None
            row["retention_estimate_latent"] = r["sigma_latent"] if r else None
            row["seconds"]["retention_estimate"] = (
                round(r["seconds"] + r["forward_seconds"], 4) if r else None
            )
    blocks = block_rows(retention, rows)
    return {
        "model": model.name,
        "methods": list(methods),
        "layers": rows,
        "blocks": blocks,
        "summary": summarize(rows, blocks, methods),
        "retention": {
            "samples": int(len(images)) if images is not None and retention else 0,
            "power_iterations": rm_iterations,
            "seconds": round(sum(r["seconds"] + r["forward_seconds"] for r in retention), 4),
        },
        "notes": NOTES,
        "seconds": round(time.perf_counter() - start, 2),
    }


def diagnose_run(settings: DiagnoseSettings, progress: Callable[[str], None] | None = None) -> dict:
    """Loads the run of ``settings`` (and ``settings.samples`` of its test
    images when the retention estimate is asked for) and runs :func:`diagnose`."""
    methods = settings.method_list
    if "retention_estimate" in methods:
        run = runs.load_run(settings.model_dir, settings.dataset, settings.data_dir)
        model, images = run.model, sample_images(run.dataset, settings.samples)
    else:
        model, images = runs.load_model(settings.model_dir), None
    report = diagnose(
        model, images, methods, layers=settings.layers, max_layers=settings.max_layers,
        exact_iterations=settings.exact_iterations, exact_tol=settings.exact_tol,
        rm_iterations=settings.rm_iterations, batch_size=settings.batch_size,
        progress=progress,
    )
    report["model_dir"] = os.path.abspath(settings.model_dir)
    return report
