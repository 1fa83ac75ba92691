"""Hyperparameter search over the LCR settings λ, β, power iterations and reference.

``python -m lcr_larq.tune`` runs a Keras Tuner search (random, Bayesian or
Hyperband). Every trial trains the model of the ``train.py`` flags on the
training data minus a validation split carved from it (``--validation-fraction``;
the test split is never looked at) and is scored on that split: validation
accuracy of the plain BNN (default) or its validation mCE under common
corruptions (``--objective val_mce``).

The search space (a :class:`SearchSpace`, from ``--search-space FILE`` and the
range flags) is, by default: λ log-uniform in [2^-1, 2^3] (the paper's Table 3),
β uniform in (1, 4], 1–5 power iterations, the ``latent`` reference, plus one
baseline trial with λ = 0 (the plain BNN), which is always the first trial.
Everything else comes from the ``train.py`` flags and ``--config`` recipe
(model, dataset, epochs, strategy …); the searched settings themselves are not
taken as flags (``--lcr-lambda 2`` is refused: ``--lambda-range 2 2`` fixes λ)
and a recipe's values for them are replaced by the trial's. Every trial uses
``--seed`` for its weights and data order, so trials differ only by their
hyperparameters.

Written in ``--output-dir`` (default ``runs/tune``):

* ``trials.csv`` — every trial, best first (also printed);
* ``best.yaml`` — the best trial as a recipe: ``train.py --config best.yaml``
  trains it again (on the whole training split, into ``<output-dir>/best``);
* ``search.yaml`` — the settings of the search;
* ``tuner/`` — Keras Tuner's directory. A search that is interrupted continues
  when the same command is run again: finished trials are kept, the trial that
  was running resumes from its last finished epoch.

Examples::

    python -m lcr_larq.tune --max-trials 12 --epochs 10
    python -m lcr_larq.tune --tuner bayesian --lambda-range 0.25 16 --beta-range 1.5 3
    python -m lcr_larq.tune --tuner hyperband --epochs 27 --objective val_mce
    python train.py --config runs/tune/best.yaml

A search space file (YAML; a single value fixes a setting)::

    lcr_lambda: [0.5, 8]        # log-uniform
    lcr_beta: [1, 4]            # uniform, β > 1
    power_iterations: [1, 5]
    lcr_reference: [latent]
    baseline: true              # one λ = 0 trial first
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras_tuner as kt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import yaml  # noqa: E402

from lcr_larq import callbacks as lcr_callbacks  # noqa: E402
from lcr_larq import config as cfg  # noqa: E402
from lcr_larq import data as lcr_data  # noqa: E402
from lcr_larq import robustness, training  # noqa: E402
from lcr_larq.graph import strip_lcr  # noqa: E402

TUNERS = ("random", "bayesian", "hyperband")
#: objective name → direction.
OBJECTIVES = {"val_accuracy": "max", "val_mce": "min"}
#: The hyperparameter that switches LCR off for the baseline trial.
SWITCH = "lcr"
#: β must be > 1: a lower bound of 1 is taken as this value.
BETA_FLOOR = 1.001
#: TrainConfig fields the search sets.
SEARCHED = ("lcr_lambda", "lcr_beta", "power_iterations", "lcr_reference")
RANGE_FLAGS = {
    "lcr_lambda": "--lambda-range",
    "lcr_beta": "--beta-range",
    "power_iterations": "--power-iterations-range",
    "lcr_reference": "--reference-choices",
}
DEFAULT_OUTPUT = os.path.join("runs", "tune")
DEFAULT_TRIALS = 10
PROJECT = "search"


# --------------------------------------------------------------------------- space
@dataclass
class SearchSpace:
    """The ranges searched. A range whose ends are equal fixes the setting.

    Example:
        >>> space = SearchSpace(lcr_lambda=(1.0, 4.0), baseline=False)
        >>> sorted(space.hyperparameters().values)
        ['lcr_beta', 'lcr_lambda', 'lcr_reference', 'power_iterations']
    """

    lcr_lambda: tuple[float, float] = (0.5, 8.0)
    lcr_beta: tuple[float, float] = (1.0, 4.0)
    power_iterations: tuple[int, int] = (1, 5)
    lcr_reference: tuple[str, ...] = ("latent",)
    baseline: bool = True

    def validate(self) -> SearchSpace:
        """Checks the ranges; raises :class:`~lcr_larq.config.ConfigError`."""
        low, high = self.lcr_lambda
        if not 0 < low <= high:
            raise cfg.ConfigError(
                f"--lambda-range needs 0 < LOW <= HIGH (log-uniform), got {low:g} {high:g}; "
                "λ = 0 is the baseline trial (--baseline)"
            )
        low, high = self.lcr_beta
        if not (1 <= low <= high and high > 1):
            raise cfg.ConfigError(
                f"--beta-range needs 1 <= LOW <= HIGH and HIGH > 1 (β > 1), got {low:g} {high:g}"
            )
        low, high = self.power_iterations
        if not 1 <= low <= high:
            raise cfg.ConfigError(
                f"--power-iterations-range needs 1 <= LOW <= HIGH, got {low} {high}"
            )
        choices = cfg.CHOICES["lcr_reference"]
        if not self.lcr_reference or any(r not in choices for r in self.lcr_reference):
            raise cfg.ConfigError(
                f"--reference-choices must be one or more of {list(choices)}, "
                f"got {list(self.lcr_reference)}"
            )
        return self

    def hyperparameters(self):
        """The space as Keras Tuner ``HyperParameters``.

        With ``baseline``, a Boolean ``lcr`` comes first and the LCR settings
        are active only when it is true; the baseline trial is ``lcr=False``.
        """
        hp = kt.HyperParameters()
        if self.baseline:
            hp.Boolean(SWITCH, default=True)
            with hp.conditional_scope(SWITCH, [True]):
                self._declare(hp)
        else:
            self._declare(hp)
        return hp

    def _declare(self, hp) -> None:
        low, high = (float(v) for v in self.lcr_lambda)
        if low == high:
            hp.Fixed("lcr_lambda", low)
        else:
            hp.Float("lcr_lambda", low, high, sampling="log")
        low, high = max(float(self.lcr_beta[0]), BETA_FLOOR), float(self.lcr_beta[1])
        if low >= high:
            hp.Fixed("lcr_beta", high)
        else:
            hp.Float("lcr_beta", low, high)
        low, high = (int(v) for v in self.power_iterations)
        if low == high:
            hp.Fixed("power_iterations", low)
        else:
            hp.Int("power_iterations", low, high)
        references = list(dict.fromkeys(self.lcr_reference))
        if len(references) == 1:
            hp.Fixed("lcr_reference", references[0])
        else:
            hp.Choice("lcr_reference", references)

    def to_dict(self) -> dict[str, Any]:
        return {
            "lcr_lambda": [float(v) for v in self.lcr_lambda],
            "lcr_beta": [float(v) for v in self.lcr_beta],
            "power_iterations": [int(v) for v in self.power_iterations],
            "lcr_reference": list(self.lcr_reference),
            "baseline": bool(self.baseline),
        }


def _space_value(path: str, key: str, value, kind):
    """A range (two values, or one to fix the setting) of ``kind``."""
    values = value if isinstance(value, list | tuple) else [value]
    if len(values) not in (1, 2) or any(isinstance(v, bool) for v in values):
        raise cfg.ConfigError(f"{path}: {key} needs [LOW, HIGH] or one value, got {value!r}")
    try:
        if kind is int and any(float(v) != int(float(v)) for v in values):
            raise ValueError
        converted = [kind(v) for v in values]
    except (TypeError, ValueError):
        raise cfg.ConfigError(
            f"{path}: {key} needs {kind.__name__} values, got {value!r}"
        ) from None
    return (converted[0], converted[-1])


def load_search_space(path: str, space: SearchSpace | None = None) -> SearchSpace:
    """Reads a YAML search space over ``space`` (default :class:`SearchSpace`).

    Unknown keys and badly typed values are refused with a
    :class:`~lcr_larq.config.ConfigError`.
    """
    space = dataclasses.replace(space or SearchSpace())
    if not os.path.isfile(path):
        raise cfg.ConfigError(f"--search-space {path} does not exist")
    try:
        with open(path) as handle:
            values = yaml.safe_load(handle) or {}
    except yaml.YAMLError as error:
        raise cfg.ConfigError(f"{path} is not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(values, dict):
        raise cfg.ConfigError(f"{path} must hold a mapping of ranges")
    names = [f.name for f in dataclasses.fields(SearchSpace)]
    for key, value in values.items():
        name = str(key).replace("-", "_")
        if name not in names:
            raise cfg.ConfigError(f"{path}: unknown key {key!r}; valid keys: {names}")
        if name == "baseline":
            if not isinstance(value, bool):
                raise cfg.ConfigError(f"{path}: baseline needs true or false, got {value!r}")
            space.baseline = value
        elif name == "lcr_reference":
            choices = value if isinstance(value, list | tuple) else [value]
            space.lcr_reference = tuple(str(v) for v in choices)
        else:
            kind = int if name == "power_iterations" else float
            setattr(space, name, _space_value(path, key, value, kind))
    return space


def trial_config(base: cfg.TrainConfig, values: dict[str, Any]) -> cfg.TrainConfig:
    """The :class:`~lcr_larq.config.TrainConfig` of one trial's hyperparameter values.

    Example:
        >>> base = cfg.TrainConfig()
        >>> trial_config(base, {"lcr": False}).lcr_lambda
        0.0
        >>> c = trial_config(base, {"lcr": True, "lcr_lambda": 2.0, "lcr_beta": 3.0,
        ...                         "power_iterations": 1, "lcr_reference": "latent"})
        >>> c.lcr_lambda, c.lcr_beta, c.power_iterations
        (2.0, 3.0, 1)
    """
    if values.get(SWITCH, True) is False:
        return dataclasses.replace(base, lcr_lambda=0.0)
    return dataclasses.replace(
        base,
        lcr_lambda=float(values.get("lcr_lambda", base.lcr_lambda)),
        lcr_beta=float(values.get("lcr_beta", base.lcr_beta)),
        power_iterations=int(values.get("power_iterations", base.power_iterations)),
        lcr_reference=str(values.get("lcr_reference", base.lcr_reference)),
    )


# --------------------------------------------------------------------------- settings
@dataclass
class TuneSettings:
    """Everything a search needs: the training settings and the tuner's own."""

    base: cfg.TrainConfig = field(default_factory=cfg.TrainConfig)
    space: SearchSpace = field(default_factory=SearchSpace)
    tuner: str = "random"
    max_trials: int | None = None
    objective: str = "val_accuracy"
    validation_fraction: float = 0.2
    overwrite: bool = False
    initial_points: int | None = None
    hyperband_factor: int = 3
    hyperband_iterations: int = 1
    mce_corruptions: tuple[str, ...] = ()
    mce_severities: tuple[int, ...] = (1, 2, 3, 4, 5)

    def validate(self) -> TuneSettings:
        """Checks every setting; raises :class:`~lcr_larq.config.ConfigError`."""
        self.space.validate()
        if self.tuner not in TUNERS:
            raise cfg.ConfigError(f"--tuner must be one of {list(TUNERS)}, got {self.tuner!r}")
        if self.objective not in OBJECTIVES:
            raise cfg.ConfigError(
                f"--objective must be one of {list(OBJECTIVES)}, got {self.objective!r}"
            )
        if self.max_trials is not None and self.max_trials < 1:
            raise cfg.ConfigError(f"--max-trials must be >= 1, got {self.max_trials}")
        if not 0 < self.validation_fraction < 1:
            raise cfg.ConfigError(
                f"--validation-fraction must be in (0, 1), got {self.validation_fraction}"
            )
        if self.initial_points is not None and self.initial_points < 1:
            raise cfg.ConfigError(f"--initial-points must be >= 1, got {self.initial_points}")
        if self.hyperband_factor < 2 or self.hyperband_iterations < 1:
            raise cfg.ConfigError("--hyperband-factor must be >= 2 and --hyperband-iterations >= 1")
        unknown = [c for c in self.mce_corruptions if c not in robustness.ALL_CORRUPTIONS]
        if unknown:
            raise cfg.ConfigError(
                f"unknown --mce-corruptions {unknown}; "
                f"choose from {list(robustness.ALL_CORRUPTIONS)}"
            )
        bad = [s for s in self.mce_severities if s not in robustness.SEVERITIES]
        if bad or not self.mce_severities:
            raise cfg.ConfigError(
                f"--mce-severities must be among 1..5, got {list(self.mce_severities)}"
            )
        if self.base.full_precision:
            raise cfg.ConfigError("--full-precision trains without LCR: there is nothing to tune")
        if "teacher" in self.space.lcr_reference and not self.base.teacher:
            raise cfg.ConfigError(
                "--reference-choices teacher needs --teacher DIR (train one with --full-precision)"
            )
        # Every corner of the space must be a valid training run.
        for values in self.corners():
            cfg.validate(trial_config(self.base, values))
        return self

    def corners(self) -> list[dict[str, Any]]:
        """Hyperparameter values at the ends of every range (and the baseline)."""
        space = self.space
        corners = [
            {
                "lcr_lambda": lam, "lcr_beta": max(beta, BETA_FLOOR),
                "power_iterations": iterations, "lcr_reference": reference,
            }
            for lam in space.lcr_lambda for beta in space.lcr_beta
            for iterations in space.power_iterations for reference in space.lcr_reference
        ]
        return corners + ([{SWITCH: False}] if space.baseline else [])

    @property
    def trial_budget(self) -> int | None:
        """``--max-trials``; by default 10, or for Hyperband no cap (its budget
        follows from ``--epochs``, ``--hyperband-factor`` and
        ``--hyperband-iterations``)."""
        if self.max_trials is not None:
            return self.max_trials
        return None if self.tuner == "hyperband" else DEFAULT_TRIALS

    @property
    def corruptions(self) -> tuple[str, ...]:
        return tuple(self.mce_corruptions) or robustness.CORRUPTIONS

    def fingerprint(self) -> dict[str, Any]:
        """The settings a rerun must share to continue this search (not
        ``--max-trials``, which may grow, nor ``--verbose``)."""
        train = {
            k: v for k, v in self.base.to_dict().items()
            if k not in ("output_dir", "verbose", *SEARCHED)
        }
        settings = {
            "tuner": self.tuner,
            "objective": self.objective,
            "validation_fraction": self.validation_fraction,
            "search_space": self.space.to_dict(),
            "train": train,
        }
        if self.tuner == "bayesian":
            settings["initial_points"] = self.initial_points
        if self.tuner == "hyperband":
            settings["hyperband_factor"] = self.hyperband_factor
            settings["hyperband_iterations"] = self.hyperband_iterations
        if self.objective == "val_mce":
            settings["mce_corruptions"] = list(self.corruptions)
            settings["mce_severities"] = list(self.mce_severities)
        return settings


