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

The search is split by job: :mod:`~lcr_larq.experiments.tuning.settings`
(:class:`TuneConfig`), :mod:`~lcr_larq.experiments.tuning.space`
(:func:`search_space`), :mod:`~lcr_larq.experiments.tuning.search`
(:func:`run_search`) and :mod:`~lcr_larq.experiments.tuning.report` (the tables).

Example:
    >>> config = TuneConfig(lambda_range=(1.0, 4.0), power_iterations_range=(2, 2))
    >>> space = search_space(config)
    >>> [(p.name, type(p).__name__) for p in space.space]
    [('lcr_lambda', 'Float'), ('lcr_beta', 'Float'), ('power_iterations', 'Fixed'), \
('lcr_reference', 'Fixed')]
"""

from lcr_larq.experiments.tuning.report import trial_rows, write_best, write_table
from lcr_larq.experiments.tuning.search import (
    LCRHyperModel,
    SearchResult,
    TrialData,
    make_tuner,
    run_search,
    train_and_score,
    train_baseline,
)
from lcr_larq.experiments.tuning.settings import (
    BASELINE,
    BEST_FILE,
    SEARCH_FILE,
    TRIALS_FILE,
    TuneConfig,
    baseline_config,
    corners,
    train_settings,
    trial_config,
)
from lcr_larq.experiments.tuning.space import search_space

__all__ = [
    "BASELINE",
    "BEST_FILE",
    "SEARCH_FILE",
    "TRIALS_FILE",
    "LCRHyperModel",
    "SearchResult",
    "TrialData",
    "TuneConfig",
    "baseline_config",
    "corners",
    "make_tuner",
    "run_search",
    "search_space",
    "train_and_score",
    "train_baseline",
    "train_settings",
    "trial_config",
    "trial_rows",
    "write_best",
    "write_table",
]
