"""Clean accuracy and common-corruption robustness of a model trained by ``train.py``.

``python -m lcr_larq.evaluate --model-dir DIR`` loads the plain BNN of a run
directory (``bnn.keras``, see :func:`lcr_larq.training.load_trained_model`),
the test split of the run's dataset (``config.yaml``), and measures top-1
accuracy on the clean images and on the corruptions of Hendrycks & Dietterich
(ICLR 2019) at the chosen severities. It writes ``DIR/robustness.json``,
prints a table and draws ``DIR/corruption_accuracy.png``.

Corrupted images come from one of two sources (``--source``):

* ``tfds``: the published sets ``cifar10_corrupted`` (CIFAR-10-C) and
  ``imagenet2012_corrupted`` (ImageNet-C), read from ``--data-dir`` where
  they are already prepared (they are never downloaded here);
* ``generate``: the test split is corrupted offline with the ImageNet-C code
  (the ``imagecorruptions`` package, through
  :func:`lcr_larq.robustness.corrupt_images`), deterministically for a given
  ``--seed``. This works for every dataset: ``digits``, ``cifar10``,
  ``npz:``/``folder:`` data, and ImageNet (streamed, see ``--max-images``).

``auto`` (the default) takes ``tfds`` when every requested corruption and
severity is prepared there, and ``generate`` otherwise; the report says which.

Metrics (Hendrycks & Dietterich, Sec. 3): with ``E_{s,c}`` the top-1 error
(fraction) at severity ``s`` of corruption ``c``, ``CE_c = sum_s E_{s,c}``,
divided by AlexNet's ``sum_s E^AlexNet_{s,c}`` for ImageNet only
(``normalized``: true); ``mCE`` is the mean of ``CE_c`` over the 15 benchmark
corruptions evaluated (``mce_corruptions``). The 4 extra corruptions
(``--extra``) are reported beside it (``mce_extra``), never mixed in.

``--protocol linear-probe`` is the paper's ImageNet-C protocol (Shang et al.,
Sec. 4.4): the backbone is frozen (batch normalization in inference mode) and
only the classifier head is fine-tuned, on the clean training split, before
everything is measured.

Example:
    >>> report = evaluate_run("runs/latest", corruptions=["fog"], severities=[1, 5])
    ... # doctest: +SKIP
    >>> sorted(report["accuracy"]["fog"])  # doctest: +SKIP
    ['1', '5']

Command line::

    python -m lcr_larq.evaluate --model-dir runs/latest
    python -m lcr_larq.evaluate --model-dir runs/latest --corruptions fog,snow --severities 5
    python -m lcr_larq.evaluate --model-dir runs/cifar --data-dir ~/tfds --extra
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

REPORT_FILE = "robustness.json"
PLOT_FILE = "corruption_accuracy.png"
SOURCES = ("auto", "tfds", "generate")
PROTOCOLS = ("standard", "linear-probe")

#: TFDS names of the published corrupted test sets, by clean dataset.
TFDS_CORRUPTED = {"cifar10": "cifar10_corrupted", "imagenet2012": "imagenet2012_corrupted"}
#: CIFAR-10-C's TFDS configs use two names of their own.
_CIFAR10_C_NAMES = {"glass_blur": "frosted_glass_blur", "elastic_transform": "elastic"}


class EvaluationError(ValueError):
    """Bad options or data for an evaluation; the message names the fix."""


# --------------------------------------------------------------------------- options
def parse_corruptions(text: str, extra: bool = False) -> list[str]:
    """Corruption names of ``--corruptions``: ``all`` (the 15 benchmark ones),
    ``extra`` (the 4 held-out ones), ``all+extra``, or a comma list of names.

    ``extra=True`` appends the 4 held-out corruptions.

    Example:
        >>> parse_corruptions("fog, snow")
        ['fog', 'snow']
        >>> len(parse_corruptions("all", extra=True))
        19
    """
    from lcr_larq.robustness import ALL_CORRUPTIONS, CORRUPTIONS, EXTRA_CORRUPTIONS

    names: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part == "all":
            names.extend(CORRUPTIONS)
        elif part == "extra":
            names.extend(EXTRA_CORRUPTIONS)
        elif part == "all+extra":
            names.extend(ALL_CORRUPTIONS)
        elif part in ALL_CORRUPTIONS:
            names.append(part)
        else:
            raise EvaluationError(
                f"unknown corruption {part!r}; choose all, extra, all+extra or names from "
                f"{', '.join(ALL_CORRUPTIONS)}"
            )
    if extra:
        names.extend(EXTRA_CORRUPTIONS)
    unique = list(dict.fromkeys(names))
    if not unique:
        raise EvaluationError("--corruptions is empty: give all or a list of names")
    return unique


def parse_severities(text: str) -> list[int]:
    """Severities of ``--severities``: a range ``1-5``, a list ``1,3,5`` or both.

    Example:
        >>> parse_severities("1-3,5")
        [1, 2, 3, 5]
    """
    values: list[int] = []
    try:
        for part in (p.strip() for p in str(text).split(",")):
            if not part:
                continue
            if "-" in part:
                low, high = (int(v) for v in part.split("-", 1))
                values.extend(range(low, high + 1))
            else:
                values.append(int(part))
    except ValueError:
        raise EvaluationError(
            f"--severities {text!r}: give a range like 1-5 or a list like 1,3,5"
        ) from None
    if not values or any(not 1 <= v <= 5 for v in values):
        raise EvaluationError(f"--severities {text!r}: severities are integers 1 to 5")
    return sorted(set(values))


# --------------------------------------------------------------------------- the run
@dataclass
class Run:
    """A run directory's plain BNN, recipe and dataset."""

    model_dir: str
    model: Any
    recipe: dict
    dataset: Any