# --------------------------------------------------------------------------- keras-tuner
def _baseline_values(space) -> dict[str, Any]:
    hps = kt.HyperParameters()
    for hp in space.space:
        hps.merge([hp])
        if hps.is_active(hp):
            hps.values[hp.name] = False if hp.name == SWITCH else hp.default
    return hps.values


class _BaselineFirst:
    """Oracle mixin: the first trial is the baseline (``lcr=False``, λ = 0);
    every other new trial has LCR on.

    Random search draws all its trials, Bayesian optimization its initial
    points and Hyperband the first rounds of its brackets from
    ``_random_values``, so the baseline enters all three through it. A
    Bayesian proposal of a second baseline is replaced by a random point.
    """

    def _has_switch(self) -> bool:
        return any(hp.name == SWITCH for hp in self.hyperparameters.space)

    def _baseline_tried(self) -> bool:
        return any(
            t.hyperparameters.values.get(SWITCH) is False for t in self.trials.values()
        )

    def _random_values(self):
        if self._has_switch() and not self._baseline_tried():
            return _baseline_values(self.hyperparameters)
        collisions = 0
        while True:
            hps = kt.HyperParameters()
            for hp in self.hyperparameters.space:
                hps.merge([hp])
                if not hps.is_active(hp):
                    continue
                if hp.name == SWITCH:
                    hps.values[hp.name] = True
                else:
                    hps.values[hp.name] = hp.random_sample(self._seed_state)
                    self._seed_state += 1
            if not self._duplicate(hps.values):
                return hps.values
            collisions += 1
            if collisions > self._max_collisions:
                return None  # the space is exhausted (every setting fixed)

    def populate_space(self, trial_id):
        response = super().populate_space(trial_id)
        values = response.get("values") or {}
        if (
            values.get(SWITCH) is False
            and "tuner/trial_id" not in values  # Hyperband continuing the baseline
            and self._baseline_tried()
        ):
            values = self._random_values()
            if values is None:
                return {"status": "STOPPED", "values": None}
            response = {"status": "RUNNING", "values": values}
        return response


