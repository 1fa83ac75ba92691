"""Running a search: trials trained as ``lcr-train`` trains, scored on the
validation split, through Keras Tuner's stock tuners and public hooks;
the λ = 0 baseline beside them; continuing an interrupted search.

Example:
    >>> tuner_seed(0), tuner_seed(2**32 - 1)
    (1, 1)
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import tensorflow as tf

from lcr_larq import data as lcr_data
from lcr_larq.batchnorm import recalibrate
from lcr_larq.errors import ConfigError, DataError, RunError, UserError
from lcr_larq.evaluation import clean, corruptions
from lcr_larq.experiments.tuning.distributed import (
    ALONE,
    TUNER_ID,
    Role,
    check_port,
    check_worker_settings,
    claim_baseline,
    role_of,
    serve,
    wait_for_oracle,
    worker_lock,
)
from lcr_larq.experiments.tuning.report import last_line, trial_rows, write_best, write_table
from lcr_larq.experiments.tuning.settings import (
    BASELINE,
    BEST_FILE,
    CACHE_DIR,
    ERROR_FILE,
    OBJECTIVES,
    PROJECT,
    RESULT_FILE,
    SEARCH_FILE,
    SEARCHED,
    TRIALS_FILE,
    TUNER_DIR,
    TuneConfig,
    baseline_config,
    changed_settings,
    trial_config,
)
from lcr_larq.experiments.tuning.space import kt, search_space
from lcr_larq.graph import strip_lcr
from lcr_larq.settings import echo, load_recipe, recipe_dict, save_recipe
from lcr_larq.training import TrainConfig, input_size_note, runs
from lcr_larq.training.checkpoint import RunCheckpoint
from lcr_larq.training.distribute import get_strategy, wait_for_chief
from lcr_larq.training.run import (
    build_training_model,
    checked_data,
    compile_for_evaluation,
    compile_model,
    fit,
    prepare_output_dir,
)
from lcr_larq.training.summary import last_epoch_metrics

__all__ = [
    "BayesianOptimization",
    "EpochLog",
    "Hyperband",
    "LCRHyperModel",
    "RandomSearch",
    "SearchHooks",
    "SearchResult",
    "TrialData",
    "baseline_result",
    "build_model",
    "changed_settings",
    "corrupted_validation",
    "load_split",
    "make_tuner",
    "prepare_search",
    "run_search",
    "score",
    "train_and_score",
    "train_baseline",
    "tuner_seed",
]


def load_split(config: TrainConfig) -> lcr_data.Dataset:
    """The dataset with its validation split (carved from the training data),
    checked against the run (:func:`lcr_larq.training.checked_data`)."""
    dataset = checked_data(config)
    if dataset.validation is None:
        raise DataError(
            f"dataset {echo(config.dataset)} gives no validation split: choose another --dataset"
        )
    return dataset


def corrupted_validation(
    config: TuneConfig, dataset: lcr_data.Dataset, cache_dir: str | None = None
) -> dict[tuple[str, int], Any]:
    """``{(corruption, severity): uint8 images}`` of the validation split
    (:func:`~lcr_larq.evaluation.corruptions.corrupted`, cached in ``cache_dir``)."""
    if dataset.validation_arrays is None:
        raise ConfigError(
            f"--objective val_mce needs the validation images in memory; dataset "
            f"{echo(config.dataset)} does not hold them: use --objective val_accuracy"
        )
    images, _ = dataset.validation_arrays
    return {
        (c, s): corruptions.corrupted(images, c, s, seed=config.seed, cache_dir=cache_dir)
        for c in config.corruptions
        for s in config.mce_severities
    }


def build_model(config: TrainConfig, dataset: lcr_data.Dataset) -> tf.keras.Model:
    """One trial's compiled training model, its weights from ``config.seed``."""
    tf.keras.utils.set_random_seed(config.seed)
    model = build_training_model(config, dataset.input_shape, dataset.num_classes)
    compile_model(model, config, config.steps_per_epoch or dataset.steps_per_epoch)
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


