"""``digits``, the offline default: scikit-learn's 8×8 digits (1,797 images),
resized to 16×16 (ResNet-20 maps of 16, 8 and 4), with a fixed held-out
test split of 20 %.

Example:
    >>> x_train, y_train, x_test, y_test = digits_arrays()
    >>> x_train.shape, x_test.shape, x_train.dtype
    ((1437, 16, 16, 1), (360, 16, 16, 1), dtype('uint8'))
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from lcr_larq.data.pipeline import Dataset, from_arrays
from lcr_larq.data.registry import DatasetRequest, DatasetSource, register_dataset

__all__ = [
    "DIGITS_SIZE",
    "DIGITS_SPLIT_SEED",
    "DIGITS_TEST_FRACTION",
    "Digits",
    "digits_arrays",
]

DIGITS_SIZE = 16
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0  # the held-out split never moves with --seed


def digits_arrays(size: int = DIGITS_SIZE):
    """scikit-learn's digits as uint8 images ``size``×``size``×1 and the fixed split.

    Returns ``(x_train, y_train, x_test, y_test)``.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0 * 255.0).astype(np.float32)[..., np.newaxis]
    images = tf.image.resize(images, (size, size), method="bilinear").numpy()
    images = np.clip(np.round(images), 0, 255).astype(np.uint8)
    x_train, x_test, y_train, y_test = train_test_split(
        images,
        digits.target.astype(np.int32),
        test_size=DIGITS_TEST_FRACTION,
        stratify=digits.target,
        random_state=DIGITS_SPLIT_SEED,
    )
    return x_train, y_train, x_test, y_test


@register_dataset
class Digits(DatasetSource):
    """scikit-learn's digits at 16×16×1 (or ``input_size``), 1,437 train / 360 test images."""

    name = "digits"
    description = "scikit-learn's 8x8 digits at 16x16 (offline; the default)"
    input_shape = (DIGITS_SIZE, DIGITS_SIZE, 1)
    num_classes = 10

    def load(self, request: DatasetRequest) -> Dataset:
        return from_arrays(
            "digits", *digits_arrays(request.input_size or DIGITS_SIZE),
            batch_size=request.batch_size, seed=request.seed,
            validation_split=request.validation_split,
        )