class RandomOracle(_BaselineFirst, kt.oracles.RandomSearchOracle):
    """Random search, baseline first."""


class BayesianOracle(_BaselineFirst, kt.oracles.BayesianOptimizationOracle):
    """Bayesian optimization (Gaussian process), baseline first."""


class HyperbandOracle(_BaselineFirst, kt.oracles.HyperbandOracle):
    """Hyperband, baseline first (in the first bracket)."""


ORACLES = {"random": RandomOracle, "bayesian": BayesianOracle, "hyperband": HyperbandOracle}


class _TunerMixin:
    """Records what a search runs, passes each trial its directory and calls
    ``after_trial(tuner)`` once a trial has ended."""

    def __init__(self, oracle, hypermodel, **kwargs):
        self.executed: list[str] = []
        self.epochs_run: dict[str, list[int]] = {}
        self.after_trial = None
        # Straight to kt.Tuner: kt.Hyperband.__init__ would build its own oracle.
        kt.Tuner.__init__(self, oracle=oracle, hypermodel=hypermodel, **kwargs)

    def _populate_initial_space(self):
        # The space is declared up front (SearchSpace.hyperparameters): no
        # model needs to be built to discover it.
        return

    def run_trial(self, trial, *args, **kwargs):
        self.executed.append(trial.trial_id)
        kwargs["trial_dir"] = self.get_trial_dir(trial.trial_id)
        kwargs["checkpoint"] = self._get_checkpoint_fname(trial.trial_id)
        return super().run_trial(trial, *args, **kwargs)

    def on_epoch_begin(self, trial, model, epoch, logs=None):
        self.epochs_run.setdefault(trial.trial_id, []).append(epoch)

    def on_trial_end(self, trial):
        if trial.status in ("FAILED", "INVALID") and trial.message:
            last = [line for line in trial.message.splitlines() if line.strip()][-1]
            print(
                f"trial {trial.trial_id} failed: {last.strip()} (traceback in "
                f"{os.path.join(self.get_trial_dir(trial.trial_id), 'trial.json')})",
                file=sys.stderr,
            )
        super().on_trial_end(trial)  # raises once too many trials failed in a row
        if self.after_trial is not None:
            self.after_trial(self)


