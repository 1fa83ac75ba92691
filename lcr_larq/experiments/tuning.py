"""Hyperparameter search over the LCR settings λ, β, power iterations and reference.

:func:`run_search` runs a Keras Tuner search (stock ``RandomSearch``,
``BayesianOptimization`` or ``Hyperband``, through their public API only)
whose every trial trains the network of a :class:`TuneConfig` — the settings
of ``lcr-train`` plus the tuner's own — on the training data minus the
validation split (``validation_split``; the test split is never looked at),
and scores the plain BNN on that split, its BN statistics re-estimated first
as ``lcr-train`` does: validation accuracy (``objective="val_accuracy"``,
maximized) or validation mCE under common corruptions (``"val_mce"``,
minimized; the corrupted images are generated once and cached).

The space (:func:`search_space`): λ log-uniform in ``lambda_range`` (by
default [2^-1, 2^3], the paper's Table 3), β uniform in ``beta_range`` (β > 1),
``power_iterations_range`` and ``reference_choices``; a range whose ends are
equal fixes the setting. The settings searched (``lcr_lambda``, ``lcr_beta``,
``power_iterations``, ``lcr_reference``) are set by every trial: a recipe's
values for them are replaced. Besides the search, the λ = 0 baseline (the plain
BNN, ``baseline``) is trained once with the same split and seed; it is listed
first and ``max_trials`` counts the LCR trials only. Every trial uses ``seed``
for its weights and data order, so trials differ only by their
hyperparameters.

Written in ``output_dir`` (default ``runs/tune``):

* ``trials.csv`` — the baseline first, then the trials best first, failed and
  unfinished trials last;
* ``best.yaml`` — the best LCR trial as a recipe of ``lcr-train`` (into
  ``<output_dir>/best``), headed by its score;
* ``search.yaml`` — the search's own recipe (``lcr-tune --config search.yaml``
  continues it); a rerun into the same directory with other settings is
  refused, ``overwrite`` starts again;
* ``baseline/`` — the baseline's scores; ``tuner/`` — Keras Tuner's directory;
  ``corruption-cache/`` — the corrupted validation images of ``val_mce``.

An interrupted search continues when run again: finished trials (and a
finished baseline) are kept, a trial that was running resumes from its last
finished epoch (its ``backup/``, as ``lcr-train`` resumes a run).

Example:
    >>> config = TuneConfig(lambda_range=(1.0, 4.0), power_iterations_range=(2, 2))
    >>> cfg.validate(config).run_dir
    'runs/tune'
    >>> space = search_space(config)
    >>> [(p.name, type(p).__name__) for p in space.space]
    [('lcr_lambda', 'Float'), ('lcr_beta', 'Float'), ('power_iterations', 'Fixed'), \
('lcr_reference', 'Fixed')]
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import itertools
import math
import os
import re
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import tensorflow as tf

from lcr_larq import compat, runs, training
from lcr_larq import config as cfg
from lcr_larq import data as lcr_data
from lcr_larq.analysis import evaluation, robustness
from lcr_larq.batchnorm import recalibrate
from lcr_larq.config import setting
from lcr_larq.errors import ConfigError, DataError, RunError, UserError
from lcr_larq.graph import strip_lcr
from lcr_larq.models import MODELS

kt = compat.import_keras_tuner()

TUNERS = ("random", "bayesian", "hyperband")
#: objective name → direction.
OBJECTIVES = {"val_accuracy": "max", "val_mce": "min"}
#: β must be > 1: a lower bound of 1 is taken as this value.
BETA_FLOOR = 1.001
#: The TrainConfig fields every trial sets, and the TuneConfig field of each one's range.
RANGES = {
    "lcr_lambda": "lambda_range",
    "lcr_beta": "beta_range",
    "power_iterations": "power_iterations_range",
    "lcr_reference": "reference_choices",
}
SEARCHED = tuple(RANGES)
DEFAULT_OUTPUT = os.path.join(cfg.RUNS_DIR, "tune")
DEFAULT_TRIALS = 10
#: Keras Tuner's project inside ``tuner/``.
PROJECT = "search"
#: The trial id (and directory) of the λ = 0 baseline.
BASELINE = "baseline"
TRIALS_FILE = "trials.csv"
BEST_FILE = "best.yaml"
SEARCH_FILE = "search.yaml"
TUNER_DIR = "tuner"
CACHE_DIR = "corruption-cache"
RESULT_FILE = "result.json"
ERROR_FILE = "error.txt"
#: Settings a rerun may change and still continue the search: where it writes,
#: how much it prints, and the trial budget, which may grow.
NOT_COMPARED = ("output_dir", "verbose", "max_trials", *SEARCHED)
#: The metrics of a trial besides the objective, in the order of the table.
METRICS = ("val_accuracy", "val_loss", "val_mce", "accuracy", "loss", "seconds")


def _retold(name: str, help: str):  # noqa: A002
    """The TrainConfig field ``name`` with another ``--help`` text."""
    (f,) = [f for f in dataclasses.fields(cfg.TrainConfig) if f.name == name]
    meta = {k: f.metadata[k] for k in ("choices", "low", "above", "high", "below", "recipe",
                                       "metavar")}
    return setting(f.default, help, **meta)


# --------------------------------------------------------------------------- settings
@dataclass
class TuneConfig(cfg.TrainConfig):
    """The settings of a search (``lcr-tune``'s flags): every setting of a
    training run (:class:`~lcr_larq.config.TrainConfig`, they set every trial
    and the baseline) and the tuner's own.

    Example:
        >>> TuneConfig(lambda_range=(0.0, 4.0)).check()
        Traceback (most recent call last):
        ...
        lcr_larq.errors.ConfigError: --lambda-range needs 0 < LOW <= HIGH (λ is log-uniform), \
got 0 4; λ = 0 is the baseline (--baseline)
    """

    model: str = _retold("model", "architecture: " + ", ".join(sorted(MODELS)))
    teacher: str | None = _retold(
        "teacher", "full-precision run directory or .keras file (--reference-choices teacher)"
    )
    epochs: int = _retold(
        "epochs", "training epochs of every trial and of the baseline (hyperband: the most a "
        "trial trains)"
    )
    validation_split: float = _retold(
        "validation_split",
        "held out of the training data to score every trial (the test split is never looked "
        "at): a share in (0, 1) or a number of images; must be > 0",
    )
    output_dir: str | None = _retold(
        "output_dir",
        "where the search writes trials.csv, best.yaml, search.yaml, baseline/ and tuner/ "
        f"(none: {DEFAULT_OUTPUT})",
    )
    overwrite: bool = _retold(
        "overwrite",
        "start the search again: delete the trials, the baseline and the tables in "
        "--output-dir",
    )
    tuner: str = setting(
        "random", "random search, bayesian optimization (Gaussian process) or hyperband",
        choices=TUNERS,
    )
    max_trials: int | None = setting(
        None,
        "LCR trials in all, the λ = 0 baseline not counted (it is trained besides them); "
        f"a rerun with more continues the search (none: {DEFAULT_TRIALS}, or for hyperband "
        "no cap: its budget follows from --epochs, --hyperband-factor and "
        "--hyperband-iterations)",
        low=1, high=10**6,
    )
    objective: str = setting(
        "val_accuracy",
        "val_accuracy (validation accuracy, maximized) or val_mce (validation mCE under "
        "common corruptions, minimized)",
        choices=tuple(OBJECTIVES),
    )
    lambda_range: tuple[float, float] = setting(
        (0.5, 8.0),
        "λ, log-uniform, 0 < LOW <= HIGH (LOW = HIGH fixes it; λ = 0 is the baseline)",
        metavar=("LOW", "HIGH"),
    )
    beta_range: tuple[float, float] = setting(
        (1.0, 4.0), f"β, uniform, β > 1 (a LOW of 1 means {BETA_FLOOR})", low=1,
        metavar=("LOW", "HIGH"),
    )
    power_iterations_range: tuple[int, int] = setting(
        (1, 5), "power-iteration steps per spectral norm", low=1, high=1000,
        metavar=("LOW", "HIGH"),
    )
    reference_choices: tuple[str, ...] = setting(
        ("latent",), "full-precision reference modes searched (teacher needs --teacher)",
        choices=("latent", "teacher"), metavar="REFERENCE",
    )
    baseline: bool = setting(
        True,
        "also train the λ = 0 baseline (the plain BNN) once, with the same split and seed; "
        "it is listed first",
    )
    initial_points: int | None = setting(
        None,
        "bayesian: random trials before the Gaussian process (none: 3 per searched "
        "hyperparameter)",
        low=1, high=10**6,
    )
    hyperband_factor: int = setting(
        3, "hyperband: reduction factor (--epochs is the most a trial trains)", low=2, high=100
    )
    hyperband_iterations: int = setting(1, "hyperband: full iterations", low=1, high=1000)
    mce_corruptions: tuple[str, ...] | None = setting(
        None,
        "val_mce: all (the 15 benchmark corruptions), extra (the 4 held-out ones) or names "
        "(none: all)",
        choices=("all", "extra", *robustness.ALL_CORRUPTIONS), metavar="NAME",
    )
    mce_severities: tuple[int, ...] = setting(
        robustness.SEVERITIES, "val_mce: corruption severities", choices=robustness.SEVERITIES,
        metavar="S",
    )

    @property
    def run_dir(self) -> str:
        """``output_dir``, or ``runs/tune``."""
        return self.output_dir or DEFAULT_OUTPUT

    @property
    def trial_budget(self) -> int | None:
        """``max_trials``; by default 10, or for Hyperband no cap."""
        if self.max_trials is not None:
            return self.max_trials
        return None if self.tuner == "hyperband" else DEFAULT_TRIALS

    @property
    def corruptions(self) -> list[str]:
        """The corruptions of ``val_mce``."""
        return robustness.corruption_names(self.mce_corruptions or ("all",))

    def check(self) -> None:
        """Rules between settings: those of a training run, the ranges, and
        every corner of the space (and the baseline) a valid training run."""
        super().check()
        if self.full_precision:
            raise ConfigError("--full-precision trains without LCR: there is nothing to tune")
        if not self.validation_split > 0:
            raise ConfigError(
                "--validation-split must be > 0: every trial is scored on the validation split "
                "(the test split is never looked at)"
            )
        low, high = self.lambda_range
        if not 0 < low <= high:
            raise ConfigError(
                f"--lambda-range needs 0 < LOW <= HIGH (λ is log-uniform), got {low:g} {high:g}; "
                "λ = 0 is the baseline (--baseline)"
            )
        low, high = self.beta_range
        if not (low <= high and high > 1):
            raise ConfigError(
                f"--beta-range needs 1 <= LOW <= HIGH and HIGH > 1 (β > 1), got {low:g} {high:g}"
            )
        low, high = self.power_iterations_range
        if not low <= high:
            raise ConfigError(f"--power-iterations-range needs LOW <= HIGH, got {low} {high}")
        if "teacher" in self.reference_choices and not self.teacher:
            raise ConfigError(
                "--reference-choices teacher needs --teacher DIR (train one with --full-precision)"
            )
        for values in corners(self):
            run = trial_config(self, values)
            try:
                cfg.validate(run)
            except ConfigError as error:
                where = ", ".join(f"{k}={getattr(run, k)}" for k in SEARCHED)
                raise ConfigError(
                    f"the search space holds a run that cannot be trained ({where}): {error}"
                ) from None
        if self.baseline:
            cfg.validate(baseline_config(self))


def train_settings(config: TuneConfig, **changes: Any) -> cfg.TrainConfig:
    """The :class:`~lcr_larq.config.TrainConfig` part of ``config``, with ``changes``.

    Example:
        >>> train_settings(TuneConfig(epochs=3), lcr_lambda=1.0).epochs
        3
    """
    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(cfg.TrainConfig)}
    values.update(overwrite=False)
    values.update(changes)
    return cfg.TrainConfig(**values)


def trial_config(config: TuneConfig, values: Mapping[str, Any]) -> cfg.TrainConfig:
    """The training run of one trial's hyperparameter ``values`` (Keras
    Tuner's own ``tuner/…`` values are ignored).

    Example:
        >>> run = trial_config(TuneConfig(), {"lcr_lambda": 2.0, "lcr_beta": 3.0,
        ...                                   "power_iterations": 1, "lcr_reference": "latent"})
        >>> run.lcr_lambda, run.lcr_beta, run.power_iterations, type(run).__name__
        (2.0, 3.0, 1, 'TrainConfig')
    """
    return train_settings(
        config,
        lcr_lambda=float(values.get("lcr_lambda", config.lcr_lambda)),
        lcr_beta=float(values.get("lcr_beta", config.lcr_beta)),
        power_iterations=int(values.get("power_iterations", config.power_iterations)),
        lcr_reference=str(values.get("lcr_reference", config.lcr_reference)),
    )


def baseline_config(config: TuneConfig) -> cfg.TrainConfig:
    """The λ = 0 baseline's training run (the plain BNN).

    Example:
        >>> run = baseline_config(TuneConfig(seed=3))
        >>> run.lcr_lambda, run.seed
        (0.0, 3)
    """
    return train_settings(config, lcr_lambda=0.0)


# --------------------------------------------------------------------------- space
def _beta_bounds(config: TuneConfig) -> tuple[float, float]:
    return max(float(config.beta_range[0]), BETA_FLOOR), float(config.beta_range[1])


def search_space(config: TuneConfig) -> kt.HyperParameters:
    """The searched settings as Keras Tuner ``HyperParameters``: a range with
    equal ends is ``Fixed`` (β: a range that ends at :data:`BETA_FLOOR` or
    below, at its end).

    Example:
        >>> hp = search_space(TuneConfig(lambda_range=(2.0, 2.0), beta_range=(1.0, 1.0005)))
        >>> hp.values["lcr_lambda"], hp.values["lcr_beta"]
        (2.0, 1.0005)
    """
    hp = kt.HyperParameters()
    low, high = (float(v) for v in config.lambda_range)
    if low == high:
        hp.Fixed("lcr_lambda", low)
    else:
        hp.Float("lcr_lambda", low, high, sampling="log")
    low, high = _beta_bounds(config)
    if low >= high:
        hp.Fixed("lcr_beta", high)
    else:
        hp.Float("lcr_beta", low, high)
    low, high = (int(v) for v in config.power_iterations_range)
    if low == high:
        hp.Fixed("power_iterations", low)
    else:
        hp.Int("power_iterations", low, high)
    references = list(dict.fromkeys(config.reference_choices))
    if len(references) == 1:
        hp.Fixed("lcr_reference", references[0])
    else:
        hp.Choice("lcr_reference", references)
    return hp


def corners(config: TuneConfig) -> list[dict[str, Any]]:
    """The hyperparameter values at the ends of every range.

    Example:
        >>> len(corners(TuneConfig())), corners(TuneConfig())[0]
        (8, {'lcr_lambda': 0.5, 'lcr_beta': 1.001, 'power_iterations': 1, \
'lcr_reference': 'latent'})
    """
    betas = dict.fromkeys(min(b, _beta_bounds(config)[1]) for b in _beta_bounds(config))
    return [
        {"lcr_lambda": lam, "lcr_beta": beta, "power_iterations": iterations,
         "lcr_reference": reference}
        for lam, beta, iterations, reference in itertools.product(
            dict.fromkeys(config.lambda_range), betas,
            dict.fromkeys(config.power_iterations_range),
            dict.fromkeys(config.reference_choices),
        )
    ]


# --------------------------------------------------------------------------- a trial
def load_split(config: cfg.TrainConfig) -> lcr_data.Dataset:
    """The dataset with its validation split (carved from the training data)."""
    dataset = lcr_data.load_dataset(
        config.dataset, batch_size=config.batch_size, seed=config.seed,
        data_dir=config.data_dir, validation_split=config.validation_split,
        input_size=config.input_size,
    )
    if dataset.validation is None:
        raise DataError(
            f"dataset {config.dataset!r} gives no validation split: choose another --dataset"
        )
    return dataset


def corrupted_validation(
    config: TuneConfig, dataset: lcr_data.Dataset, cache_dir: str | None = None
) -> dict[tuple[str, int], Any]:
    """``{(corruption, severity): uint8 images}`` of the validation split
    (:func:`~lcr_larq.analysis.robustness.corrupted`, cached in ``cache_dir``)."""
    if dataset.validation_arrays is None:
        raise ConfigError(
            f"--objective val_mce needs the validation images in memory; dataset "
            f"{config.dataset!r} does not hold them: use --objective val_accuracy"
        )
    images, _ = dataset.validation_arrays
    return {
        (c, s): robustness.corrupted(images, c, s, seed=config.seed, cache_dir=cache_dir)
        for c in config.corruptions
        for s in config.mce_severities
    }


def build_model(config: cfg.TrainConfig, dataset: lcr_data.Dataset) -> tf.keras.Model:
    """One trial's compiled training model, its weights from ``config.seed``."""
    tf.keras.utils.set_random_seed(config.seed)
    model = training.build_training_model(config, dataset.input_shape, dataset.num_classes)
    training.compile_model(model, config, config.steps_per_epoch or dataset.steps_per_epoch)
    return model


@dataclasses.dataclass
class TrialData:
    """What every trial of a search is trained and scored on."""

    dataset: lcr_data.Dataset  #: with its validation split
    #: the ``tf.distribute`` strategy the models are built in (None: the default)
    strategy: tf.distribute.Strategy | None = None
    #: corrupted validation images by (corruption, severity) for ``val_mce``, or None
    mce_sets: Mapping[tuple[str, int], Any] | None = None

    def scope(self):
        """The scope the models are built in (the stripped models too)."""
        return (self.strategy or tf.distribute.get_strategy()).scope()


def score(model: tf.keras.Model, config: cfg.TrainConfig, data: TrialData) -> dict[str, float]:
    """Validation loss and accuracy of the plain BNN of ``model`` (LCR
    stripped; its BN statistics re-estimated from
    ``config.bn_recalibration_batches`` training batches, as ``lcr-train``
    does before testing) and, with ``mce_sets``, its unnormalized validation
    mCE: the mean over corruptions of the summed top-1 errors over severities.
    """
    dataset, mce_sets = data.dataset, data.mce_sets
    with data.scope():
        bnn = training.compile_for_evaluation(strip_lcr(model))
    recalibrate(bnn, dataset, config.bn_recalibration_batches)
    val_loss, val_accuracy = bnn.evaluate(dataset.validation, verbose=0)
    metrics = {"val_loss": float(val_loss), "val_accuracy": float(val_accuracy)}
    if mce_sets:
        _, labels = dataset.validation_arrays
        predict = evaluation.predictor(bnn, dataset.normalize, config.batch_size)
        accuracies = evaluation.corruption_accuracies(predict, dict(mce_sets), labels)
        errors = {c: [1.0 - a for a in by.values()] for c, by in accuracies.items()}
        metrics["val_mce"] = robustness.mean_corruption_error(errors).value
    return metrics


def train_and_score(
    model: tf.keras.Model,
    config: cfg.TrainConfig,
    data: TrialData,
    *,
    directory: str | None = None,
    callbacks: Sequence[tf.keras.callbacks.Callback] = (),
    epochs: int | None = None,
    initial_epoch: int = 0,
) -> dict[str, float]:
    """Trains ``model`` as ``lcr-train`` does (the same data of every epoch,
    quantizer schedules and checkpoint) from ``initial_epoch`` to ``epochs``
    (default ``config.epochs``) and returns the last epoch's ``loss``,
    ``accuracy`` (and ``lcr_lip``), the :func:`score` metrics and the
    ``seconds`` it took.

    With ``directory`` every epoch is checkpointed in ``directory/backup``
    (:class:`~lcr_larq.training.RunCheckpoint`, also ``history.csv``) and an
    interrupted training resumes from its last finished epoch. The checkpoint
    is written after every other callback (Keras Tuner's own checkpoint among
    them), so a backup holding every epoch implies that they hold it too. The
    caller removes the backup once the scores are recorded.
    """
    start = time.time()
    checkpoint = training.RunCheckpoint(directory) if directory else None
    first = initial_epoch
    if checkpoint is not None:
        with data.scope():
            first = max(first, checkpoint.resume(model))
    history = training.fit(
        model, config, data.dataset, first_epoch=first, epochs=epochs, checkpoint=checkpoint,
        callbacks=callbacks,
    )
    last = training.last_epoch_metrics(history, directory)
    metrics = {key: float(last[key]) for key in ("loss", "accuracy", "lcr_lip") if key in last}
    metrics.update(score(model, config, data))
    metrics["seconds"] = round(time.time() - start, 2)
    return metrics


class LCRHyperModel(kt.HyperModel):
    """Builds and trains one trial's model and scores it on the validation split.

    Args:
        config: the search's settings (everything that is not searched).
        data: what the trials are trained and scored on.
    """

    def __init__(self, config: TuneConfig, data: TrialData):
        super().__init__(name="lcr")
        self.config = config
        self.data = data

    def build(self, hp: kt.HyperParameters) -> tf.keras.Model:
        return build_model(trial_config(self.config, hp.values), self.data.dataset)

    def fit(self, hp, model, *args, trial_dir: str | None = None, callbacks=(), epochs=None,
            initial_epoch: int = 0, **kwargs) -> dict[str, float]:
        """Trains and scores (:func:`train_and_score`); the checkpoint in
        ``trial_dir`` lets an interrupted trial resume."""
        return train_and_score(
            model, trial_config(self.config, hp.values), self.data, directory=trial_dir,
            callbacks=callbacks, epochs=epochs, initial_epoch=initial_epoch,
        )


# --------------------------------------------------------------------------- tuners
def last_line(message: str | None) -> str:
    """The last non-empty line of a trial's message (its traceback), the
    module path of the exception's class left out.

    Example:
        >>> last_line("Traceback (most recent call last):\\n  ...\\nValueError: boom\\n")
        'ValueError: boom'
        >>> last_line("lcr_larq.errors.RunError: training diverged")
        'RunError: training diverged'
    """
    lines = [line.strip() for line in (message or "").splitlines() if line.strip()]
    return re.sub(r"^(?:\w+\.)+(\w+(?:Error|Exception|Interrupt)\b)", r"\1",
                  lines[-1]) if lines else "no message"


class SearchHooks:
    """What the three tuners add to Keras Tuner's, through its public hooks.

    * every trial gets its directory (``HyperModel.fit(trial_dir=…)``) for
      its checkpoint, so that an interrupted trial resumes;
    * the tuner's state is saved when a trial begins, so that an interrupted
      first trial resumes too;
    * a trial that raises is ended as ``FAILED`` with its traceback as the
      trial's message (``Oracle.end_trial``'s protocol), written to
      ``error.txt`` in its directory and reported in one line, instead of
      Keras Tuner printing the traceback;
    * ``after_trial()`` is called once a trial has ended.

    ``executed`` and ``epochs_run`` record what this process ran.
    """

    def __init__(self, *args, after_trial: Callable[[], None] | None = None, **kwargs):
        self.executed: list[str] = []
        self.epochs_run: dict[str, list[int]] = {}
        self.failures: dict[str, str] = {}
        self.after_trial = after_trial
        super().__init__(*args, **kwargs)

    def run_trial(self, trial, *args, **kwargs):
        self.executed.append(trial.trial_id)
        kwargs["trial_dir"] = self.get_trial_dir(trial.trial_id)
        try:
            return super().run_trial(trial, *args, **kwargs)
        except kt.errors.FatalError:
            raise
        except Exception:
            self.failures[trial.trial_id] = traceback.format_exc()
            # The worst score: the trial is ended as FAILED (on_trial_end), never scored.
            worst = -math.inf if self.oracle.objective.direction == "max" else math.inf
            return {self.oracle.objective.name: worst}

    def on_trial_begin(self, trial):
        super().on_trial_begin(trial)
        self.save()

    def on_epoch_begin(self, trial, model, epoch, logs=None):
        self.epochs_run.setdefault(trial.trial_id, []).append(epoch)
        super().on_epoch_begin(trial, model, epoch, logs=logs)

    def on_trial_end(self, trial):
        directory = self.get_trial_dir(trial.trial_id)
        if trial.trial_id in self.failures:
            trial.status = "FAILED"
            trial.message = self.failures.pop(trial.trial_id)
        if trial.status in ("INVALID", "FAILED"):
            path = os.path.join(directory, ERROR_FILE)
            with open(path, "w") as handle:
                handle.write(trial.message or "")
            print(f"trial {trial.trial_id} failed: {last_line(trial.message)} (traceback in "
                  f"{path})", file=sys.stderr, flush=True)
        try:
            super().on_trial_end(trial)  # raises once too many trials failed in a row
        finally:
            shutil.rmtree(os.path.join(directory, runs.BACKUP), ignore_errors=True)
            if self.after_trial is not None:
                self.after_trial()


class RandomSearch(SearchHooks, kt.RandomSearch):
    """Keras Tuner's random search with :class:`SearchHooks`."""


class BayesianOptimization(SearchHooks, kt.BayesianOptimization):
    """Keras Tuner's Bayesian optimization with :class:`SearchHooks`."""


class Hyperband(SearchHooks, kt.Hyperband):
    """Keras Tuner's Hyperband with :class:`SearchHooks` (trials of later
    rounds continue the weights of earlier ones)."""


def tuner_seed(seed: int) -> int:
    """Keras Tuner's seed for ``seed``: it draws a random one for 0, and numpy
    takes seeds below 2^32.

    Example:
        >>> tuner_seed(0), tuner_seed(2**32 - 1)
        (1, 1)
    """
    return seed % (2**32 - 1) + 1


def make_tuner(config: TuneConfig, hypermodel: kt.HyperModel, directory: str,
               strategy: tf.distribute.Strategy | None = None,
               after_trial: Callable[[], None] | None = None):
    """The stock tuner of ``config.tuner`` over :func:`search_space`; an
    existing search in ``directory`` is reloaded (and continued by ``search``)."""
    common = dict(
        hypermodel=hypermodel,
        objective=kt.Objective(config.objective, OBJECTIVES[config.objective]),
        hyperparameters=search_space(config),
        tune_new_entries=False,
        seed=tuner_seed(config.seed),
        directory=directory,
        project_name=PROJECT,
        overwrite=False,
        distribution_strategy=strategy,
        after_trial=after_trial,
    )
    if config.tuner == "random":
        return RandomSearch(max_trials=config.trial_budget, **common)
    if config.tuner == "bayesian":
        return BayesianOptimization(
            max_trials=config.trial_budget, num_initial_points=config.initial_points, **common
        )
    tuner = Hyperband(
        max_epochs=config.epochs, factor=config.hyperband_factor,
        hyperband_iterations=config.hyperband_iterations, **common,
    )
    tuner.oracle.max_trials = config.trial_budget  # Oracle's public cap; Hyperband has none
    return tuner


# --------------------------------------------------------------------------- baseline
class EpochLog(tf.keras.callbacks.Callback):
    """Appends every epoch begun to ``epochs``."""

    def __init__(self, epochs: list[int]):
        super().__init__()
        self.epochs = epochs

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


def baseline_result(directory: str) -> dict | None:
    """The finished baseline's ``result.json`` in ``directory``, else None."""
    return runs.load_json(os.path.join(directory, RESULT_FILE))


def train_baseline(
    config: TuneConfig,
    directory: str,
    data: TrialData,
    *,
    callbacks: Sequence[tf.keras.callbacks.Callback] = (),
    epochs_run: list[int] | None = None,
) -> dict:
    """Trains and scores the λ = 0 baseline into ``directory`` (resuming from
    its checkpoint) as a trial is; returns its ``result.json``."""
    os.makedirs(directory, exist_ok=True)
    error_path = os.path.join(directory, ERROR_FILE)
    if os.path.exists(error_path):
        os.remove(error_path)
    run = baseline_config(config)
    tf.keras.backend.clear_session()
    try:
        with data.scope():
            model = build_model(run, data.dataset)
        metrics = train_and_score(
            model, run, data, directory=directory,
            callbacks=[*copy.deepcopy(list(callbacks)),
                       EpochLog(epochs_run if epochs_run is not None else [])],
        )
    except UserError:
        raise
    except Exception:  # as Keras Tuner does for a trial: reported in one line
        with open(error_path, "w") as handle:
            handle.write(traceback.format_exc())
        raise RunError(
            f"the λ = 0 baseline failed: {last_line(traceback.format_exc())} (traceback in "
            f"{error_path}; --baseline false searches without it)"
        ) from None
    result = {"trial": BASELINE, "status": "COMPLETED", "metrics": metrics,
              "settings": cfg.recipe_dict(run)}
    runs.save_json(result, os.path.join(directory, RESULT_FILE))
    shutil.rmtree(os.path.join(directory, runs.BACKUP), ignore_errors=True)
    return result


# --------------------------------------------------------------------------- results
def _row(config: TuneConfig, trial_id: str, status: str, values: Mapping[str, Any],
         metrics: Mapping[str, float | None], baseline: bool = False) -> dict[str, Any]:
    run = baseline_config(config) if baseline else trial_config(config, values)
    row: dict[str, Any] = {
        "rank": None,
        "trial": trial_id,
        "status": status,
        config.objective: metrics.get(config.objective) if status == "COMPLETED" else None,
        "lcr_lambda": run.lcr_lambda,
        "log2_lambda": None if baseline else math.log2(run.lcr_lambda),
        "lcr_beta": None if baseline else run.lcr_beta,
        "power_iterations": None if baseline else run.power_iterations,
        "lcr_reference": None if baseline else run.lcr_reference,
        "epochs": values.get("tuner/epochs", config.epochs),
    }
    if config.tuner == "hyperband":
        row["continues"] = values.get("tuner/trial_id")
    for name in METRICS:
        if name != config.objective and (name != "val_mce" or config.objective == name):
            row[name] = metrics.get(name)
    return row


def trial_rows(config: TuneConfig, trials: Sequence, baseline: dict | None | str = None
               ) -> list[dict[str, Any]]:
    """One row per trial: the baseline first (``baseline``: its
    ``result.json``, or its status when it has not finished), then the
    finished trials best first (ranked; ties by id), then the others by id.

    ``trials`` are Keras Tuner ``Trial`` objects (``tuner.oracle.trials``).
    """
    direction = OBJECTIVES[config.objective]
    done, rest = [], []
    for trial in trials:
        metrics = {
            name: trial.metrics.get_last_value(name)
            for name in (*METRICS, config.objective) if trial.metrics.exists(name)
        }
        if trial.status == "COMPLETED":
            metrics[config.objective] = trial.score
        row = _row(config, trial.trial_id, trial.status, trial.hyperparameters.values, metrics)
        if trial.status in ("INVALID", "FAILED"):
            row["error"] = last_line(trial.message)
        (done if row[config.objective] is not None else rest).append(row)
    sign = -1 if direction == "max" else 1  # ties: the earlier trial first
    done.sort(key=lambda r: (sign * r[config.objective], int(r["trial"])))
    rest.sort(key=lambda r: int(r["trial"]))
    for rank, row in enumerate(done, start=1):
        row["rank"] = rank
    first = []
    if isinstance(baseline, dict):
        first = [_row(config, BASELINE, baseline["status"], {}, baseline["metrics"], True)]
    elif baseline:
        first = [_row(config, BASELINE, str(baseline), {}, {}, True)]
    return first + done + rest


def columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every key of ``rows``, in the order first seen."""
    return list(dict.fromkeys(k for row in rows for k in row))


def write_table(rows: Sequence[Mapping[str, Any]], path: str) -> None:
    """``rows`` as CSV (an empty cell for None)."""
    fields = columns(rows)
    temporary = f"{path}.tmp"
    with open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in fields})
    os.replace(temporary, path)


def write_best(run: cfg.TrainConfig, row: Mapping[str, Any], config: TuneConfig,
               baseline: Mapping[str, Any] | None, path: str) -> None:
    """``run`` as a recipe of ``lcr-train --config``, headed by its score."""
    objective = config.objective
    header = [
        f"# best LCR trial ({row['trial']}) of lcr-tune: {objective} = {row[objective]:.6g} on "
        "the validation split",
    ]
    if baseline and baseline.get(objective) is not None:
        header.append(f"# the λ = 0 baseline: {objective} = {baseline[objective]:.6g}")
    header.append(f"# train it: lcr-train --config {path}")
    cfg.save_recipe(run, path)
    with open(path) as handle:
        recipe = handle.read()
    with open(path, "w") as handle:
        handle.write("\n".join(header) + "\n" + recipe)


# --------------------------------------------------------------------------- resuming
def changed_settings(previous: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """The settings (as flags, with their old and new values) a rerun changes,
    those in :data:`NOT_COMPARED` aside.

    Example:
        >>> changed_settings({"epochs": 3, "lr": 0.1, "max_trials": 2},
        ...                  {"epochs": 4, "lr": 0.1, "max_trials": 9})
        ['--epochs (3, now 4)']
    """
    def shown(value):
        return " ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)

    return [
        f"{cfg.flag_name(name)} ({shown(previous.get(name))}, now {shown(current[name])})"
        for name in current
        if name not in NOT_COMPARED and previous.get(name) != current[name]
    ]


def prepare_search(config: TuneConfig) -> str:
    """Creates (or, with ``overwrite``, empties) the output directory, refuses
    to continue a search made with other settings, and writes ``search.yaml``;
    returns its path."""
    out = config.run_dir
    training.prepare_output_dir(out)
    path = os.path.join(out, SEARCH_FILE)
    ours = (TUNER_DIR, BASELINE, TRIALS_FILE, BEST_FILE, SEARCH_FILE)
    if config.overwrite:
        for name in ours:
            target = os.path.join(out, name)
            if os.path.isdir(target):
                shutil.rmtree(target)
            elif os.path.exists(target):
                os.remove(target)
    elif os.path.isfile(path):
        try:
            previous = cfg.recipe_dict(TuneConfig(**cfg.load_recipe(path, TuneConfig)))
        except ConfigError as error:
            raise RunError(
                f"{error}: {out} holds a search from another version; add --overwrite to start "
                "again, or choose another --output-dir"
            ) from None
        changed = changed_settings(previous, cfg.recipe_dict(config))
        if changed:
            raise ConfigError(
                f"{out} holds a search with other settings: {', '.join(changed)}; rerun with "
                "the same settings to continue it, add --overwrite to start again, or choose "
                "another --output-dir"
            )
    elif any(os.path.exists(os.path.join(out, name)) for name in (TUNER_DIR, BASELINE)):
        raise RunError(
            f"{out} holds a search without its {SEARCH_FILE}: add --overwrite to start again, "
            "or choose another --output-dir"
        )
    cfg.save_recipe(dataclasses.replace(config, output_dir=out, overwrite=False), path)
    with open(path) as handle:
        recipe = handle.read()
    with open(path, "w") as handle:
        handle.write(
            "# the settings of an lcr-tune search; lcr-tune --config " + path + " continues it\n"
            f"# ({', '.join(SEARCHED)} are set by every trial: the ranges below)\n" + recipe
        )
    return path


# --------------------------------------------------------------------------- search
@dataclass
class SearchResult:
    """What :func:`run_search` did and wrote."""

    rows: list[dict[str, Any]]
    best: cfg.TrainConfig | None
    trials_path: str
    best_path: str | None
    search_path: str
    #: The trials this call ran (``baseline`` first when it trained it).
    executed: list[str]
    #: The epochs each of them began in this call.
    epochs_run: dict[str, list[int]]


def run_search(
    config: TuneConfig,
    callbacks: Sequence[tf.keras.callbacks.Callback] = (),
    progress: Callable[[str], None] | None = None,
) -> SearchResult:
    """Runs (or continues) the search of ``config``; writes the outputs.

    ``callbacks`` are Keras callbacks added to every fit, the baseline's
    included (each gets a copy). ``trials.csv`` and ``best.yaml`` are
    rewritten after every trial and when the search is interrupted. Trials
    that keep failing end the search with a :class:`~lcr_larq.errors.RunError`;
    one search at a time uses an output directory.
    """
    cfg.validate(config)
    training.prepare_output_dir(config.run_dir)
    with runs.RunLock(config.run_dir):
        return _search(config, callbacks, progress or (lambda line: None))


def _search(config: TuneConfig, callbacks: Sequence[tf.keras.callbacks.Callback],
            say: Callable[[str], None]) -> SearchResult:
    out = config.run_dir
    search_path = prepare_search(config)
    strategy = training.get_strategy(config.strategy)
    dataset = load_split(config).for_replicas(strategy.num_replicas_in_sync)
    mce_sets = None
    if config.objective == "val_mce":
        cache = os.path.join(out, CACHE_DIR)
        say(f"validation mCE over {len(config.corruptions) * len(config.mce_severities)} "
            f"corruption × severity sets of {dataset.validation_size} images (cached in {cache})")
        mce_sets = corrupted_validation(config, dataset, cache)
    data = TrialData(dataset, strategy, mce_sets)

    executed: list[str] = []
    epochs_run: dict[str, list[int]] = {}
    baseline_dir = os.path.join(out, BASELINE)
    baseline = baseline_result(baseline_dir) if config.baseline else None
    tuner = None

    def outputs() -> tuple[list[dict[str, Any]], cfg.TrainConfig | None, str | None]:
        state = baseline
        if config.baseline and baseline is None and os.path.isdir(baseline_dir):
            failed = os.path.exists(os.path.join(baseline_dir, ERROR_FILE))
            state = "FAILED" if failed else "RUNNING"
        trials = list(tuner.oracle.trials.values()) if tuner is not None else []
        rows = trial_rows(config, trials, state)
        write_table(rows, os.path.join(out, TRIALS_FILE))
        ranked = [r for r in rows if r["rank"] == 1]
        if not ranked:
            return rows, None, None
        values = tuner.oracle.get_trial(ranked[0]["trial"]).hyperparameters.values
        best = dataclasses.replace(trial_config(config, values),
                                   output_dir=os.path.join(out, "best"))
        best_path = os.path.join(out, BEST_FILE)
        write_best(best, ranked[0], config, baseline and baseline["metrics"], best_path)
        return rows, best, best_path

    try:
        if config.baseline and baseline is None:
            say("training the λ = 0 baseline")
            epochs_run[BASELINE] = []
            executed.append(BASELINE)
            baseline = train_baseline(
                config, baseline_dir, data, callbacks=callbacks, epochs_run=epochs_run[BASELINE],
            )
        elif config.baseline:
            say(f"the λ = 0 baseline has finished ({os.path.join(baseline_dir, RESULT_FILE)})")
        hypermodel = LCRHyperModel(config, data)
        tuner = make_tuner(
            config, hypermodel, os.path.join(out, TUNER_DIR),
            strategy=None if config.strategy == "default" else strategy,
            after_trial=outputs,
        )
        tuner.search(callbacks=list(callbacks), verbose=config.verbose)
    except RuntimeError:
        # Keras Tuner gives up after max_consecutive_failed_trials failures.
        failed = [t for t in tuner.oracle.trials.values() if t.status == "FAILED"] if tuner else []
        if not failed:
            raise
        outputs()
        last = max(failed, key=lambda t: int(t.trial_id))
        raise RunError(
            f"the search stopped after {tuner.oracle.max_consecutive_failed_trials} failed "
            f"trials in a row, the last (trial {last.trial_id}) with "
            f"{last_line(last.message)} (tracebacks in {tuner.project_dir}/trial_*/{ERROR_FILE})"
        ) from None
    except BaseException:
        outputs()  # an interrupted trial shows as RUNNING
        raise
    finally:
        if tuner is not None:
            executed += tuner.executed
            epochs_run.update(tuner.epochs_run)
    rows, best, best_path = outputs()
    return SearchResult(rows, best, os.path.join(out, TRIALS_FILE), best_path, search_path,
                        executed, epochs_run)
