"""Datasets as ``tf.data`` pipelines.

Every loader returns a :class:`Dataset`: the train and test pipelines
(batched, prefetched, images normalized) plus what a model needs to be built
for them. The default, ``digits``, is scikit-learn's offline 8×8 digits
(1,797 images), resized to 32×32, with a fixed held-out test split.

Example:
    >>> data = load_dataset("digits", batch_size=64, seed=0)
    >>> data.input_shape, data.num_classes, data.train_size, data.test_size
    ((32, 32, 1), 10, 1437, 360)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

DIGITS_SIZE = 32
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0  # the held-out split never moves with --seed


class DataError(ValueError):
    """A dataset that cannot be loaded as asked; the message names the fix."""


@dataclass
class Dataset:
    """Train and test pipelines and the facts a model is built from."""

    name: str
    train: tf.data.Dataset
    test: tf.data.Dataset
    input_shape: tuple[int, int, int]
    num_classes: int
    train_size: int
    test_size: int
    # Carved from the training data (never the test split) when asked for.
    validation: tf.data.Dataset | None = None
    validation_size: int = 0
    # Un-normalized test images (uint8, N×H×W×C) and labels, for robustness
    # evaluation; None where the test split does not fit in memory.
    test_arrays: tuple[np.ndarray, np.ndarray] | None = None
    normalize: Callable[[tf.Tensor], tf.Tensor] | None = None
    info: dict = field(default_factory=dict)


def standardizer(mean: np.ndarray, std: np.ndarray) -> Callable[[tf.Tensor], tf.Tensor]:
    """``x ↦ (x/255 − mean) / std`` per channel, for uint8 images."""
    mean = tf.constant(np.asarray(mean, np.float32))
    std = tf.constant(np.asarray(std, np.float32))

    def normalize(images: tf.Tensor) -> tf.Tensor:
        return (tf.cast(images, tf.float32) / 255.0 - mean) / std

    return normalize


def arrays_pipeline(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    normalize: Callable[[tf.Tensor], tf.Tensor],
    training: bool,
    seed: int,
    augment: Callable[[tf.Tensor, tf.Tensor], tf.Tensor] | None = None,
) -> tf.data.Dataset:
    """An in-memory uint8 array pipeline: shuffle (train), augment, normalize, batch."""
    ds = tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int32)))
    if training:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    if training and augment is not None:
        rng = tf.random.Generator.from_seed(seed)
        ds = ds.map(
            lambda x, y: (augment(x, rng.make_seeds(2)[0]), y),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    ds = ds.batch(batch_size, drop_remainder=False)
    ds = ds.map(lambda x, y: (normalize(x), y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def channel_statistics(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of uint8 images, on the [0, 1] scale."""
    scaled = images.astype(np.float64) / 255.0
    axes = tuple(range(images.ndim - 1))
    return scaled.mean(axis=axes), np.maximum(scaled.std(axis=axes), 1e-6)


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


def from_arrays(
    name: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    batch_size: int,
    seed: int,
    num_classes: int | None = None,
    augment: Callable[[tf.Tensor, tf.Tensor], tf.Tensor] | None = None,
    validation_fraction: float = 0.0,
) -> Dataset:
    """A :class:`Dataset` from uint8 arrays, normalized by train statistics.

    ``validation_fraction`` > 0 holds out that share of the training arrays
    (a fixed, seed-independent permutation) as ``validation``.
    """
    classes = num_classes or int(max(y_train.max(), y_test.max()) + 1)
    validation, x_val = None, ()
    if validation_fraction > 0:
        x_train, y_train, x_val, y_val = split_validation(x_train, y_train, validation_fraction)
    mean, std = channel_statistics(x_train)
    normalize = standardizer(mean, std)
    if len(x_val):
        validation = arrays_pipeline(x_val, y_val, batch_size, normalize, False, seed)
    return Dataset(
        name=name,
        train=arrays_pipeline(x_train, y_train, batch_size, normalize, True, seed, augment),
        test=arrays_pipeline(x_test, y_test, batch_size, normalize, False, seed),
        input_shape=tuple(int(d) for d in x_train.shape[1:]),
        num_classes=classes,
        train_size=len(x_train),
        test_size=len(x_test),
        test_arrays=(x_test, y_test),
        normalize=normalize,
        info={"mean": mean.tolist(), "std": std.tolist()},
        validation=validation,
        validation_size=len(x_val),
    )


def split_validation(images: np.ndarray, labels: np.ndarray, fraction: float):
    """``(x_train, y_train, x_val, y_val)``: the last ``fraction`` of a fixed
    permutation of the training arrays."""
    if not 0 < fraction < 1:
        raise DataError(f"the validation fraction must be in (0, 1), got {fraction}")
    order = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(images))
    cut = len(images) - max(1, int(round(fraction * len(images))))
    keep, held = order[:cut], order[cut:]
    return images[keep], labels[keep], images[held], labels[held]


def load_digits_dataset(
    batch_size: int, seed: int, validation_fraction: float = 0.0, **_
) -> Dataset:
    """scikit-learn's digits at 32×32×1, 1,437 train / 360 test images."""
    return from_arrays(
        "digits", *digits_arrays(), batch_size=batch_size, seed=seed,
        validation_fraction=validation_fraction,
    )


LOADERS: dict[str, Callable[..., Dataset]] = {"digits": load_digits_dataset}


def dataset_names() -> list[str]:
    return sorted(LOADERS)


def load_dataset(
    name: str,
    batch_size: int = 128,
    seed: int = 0,
    data_dir: str | None = None,
    validation_fraction: float = 0.0,
) -> Dataset:
    """Loads dataset ``name`` (see :data:`LOADERS`).

    Every loader takes ``batch_size``, ``seed``, ``data_dir``,
    ``validation_fraction`` and ``spec`` (the full name, e.g. ``npz:PATH``).
    """
    kind = name.split(":", 1)[0]
    if kind not in LOADERS:
        raise DataError(f"unknown dataset {name!r}; choose one of {dataset_names()}")
    return LOADERS[kind](
        batch_size=batch_size, seed=seed, data_dir=data_dir, spec=name,
        validation_fraction=validation_fraction,
    )
