"""The ``tf.data`` pipelines every dataset is served as, and the splits.

A loader (:mod:`lcr_larq.data.registry`) returns a :class:`Dataset`: the
train and test pipelines (batched, prefetched, images normalized) plus what a
model needs to be built for them — models are built from
``dataset.input_shape``.

Training data is drawn epoch by epoch (:meth:`Dataset.epochs`): epoch e is
shuffled with a seed made of ``seed`` and e, and every image is augmented
with a stateless seed made of that and its position, so any epoch can be
recreated without replaying the ones before it (a resumed run sees the same
data as an uninterrupted one).

Example:
    >>> x = np.zeros((10, 4, 4, 1), np.uint8)
    >>> y = np.array([0, 1] * 5)
    >>> data = from_arrays("mine", x[:8], y[:8], x[8:], y[8:], batch_size=4, seed=0)
    >>> data.input_shape, data.num_classes, data.steps_per_epoch
    ((4, 4, 1), 2, 2)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from lcr_larq.errors import DataError

__all__ = [
    "EPOCHS_END",
    "HOLDOUT_FRACTION",
    "SPLIT_SEED",
    "Dataset",
    "arrays_pipeline",
    "channel_statistics",
    "check_classes",
    "epoch_seed",
    "evaluation_batch_size",
    "from_arrays",
    "holdout_split",
    "reaches_every_replica",
    "standardizer",
    "training_epochs",
    "validation_count",
]

HOLDOUT_FRACTION = 0.2  # test share held out of data without a test split
SPLIT_SEED = 0  # held-out splits never move with --seed


@dataclass
class Dataset:
    """Train and test pipelines and the facts a model is built from."""

    name: str
    test: tf.data.Dataset
    input_shape: tuple[int, int, int]
    num_classes: int
    train_size: int
    test_size: int
    # Carved from the training data (never the test split) when asked for.
    validation: tf.data.Dataset | None = None
    validation_size: int = 0
    # Un-normalized validation images (uint8) and labels, when carved from arrays.
    validation_arrays: tuple[np.ndarray, np.ndarray] | None = None
    # Un-normalized test images (uint8, N×H×W×C) and labels, for robustness
    # evaluation; None where the test split does not fit in memory.
    test_arrays: tuple[np.ndarray, np.ndarray] | None = None
    normalize: Callable[[tf.Tensor], tf.Tensor] | None = None
    info: dict = field(default_factory=dict)
    # Training images as evaluated (no augmentation), in one fixed shuffled
    # order: what batch-normalization statistics are re-estimated from.
    calibration: tf.data.Dataset | None = None
    # One training epoch's batches from the epoch number (an int64 tensor).
    epoch: Callable[[tf.Tensor], tf.data.Dataset] | None = None
    batch_size: int = 0

    @property
    def train(self) -> tf.data.Dataset:
        """The batches of epoch 0: one pass over the training split."""
        return self.epoch(tf.constant(0, tf.int64)).prefetch(tf.data.AUTOTUNE)

    @property
    def steps_per_epoch(self) -> int:
        """Batches of one pass over the training split."""
        return max(1, math.ceil(self.train_size / max(self.batch_size, 1)))

    def epochs(self, first: int = 0, steps: int | None = None) -> tf.data.Dataset:
        """Training batches from epoch ``first`` on, without end: each epoch
        in its own seeded order (``steps`` batches of it, default all)."""
        def one(epoch):
            batches = self.epoch(epoch)
            return batches if steps is None else batches.take(steps)

        return tf.data.Dataset.range(first, EPOCHS_END).flat_map(one).prefetch(tf.data.AUTOTUNE)

    def for_replicas(self, replicas: int) -> Dataset:
        """This dataset with its validation and test splits batched for
        evaluation on ``replicas`` replicas (:func:`evaluation_batch_size`):
        every replica gets a sample of every batch."""

        def rebatch(ds: tf.data.Dataset | None, size: int) -> tf.data.Dataset | None:
            batch = evaluation_batch_size(size, self.batch_size, replicas)
            if ds is None or batch == self.batch_size:
                return ds
            return ds.unbatch().batch(batch).prefetch(tf.data.AUTOTUNE)

        return dataclasses.replace(
            self, validation=rebatch(self.validation, self.validation_size),
            test=rebatch(self.test, self.test_size),
        )


def evaluation_batch_size(size: int, batch_size: int, replicas: int) -> int:
    """The batch size to evaluate ``size`` examples with on ``replicas``
    replicas: ``batch_size``, or the largest smaller one (else the smallest
    larger one) whose last batch has a sample for every replica.

    Why: a strategy splits a short last batch of L samples over its replicas,
    evenly or ⌈L/R⌉ at a time (``tf.data``'s two rebatching routes), so a
    short one can leave a replica an empty batch; oneDNN's Conv2D (x86
    TensorFlow 2.19, seen on AVX-512 CPUs) returns an empty batch unchanged,
    with the input's channels, and the next layer fails. Accuracy, and the
    loss of a model without LCR, are means over samples: they do not depend
    on the batch size.

    Example:
        >>> evaluation_batch_size(145, 16, 2), evaluation_batch_size(360, 16, 2)
        (15, 16)
    """
    if replicas > 1 and size >= replicas:
        # Smaller first; larger when no smaller one is left (e.g. one sample a replica).
        for batch in (*range(batch_size, replicas - 1, -1), *range(batch_size + 1, size + 1)):
            if reaches_every_replica(size % batch, replicas):
                return batch
    return batch_size


def reaches_every_replica(last: int, replicas: int) -> bool:
    """Whether a last batch of ``last`` samples (0: none) gives each of
    ``replicas`` replicas a sample, split evenly or ⌈last/replicas⌉ at a time.

    Example:
        >>> reaches_every_replica(2, 2), reaches_every_replica(4, 3), reaches_every_replica(5, 3)
        (True, False, True)
    """
    return last == 0 or (replicas - 1) * math.ceil(last / replicas) < last


def standardizer(mean: np.ndarray, std: np.ndarray) -> Callable[[tf.Tensor], tf.Tensor]:
    """``x ↦ (x/255 − mean) / std`` per channel, for uint8 images."""
    mean = tf.constant(np.asarray(mean, np.float32))
    std = tf.constant(np.asarray(std, np.float32))

    def normalize(images: tf.Tensor) -> tf.Tensor:
        return (tf.cast(images, tf.float32) / 255.0 - mean) / std

    return normalize


# Far beyond any number of epochs: Dataset.epochs runs without end.
EPOCHS_END = 2**40


def epoch_seed(seed: int, epoch) -> tf.Tensor:
    """The shuffle and augmentation seed of one epoch (an int64 tensor).

    Example:
        >>> int(epoch_seed(3, 2))
        300011
    """
    return tf.cast(seed, tf.int64) * 100_003 + tf.cast(epoch, tf.int64)


def training_epochs(
    examples: tf.data.Dataset,
    size: int,
    batch_size: int,
    normalize: Callable[[tf.Tensor], tf.Tensor],
    seed: int,
    augment: Callable[[tf.Tensor, tf.Tensor], tf.Tensor] | None = None,
    block: int | None = None,
) -> Callable[[tf.Tensor], tf.data.Dataset]:
    """``epoch(e)``: epoch e of ``examples`` (image, label pairs, ``size`` of
    them), shuffled, augmented, batched and normalized, from stateless random
    ops only: the order is a random permutation of each ``block`` of
    consecutive examples (default: all of them) drawn from the seed
    ``[epoch_seed(seed, e), block index]``, and ``augment(image, seed)`` gets
    ``[epoch_seed(seed, e), position]``. So epoch e is the same whenever it is
    made, whatever came before it."""
    block = min(size, block or size)

    def permute(index, images, labels):
        keys = tf.random.stateless_uniform(tf.shape(labels)[:1], tf.stack([index[0], index[1]]))
        order = tf.argsort(keys, stable=True)
        return tf.gather(images, order), tf.gather(labels, order)

    def epoch(e: tf.Tensor) -> tf.data.Dataset:
        s = epoch_seed(seed, e)
        ds = examples.batch(block).enumerate().map(
            lambda k, pair: permute(tf.stack([s, k]), pair[0], pair[1])
        ).unbatch().apply(tf.data.experimental.assert_cardinality(size))
        if augment is not None:
            ds = ds.enumerate().map(
                lambda i, pair: (augment(pair[0], tf.stack([s, i])), pair[1]),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True,
            )
        ds = ds.batch(batch_size, drop_remainder=False)
        return ds.map(lambda x, y: (normalize(x), y), num_parallel_calls=tf.data.AUTOTUNE)

    return epoch


def arrays_pipeline(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    normalize: Callable[[tf.Tensor], tf.Tensor],
    seed: int = 0,
    shuffle_once: bool = False,
) -> tf.data.Dataset:
    """An in-memory uint8 array pipeline for evaluation: normalize, batch;
    ``shuffle_once`` shuffles the images into one fixed order, the same on
    every pass."""
    ds = tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int32)))
    if shuffle_once:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=False)
    ds = ds.batch(batch_size, drop_remainder=False)
    ds = ds.map(lambda x, y: (normalize(x), y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def channel_statistics(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of uint8 images, on the [0, 1] scale."""
    scaled = images.astype(np.float64) / 255.0
    axes = tuple(range(images.ndim - 1))
    return scaled.mean(axis=axes), np.maximum(scaled.std(axis=axes), 1e-6)


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
    validation_split: float = 0.0,
) -> Dataset:
    """A :class:`Dataset` from uint8 arrays, normalized by train statistics.

    ``validation_split`` > 0 holds out that share (below 1) or that number
    of the training images (see :func:`validation_count`), stratified by
    class and the same for every seed, as ``validation``.
    """
    # Checked even when the class count is given (an image folder's class folders).
    classes = max(check_classes(name, y_train, y_test), num_classes or 0)
    validation, x_val = None, ()
    if validation_split:
        fraction = validation_count(len(x_train), validation_split) / len(x_train)
        x_train, y_train, x_val, y_val = holdout_split(
            x_train, y_train, fraction, split="validation"
        )
    mean, std = channel_statistics(x_train)
    normalize = standardizer(mean, std)
    if len(x_val):
        validation = arrays_pipeline(x_val, y_val, batch_size, normalize)
    examples = tf.data.Dataset.from_tensor_slices((x_train, y_train.astype(np.int32)))
    epoch = training_epochs(examples, len(x_train), batch_size, normalize, seed, augment)
    return Dataset(
        name=name,
        epoch=epoch,
        batch_size=batch_size,
        test=arrays_pipeline(x_test, y_test, batch_size, normalize),
        input_shape=tuple(int(d) for d in x_train.shape[1:]),
        num_classes=classes,
        train_size=len(x_train),
        test_size=len(x_test),
        test_arrays=(x_test, y_test),
        normalize=normalize,
        info={"mean": mean.tolist(), "std": std.tolist()},
        validation=validation,
        validation_size=len(x_val),
        validation_arrays=(x_val, y_val) if len(x_val) else None,
        calibration=arrays_pipeline(
            x_train, y_train, batch_size, normalize, seed, shuffle_once=True
        ),
    )


