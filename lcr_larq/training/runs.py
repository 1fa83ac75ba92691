"""Run directories: what ``lcr-train`` writes, and reading it back.

A run directory holds

* ``config.yaml`` — the run's recipe (``lcr-train --config`` reads it back);
* ``results.json`` — test accuracy and loss of the deployed network, settings,
  seconds, provenance (standard JSON: a value that is not finite is ``null``);
* ``history.csv`` — one row per finished epoch;
* ``model.keras`` (with its LCR layer) and ``bnn.keras`` (the plain BNN);
* ``logs/`` (TensorBoard) and, while training, ``backup/`` (the checkpoint of
  the last finished epoch).

Every command that takes ``--model-dir`` reads it through this module, and
starts from its settings (:class:`RunSettings`, :class:`ReportSettings`).

Example:
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "report.json")
    >>> save_json({"loss": float("nan"), "accuracy": 0.5}, path)
    >>> load_json(path)
    {'loss': None, 'accuracy': 0.5}
"""

from __future__ import annotations

import csv
import errno
import fcntl
import hashlib
import json
import math
import os
import shutil
import socket
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import tensorflow as tf

from lcr_larq import data as lcr_data
from lcr_larq.batchnorm import recalibrate
from lcr_larq.data import DatasetSpec
from lcr_larq.errors import ConfigError, RunError
from lcr_larq.graph import strip_lcr
from lcr_larq.quantizers import quantized_convolutions
from lcr_larq.settings import Settings, flag_name, load_recipe, recipe_dict, setting
from lcr_larq.surgery import float_counterpart
from lcr_larq.training.config import TrainConfig, build_network, with_input_size

__all__ = [
    "BACKUP",
    "BNN",
    "HISTORY",
    "LOCK",
    "LOGS",
    "MODEL",
    "PRESENTATION",
    "RECIPE",
    "RESULTS",
    "STATE",
    "History",
    "ReportSettings",
    "Run",
    "RunLock",
    "RunSettings",
    "clear",
    "differing_settings",
    "finite_json",
    "load_json",
    "load_model",
    "load_run",
    "read_history",
    "read_recipe",
    "read_results",
    "remove_if_unused",
    "run_directory",
    "save_json",
    "test_images",
    "weights_digest",
]

RECIPE = "config.yaml"
RESULTS = "results.json"
HISTORY = "history.csv"
MODEL = "model.keras"
BNN = "bnn.keras"
LOGS = "logs"
BACKUP = "backup"


# --------------------------------------------------------------------------- settings
@dataclass
class RunSettings(Settings):
    """The settings every command that reads a run starts with.

    Example:
        >>> RunSettings(model_dir="runs/a").model_dir
        'runs/a'
        >>> RunSettings()  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        lcr_larq.errors.ConfigError: --model-dir is required: give a run directory ...
    """

    model_dir: str | None = setting(None, "run directory written by lcr-train (required)")

    def check(self) -> None:
        if not self.model_dir:
            raise ConfigError("--model-dir is required: give a run directory written by lcr-train")


@dataclass
class ReportSettings(RunSettings):
    """:class:`RunSettings` of a command that writes a report, by default
    ``report_file`` in the run directory."""

    report_file: ClassVar[str] = "report.json"
    output: str | None = setting(None, "report path (default: a file in --model-dir)")

    @property
    def report_path(self) -> str:
        return self.output or os.path.join(self.model_dir, self.report_file)


# --------------------------------------------------------------------------- JSON
def finite_json(value: Any) -> Any:
    """``value`` with every float that is not finite replaced by None and numpy
    scalars and arrays made plain Python: what standard JSON can hold."""
    if isinstance(value, dict):
        return {str(k): finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return finite_json(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def save_json(data: dict, path: str) -> None:
    """Writes ``data`` as indented standard JSON (no ``NaN`` or ``Infinity``),
    through a temporary file of this process's own so a crash never leaves
    half a report, and two processes writing the same report (workers of a
    study) leave one of them whole."""
    temporary = f"{path}.{socket.gethostname()}.{os.getpid()}.tmp"
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(finite_json(data), handle, indent=2, allow_nan=False)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def load_json(path: str) -> dict | None:
    """A JSON report, or None when the file does not exist."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        raise RunError(f"{path} is not readable JSON: rerun the command that writes it") from None
    if not isinstance(data, dict):
        raise RunError(f"{path} holds no JSON object: rerun the command that writes it")
    return data


# --------------------------------------------------------------------------- reading
def run_directory(path: str) -> str:
    """The run directory of a path: the directory itself, or a model file's."""
    return path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))


