"""The datasets of ``--dataset``: one class each, registered where it is defined.

A dataset is a subclass of :class:`DatasetSource` decorated with
:func:`register_dataset`: its name, a line for ``--help``, what is known of it
before loading (input shape, classes, its common-corruptions counterpart on
TFDS) and :meth:`~DatasetSource.load`. A source that takes a path is named
``NAME:PATH`` (``npz:/data/mine.npz``); :func:`dataset_source` parses a
``--dataset`` value once, and everything else asks the source.

The size images are served at is one rule, :func:`resolve_input_size`: the
``input_size`` asked for, else the dataset's own size raised to the smallest
side the model takes (``min_input_size``): digits are 16×16, 32×32 for a
model that needs 32. A dataset of the user's files has no size of its own
before it is read: its images come at their size.

Example:
    >>> sorted(DATASETS)[:3]
    ['cifar10', 'cifar100', 'digits']
    >>> dataset_source("npz:/data/mine.npz").name
    'npz'
    >>> resolve_input_size("digits"), resolve_input_size("digits", min_input_size=32)
    (16, 32)
    >>> dataset_source("mnist")
    Traceback (most recent call last):
    ...
    lcr_larq.errors.ConfigError: unknown dataset 'mnist'; choose one of: cifar10, cifar100, \
digits, folder:PATH, imagenet2012, npz:PATH
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import ClassVar

from lcr_larq.data.pipeline import Dataset
from lcr_larq.errors import ConfigError
from lcr_larq.registry import Registry
from lcr_larq.settings import echo


@dataclass(frozen=True)
class DatasetRequest:
    """What :func:`load_dataset` asks a :class:`DatasetSource` for."""

    spec: str  #: the full name, e.g. ``npz:PATH``
    batch_size: int  #: the global batch
    seed: int
    data_dir: str | None = None
    validation_split: float = 0.0
    input_size: int | None = None  #: resize to a square size; ImageNet's crop size

    @property
    def kind(self) -> str:
        """The source's name: ``npz`` for ``npz:PATH``."""
        return self.spec.split(":", 1)[0]

    @property
    def path(self) -> str:
        """The ``PATH`` of ``NAME:PATH`` (``~`` expanded)."""
        return os.path.expanduser(self.spec.partition(":")[2])


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
    #: its common-corruptions counterpart on TFDS (``cifar10_corrupted``).
    tfds_corrupted: ClassVar[str | None] = None

    @property
    def choice(self) -> str:
        """How ``--dataset`` names it: ``digits``, ``npz:PATH``."""
        return f"{self.name}:PATH" if self.takes_path else self.name

    def load(self, request: DatasetRequest) -> Dataset:
        """The dataset of ``request`` (its ``kind`` is this source's name)."""
        raise NotImplementedError


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


def dataset_source(spec: str) -> DatasetSource:
    """The source of a ``--dataset`` value, checked: a registered name, and a
    path where the source takes one (and only there)."""
    kind, colon, path = spec.partition(":")
    if kind not in DATASETS:
        raise ConfigError(
            f"unknown dataset {echo(spec)}; choose one of: {', '.join(dataset_names())}"
        )
    source = DATASETS[kind]
    if source.takes_path and not path:
        raise ConfigError(f"--dataset {kind}: needs a path, e.g. --dataset {kind}:/data/mine")
    if colon and not source.takes_path:
        raise ConfigError(f"--dataset {kind} takes no path: give --dataset {kind}")
    return source


def resolve_input_size(
    spec: str, min_input_size: int = 0, input_size: int | None = None
) -> int | None:
    """The square side :func:`load_dataset` serves the images of ``spec`` at:
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
    shape = dataset_source(spec).input_shape
    return None if shape is None else max(shape[0], min_input_size)


def load_dataset(
    name: str,
    batch_size: int = 128,
    seed: int = 0,
    data_dir: str | None = None,
    validation_split: float = 0.0,
    input_size: int | None = None,
    min_input_size: int = 0,
) -> Dataset:
    """Loads dataset ``name`` (see :data:`DATASETS`) at the size of
    :func:`resolve_input_size`: ``input_size``, else its own size raised to
    ``min_input_size`` (pass the model's, ``MODELS[name].min_input_size``,
    to get the size ``lcr-train`` trains it at).

    Example:
        >>> data = load_dataset("digits", batch_size=32, input_size=16)
        >>> data.input_shape, data.num_classes, data.train_size, data.test_size
        ((16, 16, 1), 10, 1437, 360)
        >>> load_dataset("digits", min_input_size=32).input_shape
        (32, 32, 1)
    """
    size = resolve_input_size(name, min_input_size, input_size)
    request = DatasetRequest(name, batch_size, seed, data_dir, validation_split, size)
    return dataset_source(name).load(request)