def check_classes(name: str, y_train: np.ndarray, y_test: np.ndarray) -> int:
    """The number of classes K of integer labels, refusing what would train a
    meaningless model: fewer than two classes, a class 0..K−1 without any
    training image (e.g. labels that are not indices), test labels never seen
    in training.

    Example:
        >>> check_classes("mine", np.array([0, 1, 2, 1]), np.array([2, 0]))
        3
    """
    present = np.unique(y_train)
    classes = int(present.max()) + 1 if len(present) else 0
    if len(present) < 2:
        raise DataError(
            f"{name}: the training labels hold {len(present)} class: a classifier needs at "
            "least two"
        )
    if len(present) < classes:
        missing = sorted(set(range(min(classes, 10**6))) - set(present.tolist()))
        raise DataError(
            f"{name}: labels must be the class indices 0..K-1 with training images of each, "
            f"but {len(missing)} of 0..{classes - 1} have none (e.g. {missing[0]}): renumber "
            "the labels"
        )
    unseen = sorted(set(np.unique(y_test).tolist()) - set(present.tolist()))
    if unseen:
        raise DataError(
            f"{name}: test labels {unseen[:5]} never occur in the training labels: every "
            "test class needs training images"
        )
    return classes


def validation_count(total: int, split: float) -> int:
    """Images of ``total`` training images held out by ``--validation-split``:
    a share of them for ``0 < split < 1``, that many for a whole ``split >= 1``.

    Example:
        >>> validation_count(50_000, 10_000), validation_count(1437, 0.1)
        (10000, 144)
    """
    if not split > 0 or (split >= 1 and float(split) != int(split)):
        raise DataError(
            f"--validation-split must be a share in (0, 1) or a whole number of images, "
            f"got {split}"
        )
    count = int(split) if split >= 1 else int(round(split * total))
    if not 1 <= count < total:
        raise DataError(
            f"--validation-split {split:g} holds out {count} of {total} training images: "
            "choose a share or a number that leaves both splits non-empty"
        )
    return count