def read_recipe(model_dir: str) -> dict:
    """The ``config.yaml`` of a run directory as a dict (empty when absent).

    Example:
        >>> read_recipe("/nonexistent")
        {}
    """
    from lcr_larq import config as cfg

    path = os.path.join(model_dir, "config.yaml")
    if not os.path.isfile(path):
        return {}
    try:
        return cfg.load_recipe(path)
    except cfg.ConfigError as error:
        raise EvaluationError(f"{error}: the run directory is corrupt") from None


def load_run(
    model_dir: str,
    dataset: str | None = None,
    data_dir: str | None = None,
    batch_size: int | None = None,
) -> Run:
    """Loads the plain BNN of ``model_dir`` and its run's test data.

    The dataset is ``dataset`` or the recipe's (``config.yaml``), at the
    recipe's ``input_size``; ``data_dir`` overrides the recipe's.
    Raises :class:`~lcr_larq.training.TrainingError` (bad model),
    :class:`EvaluationError` or :class:`~lcr_larq.data.DataError`, all with a
    one-line message.

    Example:
        >>> run = load_run("runs/latest")  # doctest: +SKIP
        >>> run.dataset.input_shape  # doctest: +SKIP
        (32, 32, 1)
    """
    from lcr_larq import data as lcr_data
    from lcr_larq import training

    model = training.load_trained_model(model_dir)
    recipe = read_recipe(model_dir) if os.path.isdir(model_dir) else {}
    name = dataset or recipe.get("dataset")
    if not name:
        raise EvaluationError(
            f"{model_dir} holds no config.yaml naming the dataset: pass --dataset"
        )
    ds = lcr_data.load_dataset(
        name,
        batch_size=int(batch_size or recipe.get("batch_size") or 128),
        seed=int(recipe.get("seed") or 0),
        data_dir=data_dir or recipe.get("data_dir"),
        input_size=recipe.get("input_size"),
    )
    if tuple(model.input_shape[1:]) != tuple(ds.input_shape):
        raise EvaluationError(
            f"the model takes {tuple(model.input_shape[1:])} inputs but {name} gives "
            f"{tuple(ds.input_shape)}: pass the run's --dataset"
        )
    return Run(model_dir, model, recipe, ds)


