"""The retention estimate of every block: σ of the LCR retention matrix, measured.

:func:`retention_sigmas` runs test images through a BNN's binary path
(inference mode) and its latent full-precision path
(:func:`lcr_larq.graph.full_precision_path`) and gives, per block, the mean
``sigma_RM`` of both paths and their ratio (what LCR pulls towards 1), with
the layers each block holds (:func:`block_layer_names`). The same paths
give the activations entering a block (:func:`block_activations`) and the
latent weights (:func:`latent_weights`) that ``lcr-plots`` draws.

Example:
    >>> from models import build_model
    >>> model = build_model("resnet20", (8, 8, 1), 10)
    >>> block_layer_names(model, find_blocks(model)[0])[:2]
    ['block1_conv1', 'block1_bn1']
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import tensorflow as tf

from lcr_larq import spectral
from lcr_larq.errors import ConfigError, RunError
from lcr_larq.graph import as_float32, find_blocks, full_precision_path
from lcr_larq.quantizers import quantized_convolutions
from lcr_larq.training import runs

__all__ = [
    "block_activations",
    "block_layer_names",
    "latent_weights",
    "retention_sigmas",
    "sample_images",
]


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
    the last one) for ``images``, binary path in inference mode (a model
    trained under a mixed-precision policy: of its float32 copy)."""

    model = as_float32(model)
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
    per-sample ratio, and the seconds the power iterations took. A model
    trained under a mixed-precision policy is measured as its float32 copy
    (:func:`~lcr_larq.graph.as_float32`), as LCR measures it in float32.

    Example:
        >>> from models import build_model
        >>> model = build_model("resnet20", (16, 16, 1), 10)
        >>> rows = retention_sigmas(model, np.random.rand(4, 16, 16, 1), iterations=10)
        >>> len(rows), sorted(rows[0])[:3]
        (9, ['block', 'forward_seconds', 'layers'])
    """

    model = as_float32(model)
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
