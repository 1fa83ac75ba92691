"""Datasets as ``tf.data`` pipelines.

Every loader returns a :class:`Dataset`: the train and test pipelines
(batched, prefetched, images normalized) plus what a model needs to be built
for them — models are built from ``dataset.input_shape``. Loaders:

* ``digits`` (default, offline): scikit-learn's 8×8 digits (1,797 images),
  resized to 16×16 (ResNet-20 maps of 16, 8 and 4), with a fixed held-out test split.
* ``cifar10``, ``cifar100`` (TFDS): pad-4 random crop + horizontal flip on
  train, per-channel normalization by the training-set statistics.
* ``imagenet2012`` (TFDS, manual download): random-resized crop to 224 +
  flip on train; shorter side 256, central 224 crop for evaluation.
* ``npz:PATH`` — your arrays; ``folder:PATH`` — your images, one sub-folder per
  class. Without a test split a stratified 20 % is held out (fixed seed).

Training data is drawn epoch by epoch (:meth:`Dataset.epochs`): epoch e is
shuffled with a seed made of ``seed`` and e, and every image is augmented
with a stateless seed made of that and its position, so any epoch can be
recreated without replaying the ones before it (a resumed run sees the same
data as an uninterrupted one).

Example:
    >>> data = load_dataset("digits", batch_size=64, seed=0)
    >>> data.input_shape, data.num_classes, data.train_size, data.test_size
    ((16, 16, 1), 10, 1437, 360)
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from lcr_larq.errors import DataError

DIGITS_SIZE = 16
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0  # the held-out split never moves with --seed
HOLDOUT_FRACTION = 0.2  # test share held out of npz:/folder: data without a test split

# Per-channel statistics on the [0, 1] scale. CIFAR: mean and standard
# deviation over every pixel of the training split (50,000 images); IR-Net's
# code divides by (0.2023, 0.1994, 0.2010) instead, a mean of per-image
# deviations. ImageNet: the values every ImageNet codebase uses.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
CIFAR_STATISTICS = {
    "cifar10": (CIFAR10_MEAN, CIFAR10_STD),
    "cifar100": (CIFAR100_MEAN, CIFAR100_STD),
}
CIFAR_SIZE = 32
CIFAR_PAD = 4
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGENET_SIZE = 224  # crop size
IMAGENET_RESIZE = 256  # evaluation: shorter side, for a 224 crop
IMAGENET_SHUFFLE_BUFFER = 10_000  # examples shuffled together (one block)
IMAGENET_ARCHIVES = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")
IMAGE_EXTENSIONS = (
    ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm",
)


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


@dataclass(frozen=True)
class DatasetRequest:
    """What :func:`load_dataset` passes to a loader of :data:`LOADERS`."""

    spec: str  #: the full name, e.g. ``npz:PATH``
    batch_size: int  #: the global batch
    seed: int
    data_dir: str | None = None
    validation_split: float = 0.0
    input_size: int | None = None  #: resize to a square size; ImageNet's crop size

    @property
    def kind(self) -> str:
        """The loader's name: ``npz`` for ``npz:PATH``."""
        return self.spec.split(":", 1)[0]


def load_digits_dataset(request: DatasetRequest) -> Dataset:
    """scikit-learn's digits at 16×16×1 (or ``input_size``), 1,437 train / 360 test images."""
    return from_arrays(
        "digits", *digits_arrays(request.input_size or DIGITS_SIZE),
        batch_size=request.batch_size, seed=request.seed,
        validation_split=request.validation_split,
    )


# ---------------------------------------------------------------------------
# Deterministic per-element randomness for parallel maps.


def pad_crop_flip(image: tf.Tensor, seed: tf.Tensor, pad: int = CIFAR_PAD) -> tf.Tensor:
    """CIFAR augmentation: zero-pad ``pad`` pixels, random crop back, random flip.

    Example:
        >>> image = tf.cast(tf.reshape(tf.range(16), (4, 4, 1)), tf.uint8)
        >>> out = pad_crop_flip(image, tf.constant([1, 2]), pad=1)
        >>> out.shape, out.dtype
        (TensorShape([4, 4, 1]), tf.uint8)
    """
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    shape = image.shape if image.shape.is_fully_defined() else tf.shape(image)
    padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
    image = tf.image.stateless_random_crop(padded, shape, seed=crop_seed)
    return tf.image.stateless_random_flip_left_right(image, seed=flip_seed)