def read_recipe(path: str) -> TrainConfig | None:
    """The :class:`~lcr_larq.training.TrainConfig` of a run (``config.yaml``),
    or None when the directory holds none."""
    recipe = os.path.join(run_directory(path), RECIPE)
    if not os.path.isfile(recipe):
        return None
    try:
        return TrainConfig(**load_recipe(recipe, TrainConfig))
    except ConfigError as error:
        raise RunError(f"{error}: the run directory is corrupt") from None


def read_results(path: str) -> dict | None:
    """A run's ``results.json``, or None before it has finished."""
    return load_json(os.path.join(run_directory(path), RESULTS))


def read_history(path: str) -> dict[str, list[float]]:
    """``history.csv`` of a run as columns of floats (``NaN`` for ``NA``); ``{}``
    when absent. A row with more or fewer values than the header is a
    :class:`~lcr_larq.errors.RunError`.

    Example:
        >>> read_history("/nonexistent")
        {}
    """
    path = os.path.join(run_directory(path), HISTORY)
    if not os.path.isfile(path):
        return {}
    columns: dict[str, list[float]] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        for line, values in enumerate(reader, start=2):
            if len(values) != len(header):
                raise RunError(
                    f"{path} is malformed: line {line} has {len(values)} values for "
                    f"{len(header)} columns; rerun the training to rewrite it"
                )
            for key, value in zip(header, values):
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    number = math.nan
                columns.setdefault(key, []).append(number)
    return columns


def load_model(path: str) -> tf.keras.Model:
    """The plain network of a run: the run directory's ``bnn.keras`` (else its
    ``model.keras``, everything of LCR stripped), or a ``.keras`` file.

    A model that is not the run's own is refused: its weights must match the
    ``weights_sha256`` of the run's ``results.json``, and a binary run's model
    must hold binary layers. Every refusal (missing, corrupt, diverged, not
    the run's, a path that is not a run directory) is a one-line
    :class:`~lcr_larq.errors.RunError`.
    """
    directory, path = _model_file(path)
    try:
        model = tf.keras.models.load_model(path, compile=False)
    except Exception as error:  # Keras raises many kinds for a broken file
        raise RunError(
            f"{path} is not a loadable Keras model ({type(error).__name__}): retrain it"
        ) from None
    bad = [w.name for w in model.weights if not np.isfinite(w.numpy()).all()]
    if bad:
        raise RunError(
            f"{path} holds weights that are not finite ({bad[0]}"
            + (f" and {len(bad) - 1} more" if len(bad) > 1 else "")
            + "): the training diverged; retrain it with a lower --lr"
        )
    model = strip_lcr(model)
    results = read_results(directory) if directory else None
    if results is not None:
        _check_own_model(model, path, results)
    return model


def _model_file(path: str) -> tuple[str | None, str]:
    """``(run directory or None, model file)`` of a ``--model-dir`` value; a
    directory where a training is running is refused, naming its process."""
    directory = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    pid = training_pid(directory)
    if pid is not None:
        raise RunError(
            f"{path} is being trained right now (pid {pid}, named in its {LOCK}): wait for the "
            "training to end, then rerun this command"
        )
    if os.path.isdir(path):
        for name in (BNN, MODEL):
            if os.path.isfile(os.path.join(path, name)):
                return path, os.path.join(path, name)
        raise RunError(f"{path} holds no {BNN} or {MODEL}: train a run there with lcr-train")
    if not os.path.exists(path):
        raise RunError(f"{path} does not exist: give a run directory written by lcr-train")
    directory = os.path.dirname(os.path.abspath(path))
    if not path.endswith(".keras"):
        raise RunError(f"{path} is not a model: pass the run directory ({directory})")
    return (directory if os.path.isfile(os.path.join(directory, RESULTS)) else None), path


def _check_own_model(model: tf.keras.Model, path: str, results: dict) -> None:
    """Refuses a model that is not the one the run's ``results.json`` describes."""
    digest = results.get("weights_sha256")
    if digest and weights_digest(model) != digest:
        raise RunError(
            f"{path} is not the model this run trained (its weights differ from the "
            f"weights_sha256 of {RESULTS}): restore the run's own file or train the run again"
        )
    if results.get("precision") not in (None, "fp32") and not quantized_convolutions(model):
        raise RunError(
            f"{path} holds no binary layer, but the run trained a binary network: restore the "
            "run's own file or train the run again"
        )