def score(model: tf.keras.Model, config: TrainConfig, data: TrialData) -> dict[str, float]:
    """Validation loss and accuracy of the plain BNN of ``model`` (LCR
    stripped; its BN statistics re-estimated from
    ``config.bn_recalibration_batches`` training batches, as ``lcr-train``
    does before testing) and, with ``mce_sets``, its unnormalized validation
    mCE: the mean over corruptions of the summed top-1 errors over severities.
    """
    dataset, mce_sets = data.dataset, data.mce_sets
    with data.scope():
        bnn = compile_for_evaluation(strip_lcr(model))
    recalibrate(bnn, dataset, config.bn_recalibration_batches)
    val_loss, val_accuracy = bnn.evaluate(dataset.validation, verbose=0)
    metrics = {"val_loss": float(val_loss), "val_accuracy": float(val_accuracy)}
    if mce_sets:
        _, labels = dataset.validation_arrays
        predict = clean.predictor(bnn, dataset.normalize, config.batch_size)
        accuracies = clean.corruption_accuracies(predict, dict(mce_sets), labels)
        errors = {c: [1.0 - a for a in by.values()] for c, by in accuracies.items()}
        metrics["val_mce"] = corruptions.mean_corruption_error(errors).value
    return metrics


def train_and_score(
    model: tf.keras.Model,
    config: TrainConfig,
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
    (:class:`~lcr_larq.training.checkpoint.RunCheckpoint`, also ``history.csv``) and an
    interrupted training resumes from its last finished epoch. The checkpoint
    is written after every other callback (Keras Tuner's own checkpoint among
    them), so a backup holding every epoch implies that they hold it too. The
    caller removes the backup once the scores are recorded.
    """
    start = time.time()
    checkpoint = RunCheckpoint(directory) if directory else None
    first = initial_epoch
    if checkpoint is not None:
        with data.scope():
            first = max(first, checkpoint.resume(model))
    history = fit(
        model, config, data.dataset, first_epoch=first, epochs=epochs, checkpoint=checkpoint,
        callbacks=callbacks,
    )
    last = last_epoch_metrics(history, directory)
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
    * ``before_trials()`` is called once: when the first trial begins (this
      tuner then holds a trial, so a distributed oracle keeps serving), or at
      the end of the search when the oracle gave this tuner none;
    * ``check_oracle()`` is called before every request for a trial and every
      report of one (a distributed worker checks that its chief answers);
    * ``after_trial()`` is called once a trial has ended.

    ``executed`` and ``epochs_run`` record what this process ran.
    """

    def __init__(self, *args, after_trial: Callable[[], None] | None = None,
                 before_trials: Callable[[], None] | None = None,
                 check_oracle: Callable[[], None] | None = None, **kwargs):
        self.executed: list[str] = []
        self.epochs_run: dict[str, list[int]] = {}
        self.failures: dict[str, str] = {}
        self.after_trial = after_trial
        self.before_trials = before_trials
        self.check_oracle = check_oracle
        super().__init__(*args, **kwargs)

    def run_before_trials(self) -> None:
        """Calls ``before_trials()`` the first time only."""
        before, self.before_trials = self.before_trials, None
        if before is not None:
            before()

    def pre_create_trial(self):
        if self.check_oracle is not None:
            self.check_oracle()
        super().pre_create_trial()

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
        self.run_before_trials()

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
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(trial.message or "")
            print(f"trial {trial.trial_id} failed: {last_line(trial.message)} (traceback in "
                  f"{path})", file=sys.stderr, flush=True)
        reported = False
        try:
            if self.check_oracle is not None:
                self.check_oracle()  # else the trial's checkpoint stays for its rerun
            reported = True
            super().on_trial_end(trial)  # raises once too many trials failed in a row
        finally:
            if reported:
                shutil.rmtree(os.path.join(directory, runs.BACKUP), ignore_errors=True)
            if self.after_trial is not None:
                self.after_trial()

    def on_search_end(self):
        self.run_before_trials()  # the oracle gave this tuner no trial
        super().on_search_end()


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

    """
    return seed % (2**32 - 1) + 1


def make_tuner(config: TuneConfig, hypermodel: kt.HyperModel, directory: str,
               strategy: tf.distribute.Strategy | None = None, **hooks):
    """The stock tuner of ``config.tuner`` over :func:`search_space`, with
    the ``hooks`` of :class:`SearchHooks`; an existing search in
    ``directory`` is reloaded (and continued by ``search``)."""
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
        **hooks,
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
        with open(error_path, "w", encoding="utf-8") as handle:
            handle.write(traceback.format_exc())
        raise RunError(
            f"the λ = 0 baseline failed: {last_line(traceback.format_exc())} (traceback in "
            f"{error_path}; --baseline false searches without it)"
        ) from None
    result = {"trial": BASELINE, "status": "COMPLETED", "metrics": metrics,
              "settings": recipe_dict(run)}
    runs.save_json(result, os.path.join(directory, RESULT_FILE))
    shutil.rmtree(os.path.join(directory, runs.BACKUP), ignore_errors=True)
    return result


# --------------------------------------------------------------------------- resuming
def prepare_search(config: TuneConfig) -> str:
    """Creates (or, with ``overwrite``, empties) the output directory, refuses
    to continue a search made with other settings, and writes ``search.yaml``;
    returns its path."""
    out = config.run_dir
    prepare_output_dir(out)
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
            previous = recipe_dict(TuneConfig(**load_recipe(path, TuneConfig)))
        except ConfigError as error:
            raise RunError(
                f"{error}: {out} holds a search from another version; add --overwrite to start "
                "again, or choose another --output-dir"
            ) from None
        changed = changed_settings(previous, recipe_dict(config))
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
    save_recipe(dataclasses.replace(config, output_dir=out, overwrite=False), path)
    with open(path, encoding="utf-8") as handle:
        recipe = handle.read()
    with open(path, "w", encoding="utf-8") as handle:
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
    best: TrainConfig | None
    trials_path: str
    best_path: str | None
    search_path: str
    #: The trials this call ran (``baseline`` first when it trained it).
    executed: list[str]
    #: The epochs each of them began in this call.
    epochs_run: dict[str, list[int]]
    #: This process's part: alone, the chief (its ``rows`` are the search's)
    #: or a worker (it writes no tables: ``rows`` is empty).
    role: Role = dataclasses.field(default_factory=lambda: Role(ALONE, "tuner0"))


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

    In Keras Tuner's distributed mode (its environment variables, see
    :mod:`~lcr_larq.experiments.tuning.distributed`) every process runs this
    with the same settings and ``--output-dir``: the chief serves the oracle
    and writes the tables, the workers train the trials and the baseline.
    """
    role = role_of(os.environ)
    say = progress or (lambda line: None)
    if role.kind == "worker":
        wait_for_oracle(role, config.chief_timeout)
        check_worker_settings(config, role)
    elif role.kind == "chief":
        check_port(role)
    strategy = get_strategy(config.strategy)
    # The seed first, as lcr-train: the evaluation pipelines (the BN
    # statistics' batches) draw their fixed order from it, in every process
    # alike. The data is checked before anything is written.
    tf.keras.utils.set_random_seed(config.seed)
    dataset = load_split(config).for_replicas(strategy.num_replicas_in_sync)
    note = input_size_note(config)
    if note and progress:
        progress(note)
    if role.kind == "worker":
        with worker_lock(config, role):
            return _search(config, role, dataset, strategy, callbacks, say)
    prepare_output_dir(config.run_dir)
    with runs.RunLock(config.run_dir):
        if role.kind == "chief":
            return _serve(config, role, dataset, strategy, say)
        return _search(config, role, dataset, strategy, callbacks, say)


def _search(config: TuneConfig, role: Role, dataset: lcr_data.Dataset, strategy,
            callbacks: Sequence[tf.keras.callbacks.Callback],
            say: Callable[[str], None]) -> SearchResult:
    """The trials (and the baseline) this process trains, alone or as a worker."""
    out = config.run_dir
    worker = role.kind == "worker"
    search_path = os.path.join(out, SEARCH_FILE) if worker else prepare_search(config)
    data = _trial_data(config, dataset, strategy, say)
    outputs = _Outputs(config)
    baseline = _Baseline(config, role, data, callbacks, say)
    hooks: dict[str, Any] = {"before_trials": baseline}
    if worker:
        hooks["check_oracle"] = lambda: wait_for_chief(
            role.oracle, config.chief_timeout, "the chief", "it stopped answering (its own "
            "output says why); rerun this worker once it runs again")
    else:
        hooks["after_trial"] = outputs
    tuner = None
    try:
        tuner = outputs.tuner = make_tuner(
            config, LCRHyperModel(config, data), os.path.join(out, TUNER_DIR),
            strategy=None if config.strategy == "default" else strategy, **hooks,
        )
        tuner.search(callbacks=list(callbacks), verbose=config.verbose)
    except RuntimeError:
        # Keras Tuner gives up after max_consecutive_failed_trials failures.
        error = None if worker else _failed_trials_error(outputs)
        if error is None:
            raise
        raise error from None
    except UserError:
        if not worker:
            outputs()
        raise
    except Exception as error:
        details = getattr(error, "details", None)  # a gRPC error: the chief's oracle raised
        if worker and callable(details):
            raise RunError(f"the chief at {role.oracle} ended the search: "
                           f"{last_line(details())}") from None
        if not worker:
            outputs()
        raise
    except BaseException:
        if not worker:
            outputs()  # an interrupted trial shows as RUNNING
        raise
    finally:
        executed = baseline.executed + (tuner.executed if tuner is not None else [])
        epochs_run = {**baseline.epochs_run, **(tuner.epochs_run if tuner is not None else {})}
    trials_path = os.path.join(out, TRIALS_FILE)
    if worker:
        return SearchResult([], None, trials_path, None, search_path, executed, epochs_run, role)
    rows, best, best_path = outputs()
    return SearchResult(rows, best, trials_path, best_path, search_path, executed, epochs_run,
                        role)


def _serve(config: TuneConfig, role: Role, dataset: lcr_data.Dataset, strategy,
           say: Callable[[str], None]) -> SearchResult:
    """The chief: serves the oracle until the search is over (it trains
    nothing) and writes the tables as the workers report."""
    out = config.run_dir
    search_path = prepare_search(config)  # before serving: a worker that reaches us reads it
    outputs = _Outputs(config)
    # The chief builds the model once, as every Keras Tuner tuner does, and trains nothing.
    outputs.tuner = make_tuner(config, LCRHyperModel(config, TrialData(dataset, strategy)),
                               os.path.join(out, TUNER_DIR))
    say(f"serving the search's oracle on {role.oracle}: start the workers "
        f"({TUNER_ID}=tuner0, tuner1, …) with the same command")
    try:
        state = serve(outputs.tuner, outputs, outputs.baseline_state, config.verbose)
    except BaseException:
        outputs()
        raise
    rows, best, best_path = outputs(state.trials)
    limit = outputs.tuner.oracle.max_consecutive_failed_trials
    if limit and state.failed_in_a_row >= limit:
        raise _failed_trials_error(outputs, state.trials)
    if outputs.baseline_state() == "FAILED":
        path = os.path.join(outputs.baseline_dir, ERROR_FILE)
        with open(path, encoding="utf-8") as handle:
            raise RunError(f"the λ = 0 baseline failed: {last_line(handle.read())} (traceback "
                           f"in {path}; --baseline false searches without it)")
    return SearchResult(rows, best, os.path.join(out, TRIALS_FILE), best_path, search_path, [],
                        {}, role)


def _trial_data(config: TuneConfig, dataset: lcr_data.Dataset, strategy,
                say: Callable[[str], None]) -> TrialData:
    """What every trial trains and scores on: the dataset (batched for
    ``strategy``'s replicas) and, for the ``val_mce`` objective, the corrupted
    validation sets (cached in the output directory)."""
    mce_sets = None
    if config.objective == "val_mce":
        cache = os.path.join(config.run_dir, CACHE_DIR)
        say(f"validation mCE over {len(config.corruptions) * len(config.mce_severities)} "
            f"corruption × severity sets of {dataset.validation_size} images (cached in {cache})")
        mce_sets = corrupted_validation(config, dataset, cache)
    return TrialData(dataset, strategy, mce_sets)


class _Outputs:
    """Writes ``trials.csv`` and ``best.yaml`` from the tuner's trials (or
    ``trials``, Keras Tuner ``Trial`` objects) and the baseline's state;
    called after every trial and when the search stops, it returns ``(rows,
    best config, best.yaml path)``."""

    def __init__(self, config: TuneConfig):
        self.config = config
        self.baseline_dir = os.path.join(config.run_dir, BASELINE)
        self.baseline = None
        self.tuner = None

    def baseline_state(self) -> str | None:
        """``COMPLETED``, ``FAILED``, ``RUNNING`` (claimed or begun) or None
        (not begun, or no baseline: ``COMPLETED``)."""
        if not self.config.baseline:
            return "COMPLETED"
        if self.baseline is None:
            self.baseline = baseline_result(self.baseline_dir)
        if self.baseline is not None:
            return "COMPLETED"
        if os.path.exists(os.path.join(self.baseline_dir, ERROR_FILE)):
            return "FAILED"
        return "RUNNING" if os.path.isdir(self.baseline_dir) else None

    def __call__(self, trials: Sequence | None = None
                 ) -> tuple[list[dict[str, Any]], TrainConfig | None, str | None]:
        config, out = self.config, self.config.run_dir
        state = self.baseline_state() if config.baseline else None
        if state == "COMPLETED":
            state = self.baseline
        if trials is None:
            trials = list(self.tuner.oracle.trials.values()) if self.tuner is not None else []
        rows = trial_rows(config, trials, state)
        write_table(rows, os.path.join(out, TRIALS_FILE))
        ranked = [r for r in rows if r["rank"] == 1]
        if not ranked:
            return rows, None, None
        (trial,) = [t for t in trials if t.trial_id == ranked[0]["trial"]]
        best = dataclasses.replace(trial_config(config, trial.hyperparameters.values),
                                   output_dir=os.path.join(out, "best"))
        best_path = os.path.join(out, BEST_FILE)
        baseline = self.baseline if config.baseline else None
        write_best(best, ranked[0], config, baseline and baseline["metrics"], best_path)
        return rows, best, best_path


class _Baseline:
    """Trains the λ = 0 baseline once in the search, in the process that
    claims it (:func:`~lcr_larq.experiments.tuning.distributed.claim_baseline`);
    called before this process's first trial (or after its search)."""

    def __init__(self, config: TuneConfig, role: Role, data: TrialData,
                 callbacks: Sequence[tf.keras.callbacks.Callback], say: Callable[[str], None]):
        self.config, self.role, self.data = config, role, data
        self.callbacks, self.say = callbacks, say
        self.directory = os.path.join(config.run_dir, BASELINE)
        self.executed: list[str] = []
        self.epochs_run: dict[str, list[int]] = {}

    def __call__(self) -> None:
        if not self.config.baseline:
            return
        if baseline_result(self.directory) is not None:
            self.say(f"the λ = 0 baseline has finished "
                     f"({os.path.join(self.directory, RESULT_FILE)})")
            return
        if not claim_baseline(self.directory, self.role):
            self.say("the λ = 0 baseline is another worker's")
            return
        self.say("training the λ = 0 baseline")
        self.executed.append(BASELINE)
        self.epochs_run[BASELINE] = []
        train_baseline(self.config, self.directory, self.data, callbacks=self.callbacks,
                       epochs_run=self.epochs_run[BASELINE])


def _failed_trials_error(outputs: _Outputs, trials: Sequence | None = None) -> RunError | None:
    """After Keras Tuner gave up: writes the outputs and returns the error
    naming the last failed trial, or ``None`` when no trial failed (the
    RuntimeError came from elsewhere)."""
    tuner = outputs.tuner
    if trials is None:
        trials = list(tuner.oracle.trials.values()) if tuner else []
    failed = [t for t in trials if t.status == "FAILED"]
    if not failed:
        return None
    outputs(trials)
    last = max(failed, key=lambda t: int(t.trial_id))
    return RunError(
        f"the search stopped after {tuner.oracle.max_consecutive_failed_trials} failed "
        f"trials in a row, the last (trial {last.trial_id}) with "
        f"{last_line(last.message)} (tracebacks in {tuner.project_dir}/trial_*/{ERROR_FILE})"
    )