def holdout_split(
    images: np.ndarray,
    labels: np.ndarray,
    fraction: float = HOLDOUT_FRACTION,
    seed: int = SPLIT_SEED,
    split: str = "test",
):
    """``(x_train, y_train, x_held, y_held)``: a stratified held-out split
    (the ``test`` split, or the ``validation`` split of the training data).

    From every class with at least two images, ``round(fraction · n)`` images
    (at least one, never all) chosen by a fixed seed are held out; both
    splits keep the original order.

    Example:
        >>> x, y = np.zeros((10, 2, 2, 1), np.uint8), np.array([0] * 5 + [1] * 5)
        >>> _, y_train, _, y_test = holdout_split(x, y, 0.2)
        >>> sorted(y_test.tolist()), len(y_train)
        ([0, 1], 8)
    """
    rng = np.random.default_rng(seed)
    held = np.zeros(len(labels), bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < 2:
            continue
        count = min(len(members) - 1, max(1, int(round(fraction * len(members)))))
        held[rng.permutation(members)[:count]] = True
    if not held.any():
        fix = {
            "test": "give one (folder: PATH/train and PATH/test; npz: x_test and y_test)",
            "validation": "pass --validation-split 0",
        }[split]
        raise DataError(f"too few images per class to hold out a {split} split: {fix}")
    return images[~held], labels[~held], images[held], labels[held]
