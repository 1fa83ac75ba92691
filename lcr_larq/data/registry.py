"""The datasets of ``--dataset``: one class each, registered where it is defined.

A dataset is a subclass of :class:`DatasetSource` decorated with
:func:`register_dataset`: its name, a line for ``--help``, what is known of it
before loading (input shape, classes, its published common-corruptions
counterpart) and :meth:`~DatasetSource.load`. A source that takes a path is
named ``NAME:PATH`` (``npz:/data/mine.npz``). :func:`dataset_spec` parses a
``--dataset`` value once, into a :class:`DatasetSpec` (the source and the
path); the loader, the evaluators and the run's name take that, never the
text again.

The size images are served at is one rule, :func:`resolve_input_size`: the
``input_size`` asked for, else the dataset's own size raised to the smallest
side the model takes (``min_input_size``): digits are 16×16, 32×32 for a
model that needs 32. A dataset of the user's files has no size of its own
before it is read: its images come at their size.

Example:
    >>> sorted(DATASETS)[:3]
    ['cifar10', 'cifar100', 'digits']
    >>> spec = dataset_spec("npz:/data/mine.npz")
    >>> spec.name, spec.path, str(spec)
    ('npz', '/data/mine.npz', 'npz:/data/mine.npz')
    >>> resolve_input_size("digits"), resolve_input_size("digits", min_input_size=32)
    (16, 32)
    >>> dataset_spec("mnist")
    Traceback (most recent call last):
    ...
    lcr_larq.errors.ConfigError: unknown dataset 'mnist'; choose one of: cifar10, cifar100, \
digits, folder:PATH, imagenet2012, npz:PATH
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from lcr_larq.data.pipeline import Dataset
from lcr_larq.errors import ConfigError, DataError
from lcr_larq.registry import Registry
from lcr_larq.settings import echo

__all__ = [
    "DATASETS",
    "DatasetRequest",
    "DatasetSource",
    "DatasetSpec",
    "dataset_names",
    "dataset_spec",
    "load_dataset",
    "register_dataset",
]


class DatasetSource:
    """One kind of ``--dataset``. Subclass it, set the class attributes and
    :meth:`load`, and decorate the class with :func:`register_dataset`."""

    #: the name of ``--dataset`` (``NAME:PATH`` when :attr:`takes_path`).
    name: ClassVar[str]
    #: one line for ``--help`` and the docs.
    description: ClassVar[str]
    #: whether it is named ``NAME:PATH`` (a file or folder of the user's).
    takes_path: ClassVar[bool] = False
    #: the images' shape and the class count, when known without loading
    #: (``lcr-train --summary`` needs no data then); None: read from the data.
    input_shape: ClassVar[tuple[int, int, int] | None] = None
    num_classes: ClassVar[int | None] = None
    #: its common-corruptions counterpart on TFDS (``cifar10_corrupted``), read
    #: by :meth:`corrupted_batches`; None: no published one.
    tfds_corrupted: ClassVar[str | None] = None
    #: whether its mean corruption error is normalized by AlexNet's errors
    #: (ImageNet-C's convention, Hendrycks & Dietterich); unnormalized otherwise.
    mce_normalized: ClassVar[bool] = False

    @property
    def choice(self) -> str:
        """How ``--dataset`` names it: ``digits``, ``npz:PATH``."""
        return f"{self.name}:PATH" if self.takes_path else self.name

    def load(self, request: DatasetRequest) -> Dataset:
        """The dataset of ``request`` (its ``spec`` names this source)."""
        raise NotImplementedError

    def corrupted_prepared(self, corruptions, severities, data_dir: str | None) -> bool:
        """Whether every ``(corruption, severity)`` set of the published
        corrupted counterpart is prepared in ``data_dir`` (nothing is
        downloaded); False without one."""
        return False

    def corrupted_batches(
        self, corruption: str, severity: int, data_dir: str | None, size: tuple[int, int],
        max_images: int | None = None, batch_size: int = 256,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Batches of uint8 images (at ``size``) and int32 labels of one set of
        the published corrupted counterpart, streamed."""
        raise DataError(f"TFDS has no corrupted version of {self.name}: use --source generate")