def _denormalizer(dataset) -> Callable[[np.ndarray], np.ndarray]:
    """Inverse of ``dataset.normalize`` for a standardizing loader: model inputs
    back to uint8 pixels (rounded)."""
    mean = np.asarray(dataset.info.get("mean", 0.0), np.float64)
    std = np.asarray(dataset.info.get("std", 1.0), np.float64)

    def denormalize(x: np.ndarray) -> np.ndarray:
        pixels = (np.asarray(x, np.float64) * std + mean) * 255.0
        return np.clip(np.round(pixels), 0, 255).astype(np.uint8)

    return denormalize


def clean_test_images(dataset, max_images: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The test split as uint8 images and labels, at most ``max_images``.

    In-memory splits come from ``dataset.test_arrays``; streamed ones (ImageNet)
    are read from ``dataset.test`` and mapped back to pixels by inverting the
    loader's standardization (exact up to float rounding, since the loaders
    normalize uint8 images).

    Example:
        >>> from lcr_larq.data import load_dataset
        >>> x, y = clean_test_images(load_dataset("digits"), max_images=5)
        >>> x.shape, x.dtype.name, y.shape
        ((5, 32, 32, 1), 'uint8', (5,))
    """
    if dataset.test_arrays is not None:
        x, y = dataset.test_arrays
        return x[:max_images], np.asarray(y[:max_images], np.int32)
    denormalize = _denormalizer(dataset)
    images, labels, count = [], [], 0
    for xb, yb in dataset.test:
        images.append(denormalize(xb.numpy()))
        labels.append(np.asarray(yb.numpy(), np.int32))
        count += len(labels[-1])
        if max_images is not None and count >= max_images:
            break
    if not images:
        raise EvaluationError("the test split holds no images")
    return np.concatenate(images)[:max_images], np.concatenate(labels)[:max_images]


# --------------------------------------------------------------------------- inference
def predictor(model, normalize, batch_size: int = 256) -> Callable[[np.ndarray], np.ndarray]:
    """``predict(uint8 images) -> predicted labels`` of ``model`` in inference mode.

    Example:
        >>> import tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.layers.Flatten(input_shape=(2, 2, 1))])
        >>> predict = predictor(model, lambda x: tf.cast(x, tf.float32))
        >>> predict(np.array([[[[0], [9]], [[1], [2]]]], np.uint8)).tolist()
        [1]
    """
    import tensorflow as tf

    shape = (None, *model.input_shape[1:])

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.uint8)], reduce_retracing=True)
    def labels_of(x):
        return tf.argmax(model(normalize(x), training=False), axis=-1, output_type=tf.int32)

    def predict(images: np.ndarray) -> np.ndarray:
        out = [
            labels_of(tf.constant(images[i : i + batch_size])).numpy()
            for i in range(0, len(images), batch_size)
        ]
        return np.concatenate(out) if out else np.zeros((0,), np.int32)

    return predict


def accuracy(predict: Callable[[np.ndarray], np.ndarray], images, labels) -> float:
    """Top-1 accuracy (fraction) of ``predict`` on uint8 ``images``."""
    return float(np.mean(predict(images) == np.asarray(labels)))


# --------------------------------------------------------------------------- sources
def tfds_corrupted_config(dataset: str, corruption: str, severity: int) -> tuple[str, str]:
    """``(TFDS dataset, config)`` of one corruption of a published corrupted set.

    Example:
        >>> tfds_corrupted_config("cifar10", "glass_blur", 3)
        ('cifar10_corrupted', 'frosted_glass_blur_3')
    """
    name = TFDS_CORRUPTED[dataset]
    if dataset == "cifar10":
        corruption = _CIFAR10_C_NAMES.get(corruption, corruption)
    return name, f"{corruption}_{severity}"


def _tfds_builder(dataset: str, corruption: str, severity: int, data_dir: str | None):
    import tensorflow_datasets as tfds

    name, config = tfds_corrupted_config(dataset, corruption, severity)
    try:
        return tfds.builder(f"{name}/{config}", data_dir=data_dir)
    except Exception as error:  # TFDS raises many kinds for a broken directory
        raise EvaluationError(
            f"cannot open {name}/{config} ({type(error).__name__}): check --data-dir"
        ) from None


def tfds_prepared(dataset: str, corruptions, severities, data_dir: str | None) -> bool:
    """Whether every ``(corruption, severity)`` set is prepared in ``data_dir``
    (nothing is downloaded)."""
    if dataset not in TFDS_CORRUPTED:
        return False
    import tensorflow as tf

    for c in corruptions:
        for s in severities:
            try:
                builder = _tfds_builder(dataset, c, s, data_dir)
            except EvaluationError:
                return False
            if not tf.io.gfile.exists(os.path.join(builder.data_dir, "dataset_info.json")):
                return False
    return True


def tfds_corrupted_batches(
    dataset: str,
    corruption: str,
    severity: int,
    data_dir: str | None,
    size: tuple[int, int],
    max_images: int | None = None,
    batch_size: int = 256,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Batches of uint8 images (resized to ``size`` when they differ) and labels
    of one published corrupted test set, streamed (ImageNet-C does not fit in
    memory)."""
    import tensorflow as tf

    from lcr_larq import data as lcr_data

    builder = _tfds_builder(dataset, corruption, severity, data_dir)
    split = "test" if dataset == "cifar10" else "validation"
    if max_images is not None:
        split = f"{split}[:{max_images}]"
    try:
        ds = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
    except Exception as error:
        name, config = tfds_corrupted_config(dataset, corruption, severity)
        raise EvaluationError(
            f"{name}/{config} is not prepared in {data_dir or '~/tensorflow_datasets'} "
            f"({type(error).__name__}): run `tfds build {name}/{config} --data_dir DIR` "
            "where there is network, or use --source generate"
        ) from None
    for x, y in ds.batch(batch_size):
        x = tf.cast(x, tf.uint8)
        if tuple(x.shape[1:3]) != tuple(size):
            x = lcr_data.resize_image(x, size[0])
        yield x.numpy(), y.numpy().astype(np.int32)


