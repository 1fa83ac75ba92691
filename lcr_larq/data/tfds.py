"""The TFDS datasets: ``cifar10``, ``cifar100`` and ``imagenet2012``.

* CIFAR-10/100: pad-4 random crop + horizontal flip on train, per-channel
  normalization by the training-set statistics; held in memory as uint8.
* ImageNet (ILSVRC 2012, a manual download): random-resized crop to 224 +
  flip on train; shorter side 256, central 224 crop for evaluation; streamed.

Nothing is downloaded when the data is on disk; without network, a dataset
that is not there fails with a one-line fix.

CIFAR-10 and ImageNet read their published common-corruptions counterparts
(CIFAR-10-C, ImageNet-C: ``cifar10_corrupted``, ``imagenet2012_corrupted``)
where they are prepared (:meth:`TFDSSource.corrupted_batches`).

Example:
    >>> from lcr_larq.data.registry import DATASETS
    >>> DATASETS["cifar10"].input_shape, DATASETS["cifar100"].num_classes
    ((32, 32, 3), 100)
    >>> DATASETS["cifar10"].corrupted_config("glass_blur", 3)
    ('cifar10_corrupted', 'frosted_glass_blur_3')
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Sequence
from typing import ClassVar
from urllib.parse import urlparse

import numpy as np
import tensorflow as tf

from lcr_larq.data.augment import (
    IMAGENET_SIZE,
    pad_crop_flip,
    random_resized_crop,
    resize_center_crop,
    resize_image,
)
from lcr_larq.data.pipeline import (
    Dataset,
    arrays_pipeline,
    standardizer,
    training_epochs,
    validation_count,
)
from lcr_larq.data.registry import DatasetRequest, DatasetSource, register_dataset
from lcr_larq.errors import DataError

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "CIFAR_SIZE",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Cifar10",
    "Cifar100",
    "ImageNet2012",
    "TFDSSource",
    "is_prepared",
    "reachable",
    "tfds_builder",
]

# Per-channel statistics on the [0, 1] scale. CIFAR: mean and standard
# deviation over every pixel of the training split (50,000 images); IR-Net's
# code divides by (0.2023, 0.1994, 0.2010) instead, a mean of per-image
# deviations. ImageNet: the values every ImageNet codebase uses.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
CIFAR_SIZE = 32
#: ImageNet's per-channel mean (on the [0, 1] scale, as the CIFAR ones).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)  #: ImageNet's per-channel standard deviation.
IMAGENET_SHUFFLE_BUFFER = 10_000  # examples shuffled together (one block)
IMAGENET_ARCHIVES = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")


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
    elif not is_prepared(builder) and not reachable(builder.info.homepage):
        # Offline, TFDS would retry for minutes and leave partial downloads behind.
        raise DataError(
            f"{name} is not in {where} and its source ({urlparse(builder.info.homepage).netloc}) "
            f"cannot be reached: run `tfds build {name} --data_dir DIR` where there is network, "
            "then pass --data-dir DIR"
        )
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


def is_prepared(builder) -> bool:
    """Whether a TFDS builder's data is on disk (its ``dataset_info.json``)."""
    return os.path.isfile(os.path.join(builder.data_dir, "dataset_info.json"))


def reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether the host of ``url`` accepts a connection within ``timeout`` seconds.

    Example:
        >>> reachable("https://host.invalid/data")
        False
    """
    parts = urlparse(url)
    if not parts.hostname:
        return False
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


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


class TFDSSource(DatasetSource):
    """A dataset of TFDS, and its published common-corruptions counterpart
    (:attr:`~lcr_larq.data.DatasetSource.tfds_corrupted`, where it has one), read
    from a data directory where it is prepared: never downloaded here (ImageNet-C
    alone is hundreds of gigabytes)."""

    #: the split of the published corrupted sets.
    corrupted_split: ClassVar[str] = "validation"
    #: the names its corrupted sets give a corruption, where they differ from
    #: the ImageNet-C code's.
    corrupted_names: ClassVar[dict[str, str]] = {}

    def corrupted_config(self, corruption: str, severity: int) -> tuple[str, str]:
        """``(TFDS dataset, config)`` of one corruption of the published corrupted set."""
        return self.tfds_corrupted, f"{self.corrupted_names.get(corruption, corruption)}_{severity}"

    def _corrupted_builder(self, corruption: str, severity: int, data_dir: str | None):
        import tensorflow_datasets as tfds

        name, config = self.corrupted_config(corruption, severity)
        try:
            return tfds.builder(f"{name}/{config}", data_dir=data_dir)
        except Exception as error:  # TFDS raises many kinds for a broken directory
            raise DataError(
                f"cannot open {name}/{config} ({type(error).__name__}): check --data-dir"
            ) from None

    def corrupted_prepared(
        self, corruptions: Sequence[str], severities: Sequence[int], data_dir: str | None
    ) -> bool:
        if self.tfds_corrupted is None:
            return False
        for corruption in corruptions:
            for severity in severities:
                try:
                    builder = self._corrupted_builder(corruption, severity, data_dir)
                except DataError:
                    return False
                if not tf.io.gfile.exists(os.path.join(builder.data_dir, "dataset_info.json")):
                    return False
        return True

    def corrupted_batches(
        self, corruption: str, severity: int, data_dir: str | None, size: tuple[int, int],
        max_images: int | None = None, batch_size: int = 256,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Batches of uint8 images (resized to ``size`` when they differ) and
        labels of one published corrupted set, streamed (ImageNet-C does not
        fit in memory)."""
        if self.tfds_corrupted is None:
            yield from super().corrupted_batches(corruption, severity, data_dir, size)
            return
        builder = self._corrupted_builder(corruption, severity, data_dir)
        split = self.corrupted_split if max_images is None else (
            f"{self.corrupted_split}[:{max_images}]")
        try:
            ds = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
        except Exception as error:
            name, config = self.corrupted_config(corruption, severity)
            raise DataError(
                f"{name}/{config} is not prepared in {data_dir or '~/tensorflow_datasets'} "
                f"({type(error).__name__}): run `tfds build {name}/{config} --data_dir DIR` "
                "where there is network, or use --source generate"
            ) from None
        for x, y in ds.batch(batch_size):
            x = tf.cast(x, tf.uint8)
            if tuple(x.shape[1:3]) != tuple(size):
                x = resize_image(x, size[0])
            yield x.numpy(), y.numpy().astype(np.int32)