def weights_digest(model: tf.keras.Model) -> str:
    """SHA-256 of every weight of ``model`` (values and shapes, in order): equal
    digests are equal networks, e.g. a resumed run and an uninterrupted one,
    or a run's model and the file read back."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        array = np.ascontiguousarray(weight)
        digest.update(str(array.shape).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


@dataclass
class Run:
    """A run directory's plain BNN, settings and dataset."""

    directory: str
    model: Any
    config: TrainConfig | None
    dataset: Any
    results: dict | None = None
    #: BN statistics re-estimated on loading (a run from before they were
    #: re-estimated at the end of training), else None.
    bn_recalibration: dict | None = None
    #: what ``dataset`` was loaded from (the run's ``--dataset``, or another one).
    dataset_spec: DatasetSpec | None = None

    def float_counterpart(self) -> tf.keras.Model:
        """The full-precision version of the run's BNN, with its latent weights
        (:func:`lcr_larq.surgery.float_counterpart`): the run's registered
        architecture rebuilt with its quantizers off, else (no settings, a
        full-precision run, another registry) the BNN stripped of them."""
        config, bnn = self.config, self.model
        rebuild = None
        if config is not None and not config.full_precision:
            shape, classes = tuple(bnn.inputs[0].shape[1:]), int(bnn.outputs[0].shape[-1])
            rebuild = lambda: build_network(config, shape, classes, quantized=False)  # noqa: E731
        return float_counterpart(bnn, rebuild)


def load_run(
    path: str,
    dataset: DatasetSpec | None = None,
    data_dir: str | None = None,
    batch_size: int | None = None,
    input_size_check: bool = True,
) -> Run:
    """The plain BNN of ``path`` and its run's data.

    The dataset is ``dataset`` (parsed: :func:`lcr_larq.data.dataset_spec`) or
    the run's, at the run's ``input_size``; ``data_dir`` overrides the run's.
    A run whose ``results.json`` shows no
    re-estimated BN statistics (trained before they were re-estimated, with
    ``--bn-recalibration-batches`` above 0) has them re-estimated here, so
    that every command scores the network as ``lcr-train`` now deploys it.
    """
    model = load_model(path)
    directory = run_directory(path)
    config = read_recipe(directory)
    spec = dataset or (config.dataset_spec if config else None)
    if spec is None:
        raise ConfigError(
            f"{directory} holds no {RECIPE} naming the dataset: pass --dataset"
        )
    ds = lcr_data.load_dataset(
        spec,
        batch_size=int(batch_size or (config.batch_size if config else 128)),
        seed=config.seed if config else 0,
        data_dir=data_dir or (config.data_dir if config else None),
        input_size=_served_size(config, dataset),
        validation_split=config.validation_split if config else 0.0,
    )
    if input_size_check and tuple(model.input_shape[1:]) != tuple(ds.input_shape):
        raise ConfigError(
            f"the model takes {tuple(model.input_shape[1:])} inputs but {spec} gives "
            f"{tuple(ds.input_shape)}: pass the run's --dataset"
        )
    results = read_results(directory)
    calibration = None
    batches = (config or TrainConfig()).bn_recalibration_batches
    if results is not None and "bn_recalibration" not in results:
        calibration = recalibrate(model, ds, batches)
    return Run(directory, model, config, ds, results, calibration, spec)


def _served_size(config: TrainConfig | None, dataset: str | None) -> int | None:
    """The input size a run's recipe asks of ``dataset`` (None: the run's own,
    at the size the run was served; another: the recorded ``input_size``)."""
    if config is None:
        return None
    return config.input_size if dataset else with_input_size(config).input_size