class LCRTuner(_TunerMixin, kt.Tuner):
    """The tuner of random search and Bayesian optimization."""


class LCRHyperband(_TunerMixin, kt.Hyperband):
    """The Hyperband tuner (trials continue the weights of earlier rounds)."""


def make_tuner(settings: TuneSettings, hypermodel, directory: str, strategy=None):
    """The tuner of ``settings.tuner`` with its baseline-first oracle.

    An existing search in ``directory`` is reloaded (and continued by ``search``).
    """
    objective = kt.Objective(settings.objective, OBJECTIVES[settings.objective])
    common = {
        "objective": objective,
        "hyperparameters": settings.space.hyperparameters(),
        "seed": settings.base.seed + 1,  # keras-tuner draws a random seed for 0
    }
    if settings.tuner == "random":
        oracle = RandomOracle(max_trials=settings.trial_budget, **common)
    elif settings.tuner == "bayesian":
        oracle = BayesianOracle(
            max_trials=settings.trial_budget, num_initial_points=settings.initial_points,
            **common,
        )
    else:
        oracle = HyperbandOracle(
            max_epochs=settings.base.epochs,
            factor=settings.hyperband_factor,
            hyperband_iterations=settings.hyperband_iterations,
            **common,
        )
        oracle.max_trials = settings.trial_budget
    tuner_class = LCRHyperband if settings.tuner == "hyperband" else LCRTuner
    return tuner_class(
        oracle=oracle,
        hypermodel=hypermodel,
        directory=directory,
        project_name=PROJECT,
        overwrite=False,
        distribution_strategy=strategy,
    )


