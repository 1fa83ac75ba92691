"""Batch-normalization statistics of the final weights.

During training a BN layer's moving mean and variance are exponential
averages over past batches, so they lag the weights of the last epochs. With
sign activations a small shift of a BN mean flips many units: statistics that
do not describe the final weights can cost tens of points of test accuracy.
:func:`recalibrate_batchnorm` replaces them by an exact average over training
batches of the final network (PyTorch's ``swa_utils.update_bn`` idea: every
BN normalizes by its batch's statistics while the statistics are gathered).

Example:
    >>> import numpy as np, tensorflow as tf
    >>> inputs = tf.keras.Input((3,))
    >>> bn = tf.keras.layers.BatchNormalization()
    >>> model = tf.keras.Model(inputs, bn(inputs))
    >>> x = np.random.default_rng(0).normal(2.0, 3.0, (64, 3)).astype("float32")
    >>> report = recalibrate_batchnorm(model, [x[:32], x[32:]])
    >>> report["layers"], report["batches"], report["samples"]
    (1, 2, 64)
    >>> bool(np.allclose(bn.moving_mean.numpy(), x.mean(axis=0), atol=1e-5))
    True
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import tensorflow as tf

from lcr_larq import graph

__all__ = [
    "combine_moments",
    "recalibrate",
    "recalibrate_batchnorm",
]


def combine_moments(
    first: tuple[float, np.ndarray, np.ndarray], second: tuple[float, np.ndarray, np.ndarray]
) -> tuple[float, np.ndarray, np.ndarray]:
    """``(count, mean, M2)`` of two disjoint sets from theirs (Chan et al.,
    1979): exact and stable, where ``M2`` is the sum of squared deviations from
    the mean (variance ``M2 / count``).

    Example:
        >>> a, b = np.array([1.0, 2.0]), np.array([4.0, 7.0, 9.0])
        >>> n, mean, m2 = combine_moments((2, a.mean(), a.var() * 2), (3, b.mean(), b.var() * 3))
        >>> both = np.concatenate([a, b])
        >>> n, bool(np.isclose(mean, both.mean())), bool(np.isclose(m2 / n, both.var()))
        (5, True, True)
    """
    n_a, mean_a, m2_a = first
    n_b, mean_b, m2_b = second
    if not n_a:
        return second
    n = n_a + n_b
    delta = mean_b - mean_a
    return n, mean_a + delta * (n_b / n), m2_a + m2_b + delta**2 * (n_a * n_b / n)


def _batch_images(batch):
    """The images of a batch given as images or as an ``(images, labels)`` pair."""
    return batch[0] if isinstance(batch, tuple | list) else batch


def recalibrate_batchnorm(
    model: tf.keras.Model, batches: Iterable, max_batches: int | None = None
) -> dict:
    """Sets the moving mean and variance of every ``BatchNormalization`` of
    ``model`` to the exact mean and (biased) variance of its inputs over
    ``batches``.

    Args:
        model: a functional Keras model (a training model with LCR attached
            is stripped first, so the reference path and a teacher are left
            alone). Its layers are updated in place.
        batches: training images, batch by batch (or ``(images, labels)``
            pairs, e.g. a ``tf.data.Dataset``), without augmentation.
        max_batches: use at most this many batches.

    Every BN normalizes by its current batch's statistics while they are
    gathered (so a layer's inputs do not depend on the old statistics of the
    layers before it); everything else runs in inference mode.

    Returns:
        ``{"layers": …, "batches": …, "samples": …}``: how many BN layers were
        set, from how many batches and images.
    """
    model = graph.strip_lcr(model)
    layers: list[tf.keras.layers.BatchNormalization] = []

    @tf.function
    def batch_moments(images):
        found = graph.batchnorm_inputs(model, images)
        layers[:] = [layer for layer, _ in found]
        moments = []
        for layer, x in found:
            axes = [i for i in range(x.shape.rank) if i not in layer.axis]
            # 16-bit activations (a mixed-precision policy): their statistics
            # in float32, as the layer keeps them.
            mean, variance = tf.nn.moments(tf.cast(x, layer.moving_mean.dtype), axes=axes)
            count = tf.reduce_prod(tf.gather(tf.shape(x), axes))
            moments.append((count, mean, variance))
        return moments

    totals: dict[int, tuple] = {}
    used = samples = 0
    traced = None
    for batch in batches:
        if max_batches is not None and used >= max_batches:
            break
        images = tf.convert_to_tensor(_batch_images(batch))
        if traced is None:  # one trace for every batch size (the last is often smaller)
            traced = batch_moments.get_concrete_function(
                tf.TensorSpec([None, *images.shape[1:]], images.dtype))
        moments = traced(images)
        for layer, (count, mean, variance) in zip(layers, moments, strict=True):
            n = int(count)
            current = (n, mean.numpy().astype(np.float64), variance.numpy().astype(np.float64) * n)
            totals[id(layer)] = combine_moments(totals.get(id(layer), (0, 0.0, 0.0)), current)
        used += 1
        samples += int(tf.shape(images)[0])
    if not used:
        raise ValueError("no batches to re-estimate the batch-normalization statistics from")
    distinct = {id(layer): layer for layer in layers}
    for key, layer in distinct.items():
        n, mean, m2 = totals[key]
        layer.moving_mean.assign(mean.astype(np.float32))
        layer.moving_variance.assign((m2 / n).astype(np.float32))
    return {"layers": len(distinct), "batches": used, "samples": samples}


def recalibrate(model: tf.keras.Model, dataset, batches: int) -> dict | None:
    """:func:`recalibrate_batchnorm` on ``batches`` batches of a
    :class:`~lcr_larq.data.Dataset`'s calibration pipeline (training images
    without augmentation, one fixed order); None when ``batches`` is 0 or the
    dataset has no such pipeline."""
    if not batches or getattr(dataset, "calibration", None) is None:
        return None
    return recalibrate_batchnorm(model, dataset.calibration, max_batches=batches)
