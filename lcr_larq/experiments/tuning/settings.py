"""The settings of a search (``lcr-tune``'s flags): :class:`TuneConfig`, the
ranges it searches, and the training run of a trial.

Example:
    >>> config = TuneConfig(lambda_range=(1.0, 4.0), power_iterations_range=(2, 2))
    >>> config.run_dir
    'runs/tune'
    >>> trial_config(config, {"lcr_lambda": 2.0}).lcr_lambda
    2.0
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lcr_larq.errors import ConfigError
from lcr_larq.evaluation import corruptions
from lcr_larq.settings import flag_name, setting
from lcr_larq.training import RUNS_DIR, TrainConfig

__all__ = [
    "BASELINE",
    "BEST_FILE",
    "BETA_FLOOR",
    "CACHE_DIR",
    "DEFAULT_OUTPUT",
    "DEFAULT_TRIALS",
    "ERROR_FILE",
    "METRICS",
    "NOT_COMPARED",
    "OBJECTIVES",
    "PROJECT",
    "RANGES",
    "RESULT_FILE",
    "SEARCHED",
    "SEARCH_FILE",
    "TRIALS_FILE",
    "TUNERS",
    "TUNER_DIR",
    "TuneConfig",
    "baseline_config",
    "corners",
    "train_settings",
    "trial_config",
]

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
DEFAULT_OUTPUT = os.path.join(RUNS_DIR, "tune")
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
    (f,) = [f for f in dataclasses.fields(TrainConfig) if f.name == name]
    meta = {k: f.metadata[k] for k in ("choices", "low", "above", "high", "below", "recipe",
                                       "metavar")}
    return setting(f.default, help, **meta)



@dataclass
class TuneConfig(TrainConfig):
    """The settings of a search (``lcr-tune``'s flags): every setting of a
    training run (:class:`~lcr_larq.training.TrainConfig`, they set every trial
    and the baseline) and the tuner's own.

    Example:
        >>> TuneConfig(lambda_range=(0.0, 4.0)).check()
        Traceback (most recent call last):
        ...
        lcr_larq.errors.ConfigError: --lambda-range needs 0 < LOW <= HIGH (λ is log-uniform), \
got 0 4; λ = 0 is the baseline (--baseline)
    """

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
        choices=("all", "extra", *corruptions.ALL_CORRUPTIONS), metavar="NAME",
    )
    mce_severities: tuple[int, ...] = setting(
        corruptions.SEVERITIES, "val_mce: corruption severities", choices=corruptions.SEVERITIES,
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
        return corruptions.corruption_names(self.mce_corruptions or ("all",))

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
            try:
                trial_config(self, values)  # a TrainConfig is checked when it is made
            except ConfigError as error:
                where = ", ".join(f"{k}={values[k]}" for k in SEARCHED)
                raise ConfigError(
                    f"the search space holds a run that cannot be trained ({where}): {error}"
                ) from None
        if self.baseline:
            baseline_config(self)


def train_settings(config: TuneConfig, **changes: Any) -> TrainConfig:
    """The :class:`~lcr_larq.training.TrainConfig` part of ``config``, with ``changes``.

    Example:
        >>> train_settings(TuneConfig(epochs=3), lcr_lambda=1.0).epochs
        3
    """
    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(TrainConfig)}
    values.update(overwrite=False)
    values.update(changes)
    return TrainConfig(**values)


def trial_config(config: TuneConfig, values: Mapping[str, Any]) -> TrainConfig:
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


def baseline_config(config: TuneConfig) -> TrainConfig:
    """The λ = 0 baseline's training run (the plain BNN).

    Example:
        >>> run = baseline_config(TuneConfig(seed=3))
        >>> run.lcr_lambda, run.seed
        (0.0, 3)
    """
    return train_settings(config, lcr_lambda=0.0)


def _beta_bounds(config: TuneConfig) -> tuple[float, float]:
    return max(float(config.beta_range[0]), BETA_FLOOR), float(config.beta_range[1])


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


def changed_settings(previous: Mapping[str, Any], current: Mapping[str, Any],
                     now: str = "now") -> list[str]:
    """The settings (as flags, with their old and new values) a rerun changes,
    those in :data:`NOT_COMPARED` aside (a worker's differ from its chief's:
    ``now="here"``).

    Example:
        >>> changed_settings({"epochs": 3, "lr": 0.1, "max_trials": 2},
        ...                  {"epochs": 4, "lr": 0.1, "max_trials": 9})
        ['--epochs (3, now 4)']
    """
    def shown(value):
        return " ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)

    return [
        f"{flag_name(name)} ({shown(previous.get(name))}, {now} {shown(current[name])})"
        for name in current
        if name not in NOT_COMPARED and previous.get(name) != current[name]
    ]