def streamed_accuracy(
    model, batches, max_images: int | None = None
) -> tuple[float, int]:
    """``(accuracy, count)`` of ``model`` on a stream of (model input, label)
    batches, e.g. a normalized ``dataset.test``, stopping after ``max_images``."""
    correct = count = 0
    for x, y in batches:
        if max_images is not None:
            x, y = x[: max_images - count], y[: max_images - count]
        logits = model(x, training=False)
        correct += int(np.sum(np.argmax(logits, axis=-1) == np.asarray(y)))
        count += len(y)
        if max_images is not None and count >= max_images:
            break
    if not count:
        raise EvaluationError("the test split holds no images")
    return correct / count, count


def _images_key(images: np.ndarray) -> str:
    digest = hashlib.sha1(images.tobytes())
    digest.update(repr(images.shape).encode())
    return digest.hexdigest()[:16]


def generated_images(
    images: np.ndarray,
    corruption: str,
    severity: int,
    seed: int,
    cache_dir: str | None = None,
) -> np.ndarray:
    """``images`` corrupted offline, optionally cached in ``cache_dir``.

    The cache key is the content of the clean images, the corruption, the
    severity and the seed, so a cached set is reused only for identical input.

    Example:
        >>> x = np.full((2, 32, 32, 1), 100, np.uint8)
        >>> generated_images(x, "contrast", 5, seed=0).max() < 100
        True
    """
    from lcr_larq.robustness import corrupt_images

    path = None
    if cache_dir:
        os.makedirs(cache_dir, exist_ok=True)
        name = f"{_images_key(images)}_{corruption}_{severity}_seed{seed}.npy"
        path = os.path.join(cache_dir, name)
        if os.path.isfile(path):
            try:
                cached = np.load(path, allow_pickle=False)
                if cached.shape == images.shape and cached.dtype == np.uint8:
                    return cached
            except (OSError, ValueError):
                pass  # unreadable: regenerate
    out = corrupt_images(images, corruption, severity, seed=seed)
    if path:
        tmp = f"{path}.{os.getpid()}.tmp.npy"
        np.save(tmp, out)
        os.replace(tmp, path)
    return out