def _to_uint8(images: tf.Tensor) -> tf.Tensor:
    return tf.cast(tf.clip_by_value(tf.round(images), 0.0, 255.0), tf.uint8)


def resize_image(image: tf.Tensor, size: int) -> tf.Tensor:
    """A uint8 image (or batch) resized to ``size``×``size``, bilinear, still uint8."""
    spatial = image.shape[-3:-1]
    if spatial == (size, size):
        return image
    return _to_uint8(tf.image.resize(tf.cast(image, tf.float32), (size, size)))


def resize_images(images: np.ndarray, size: int, chunk: int = 1024) -> np.ndarray:
    """uint8 arrays N×H×W×C resized to N×``size``×``size``×C (bilinear).

    Example:
        >>> resize_images(np.full((2, 8, 8, 1), 7, np.uint8), 4).shape
        (2, 4, 4, 1)
    """
    if images.shape[1:3] == (size, size):
        return images
    parts = [
        resize_image(tf.constant(images[i : i + chunk]), size).numpy()
        for i in range(0, len(images), chunk)
    ]
    return np.concatenate(parts) if parts else images[:, :size, :size]


def _image_shape(encoded: tf.Tensor) -> tf.Tensor:
    """Height, width, channels of an encoded image, without decoding a JPEG."""
    return tf.cond(
        tf.io.is_jpeg(encoded),
        lambda: tf.image.extract_jpeg_shape(encoded),
        lambda: tf.shape(tf.io.decode_image(encoded, channels=3, expand_animations=False)),
    )


def _decode_window(encoded: tf.Tensor, window: tf.Tensor) -> tf.Tensor:
    """Decodes only ``window`` = [y, x, height, width] of an encoded image (RGB)."""

    def other():
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        return tf.image.crop_to_bounding_box(image, window[0], window[1], window[2], window[3])

    return tf.cond(
        tf.io.is_jpeg(encoded),
        lambda: tf.image.decode_and_crop_jpeg(encoded, window, channels=3),
        other,
    )


def random_resized_crop(encoded: tf.Tensor, seed: tf.Tensor, size: int = IMAGENET_SIZE):
    """ImageNet training view: a random crop of 8–100 % of the area and aspect
    ratio 3/4–4/3, resized to ``size``×``size`` (bilinear), randomly flipped.

    ``encoded`` is a JPEG (only the crop is decoded) or any image tf.io decodes.
    """
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    begin, extent, _ = tf.image.stateless_sample_distorted_bounding_box(
        _image_shape(encoded),
        bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], shape=(1, 1, 4)),
        seed=crop_seed,
        min_object_covered=0.0,
        aspect_ratio_range=(3 / 4, 4 / 3),
        area_range=(0.08, 1.0),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    window = tf.stack([begin[0], begin[1], extent[0], extent[1]])
    image = tf.image.resize(tf.cast(_decode_window(encoded, window), tf.float32), (size, size))
    image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
    return tf.ensure_shape(_to_uint8(image), (size, size, 3))