class _Cifar(TFDSSource):
    """CIFAR-10 or CIFAR-100 from TFDS with the paper's augmentation.

    Train: uint8 images in memory, shuffled anew every epoch, zero-pad 4 + random
    32×32 crop + horizontal flip, per-channel normalization by the fixed
    training-set statistics (:data:`CIFAR10_MEAN` …). Test: normalization
    only, from in-memory arrays (also ``test_arrays``). ``input_size`` resizes
    every image first (bilinear).
    """

    input_shape = (CIFAR_SIZE, CIFAR_SIZE, 3)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def load(self, request: DatasetRequest) -> Dataset:
        batch_size, seed = request.batch_size, request.seed
        size = request.input_size or CIFAR_SIZE
        builder = tfds_builder(self.name, request.data_dir)
        normalize = standardizer(self.mean, self.std)
        train_split, validation_split = _carve_splits(builder, "train", request.validation_split)
        # In memory, as uint8: 150 MB for CIFAR's 50,000 training images.
        x_train, y_train = _cifar_arrays(builder, train_split, size)
        train_size = len(y_train)
        examples = tf.data.Dataset.from_tensor_slices((x_train, y_train))
        epoch = training_epochs(
            examples, train_size, batch_size, normalize, seed, augment=pad_crop_flip
        )
        x_test, y_test = _cifar_arrays(builder, "test", size)
        validation, validation_size, validation_arrays = None, 0, None
        if validation_split:
            validation_arrays = _cifar_arrays(builder, validation_split, size)
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
            info={"mean": list(self.mean), "std": list(self.std), "source": "tfds",
                  "augment": "pad-crop-flip"},
            calibration=arrays_pipeline(
                x_train, y_train, batch_size, normalize, seed, shuffle_once=True
            ),
        )


def _cifar_arrays(builder, split: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The uint8 images (resized to ``size``) and int32 labels of a CIFAR split."""
    import tensorflow_datasets as tfds

    ds = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False,
                            read_config=tfds.ReadConfig(try_autocache=False))
    ds = ds.map(lambda x, y: (resize_image(x, size), tf.cast(y, tf.int32)),
                num_parallel_calls=tf.data.AUTOTUNE)
    return _materialize(ds)


@register_dataset
class Cifar10(_Cifar):
    name = "cifar10"
    description = "CIFAR-10 from TFDS (prepared on disk, or downloaded)"
    num_classes = 10
    mean, std = CIFAR10_MEAN, CIFAR10_STD
    tfds_corrupted = "cifar10_corrupted"
    corrupted_split = "test"
    # CIFAR-10-C's TFDS configs use two names of their own.
    corrupted_names = {"glass_blur": "frosted_glass_blur", "elastic_transform": "elastic"}


@register_dataset
class Cifar100(_Cifar):
    name = "cifar100"
    description = "CIFAR-100 from TFDS (prepared on disk, or downloaded)"
    num_classes = 100
    mean, std = CIFAR100_MEAN, CIFAR100_STD


@register_dataset
class ImageNet2012(TFDSSource):
    """ImageNet (ILSVRC 2012) from TFDS, streamed: nothing of it is cached.

    Train: files read in a seeded shuffled order, a 10,000-image shuffle
    buffer, random-resized crop to ``input_size`` (default 224; only the crop
    of each JPEG is decoded) and a horizontal flip. Test (the validation
    split): shorter side resized to ``input_size``·256/224, central crop.
    Both normalized by :data:`IMAGENET_MEAN` and :data:`IMAGENET_STD`.
    """

    name = "imagenet2012"
    description = "ILSVRC 2012 from TFDS (a manual download: --data-dir)"
    input_shape = (IMAGENET_SIZE, IMAGENET_SIZE, 3)
    num_classes = 1000
    tfds_corrupted = "imagenet2012_corrupted"
    mce_normalized = True

    def load(self, request: DatasetRequest) -> Dataset:
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