# --------------------------------------------------------------------------- metrics
def corruption_metrics(
    accuracies: dict[str, dict[str, float]], normalized: bool
) -> dict[str, Any]:
    """CE per corruption, mCE over the benchmark corruptions and over the extra ones.

    ``accuracies`` maps corruption -> {severity (str): accuracy}. With
    ``normalized`` (ImageNet) each CE is divided by AlexNet's errors at the
    same severities; the 4 extra corruptions then use the mean errors of
    :data:`~lcr_larq.robustness.ALEXNET_MEAN_ERRORS_EXTRA` (third-party values).

    Example:
        >>> m = corruption_metrics({"fog": {"1": 0.9, "2": 0.7}, "snow": {"1": 0.5, "2": 0.5}},
        ...                        normalized=False)
        >>> round(m["mce"], 6), m["mce_corruptions"]
        (0.7, ['fog', 'snow'])
    """
    from lcr_larq import robustness as rb

    errors = {
        c: [1.0 - by_severity[s] for s in sorted(by_severity, key=int)]
        for c, by_severity in accuracies.items()
    }
    severities = {c: [int(s) for s in sorted(by, key=int)] for c, by in accuracies.items()}
    benchmark = [c for c in errors if c in rb.CORRUPTIONS]
    extra = [c for c in errors if c not in rb.CORRUPTIONS]

    def baseline(names: list[str]):
        if not normalized:
            return None
        return {
            c: (
                [rb.ALEXNET_ERRORS_BY_SEVERITY[c][s - 1] for s in severities[c]]
                if c in rb.ALEXNET_ERRORS_BY_SEVERITY
                else rb.ALEXNET_MEAN_ERRORS_EXTRA[c]
            )
            for c in names
        }

    out: dict[str, Any] = {"corruption_error": {}, "mce": None, "mce_extra": None}
    for names, key in ((benchmark, "mce"), (extra, "mce_extra")):
        if names:
            result = rb.mean_corruption_error({c: errors[c] for c in names}, baseline(names))
            out[key] = result.value
            out["corruption_error"].update(result.per_corruption)
    if out["mce"] is None:  # only extra corruptions asked for
        out["mce"] = out["mce_extra"]
        benchmark = extra
    out["mce_corruptions"] = benchmark
    out["corruption_error"] = {c: out["corruption_error"][c] for c in errors}
    return out


def normalization_text(normalized: bool, severities: list[int]) -> str:
    """One sentence saying how the CE values are computed."""
    span = f"severities {','.join(map(str, severities))}"
    if normalized:
        return (
            f"normalized: CE = sum of top-1 errors over {span} divided by AlexNet's "
            "(Hendrycks & Dietterich); mCE = mean CE, x100 for the paper's percent"
        )
    return (
        f"unnormalized: CE = sum of top-1 errors (fractions) over {span}; "
        "mCE = mean CE (AlexNet normalization exists for ImageNet only)"
    )


# --------------------------------------------------------------------------- linear probe
def head_layer(model):
    """The classifier head: the last layer of ``model`` with trainable weights."""
    for layer in reversed(model.layers):
        if layer.trainable_weights:
            return layer
    raise EvaluationError(f"model {model.name!r} has no trainable layer to fine-tune")