def resize_center_crop(encoded: tf.Tensor, size: int = IMAGENET_SIZE) -> tf.Tensor:
    """ImageNet evaluation view: the shorter side resized to ``size``·256/224
    (bilinear, aspect kept), then the central ``size``×``size`` crop."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    short = int(round(size * IMAGENET_RESIZE / IMAGENET_SIZE))
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    scale = short / tf.cast(tf.minimum(height, width), tf.float64)
    new_height = tf.maximum(short, tf.cast(tf.round(tf.cast(height, tf.float64) * scale), tf.int32))
    new_width = tf.maximum(short, tf.cast(tf.round(tf.cast(width, tf.float64) * scale), tf.int32))
    image = tf.image.resize(tf.cast(image, tf.float32), tf.stack([new_height, new_width]))
    top, left = (new_height - size) // 2, (new_width - size) // 2
    image = tf.image.crop_to_bounding_box(image, top, left, size, size)
    return tf.ensure_shape(_to_uint8(image), (size, size, 3))


# ---------------------------------------------------------------------------
# TFDS datasets: cifar10, cifar100, imagenet2012.


def tfds_builder(name: str, data_dir: str | None = None):
    """The TFDS builder of ``name``, prepared (downloaded or built) if needed.

    ``data_dir`` is an existing TFDS data directory; for ``imagenet2012`` it
    may instead hold the manually downloaded ``ILSVRC2012_img_train.tar`` and
    ``ILSVRC2012_img_val.tar`` (directly or in ``downloads/manual``).
    Raises :class:`DataError` naming the fix when neither works.
    """
    import tensorflow_datasets as tfds

    if data_dir is not None:
        data_dir = os.path.expanduser(data_dir)
        if not os.path.isdir(data_dir):
            raise DataError(
                f"--data-dir {data_dir} does not exist: give an existing TFDS data "
                "directory, or leave it out to use ~/tensorflow_datasets"
            )
    where = data_dir or "~/tensorflow_datasets"
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:  # TFDS raises many kinds for a broken directory
        raise DataError(
            f"cannot open {name} in {where} ({type(error).__name__}): check --data-dir"
        ) from None
    config = None
    manual = None
    if name == "imagenet2012":
        manual = _imagenet_manual_dir(data_dir)
        config = tfds.download.DownloadConfig(manual_dir=manual)
    try:
        builder.download_and_prepare(download_config=config)  # no-op when prepared
    except Exception as error:
        if name == "imagenet2012":
            raise DataError(
                f"imagenet2012 is not prepared in {where} and {' and '.join(IMAGENET_ARCHIVES)} "
                f"are not in {manual or where + '/downloads/manual'}: download them from "
                "https://image-net.org and pass --data-dir DIR holding them"
            ) from None
        raise DataError(
            f"{name} is not in {where} and cannot be downloaded ({type(error).__name__}): "
            f"run `tfds build {name} --data_dir DIR` where there is network, then "
            "pass --data-dir DIR"
        ) from None
    return builder


def _imagenet_manual_dir(data_dir: str | None) -> str | None:
    if data_dir is None:
        return None
    for candidate in (data_dir, os.path.join(data_dir, "downloads", "manual")):
        if all(os.path.isfile(os.path.join(candidate, f)) for f in IMAGENET_ARCHIVES):
            return candidate
    return os.path.join(data_dir, "downloads", "manual")


def _carve_splits(builder, split: str, validation_split: float) -> tuple[str, str | None]:
    """(train split, validation split) TFDS split strings: the validation split
    is the last share or number of images of ``split`` (see
    :func:`validation_count`; a fixed slice, the same every run)."""
    if not validation_split:
        return split, None
    try:
        total = int(builder.info.splits[split].num_examples)
    except (KeyError, ValueError, TypeError):
        total = 0
    if total:
        cut = total - validation_count(total, validation_split)
        return f"{split}[:{cut}]", f"{split}[{cut}:]"
    if validation_split >= 1:
        raise DataError(
            f"the size of {builder.info.name}'s {split} split is unknown: give "
            "--validation-split as a share in (0, 1)"
        )
    percent = max(1, int(round(100 * validation_split)))
    return f"{split}[:{100 - percent}%]", f"{split}[{100 - percent}%:]"


def _num_examples(ds: tf.data.Dataset) -> int:
    count = int(tf.data.experimental.cardinality(ds))
    if count >= 0:
        return count
    return int(ds.reduce(np.int64(0), lambda n, _: n + 1))


def _finish(ds: tf.data.Dataset, batch_size: int, normalize) -> tf.data.Dataset:
    """Batch, normalize the whole batch at once, prefetch."""
    ds = ds.batch(batch_size, drop_remainder=False)
    ds = ds.map(lambda x, y: (normalize(x), y), num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = True
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def _materialize(ds: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """All (image, label) pairs of a small dataset as numpy arrays."""
    images, labels = [], []
    for x, y in ds.batch(4096):
        images.append(x.numpy())
        labels.append(y.numpy())
    if not images:
        raise DataError("the split holds no examples: check --data-dir")
    return np.concatenate(images), np.concatenate(labels).astype(np.int32)


def _tfds_facts(builder, epoch, batch_size: int, size: int, train_size: int) -> dict:
    """The :class:`Dataset` fields that a TFDS loader fills alike."""
    return dict(
        name=builder.info.name, epoch=epoch, batch_size=batch_size, input_shape=(size, size, 3),
        num_classes=int(builder.info.features["label"].num_classes), train_size=train_size,
    )


def load_cifar_dataset(request: DatasetRequest) -> Dataset:
    """CIFAR-10 or CIFAR-100 from TFDS with the paper's augmentation.

    Train: uint8 images in memory, shuffled anew every epoch, zero-pad 4 + random
    32×32 crop + horizontal flip, per-channel normalization by the fixed
    training-set statistics (:data:`CIFAR10_MEAN` …). Test: normalization
    only, from in-memory arrays (also ``test_arrays``). ``input_size`` resizes
    every image first (bilinear).
    """
    import tensorflow_datasets as tfds

    batch_size, seed, size = request.batch_size, request.seed, request.input_size or CIFAR_SIZE
    name = request.kind
    builder = tfds_builder(name, request.data_dir)
    mean, std = CIFAR_STATISTICS[name]
    normalize = standardizer(mean, std)
    read = tfds.ReadConfig(try_autocache=False)

    def split(name_: str) -> tf.data.Dataset:
        ds = builder.as_dataset(
            split=name_, as_supervised=True, shuffle_files=False, read_config=read
        )
        return ds.map(lambda x, y: (x, tf.cast(y, tf.int32)), num_parallel_calls=tf.data.AUTOTUNE)

    def resized(ds: tf.data.Dataset) -> tf.data.Dataset:
        return ds.map(lambda x, y: (resize_image(x, size), y), num_parallel_calls=tf.data.AUTOTUNE)

    train_split, validation_split = _carve_splits(builder, "train", request.validation_split)
    # In memory, as uint8: 150 MB for CIFAR's 50,000 training images.
    x_train, y_train = _materialize(resized(split(train_split)))
    train_size = len(y_train)
    examples = tf.data.Dataset.from_tensor_slices((x_train, y_train))
    epoch = training_epochs(
        examples, train_size, batch_size, normalize, seed, augment=pad_crop_flip
    )
    x_test, y_test = _materialize(resized(split("test")))
    validation, validation_size, validation_arrays = None, 0, None
    if validation_split:
        validation_arrays = _materialize(resized(split(validation_split)))
        validation_size = len(validation_arrays[1])
        validation = arrays_pipeline(*validation_arrays, batch_size, normalize)
    return Dataset(
        **_tfds_facts(builder, epoch, batch_size, size, train_size),
        test=arrays_pipeline(x_test, y_test, batch_size, normalize),
        test_size=len(x_test),
        validation=validation,
        validation_size=validation_size,
        validation_arrays=validation_arrays,
        test_arrays=(x_test, y_test),
        normalize=normalize,
        info={"mean": list(mean), "std": list(std), "source": "tfds", "augment": "pad-crop-flip"},
        calibration=arrays_pipeline(
            x_train, y_train, batch_size, normalize, seed, shuffle_once=True
        ),
    )


def load_imagenet_dataset(request: DatasetRequest) -> Dataset:
    """ImageNet (ILSVRC 2012) from TFDS, streamed: nothing of it is cached.

    Train: files read in a seeded shuffled order, a 10,000-image shuffle
    buffer, random-resized crop to ``input_size`` (default 224; only the crop
    of each JPEG is decoded) and a horizontal flip. Test (the validation
    split): shorter side resized to ``input_size``·256/224, central crop.
    Both normalized by :data:`IMAGENET_MEAN` and :data:`IMAGENET_STD`.
    """
    import tensorflow_datasets as tfds

    batch_size, seed = request.batch_size, request.seed
    builder = tfds_builder("imagenet2012", request.data_dir)
    size = request.input_size or IMAGENET_SIZE
    normalize = standardizer(IMAGENET_MEAN, IMAGENET_STD)
    decoders = {"image": tfds.decode.SkipDecoding()}

    def split(name_: str, training: bool) -> tf.data.Dataset:
        read = tfds.ReadConfig(shuffle_seed=seed, try_autocache=False)
        return builder.as_dataset(
            split=name_, as_supervised=True, shuffle_files=training,
            decoders=decoders, read_config=read,
        )

    def evaluation(ds: tf.data.Dataset) -> tf.data.Dataset:
        ds = ds.map(
            lambda x, y: (resize_center_crop(x, size), tf.cast(y, tf.int32)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        return _finish(ds, batch_size, normalize)

    train_split, validation_split = _carve_splits(builder, "train", request.validation_split)
    train = split(train_split, training=True)  # files in one seeded order
    train_size = _num_examples(train)
    epoch = training_epochs(
        train.map(lambda x, y: (x, tf.cast(y, tf.int32))), train_size, batch_size, normalize,
        seed, augment=lambda x, s: random_resized_crop(x, s, size),
        block=IMAGENET_SHUFFLE_BUFFER,
    )
    test = split("validation", training=False)
    validation, validation_size = None, 0
    if validation_split:
        validation = split(validation_split, training=False)
        validation_size = _num_examples(validation)
        validation = evaluation(validation)
    return Dataset(
        **_tfds_facts(builder, epoch, batch_size, size, train_size),
        test=evaluation(test),
        test_size=_num_examples(test),
        validation=validation,
        validation_size=validation_size,
        normalize=normalize,
        info={
            "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "source": "tfds",
            "augment": "random-resized-crop-flip",
        },
        # The evaluation view of training images, files in a seeded order.
        calibration=evaluation(split(train_split, training=True)),
    )


# ---------------------------------------------------------------------------
# Your own data: npz:PATH and folder:PATH.


def _path_of(spec: str) -> str:
    kind, _, path = spec.partition(":")
    if not path:
        raise DataError(f"--dataset {kind}: needs a path, e.g. --dataset {kind}:/data/mine")
    return os.path.expanduser(path)


def _check_images(where: str, key: str, images: np.ndarray) -> np.ndarray:
    if images.ndim == 3:  # N×H×W: grayscale
        images = images[..., np.newaxis]
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or not len(images):
        raise DataError(
            f"{where}: {key} has shape {images.shape}; it must be N×H×W×C images with "
            "C = 1 or 3 (and N ≥ 1)"
        )
    if images.dtype != np.uint8:
        integral = np.issubdtype(images.dtype, np.integer)
        if not integral or images.min() < 0 or images.max() > 255:
            raise DataError(
                f"{where}: {key} is {images.dtype}; save uint8 pixels 0–255 "
                "(e.g. (x * 255).round().astype('uint8') for images in [0, 1])"
            )
        images = images.astype(np.uint8)
    return images


def _check_labels(where: str, key: str, labels: np.ndarray, count: int) -> np.ndarray:
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or len(labels) != count:
        raise DataError(
            f"{where}: {key} has shape {labels.shape}; it must hold one integer label "
            f"per image ({count},)"
        )
    if not np.issubdtype(labels.dtype, np.integer) or (count and labels.min() < 0):
        raise DataError(
            f"{where}: {key} must be integer class indices >= 0, got {labels.dtype}"
            + (f" with minimum {labels.min()}" if np.issubdtype(labels.dtype, np.number) else "")
        )
    return labels.astype(np.int32)


def read_npz(path: str):
    """``(x, y, x_test, y_test)`` of an ``.npz`` file; the test pair is ``(None, None)``
    when the file has none.

    The file holds ``x`` (N×H×W×C uint8, C = 1 or 3; N×H×W is read as
    grayscale) and ``y`` (N integer labels), and optionally ``x_test`` and
    ``y_test``. ``x_train``/``y_train`` are accepted for ``x``/``y``.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "mine.npz")
        >>> np.savez(path, x=np.zeros((4, 5, 6), np.uint8), y=np.arange(4))
        >>> x, y, x_test, y_test = read_npz(path)
        >>> x.shape, y.tolist(), x_test
        ((4, 5, 6, 1), [0, 1, 2, 3], None)
    """
    where = f"npz:{path}"
    if not os.path.isfile(path):
        raise DataError(f"{where} does not exist: give a .npz file with arrays x and y")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except Exception as error:  # numpy raises many kinds for a bad file
        raise DataError(
            f"{where} is not a readable .npz file ({type(error).__name__}): write it with "
            "numpy.savez(path, x=images, y=labels)"
        ) from None
    x_key = "x" if "x" in arrays else "x_train"
    y_key = "y" if "y" in arrays else "y_train"
    if x_key not in arrays or y_key not in arrays:
        raise DataError(
            f"{where} holds arrays {sorted(arrays)}; it needs x (images) and y (labels), "
            "and optionally x_test and y_test"
        )
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise DataError(f"{where}: give both x_test and y_test, or neither")
    x = _check_images(where, x_key, arrays[x_key])
    y = _check_labels(where, y_key, arrays[y_key], len(x))
    x_test = y_test = None
    if "x_test" in arrays:
        x_test = _check_images(where, "x_test", arrays["x_test"])
        y_test = _check_labels(where, "y_test", arrays["y_test"], len(x_test))
        if x_test.shape[1:] != x.shape[1:]:
            raise DataError(
                f"{where}: x_test images are {x_test.shape[1:]} but x images are "
                f"{x.shape[1:]}: save both at one size and channel count"
            )
    return x, y, x_test, y_test


def _listing(directory: str) -> list[str]:
    return sorted(entry for entry in os.listdir(directory) if not entry.startswith("."))


def _class_folders(directory: str, where: str) -> list[str]:
    entries = _listing(directory)
    if not entries:
        raise DataError(
            f"{where}: {directory} is empty: put each class's images in {directory}/<class>/"
        )
    loose = [e for e in entries if not os.path.isdir(os.path.join(directory, e))]
    if loose:
        raise DataError(
            f"{where}: {os.path.join(directory, loose[0])} is not in a class sub-folder: "
            f"move each image into {directory}/<class>/ (one sub-folder per class)"
        )
    return entries


def _image_files(directory: str, where: str) -> list[str]:
    files = _listing(directory)
    for name in files:
        path = os.path.join(directory, name)
        if os.path.isdir(path):
            raise DataError(
                f"{where}: {path} is a folder inside a class folder: keep one level "
                "of class sub-folders holding images"
            )
        if not name.lower().endswith(IMAGE_EXTENSIONS):
            raise DataError(
                f"{where}: {path} is not an image ({', '.join(IMAGE_EXTENSIONS)}): "
                "remove it or move it out of the dataset folder"
            )
    if not files:
        raise DataError(f"{where}: class folder {directory} holds no images: add some or remove it")
    return [os.path.join(directory, name) for name in files]


def read_image(path: str) -> np.ndarray:
    """One image file as uint8 H×W×1 (grayscale files) or H×W×3 (everything else)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            mode = image.mode
            if mode in ("1", "L", "LA"):
                return np.asarray(image.convert("L"), np.uint8)[..., np.newaxis]
            if mode.startswith("I;16"):
                wide = np.asarray(image, np.float64) / 257.0
                return np.round(wide).astype(np.uint8)[..., np.newaxis]
            return np.asarray(image.convert("RGB"), np.uint8)
    except Exception as error:  # PIL raises many kinds for a broken file
        raise DataError(
            f"{path} cannot be read as an image ({type(error).__name__}): remove or replace it"
        ) from None