class LCRHyperModel(kt.HyperModel):
    """Builds and trains one trial's model and scores it on the validation split.

    Args:
        settings: the search's settings (``settings.base`` gives everything
            that is not searched).
        dataset: the dataset with its validation split (for the model's
            input shape and classes; every trial loads a fresh pipeline).
        strategy: the ``tf.distribute`` strategy of the trials.
        mce_sets: corrupted validation images for ``val_mce``
            (:func:`corrupted_validation`), or None.
    """

    def __init__(self, settings: TuneSettings, dataset, strategy, mce_sets=None):
        super().__init__(name="lcr")
        self.settings = settings
        self.input_shape = dataset.input_shape
        self.num_classes = dataset.num_classes
        self.train_batches = int(tf.data.experimental.cardinality(dataset.train))
        self.strategy = strategy
        self.mce_sets = mce_sets

    def config(self, hp) -> cfg.TrainConfig:
        return trial_config(self.settings.base, hp.values)

    def build(self, hp):
        config = self.config(hp)
        tf.keras.utils.set_random_seed(config.seed)
        model = training.build_training_model(config, self.input_shape, self.num_classes)
        training.compile_model(model, config, config.steps_per_epoch or self.train_batches)
        return model

    def fit(self, hp, model, *args, trial_dir=None, checkpoint=None, callbacks=(),
            epochs=None, initial_epoch=0, **kwargs):
        """Trains as ``train.py`` does (same schedules) and returns the trial's
        metrics: the last epoch's ``loss``, ``accuracy`` (and ``lcr_lip``) and
        those of :func:`evaluate` on the validation split."""
        config = self.config(hp)
        start = time.time()
        dataset = load_data(self.settings)  # a fresh pipeline: the seed's own shuffles
        steps = config.steps_per_epoch or self.train_batches
        fit_callbacks = lcr_callbacks.schedules_for(
            model, config.epochs, steps, prox_rho_end=config.prox_rho_end,
            prox_hard_epochs=config.prox_hard_epochs,
        )
        backup = os.path.join(trial_dir, "backup") if trial_dir else None
        if backup:  # first, so that it saves before any later callback stops
            fit_callbacks.insert(0, training.ResumableBackup(backup))
        # As in train.py: a finite dataset is not restarted within one fit.
        train_data = dataset.train.repeat() if config.steps_per_epoch else dataset.train
        history = model.fit(
            train_data,
            epochs=epochs or config.epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=config.steps_per_epoch,
            callbacks=[*fit_callbacks, *callbacks],
            verbose=config.verbose,
        )
        if backup:
            shutil.rmtree(backup, ignore_errors=True)
        if checkpoint and not history.epoch:
            # Resumed after its last epoch: Hyperband may continue from its weights.
            model.save_weights(checkpoint)
        metrics = {
            key: float(values[-1])
            for key, values in history.history.items()
            if key in ("loss", "accuracy", "lcr_lip") and values
        }
        metrics.update(evaluate(
            model, dataset, self.strategy, config.batch_size, self.mce_sets,
            config.bn_recalibration_batches,
        ))
        metrics["seconds"] = round(time.time() - start, 2)
        return metrics


# --------------------------------------------------------------------------- data
def load_data(settings: TuneSettings) -> lcr_data.Dataset:
    """The dataset with its validation split (carved from the training data)."""
    base = settings.base
    dataset = lcr_data.load_dataset(
        base.dataset, batch_size=base.batch_size, seed=base.seed, data_dir=base.data_dir,
        validation_split=settings.validation_fraction, input_size=base.input_size,
    )
    if dataset.validation is None:
        raise cfg.ConfigError(
            f"dataset {base.dataset!r} gives no validation split: choose another --dataset"
        )
    return dataset


def corrupted_validation(settings: TuneSettings, dataset: lcr_data.Dataset, path: str) -> dict:
    """``{(corruption, severity): uint8 images}`` of the validation split, cached in ``path``."""
    if dataset.validation_arrays is None:
        raise cfg.ConfigError(
            f"--objective val_mce needs the validation images in memory; dataset "
            f"{settings.base.dataset!r} does not hold them: use --objective val_accuracy"
        )
    images, _ = dataset.validation_arrays
    keys = [(c, s) for c in settings.corruptions for s in settings.mce_severities]
    names = [f"{c}__{s}" for c, s in keys]
    if os.path.isfile(path):
        with np.load(path) as cached:
            if sorted(cached.files) == sorted(names):
                return {key: cached[name] for key, name in zip(keys, names)}
    print(f"corrupting {len(images)} validation images ({len(keys)} corruption × severity "
          "sets, once per search)", flush=True)
    sets = {
        (c, s): robustness.corrupt_images(images, c, s, seed=settings.base.seed)
        for c, s in keys
    }
    np.savez_compressed(path, **{name: sets[key] for key, name in zip(keys, names)})
    return sets


