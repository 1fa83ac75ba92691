"""Datasets as ``tf.data`` pipelines, one registered class per ``--dataset``.

* :mod:`lcr_larq.data.registry` — :data:`DATASETS`, :func:`load_dataset`,
  :func:`dataset_spec` (a ``--dataset`` value parsed once) and the
  :class:`DatasetSource` a new dataset subclasses (one new file here), which
  also reads its published corrupted counterpart (CIFAR-10-C, ImageNet-C);
* :mod:`lcr_larq.data.pipeline` — the :class:`Dataset` every source returns,
  epochs that any run recreates exactly, the splits;
* :mod:`lcr_larq.data.augment` — augmentation and resizing;
* the sources: :mod:`~lcr_larq.data.digits` (offline, the default),
  :mod:`~lcr_larq.data.tfds` (CIFAR-10/100, ImageNet) and
  :mod:`~lcr_larq.data.files` (``npz:PATH``, ``folder:PATH``).

Example:
    >>> data = load_dataset("digits", batch_size=64, seed=0)
    >>> data.input_shape, data.num_classes, data.train_size, data.test_size
    ((16, 16, 1), 10, 1437, 360)
"""

from lcr_larq.data.pipeline import (
    Dataset,
    arrays_pipeline,
    evaluation_batch_size,
    from_arrays,
    holdout_split,
    reaches_every_replica,
    standardizer,
    training_epochs,
    validation_count,
)
from lcr_larq.data.registry import (
    DATASETS,
    INPUT_SIZES,
    DatasetRequest,
    DatasetSource,
    DatasetSpec,
    dataset_names,
    dataset_spec,
    load_dataset,
    register_dataset,
    resolve_input_size,
)
from lcr_larq.registry import import_submodules

import_submodules(__name__)  # every source registers itself

__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetRequest",
    "DatasetSource",
    "DatasetSpec",
    "INPUT_SIZES",
    "arrays_pipeline",
    "dataset_names",
    "dataset_spec",
    "evaluation_batch_size",
    "from_arrays",
    "holdout_split",
    "load_dataset",
    "reaches_every_replica",
    "register_dataset",
    "resolve_input_size",
    "standardizer",
    "training_epochs",
    "validation_count",
]