def _read_all(paths: list[str]) -> list[np.ndarray]:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        return list(pool.map(read_image, paths))


def _stack(images: list[np.ndarray], paths: list[str], input_size: int | None, where: str):
    """One uint8 array from images of possibly mixed channels (and sizes)."""
    channels = 3 if any(image.shape[-1] == 3 for image in images) else 1
    if channels == 3:
        images = [np.repeat(i, 3, axis=-1) if i.shape[-1] == 1 else i for i in images]
    sizes = {}
    for image, path in zip(images, paths):
        sizes.setdefault(image.shape[:2], path)
    if input_size is not None:
        return np.stack([resize_images(i[np.newaxis], input_size)[0] for i in images])
    if len(sizes) > 1:
        (a, path_a), (b, path_b) = list(sizes.items())[:2]
        raise DataError(
            f"{where}: images differ in size ({a[0]}×{a[1]} {path_a}, {b[0]}×{b[1]} "
            f"{path_b}): pass --input-size N to resize them all to N×N"
        )
    return np.stack(images)


def read_folder(path: str, input_size: int | None = None):
    """``(x, y, x_test, y_test, class_names)`` of an image folder.

    ``PATH/<class>/<image>``: one sub-folder per class (labels follow the
    sorted class names; within a class, images follow sorted file names), and
    ``(x_test, y_test) = (None, None)``. ``PATH/train/<class>/…`` and
    ``PATH/test/<class>/…`` give the test split. Hidden files are skipped;
    any other non-image file is an error. Images are uint8, H×W×1 if every file
    is grayscale, H×W×3 otherwise; of one size, or resized to ``input_size``.
    """
    where = f"folder:{path}"
    if not os.path.isdir(path):
        raise DataError(
            f"{where} does not exist: give a directory with one sub-folder of images per class"
        )
    top = _listing(path)
    split = set(top) == {"train", "test"} and all(
        os.path.isdir(os.path.join(path, d)) for d in top
    )
    roots = [os.path.join(path, "train")] + ([os.path.join(path, "test")] if split else [])
    if not split:
        roots = [path]
    class_names = _class_folders(roots[0], where)
    index = {name: k for k, name in enumerate(class_names)}
    parts = []
    for root in roots:
        names = _class_folders(root, where)
        unknown = [n for n in names if n not in index]
        if unknown:
            raise DataError(
                f"{where}: class {unknown[0]!r} of {root} has no training folder: add "
                f"{os.path.join(roots[0], unknown[0])} or remove it"
            )
        files = [(f, index[n]) for n in names for f in _image_files(os.path.join(root, n), where)]
        parts.append(files)
    every = [f for files in parts for f, _ in files]
    images = _stack(_read_all(every), every, input_size, where)
    labels = np.array([label for files in parts for _, label in files], np.int32)
    count = len(parts[0])
    if split:
        return images[:count], labels[:count], images[count:], labels[count:], class_names
    return images, labels, None, None, class_names