def test_images(dataset, max_images: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The test split as uint8 images and labels, at most ``max_images``.

    In-memory splits come from ``dataset.test_arrays``; streamed ones
    (ImageNet) are read from ``dataset.test`` and mapped back to pixels by
    inverting the loader's standardization (exact up to float rounding, since
    the loaders normalize uint8 images).

    Example:
        >>> from lcr_larq.data import load_dataset
        >>> x, y = test_images(load_dataset("digits"), max_images=5)
        >>> x.shape, x.dtype.name, y.shape
        ((5, 16, 16, 1), 'uint8', (5,))
    """
    if dataset.test_arrays is not None:
        x, y = dataset.test_arrays
        return x[:max_images], np.asarray(y[:max_images], np.int32)
    mean = np.asarray(dataset.info.get("mean", 0.0), np.float64)
    std = np.asarray(dataset.info.get("std", 1.0), np.float64)
    images, labels, count = [], [], 0
    for xb, yb in dataset.test:
        pixels = (np.asarray(xb.numpy(), np.float64) * std + mean) * 255.0
        images.append(np.clip(np.round(pixels), 0, 255).astype(np.uint8))
        labels.append(np.asarray(yb.numpy(), np.int32))
        count += len(labels[-1])
        if max_images is not None and count >= max_images:
            break
    if not images:
        raise RunError("the test split holds no images")
    return np.concatenate(images)[:max_images], np.concatenate(labels)[:max_images]


# --------------------------------------------------------------------------- writing
LOCK = ".lock"
#: The errors of ``flock`` on a filesystem that does not lock.
NO_FLOCK = (errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP)
STATE = "state.json"
#: Settings that do not change what a run computes.
PRESENTATION = ("output_dir", "verbose", "overwrite")


def differing_settings(old: TrainConfig, new: TrainConfig) -> list[str]:
    """The flags whose values differ between two runs' settings (not those
    of :data:`PRESENTATION`), each input size as the run serves it
    (:func:`~lcr_larq.training.config.with_input_size`: a recorded 32 is what
    a run of a model that needs 32 on 16×16 digits gets without ``--input-size``).

    Example:
        >>> differing_settings(TrainConfig(), TrainConfig(lcr_lambda=0.0, verbose=0))
        ['--lcr-lambda']
        >>> differing_settings(TrainConfig(model="birealnet", input_size=32),
        ...                    TrainConfig(model="birealnet"))
        []
    """
    a, b = recipe_dict(with_input_size(old)), recipe_dict(with_input_size(new))
    return [flag_name(k) for k in a if k not in PRESENTATION and a[k] != b.get(k)]


class RunLock:
    """One run per directory: an exclusive ``flock`` on ``DIR/.lock`` (or
    ``DIR/name``) for as long as the run holds it (the system drops it when
    the process ends, killed or not).

    Where the filesystem has no ``flock`` (Lustre mounted without ``-o
    flock``, some FUSE filesystems: the call fails with ``ENOSYS``,
    ``ENOLCK`` or ``EOPNOTSUPP``) the lock is not taken and the run goes on
    unguarded; a study's cells are guarded by their claims
    (:mod:`lcr_larq.experiments.claims`) there too."""

    def __init__(self, directory: str, name: str = LOCK):
        self.path = os.path.join(directory, name)
        self.handle = None
        self.locked = True

    def __enter__(self) -> RunLock:
        self.handle = open(self.path, "a+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno in NO_FLOCK:
                self.locked = False
                return self
            self.handle.seek(0)
            owner = self.handle.read().strip() or "?"
            self.handle.close()
            raise RunError(
                f"another run (pid {owner}) is using {os.path.dirname(self.path)}: wait for it "
                "to end or choose another --output-dir"
            ) from None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(str(os.getpid()))
        self.handle.flush()
        return self

    def __exit__(self, *exc) -> None:
        if self.locked:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def training_pid(directory: str) -> str | None:
    """The process id written in ``directory``'s lock while a run holds it
    (:class:`RunLock`; ``"?"`` if it has not written it yet), else None.

    Example:
        >>> import tempfile
        >>> directory = tempfile.mkdtemp()
        >>> with RunLock(directory):
        ...     training_pid(directory) == str(os.getpid())
        True
        >>> print(training_pid(directory))
        None
    """
    try:
        handle = open(os.path.join(directory, LOCK), encoding="utf-8")
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:  # held: the run's process is alive
            return handle.read().strip() or "?"
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


def remove_if_unused(directory: str) -> None:
    """Removes ``directory`` when it holds nothing but a run's lock file (a
    run that ended before writing anything)."""
    try:
        entries = os.listdir(directory)
    except OSError:
        return
    if set(entries) <= {LOCK}:
        shutil.rmtree(directory, ignore_errors=True)


def clear(directory: str) -> None:
    """Removes what a run wrote in ``directory`` (for ``--overwrite``)."""
    for name in (RESULTS, HISTORY, MODEL, BNN, RECIPE):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            os.remove(path)
    for name in (BACKUP, LOGS):
        shutil.rmtree(os.path.join(directory, name), ignore_errors=True)


class History:
    """``history.csv``, one row per finished epoch, kept in step with the
    checkpoint: a row is written (and flushed to disk) before its epoch's
    checkpoint, and rows of epochs the checkpoint does not hold are dropped
    when a run resumes."""

    def __init__(self, directory: str, first_epoch: int):
        self.path = os.path.join(directory, HISTORY)
        self.header: list[str] | None = None
        rows: list[list[str]] = []
        if first_epoch and os.path.isfile(self.path):
            with open(self.path, newline="", encoding="utf-8") as handle:
                reader = csv.reader(handle)
                self.header = next(reader, None)
                rows = [row for row in reader if row and int(float(row[0])) < first_epoch]
        with open(self.path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            if self.header:
                writer.writerow(self.header)
                writer.writerows(rows)

    def append(self, epoch: int, logs: dict) -> None:
        if self.header is None:
            self.header = ["epoch", *sorted(logs)]
            row = [self.header]
        else:
            row = []
        row.append([epoch, *(_cell(logs.get(k, "NA")) for k in self.header[1:])])
        with open(self.path, "a", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows(row)
            handle.flush()
            os.fsync(handle.fileno())


def _cell(value):
    if isinstance(value, float | np.floating):
        return repr(float(value))
    return value