def evaluate(
    model, dataset, strategy, batch_size: int, mce_sets=None, bn_batches: int = 0
) -> dict[str, float]:
    """Validation loss and accuracy of the plain BNN (LCR stripped; its BN
    statistics re-estimated from ``bn_batches`` training batches, as
    ``train.py`` does before testing), and with ``mce_sets`` its
    unnormalised validation mCE: the mean over corruptions of the summed
    top-1 errors over severities (see :mod:`lcr_larq.robustness`)."""
    with strategy.scope():  # the stripped model too must belong to the strategy
        bnn = training.compile_for_evaluation(strip_lcr(model))
    training.recalibrate(bnn, dataset, bn_batches)
    val_loss, val_accuracy = bnn.evaluate(dataset.validation, verbose=0)
    metrics = {"val_loss": float(val_loss), "val_accuracy": float(val_accuracy)}
    if mce_sets:
        _, labels = dataset.validation_arrays
        errors: dict[str, list[float]] = {}
        for (corruption, _severity), images in mce_sets.items():
            logits = bnn.predict(dataset.normalize(images), batch_size=batch_size, verbose=0)
            errors.setdefault(corruption, []).append(
                float(np.mean(np.argmax(logits, axis=-1) != labels))
            )
        metrics["val_mce"] = robustness.mean_corruption_error(errors).value
    return metrics


# --------------------------------------------------------------------------- results
@dataclass
class SearchResult:
    """What :func:`run_search` did and wrote."""

    rows: list[dict[str, Any]]
    best: cfg.TrainConfig | None
    table_path: str
    best_path: str | None
    executed: list[str]
    epochs_run: dict[str, list[int]]


def trials_table(oracle, settings: TuneSettings) -> list[dict[str, Any]]:
    """One row per trial, best first (unfinished and failed trials last)."""
    direction = OBJECTIVES[settings.objective]
    rows = []
    for trial in oracle.trials.values():
        values = trial.hyperparameters.values
        config = trial_config(settings.base, values)
        baseline = values.get(SWITCH) is False

        def metric(name, trial=trial):
            if trial.metrics.exists(name):
                return trial.metrics.get_last_value(name)
            return None

        row = {
            "rank": None,
            "trial": trial.trial_id,
            "status": trial.status,
            settings.objective: trial.score if trial.status == "COMPLETED" else None,
            "lcr_lambda": config.lcr_lambda,
            "log2_lambda": math.log2(config.lcr_lambda) if config.lcr_lambda > 0 else None,
            "lcr_beta": None if baseline else config.lcr_beta,
            "power_iterations": None if baseline else config.power_iterations,
            "lcr_reference": None if baseline else config.lcr_reference,
            "epochs": values.get("tuner/epochs", settings.base.epochs),
        }
        if settings.tuner == "hyperband":
            row["continues"] = values.get("tuner/trial_id")
        for name in ("val_accuracy", "val_loss", "val_mce", "accuracy", "loss", "seconds"):
            if name != settings.objective and (name != "val_mce" or metric(name) is not None):
                row[name] = metric(name)
        rows.append(row)
    done = [r for r in rows if r[settings.objective] is not None]
    rest = [r for r in rows if r[settings.objective] is None]
    done.sort(key=lambda r: r[settings.objective], reverse=direction == "max")
    rest.sort(key=lambda r: int(r["trial"]))
    for rank, row in enumerate(done, start=1):
        row["rank"] = rank
    return done + rest


def write_table(rows: list[dict[str, Any]], path: str) -> None:
    """``rows`` as CSV (empty cells for settings a trial does not have)."""
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in fields})