def holdout_split(
    images: np.ndarray,
    labels: np.ndarray,
    fraction: float = HOLDOUT_FRACTION,
    seed: int = DIGITS_SPLIT_SEED,
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


def _own_dataset(
    request: DatasetRequest,
    arrays: tuple,
    input_size: int | None,
    class_names: list[str] | None = None,
) -> Dataset:
    x, y, x_test, y_test = arrays
    spec = request.spec
    if input_size is not None:
        x = resize_images(x, input_size)
        x_test = None if x_test is None else resize_images(x_test, input_size)
    held_out = x_test is None
    if held_out:
        x, y, x_test, y_test = holdout_split(x, y)
    dataset = from_arrays(
        spec, x, y, x_test, y_test, batch_size=request.batch_size, seed=request.seed,
        num_classes=len(class_names) if class_names else None,
        validation_split=request.validation_split,
    )
    dataset.info.update(
        source=spec.split(":", 1)[0],
        test_split=f"held out {HOLDOUT_FRACTION:.0%} (stratified, fixed)" if held_out else "given",
        class_names=class_names or [str(k) for k in range(dataset.num_classes)],
    )
    return dataset


def load_npz_dataset(request: DatasetRequest) -> Dataset:
    """``npz:PATH`` — arrays ``x``, ``y`` (and optionally ``x_test``, ``y_test``),
    see :func:`read_npz`; normalized by the training images' statistics."""
    return _own_dataset(request, read_npz(_path_of(request.spec)), request.input_size)


def load_folder_dataset(request: DatasetRequest) -> Dataset:
    """``folder:PATH`` — one sub-folder of images per class (see :func:`read_folder`),
    read into memory; normalized by the training images' statistics."""
    *arrays, class_names = read_folder(_path_of(request.spec), request.input_size)
    return _own_dataset(request, tuple(arrays), None, class_names)


LOADERS: dict[str, Callable[[DatasetRequest], Dataset]] = {
    "digits": load_digits_dataset,
    "cifar10": load_cifar_dataset,
    "cifar100": load_cifar_dataset,
    "imagenet2012": load_imagenet_dataset,
    "npz": load_npz_dataset,
    "folder": load_folder_dataset,
}
PATH_LOADERS = ("npz", "folder")  # named with a path: npz:PATH, folder:PATH


def dataset_names() -> list[str]:
    """The ``--dataset`` choices, e.g. ``['cifar10', …, 'folder:PATH', 'npz:PATH']``."""
    return sorted(f"{name}:PATH" if name in PATH_LOADERS else name for name in LOADERS)


def load_dataset(
    name: str,
    batch_size: int = 128,
    seed: int = 0,
    data_dir: str | None = None,
    validation_split: float = 0.0,
    input_size: int | None = None,
) -> Dataset:
    """Loads dataset ``name`` (see :data:`LOADERS`).

    Every loader takes one :class:`DatasetRequest` of these arguments.

    Example:
        >>> data = load_dataset("digits", batch_size=32, input_size=16)
        >>> data.input_shape
        (16, 16, 1)
    """
    request = DatasetRequest(name, batch_size, seed, data_dir, validation_split, input_size)
    if request.kind not in LOADERS:
        raise DataError(f"unknown dataset {name!r}; choose one of {dataset_names()}")
    return LOADERS[request.kind](request)