def linear_probe(model, dataset, epochs: int = 5, lr: float = 0.01, seed: int = 0) -> dict:
    """Freezes everything but the head of ``model`` and fine-tunes the head on
    the clean training split (SGD with momentum 0.9, cross entropy). In place.

    Returns the probe's settings and its last training accuracy.
    """
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    head = head_layer(model)
    for layer in model.layers:
        layer.trainable = layer is head
    model.compile(
        optimizer=tf.keras.optimizers.SGD(lr, momentum=0.9),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = model.fit(dataset.train, epochs=epochs, verbose=0)
    return {
        "head": head.name,
        "epochs": epochs,
        "lr": lr,
        "fine_tuned_on": f"{dataset.name} training split (clean)",
        "train_accuracy": float(history.history["accuracy"][-1]),
    }


# --------------------------------------------------------------------------- evaluation
def evaluate(
    run: Run,
    corruptions: list[str],
    severities: list[int],
    seed: int = 0,
    source: str = "auto",
    data_dir: str | None = None,
    cache_dir: str | None = None,
    max_images: int | None = None,
    batch_size: int = 256,
    protocol: str = "standard",
    probe_epochs: int = 5,
    probe_lr: float = 0.01,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Measures ``run``'s model on clean and corrupted test images; returns the report.

    See the module docstring for the sources and metrics. ``progress`` gets
    one line per finished corruption.
    """
    if source not in SOURCES:
        raise EvaluationError(f"--source must be one of {list(SOURCES)}, got {source!r}")
    if protocol not in PROTOCOLS:
        raise EvaluationError(f"--protocol must be one of {list(PROTOCOLS)}, got {protocol!r}")
    start = time.perf_counter()
    dataset, model = run.dataset, run.model
    kind = str(dataset.name).split(":", 1)[0]
    data_dir = data_dir or run.recipe.get("data_dir")
    if source == "tfds" and kind not in TFDS_CORRUPTED:
        raise EvaluationError(
            f"TFDS has no corrupted version of {dataset.name}: use --source generate"
        )
    use_tfds = source == "tfds" or (
        source == "auto" and tfds_prepared(kind, corruptions, severities, data_dir)
    )
    probe = None
    if protocol == "linear-probe":
        probe = linear_probe(model, dataset, probe_epochs, probe_lr, seed)
    predict = predictor(model, dataset.normalize, batch_size)
    streamed = dataset.test_arrays is None
    if streamed and not use_tfds and max_images is None:
        raise EvaluationError(
            f"the {dataset.name} test split is streamed, not held in memory: generating its "
            "corruptions needs --max-images N (or --source tfds with the published sets)"
        )
    if streamed and use_tfds:
        clean_x = None
        clean_accuracy, num_images = streamed_accuracy(model, dataset.test, max_images)
    else:
        clean_x, clean_y = clean_test_images(dataset, max_images)
        clean_accuracy, num_images = accuracy(predict, clean_x, clean_y), len(clean_y)
    size = tuple(dataset.input_shape[:2])

    accuracies: dict[str, dict[str, float]] = {}
    counts: dict[str, int] = {}
    seconds = {"corrupt": 0.0, "inference": 0.0}
    for c in corruptions:
        accuracies[c] = {}
        for s in severities:
            if use_tfds:
                batches = tfds_corrupted_batches(
                    kind, c, s, data_dir, size, max_images, batch_size
                )
            else:
                batches = iter([(generated_images(clean_x, c, s, seed, cache_dir), clean_y)])
            correct = count = 0
            while True:
                t0 = time.perf_counter()
                batch = next(batches, None)
                t1 = time.perf_counter()
                seconds["corrupt"] += t1 - t0
                if batch is None:
                    break
                correct += int(np.sum(predict(batch[0]) == batch[1]))
                count += len(batch[1])
                seconds["inference"] += time.perf_counter() - t1
            if not count:
                raise EvaluationError(f"no images for {c} at severity {s}")
            accuracies[c][str(s)] = correct / count
            counts[f"{c}_{s}"] = count
        if progress:
            cells = " ".join(f"{100 * a:5.1f}" for a in accuracies[c].values())
            progress(f"{c:18s} {cells}")

    normalized = kind == "imagenet2012"
    metrics = corruption_metrics(accuracies, normalized)
    mean_acc = float(np.mean([a for by in accuracies.values() for a in by.values()]))
    if use_tfds:
        source_text = f"tfds:{TFDS_CORRUPTED[kind]} (published corrupted test set)"
    else:
        source_text = f"generated offline with imagecorruptions (seed {seed})"
    report = {
        "model_dir": os.path.abspath(run.model_dir),
        "model": model.name,
        "dataset": dataset.name,
        "lcr_lambda": run.recipe.get("lcr_lambda"),
        "train_seed": run.recipe.get("seed"),
        "protocol": protocol,
        "linear_probe": probe,
        "source": source_text,
        "seed": seed,
        "num_images": int(num_images),
        "corrupted_images": counts,
        "corruptions": list(corruptions),
        "severities": list(severities),
        "clean_accuracy": clean_accuracy,
        "clean_error": 1.0 - clean_accuracy,
        "accuracy": accuracies,
        "corruption_error": metrics["corruption_error"],
        "mce": metrics["mce"],
        "mce_corruptions": metrics["mce_corruptions"],
        "mce_extra": metrics["mce_extra"],
        "normalized": normalized,
        "normalization": normalization_text(normalized, severities),
        "mean_corruption_accuracy": mean_acc,
        "seconds": {
            "corrupt": round(seconds["corrupt"], 2),
            "inference": round(seconds["inference"], 2),
            "total": round(time.perf_counter() - start, 2),
        },
    }
    return report


def evaluate_run(model_dir: str, **kwargs: Any) -> dict:
    """:func:`load_run` then :func:`evaluate` (``dataset``/``data_dir`` go to
    both); the report is not written."""
    run = load_run(model_dir, kwargs.pop("dataset", None), kwargs.get("data_dir"))
    from lcr_larq.robustness import CORRUPTIONS, SEVERITIES

    kwargs.setdefault("corruptions", list(CORRUPTIONS))
    kwargs.setdefault("severities", list(SEVERITIES))
    return evaluate(run, **kwargs)


def format_table(report: dict) -> str:
    """The report as a text table: accuracy (%) per corruption and severity, CE.

    Example:
        >>> report = {"severities": [1], "accuracy": {"fog": {"1": 0.5}},
        ...           "corruption_error": {"fog": 0.5}, "clean_accuracy": 0.9,
        ...           "num_images": 10, "mce": 0.5, "mce_corruptions": ["fog"],
        ...           "mce_extra": None, "normalized": False, "mean_corruption_accuracy": 0.5,
        ...           "normalization": "unnormalized", "source": "generated",
        ...           "protocol": "standard"}
        >>> print(format_table(report).splitlines()[0])
        corruption            s1      CE
    """
    sev = report["severities"]
    head = f"{'corruption':18s}" + "".join(f"{'s' + str(s):>6s}" for s in sev) + f"{'CE':>8s}"
    lines = [head]
    for c, by in report["accuracy"].items():
        cells = "".join(f"{100 * by[str(s)]:6.1f}" for s in sev)
        lines.append(f"{c:18s}{cells}{report['corruption_error'][c]:8.3f}")
    mean_by_sev = [
        float(np.mean([by[str(s)] for by in report["accuracy"].values()])) for s in sev
    ]
    lines.append(f"{'mean':18s}" + "".join(f"{100 * a:6.1f}" for a in mean_by_sev))
    kind = "normalized" if report["normalized"] else "unnormalized"
    lines.append("")
    lines.append(
        f"clean accuracy {100 * report['clean_accuracy']:.2f}% on {report['num_images']} "
        f"images; mean corruption accuracy {100 * report['mean_corruption_accuracy']:.2f}%"
    )
    lines.append(
        f"mCE {report['mce']:.4f} ({kind}, over {len(report['mce_corruptions'])} corruptions)"
        + (f"; extra corruptions {report['mce_extra']:.4f}" if report.get("mce_extra") else "")
    )
    lines.append(f"  {report['normalization']}")
    lines.append(f"  source: {report['source']}; protocol: {report['protocol']}")
    return "\n".join(lines)


def write_report(report: dict, path: str) -> None:
    """Writes ``report`` as indented JSON."""
    with open(path, "w") as handle:
        json.dump(report, handle, indent=2)


def _positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise EvaluationError(f"{name} must be >= 1, got {value}")


def main(argv: list[str] | None = None) -> int:
    """``python -m lcr_larq.evaluate``: 0 on success, 2 with a one-line error."""
    parser = argparse.ArgumentParser(
        prog="python -m lcr_larq.evaluate",
        description="Clean accuracy and common-corruption robustness (CE, mCE) of a "
        "model trained by train.py.",
    )
    parser.add_argument("--model-dir", required=True, help="run directory written by train.py")
    parser.add_argument(
        "--corruptions", default="all",
        help="all (the 15 benchmark corruptions), extra (the 4 held-out ones), "
        "all+extra, or a comma list of names (default: all)",
    )
    parser.add_argument("--extra", action="store_true", help="add the 4 held-out corruptions")
    parser.add_argument("--severities", default="1-5", help="e.g. 1-5, 5 or 1,3,5 (default 1-5)")
    parser.add_argument("--source", default="auto", choices=SOURCES,
                        help="tfds (published sets in --data-dir), generate (offline), "
                        "auto: tfds where prepared (default)")
    parser.add_argument("--data-dir", help="TFDS data directory (default: the run's)")
    parser.add_argument("--dataset", help="evaluate on this dataset instead of the run's")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated corruptions")
    parser.add_argument("--max-images", type=int, help="use at most N test images")
    parser.add_argument("--batch-size", type=int, default=256, help="inference batch size")
    parser.add_argument("--cache-dir", help="cache generated corrupted images here")
    parser.add_argument("--protocol", default="standard", choices=PROTOCOLS,
                        help="standard, or linear-probe: freeze the backbone and fine-tune "
                        "the classifier head on the clean training split first")
    parser.add_argument("--probe-epochs", type=int, default=5, help="linear-probe epochs")
    parser.add_argument("--probe-lr", type=float, default=0.01, help="linear-probe SGD lr")
    parser.add_argument("--output", help=f"report path (default: DIR/{REPORT_FILE})")
    parser.add_argument("--no-plot", action="store_true", help=f"do not draw {PLOT_FILE}")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)

    from lcr_larq import cli
    from lcr_larq import config as cfg
    from lcr_larq import data as lcr_data
    from lcr_larq.training import TrainingError

    try:
        corruptions = parse_corruptions(args.corruptions, args.extra)
        severities = parse_severities(args.severities)
        _positive("--max-images", args.max_images)
        _positive("--batch-size", args.batch_size)
        _positive("--probe-epochs", args.probe_epochs)
        if args.probe_lr <= 0:
            raise EvaluationError(f"--probe-lr must be > 0, got {args.probe_lr}")
        run = load_run(args.model_dir, args.dataset, args.data_dir)
        output = args.output or os.path.join(args.model_dir, REPORT_FILE)
        progress = None if args.quiet else (lambda line: print(line, flush=True))
        report = evaluate(
            run, corruptions, severities, seed=args.seed, source=args.source,
            data_dir=args.data_dir, cache_dir=args.cache_dir, max_images=args.max_images,
            batch_size=args.batch_size, protocol=args.protocol,
            probe_epochs=args.probe_epochs, probe_lr=args.probe_lr, progress=progress,
        )
        write_report(report, output)
    except (EvaluationError, TrainingError, cfg.ConfigError, lcr_data.DataError,
            OSError) as error:
        return cli.fail(error)
    plot = None
    if not args.no_plot:
        from lcr_larq import plots

        def plot(path: str) -> None:
            label = plots.run_label(run.recipe, run.model_dir)
            plots.plot_corruption_accuracy([(label, report)], path)

    return cli.finish_report(format_table(report), output, plot, PLOT_FILE)


if __name__ == "__main__":
    sys.exit(main())