def format_table(rows: list[dict[str, Any]]) -> str:
    """``rows`` as an aligned text table.

    Example:
        >>> print(format_table([{"trial": "0", "val_accuracy": 0.5, "lcr_beta": None}]))
        trial  val_accuracy  lcr_beta
        0      0.5000        -
    """
    if not rows:
        return "(no trials)"
    fields = list(dict.fromkeys(k for row in rows for k in row))

    def cell(value):
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.4f}" if abs(value) < 1000 else f"{value:.0f}"
        return str(value)

    cells = [[cell(row.get(k)) for k in fields] for row in rows]
    widths = [max(len(f), *(len(c[i]) for c in cells)) for i, f in enumerate(fields)]
    lines = ["  ".join(f.ljust(w) for f, w in zip(fields, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in cells]
    return "\n".join(lines)


def write_best(config: cfg.TrainConfig, row: dict[str, Any], objective: str, path: str) -> None:
    """``config`` as a recipe for ``train.py --config``, headed by the trial's score."""
    cfg.save_recipe(config, path)
    with open(path) as handle:
        recipe = handle.read()
    header = (
        f"# best trial {row['trial']} of python -m lcr_larq.tune: {objective} = "
        f"{row[objective]:.6g} (on the validation split)\n"
        "# train it again with: python train.py --config " + path + "\n"
    )
    with open(path, "w") as handle:
        handle.write(header + recipe)


# --------------------------------------------------------------------------- search
def _changed(old: dict, new: dict, prefix: str = "") -> list[str]:
    """The keys whose values differ, nested ones as ``outer.inner``.

    Example:
        >>> _changed({"tuner": "random", "train": {"epochs": 3, "lr": 0.1}},
        ...          {"tuner": "random", "train": {"epochs": 4, "lr": 0.1}})
        ['train.epochs']
    """
    changed = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changed += _changed(a, b, f"{prefix}{key}.")
        elif a != b:
            changed.append(f"{prefix}{key}")
    return changed


def _check_resume(settings: TuneSettings, output_dir: str, tuner_dir: str) -> None:
    """Refuses to continue a search made with other settings."""
    path = os.path.join(output_dir, "search.yaml")
    fingerprint = json.loads(json.dumps(settings.fingerprint()))
    if settings.overwrite:
        shutil.rmtree(tuner_dir, ignore_errors=True)
        for name in ("trials.csv", "best.yaml", "corrupted_validation.npz"):
            if os.path.exists(os.path.join(output_dir, name)):
                os.remove(os.path.join(output_dir, name))
    elif os.path.isdir(tuner_dir) and os.path.isfile(path):
        with open(path) as handle:
            previous = yaml.safe_load(handle) or {}
        if previous != fingerprint:
            changed = _changed(previous, fingerprint)
            raise cfg.ConfigError(
                f"{output_dir} holds a search with other settings ({', '.join(changed)}): "
                "rerun with the same settings to continue it, add --overwrite to start "
                "again, or choose another --output-dir"
            )
    with open(path, "w") as handle:
        yaml.safe_dump(fingerprint, handle, sort_keys=False, allow_unicode=True)


def _write_outputs(tuner, settings: TuneSettings) -> tuple[list, str, cfg.TrainConfig | None,
                                                         str | None]:
    """Writes ``trials.csv`` and, once a trial has finished, ``best.yaml``."""
    output_dir = settings.base.output_dir
    rows = trials_table(tuner.oracle, settings)
    table_path = os.path.join(output_dir, "trials.csv")
    write_table(rows, table_path)
    if not rows or rows[0]["rank"] != 1:
        return rows, table_path, None, None
    trial = tuner.oracle.get_trial(rows[0]["trial"])
    best = dataclasses.replace(
        trial_config(settings.base, trial.hyperparameters.values),
        output_dir=os.path.join(output_dir, "best"),
    )
    best_path = os.path.join(output_dir, "best.yaml")
    write_best(best, rows[0], settings.objective, best_path)
    return rows, table_path, best, best_path


def run_search(settings: TuneSettings, callbacks: list | None = None) -> SearchResult:
    """Runs (or continues) the search; writes the table and ``best.yaml``.

    ``callbacks`` are Keras callbacks added to every trial's ``fit`` (Keras
    Tuner copies them for every trial). The table and ``best.yaml`` are
    rewritten after every trial.

    Example:
        >>> settings = TuneSettings(
        ...     base=cfg.TrainConfig(epochs=1, steps_per_epoch=1, output_dir="/tmp/t", verbose=0),
        ...     max_trials=2)
        >>> result = run_search(settings)                       # doctest: +SKIP
        >>> sorted(row["lcr_lambda"] == 0 for row in result.rows)   # doctest: +SKIP
        [False, True]
    """
    settings.validate()
    output_dir = settings.base.output_dir
    training.prepare_output_dir(output_dir)
    tuner_dir = os.path.join(output_dir, "tuner")
    _check_resume(settings, output_dir, tuner_dir)

    strategy = training.get_strategy(settings.base.strategy)
    dataset = load_data(settings)
    mce_sets = None
    if settings.objective == "val_mce":
        mce_sets = corrupted_validation(
            settings, dataset, os.path.join(output_dir, "corrupted_validation.npz")
        )
    hypermodel = LCRHyperModel(settings, dataset, strategy, mce_sets)
    tuner = make_tuner(
        settings, hypermodel, tuner_dir,
        strategy=None if settings.base.strategy == "default" else strategy,
    )
    tuner.after_trial = lambda t: _write_outputs(t, settings)
    try:
        tuner.search(callbacks=list(callbacks or []), verbose=settings.base.verbose)
    except BaseException:
        _write_outputs(tuner, settings)  # an interrupted trial shows as RUNNING
        raise
    rows, table_path, best, best_path = _write_outputs(tuner, settings)
    return SearchResult(rows, best, table_path, best_path, tuner.executed, tuner.epochs_run)


# --------------------------------------------------------------------------- command line
class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage block
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    """``train.py``'s flags plus the tuner's own."""
    parser = _Parser(
        prog="python -m lcr_larq.tune",
        description="Search λ, β, power iterations and the reference mode of LCR "
        "with Keras Tuner (the train.py flags set everything else).",
        allow_abbrev=False,
    )
    cfg.add_arguments(parser)
    for action in parser._actions:
        if action.dest == "output_dir":
            action.help = f"search, trials.csv and best.yaml (default: {DEFAULT_OUTPUT})"
        elif action.dest == "epochs":
            action.help = (
                "training epochs of a trial (hyperband: the most) "
                f"(default: {cfg.TrainConfig().epochs})"
            )
        elif action.dest in SEARCHED:
            action.help = f"searched: see {RANGE_FLAGS[action.dest]}"
    tune = parser.add_argument_group("search")
    tune.add_argument("--tuner", choices=TUNERS, default="random", help="(default: random)")
    tune.add_argument("--max-trials", type=int,
                      help="trials in all, the baseline included; a rerun with more "
                      f"continues the search (default: {DEFAULT_TRIALS}; hyperband: no cap, "
                      "its budget follows from --epochs and --hyperband-factor)")
    tune.add_argument("--objective", choices=list(OBJECTIVES), default="val_accuracy",
                      help="validation accuracy (maximized) or validation mCE under common "
                      "corruptions (minimized) (default: val_accuracy)")
    tune.add_argument("--validation-fraction", type=float, default=0.2,
                      help="share of the training data held out to score trials (default: 0.2)")
    tune.add_argument("--overwrite", action="store_true",
                      help="start again instead of continuing the search in --output-dir")
    space = parser.add_argument_group("search space (flags override --search-space)")
    space.add_argument("--search-space", metavar="FILE", help="YAML file of ranges")
    space.add_argument("--lambda-range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                       help="λ, log-uniform (default: 0.5 8, log2 λ from -1 to 3)")
    space.add_argument("--beta-range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                       help=f"β, uniform, > 1 (default: 1 4; a LOW of 1 means {BETA_FLOOR})")
    space.add_argument("--power-iterations-range", type=int, nargs=2, metavar=("LOW", "HIGH"),
                       help="power-iteration steps (default: 1 5)")
    space.add_argument("--reference-choices", nargs="+", choices=cfg.CHOICES["lcr_reference"],
                       help="full-precision reference modes (default: latent)")
    space.add_argument("--baseline", type=cfg._parse_bool, nargs="?", const=True,
                       help="run one λ = 0 trial (the plain BNN) first (default: true)")
    algo = parser.add_argument_group("tuner details")
    algo.add_argument("--initial-points", type=int,
                      help="bayesian: random trials before the Gaussian process "
                      "(default: 3 per hyperparameter)")
    algo.add_argument("--hyperband-factor", type=int, default=3,
                      help="hyperband: reduction factor; --epochs is the most any trial "
                      "trains (default: 3)")
    algo.add_argument("--hyperband-iterations", type=int, default=1,
                      help="hyperband: full iterations (default: 1)")
    algo.add_argument("--mce-corruptions", nargs="+", metavar="NAME",
                      help="val_mce: corruptions (default: the 15 of ImageNet-C; also "
                      f"{', '.join(robustness.EXTRA_CORRUPTIONS)})")
    algo.add_argument("--mce-severities", type=int, nargs="+", metavar="S",
                      help="val_mce: severities (default: 1 2 3 4 5)")
    return parser


def settings_from_args(args: argparse.Namespace) -> TuneSettings:
    """:class:`TuneSettings` of parsed arguments (not validated)."""
    given = vars(args)
    for name in SEARCHED:
        if name in given:
            flag = "--" + name.replace("_", "-")
            raise cfg.ConfigError(
                f"{flag} is searched: set its range with {RANGE_FLAGS[name]} "
                f"(one value twice fixes it)"
            )
    base = cfg.build_config(args)
    if "output_dir" not in given:  # a recipe's output_dir is where train.py writes
        base.output_dir = DEFAULT_OUTPUT
    space = load_search_space(args.search_space) if args.search_space else SearchSpace()
    if args.lambda_range:
        space.lcr_lambda = tuple(args.lambda_range)
    if args.beta_range:
        space.lcr_beta = tuple(args.beta_range)
    if args.power_iterations_range:
        space.power_iterations = tuple(args.power_iterations_range)
    if args.reference_choices:
        space.lcr_reference = tuple(args.reference_choices)
    if args.baseline is not None:
        space.baseline = args.baseline
    return TuneSettings(
        base=base,
        space=space,
        tuner=args.tuner,
        max_trials=args.max_trials,
        objective=args.objective,
        validation_fraction=args.validation_fraction,
        overwrite=args.overwrite,
        initial_points=args.initial_points,
        hyperband_factor=args.hyperband_factor,
        hyperband_iterations=args.hyperband_iterations,
        mce_corruptions=tuple(args.mce_corruptions or ()),
        mce_severities=tuple(args.mce_severities or (1, 2, 3, 4, 5)),
    )


def failure_message(error: BaseException) -> str | None:
    r"""One line for Keras Tuner giving up after failed trials, else None.

    Example:
        >>> text = "Number of consecutive failures exceeded the limit of 3.\n"
        >>> failure_message(RuntimeError(text + "Traceback\nValueError: x"))
        'trials keep failing (3 in a row), the last with: ValueError: x'
        >>> failure_message(RuntimeError("other")) is None
        True
    """
    text = str(error)
    if not text.startswith("Number of consecutive failures"):
        return None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    limit = lines[0].rstrip(".").rsplit(" ", 1)[-1]
    return f"trials keep failing ({limit} in a row), the last with: {lines[-1]}"


def main(argv: list[str] | None = None) -> int:
    """``python -m lcr_larq.tune``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from_args(args)
        result = run_search(settings)
    except (cfg.ConfigError, lcr_data.DataError, training.TrainingError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: rerun the same command to continue the search", file=sys.stderr)
        return 130
    except RuntimeError as error:
        message = failure_message(error)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 1
    print()
    print(format_table(result.rows))
    print(f"\nwrote {result.table_path}")
    if result.best_path:
        print(f"wrote {result.best_path}: python train.py --config {result.best_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
