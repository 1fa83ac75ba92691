"""The empirical local Lipschitz constant of a deployed BNN, through the straight-through view.

A BNN's own input gradient is 0 almost everywhere and its jumps are
unbounded, so its local Lipschitz constant is measured on the network the
attacks differentiate (:mod:`lcr_larq.attack_view`): its forward pass, with
the straight-through gradient through every activation binarizer. The
largest norm of the input gradient of the logit margin over test images is
what ``lcr-diagnose`` puts beside the product of the exact per-layer norms
(:func:`lcr_larq.diagnostics.report.network_lipschitz`).
"""

from __future__ import annotations

import numpy as np

from lcr_larq.attack_view import AttackTarget, batch_slices, checked_batch_size, checked_pixels
from lcr_larq.errors import UserError

__all__ = ["empirical_lipschitz"]


def empirical_lipschitz(
    target: AttackTarget,
    images,
    labels,
    max_samples: int | None = None,
    batch_size: int = 256,
) -> dict:
    """The input gradient of the logit margin ``m = f_y − max_{j≠y} f_j``
    (through the STE view) over test images: an empirical local Lipschitz
    estimate of the deployed network.

    * ``l2_input_max`` (and ``_mean``): ‖∂m/∂z‖₂ with respect to the model's
      input z (the normalized image), to compare with the product of the
      per-layer spectral norms (:mod:`lcr_larq.diagnostics.report`). The STE
      gradient is a product of the layers' matrices and 0/1 masks, so for a
      plain chain of layers (BN scales included) that product times
      ``‖e_y − e_j‖₂ = √2`` bounds it; residual blocks add their shortcuts.
    * ``l1_pixel_max`` (and ``_mean``): ‖∂m/∂x‖₁ with respect to pixel
      levels x; to first order an L∞ attack of ε levels changes the margin by
      at most ``ε·‖∂m/∂x‖₁`` (so ``margin / ‖∂m/∂x‖₁`` levels flip a sample).
    * ``argmax_sample``: the index of the image with the largest L2 value;
      ``margin_mean``: the mean margin.

    Example (a linear model: the gradient is ``w_y − w_j`` everywhere):
        >>> import tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(
        ...     2, use_bias=False, kernel_initializer=tf.keras.initializers.Constant(
        ...     [[1.0, -2.0], [3.0, 1.0]]))])
        >>> out = empirical_lipschitz(AttackTarget(model, lambda x: x), [[5.0, 5.0]], [0])
        >>> round(out["l2_input_max"] ** 2, 9), out["l1_pixel_max"]  # w_0 − w_1 = (3, 2)
        (13.0, 5.0)
    """
    images, labels = checked_pixels(images, labels, max_samples)
    batch_size = checked_batch_size(batch_size)
    if not len(images):
        raise UserError("no images to estimate the Lipschitz constant on")
    margins, l2_input, l1_pixel = [], [], []
    for part in batch_slices(len(images), batch_size):
        margin, by_pixel, by_input = target.margin_gradients(images[part], labels[part])
        count = len(margin)
        margins.append(margin)
        l2_input.append(np.linalg.norm(by_input.reshape(count, -1).astype(np.float64), axis=1))
        l1_pixel.append(np.abs(by_pixel.reshape(count, -1).astype(np.float64)).sum(axis=1))
    l2, l1 = np.concatenate(l2_input), np.concatenate(l1_pixel)
    return {
        "samples": len(l2),
        "l2_input_max": float(l2.max()),
        "l2_input_mean": float(l2.mean()),
        "l1_pixel_max": float(l1.max()),
        "l1_pixel_mean": float(l1.mean()),
        "argmax_sample": int(np.argmax(l2)),
        "margin_mean": float(np.mean(np.concatenate(margins))),
    }