@dataclass(frozen=True)
class DatasetSpec:
    """A ``--dataset`` value, parsed (:func:`dataset_spec`): its registered
    source, and the ``PATH`` of ``NAME:PATH`` (``~`` expanded). ``str(spec)``
    is the value as it was given."""

    text: str
    source: DatasetSource
    path: str | None = None

    @property
    def name(self) -> str:
        """The source's name: ``npz`` for ``npz:PATH``."""
        return self.source.name

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class DatasetRequest:
    """What :func:`load_dataset` asks a :class:`DatasetSource` for."""

    spec: DatasetSpec  #: the dataset, e.g. ``npz:PATH`` parsed
    batch_size: int  #: the global batch
    seed: int
    data_dir: str | None = None
    validation_split: float = 0.0
    input_size: int | None = None  #: resize to a square size; ImageNet's crop size


#: The square sides images may be resized to (``--input-size``'s range).
INPUT_SIZES = (8, 2048)

#: The datasets of ``--dataset``, by name.
DATASETS: Registry[DatasetSource] = Registry("dataset")


def register_dataset(cls: type[DatasetSource]) -> type[DatasetSource]:
    """A class decorator: registers a :class:`DatasetSource` under its name."""
    DATASETS.add(cls.name, cls())
    return cls


def dataset_names() -> list[str]:
    """The ``--dataset`` choices, e.g. ``['cifar10', …, 'folder:PATH', 'npz:PATH']``."""
    return sorted(source.choice for _, source in DATASETS.items())


def dataset_spec(text: str) -> DatasetSpec:
    """A ``--dataset`` value parsed and checked: a registered name, and a path
    where the source takes one (and only there)."""
    kind, colon, path = text.partition(":")
    if kind not in DATASETS:
        raise ConfigError(
            f"unknown dataset {echo(text)}; choose one of: {', '.join(dataset_names())}"
        )
    source = DATASETS[kind]
    if source.takes_path and not path:
        raise ConfigError(f"--dataset {kind}: needs a path, e.g. --dataset {kind}:/data/mine")
    if colon and not source.takes_path:
        raise ConfigError(f"--dataset {kind} takes no path: give --dataset {kind}")
    return DatasetSpec(text, source, os.path.expanduser(path) if source.takes_path else None)


def resolve_input_size(
    dataset: DatasetSpec | str, min_input_size: int = 0, input_size: int | None = None
) -> int | None:
    """The square side :func:`load_dataset` serves the images of ``dataset``
    (a :class:`DatasetSpec` or a ``--dataset`` value) at:
    ``input_size`` when given; else the dataset's own size (its source's
    ``input_shape``) raised to ``min_input_size``, the smallest side the
    model takes (``models.MODELS[name].min_input_size``); None for a dataset
    of the user's files (``npz:``, ``folder:``), served at its images' size.

    Example:
        >>> resolve_input_size("cifar10", 64), resolve_input_size("cifar10", 8, input_size=48)
        (64, 48)
        >>> print(resolve_input_size("npz:/data/mine.npz", 32))
        None
    """
    if input_size is not None:
        return input_size
    spec = dataset if isinstance(dataset, DatasetSpec) else dataset_spec(dataset)
    shape = spec.source.input_shape
    return None if shape is None else max(shape[0], min_input_size)


def load_dataset(
    dataset: DatasetSpec | str,
    batch_size: int = 128,
    seed: int = 0,
    data_dir: str | None = None,
    validation_split: float = 0.0,
    input_size: int | None = None,
    min_input_size: int = 0,
) -> Dataset:
    """Loads ``dataset`` (a :class:`DatasetSpec`, or a ``--dataset`` value,
    parsed here: see :data:`DATASETS`) at the size of :func:`resolve_input_size`:
    ``input_size``, else its own size raised to ``min_input_size`` (pass the
    model's, ``MODELS[name].min_input_size``, to get the size ``lcr-train``
    trains it at).

    Example:
        >>> data = load_dataset("digits", batch_size=32, input_size=16)
        >>> data.input_shape, data.num_classes, data.train_size, data.test_size
        ((16, 16, 1), 10, 1437, 360)
        >>> load_dataset("digits", min_input_size=32).input_shape
        (32, 32, 1)
    """
    spec = dataset if isinstance(dataset, DatasetSpec) else dataset_spec(dataset)
    size = resolve_input_size(spec, min_input_size, input_size)
    request = DatasetRequest(spec, batch_size, seed, data_dir, validation_split, size)
    return spec.source.load(request)
