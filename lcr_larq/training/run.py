"""One training run, from a :class:`~lcr_larq.training.TrainConfig` to results.

:func:`run` builds the data and the model, attaches LCR, trains with the
papers' optimizer semantics (:mod:`lcr_larq.optimizers`), validates on a
split carved from the training data every epoch, checkpoints every epoch so a
killed run resumes, re-estimates the BN statistics of the final weights
(:mod:`lcr_larq.batchnorm`), evaluates the plain BNN on the test split and
writes the run directory (:mod:`lcr_larq.training.runs`):

* ``results.json`` — test accuracy and loss (of the deployed network, BN
  re-estimated; also with the moving averages of training, and for a run
  under ``--mixed-precision`` computed in 16 bits as trained), settings
  (the input size used among them), seconds, and where and with what it ran
  (``provenance``, see :mod:`lcr_larq.training.provenance`);
* ``history.csv`` — the per-epoch History (loss, accuracy, L_lip, σ_B/σ_F…,
  and the ``val_`` metrics of the validation split);
* ``model.keras`` — the trained model with its LCR layer;
* ``bnn.keras`` — the plain BNN, everything of LCR stripped, computing in
  float32 (under ``--mixed-precision``: the float32 copy of the 16-bit
  network, :func:`~lcr_larq.graph.as_float32`, which is what converters
  deploy);
* ``config.yaml`` — the recipe of the run (``lcr-train --config`` reads it),
  with the input size it was served at (without ``--input-size``: the
  dataset's own, raised to the model's minimum);
* ``logs/`` — TensorBoard; ``backup/`` — the resume checkpoint while training.

Example (ResNet-8 on 8×8 digits, two steps; ``TrainConfig()`` alone is the
default recipe, ResNet-20 for an epoch):
    >>> import tempfile
    >>> out = tempfile.mkdtemp()
    >>> config = TrainConfig(model="resnet8", input_size=8, epochs=1, steps_per_epoch=2,
    ...                      output_dir=out, verbose=0)
    >>> results = run(config)
    >>> results["dataset"], results["epochs"], 0.0 <= results["test_accuracy"] <= 1.0
    ('digits', 1, True)
    >>> sorted(name for name in os.listdir(out) if name[0] != "." and name != "logs")
    ['bnn.keras', 'config.yaml', 'history.csv', 'model.keras', 'results.json']
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import time
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from lcr_larq import data as lcr_data
from lcr_larq.batchnorm import recalibrate
from lcr_larq.callbacks import schedules_for
from lcr_larq.errors import ConfigError, RunError, no_space_left
from lcr_larq.graph import as_float32, attach_lcr, check_jit_compile, find_blocks, strip_lcr
from lcr_larq.losses import SparseCrossEntropy
from lcr_larq.optimizers import (
    WarmupDecay,
    dtype_policy,
    for_policy,
    keras_policy,
    make_optimizer,
)
from lcr_larq.quantizers import quantizers_of
from lcr_larq.settings import save_recipe
from lcr_larq.training import provenance, runs
from lcr_larq.training.architectures import MODELS, check_input_size
from lcr_larq.training.checkpoint import RunCheckpoint, divergence_message
from lcr_larq.training.config import TrainConfig, build_network, with_input_size
from lcr_larq.training.distribute import (
    FINISHED,
    STOPPED,
    ChiefDecision,
    Task,
    chief_says,
    get_strategy,
    lost_worker,
    scratch_dir,
    task_of,
    wait_for_chief,
    wait_until,
)
from lcr_larq.training.progress import ProgressBar, verbosity
from lcr_larq.training.runs import weights_digest
from lcr_larq.training.summary import compile_description, last_epoch_metrics

__all__ = [
    "build_step_variables",
    "build_training_model",
    "checked_data",
    "compile_for_evaluation",
    "compile_model",
    "fit",
    "learning_rate",
    "load_teacher",
    "prepare_output_dir",
    "run",
]


def prepare_output_dir(path: str) -> bool:
    """Creates ``path`` (if needed) and checks that it takes files; returns
    whether it was created. A one-line :class:`ConfigError` otherwise."""
    created = not os.path.isdir(path)
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".write-test-{socket.gethostname()}-{os.getpid()}")
        with open(probe, "w", encoding="utf-8") as handle:
            handle.write("ok")
        os.remove(probe)
    except OSError as error:
        raise ConfigError(
            f"cannot write to --output-dir {path} ({error.strerror}): choose a writable directory"
        ) from None
    return created


def build_training_model(config: TrainConfig, input_shape, num_classes):
    """The BNN (or its full-precision version) with LCR attached when λ > 0,
    its layers made under the dtype policy of ``--mixed-precision``.

    With ``--input-size S`` the model takes S×S images of the dataset's
    channels instead of the dataset's own size.
    """
    with dtype_policy(keras_policy(config.mixed_precision)):
        return _build_training_model(config, input_shape, num_classes)


def _build_training_model(config: TrainConfig, input_shape, num_classes):
    if config.input_size:
        input_shape = (config.input_size, config.input_size, input_shape[-1])
    model = build_network(config, input_shape, num_classes)
    if not config.uses_lcr:
        return model
    teacher = None
    if config.lcr_reference == "teacher":
        teacher = load_teacher(config.teacher)
    try:
        return attach_lcr(
            model,
            lcr_lambda=config.lcr_lambda,
            lcr_beta=config.lcr_beta,
            lcr_form=config.lcr_form,
            power_iterations=config.power_iterations,
            lcr_reference=config.lcr_reference,
            teacher=teacher,
            lcr_samples=config.lcr_samples,
            lcr_every=config.lcr_every,
        )
    except ValueError as error:  # a teacher of other blocks
        raise ConfigError(
            f"--teacher {config.teacher} does not fit --model {config.model}: "
            f"{str(error).splitlines()[0]}"
        ) from None


def load_teacher(path: str) -> tf.keras.Model:
    """The full-precision model of ``--teacher`` (a run directory or a
    ``.keras`` file); a binary network is refused."""
    teacher = runs.load_model(path)
    if any(getattr(q, "precision", None) for q in quantizers_of(teacher)):
        raise ConfigError(
            f"--teacher {path} is a binary network: the teacher must be full precision "
            "(train it with --full-precision)"
        )
    return teacher


def learning_rate(config: TrainConfig, steps_per_epoch: int) -> WarmupDecay:
    """The learning-rate schedule of ``config``: warm-up, then decay to 0 by
    the end of training, changing once per epoch or every step."""
    per_epoch = config.lr_update == "epoch"
    return WarmupDecay(
        config.lr,
        total=config.epochs if per_epoch else config.epochs * steps_per_epoch,
        warmup=config.warmup_epochs * (1 if per_epoch else steps_per_epoch),
        decay=config.lr_schedule,
        steps_per_unit=steps_per_epoch if per_epoch else 1,
    )


def compile_model(model: tf.keras.Model, config: TrainConfig, steps_per_epoch: int):
    """Compiles ``model`` with the optimizer, schedule and loss of ``config``
    (the papers' PyTorch semantics, see :mod:`lcr_larq.optimizers`): with
    loss scaling under ``--mixed-precision float16``
    (:func:`~lcr_larq.optimizers.for_policy`), the training step compiled by
    XLA with ``--jit-compile`` (a model XLA cannot compile is a one-line
    :class:`ConfigError`)."""
    optimizer = make_optimizer(
        config.optimizer,
        learning_rate(config, steps_per_epoch),
        weight_decay=config.weight_decay,
        weight_decay_mode=config.weight_decay_mode,
        momentum=config.momentum,
        decay_on=config.weight_decay_on,
    )
    if config.jit_compile:
        try:
            check_jit_compile(model)
        except ValueError as error:
            raise ConfigError(f"--jit-compile: {error}") from None
    model.compile(
        optimizer=for_policy(optimizer, keras_policy(config.mixed_precision)),
        loss=SparseCrossEntropy(config.label_smoothing),
        metrics=["accuracy"],
        jit_compile=config.jit_compile,
    )
    build_step_variables(model)


def compile_for_evaluation(model: tf.keras.Model) -> tf.keras.Model:
    """``model`` compiled for ``evaluate``: cross entropy and accuracy."""
    model.compile(loss=SparseCrossEntropy(), metrics=["accuracy"])
    build_step_variables(model, training=False)
    return model


def build_step_variables(model: tf.keras.Model, training: bool = True) -> None:
    """Creates now the variables that Keras creates in a compiled model's
    first step: the compiled loss' and metrics' accumulators and, for
    ``training``, the optimizer's slots.

    A ``tf.function`` whose first call creates variables is traced twice
    (once creating them, once more without), and tracing is most of what a
    short run costs: made beforehand, the training and the evaluation step
    are each traced once (``benchmarks/first_step.py`` times both ways).
    Keras has no public call for the loss and metrics: ``compiled_loss.build``
    and ``compiled_metrics.build`` are what its first step calls, here on zero
    logits and sparse labels (class indices, as every dataset here gives).

    Example:
        >>> model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2)])
        >>> model.compile("adam", SparseCrossEntropy(), metrics=["accuracy"])
        >>> model.metrics, len(model.optimizer.variables)
        ([], 1)
        >>> build_step_variables(model)  # Adam: two slots for each of kernel and bias
        >>> [metric.name for metric in model.metrics], len(model.optimizer.variables)
        (['loss', 'accuracy'], 5)
    """
    logits = tf.nest.map_structure(
        lambda output: tf.zeros((1, *output.shape[1:]), output.dtype), model.output
    )
    with model.distribute_strategy.scope():  # where Keras would make them
        if training:
            model.optimizer.build(model.trainable_variables)
        model.compiled_loss.build(logits)
        model.compiled_metrics.build(logits, tf.zeros((1,), tf.int32))


def run(config: TrainConfig, extra_callbacks: list | None = None) -> dict:
    """Trains, evaluates and saves one run; returns the results dict.

    ``extra_callbacks`` see every epoch after its checkpoint is written.

    A directory holding a finished run with the same settings is left alone
    (its results are returned, ``"already_finished": True``) unless
    ``config.overwrite``; one with other settings is refused, naming them.
    Nothing is written before the data has been loaded and checked against
    the model; a run that fails before its first checkpoint leaves no
    directory behind. Under ``--strategy multiworker`` the chief owns the
    run directory and the other workers follow it
    (:mod:`lcr_larq.training.distribute`).
    """
    config = with_input_size(config)  # recorded as used: config.yaml, results.json
    task = task_of(config.strategy)
    if not task.chief:
        wait_for_chief(task.chief_address, config.chief_timeout, "the chief",
                       "start it (the same command, with TF_CONFIG naming its task), check "
                       "TF_CONFIG's addresses, or wait longer with --chief-timeout")
    strategy = get_strategy(config.strategy)
    try:
        if not task.chief:
            return _follow_chief(config, strategy, task, extra_callbacks)
        with ChiefDecision(strategy, task) as decision:
            return _run_as_chief(config, strategy, decision, extra_callbacks)
    except tf.errors.UnavailableError as error:  # a worker of the cluster went away
        raise lost_worker(task, error) from None


def _run_as_chief(config: TrainConfig, strategy, decision: ChiefDecision,
                  extra_callbacks) -> dict:
    out = config.run_dir
    if os.path.isdir(out) and not config.overwrite:  # a look first, before any work
        previous = _previous_run(config, out, RunCheckpoint(out))
        if previous is not None:
            return previous
    start = time.time()
    # The seed first: the evaluation pipelines draw their fixed order from it.
    tf.keras.utils.set_random_seed(config.seed)
    dataset = checked_data(config).for_replicas(strategy.num_replicas_in_sync)
    created = prepare_output_dir(out)
    try:
        with runs.RunLock(out):
            checkpoint = RunCheckpoint(out)
            previous = _previous_run(config, out, checkpoint)
            if previous is not None:
                return previous
            decision.tell(checkpoint.finished_epochs())  # the others resume from it too
            # Under the run's dtype policy: what Keras makes while training,
            # testing and saving (the stripped BNN among them) takes it too.
            with dtype_policy(keras_policy(config.mixed_precision)):
                return _train(config, out, dataset, strategy, True, checkpoint,
                              extra_callbacks, start)
    except (tf.errors.ResourceExhaustedError, OSError) as error:
        raise _resources_error(error, config, out) from None
    finally:
        if created:
            runs.remove_if_unused(out)


def _follow_chief(config: TrainConfig, strategy, task: Task, extra_callbacks) -> dict:
    """A worker other than the chief: trains as the chief decided, from the
    epoch it resumes from, writing nothing in the run directory (its own
    checkpoints and models go to a scratch folder)."""
    out = config.run_dir
    start = time.time()
    epoch = chief_says(strategy, 0)
    shared = (f"--output-dir {out} must be one directory that every worker sees (a shared "
              "filesystem)")
    if epoch == STOPPED:
        raise RunError(f"the chief at {task.chief_address} stopped before training: its "
                       "output says why")
    if epoch == FINISHED:
        if not wait_until(lambda: runs.read_results(out) is not None, config.chief_timeout):
            raise RunError(f"the chief at {task.chief_address} found the run finished, but "
                           f"this worker sees no {runs.RESULTS} in {out}: {shared}")
        return {**runs.read_results(out), "already_finished": True}
    scratch = scratch_dir(task)
    try:
        checkpoint = RunCheckpoint(out, chief=False, scratch=scratch)
        if not wait_until(lambda: os.path.isdir(out) and checkpoint.finished_epochs() == epoch,
                          config.chief_timeout):
            raise RunError(f"the chief at {task.chief_address} trains {out} from epoch "
                           f"{epoch + 1}, which this worker does not see: {shared}")
        tf.keras.utils.set_random_seed(config.seed)
        dataset = checked_data(config).for_replicas(strategy.num_replicas_in_sync)
        with dtype_policy(keras_policy(config.mixed_precision)):
            return _train(config, out, dataset, strategy, False, checkpoint, extra_callbacks,
                          start)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def checked_data(config: TrainConfig) -> lcr_data.Dataset:
    """The dataset of ``config``, checked against the run before anything is
    written: images of at least the model's minimum size (``--input-size``,
    else the dataset's own size raised to the model's minimum, see
    :func:`~lcr_larq.training.config.with_input_size`), a teacher that
    exists. Every command that trains calls it first."""
    if config.input_size is not None:  # refused before any data is read
        check_input_size(config.model, config.input_size)
    dataset = lcr_data.load_dataset(
        config.dataset_spec, batch_size=config.batch_size, seed=config.seed,
        data_dir=config.data_dir, input_size=config.input_size,
        min_input_size=MODELS[config.model].min_input_size,
        validation_split=config.validation_split,
    )
    check_input_size(config.model, *dataset.input_shape[:2], images=config.dataset)
    if config.lcr_reference == "teacher" and config.uses_lcr:
        if not os.path.exists(config.teacher):
            raise ConfigError(f"--teacher {config.teacher} does not exist: give a run directory")
    return dataset


def _resources_error(error: Exception, config: TrainConfig, out: str) -> Exception:
    """A full disk or a full memory as the one-line error that names it; any
    other error as it is."""
    if no_space_left(error):
        return RunError(
            f"no space left on the device of {os.path.abspath(out)}: free some or choose another "
            "--output-dir (rerun the same command to resume from the last finished epoch)"
        )
    if isinstance(error, tf.errors.ResourceExhaustedError):
        return RunError(
            f"out of memory training {config.model} at batch {config.batch_size}"
            + (f", {config.input_size} px" if config.input_size else "")
            + ": lower --batch-size or --input-size"
        )
    return error


def _previous_run(config: TrainConfig, out: str, checkpoint: RunCheckpoint) -> dict | None:
    """The results of a finished run in ``out`` with the same settings (None
    to train); refuses a run with other settings; clears ``out`` for
    ``--overwrite``."""
    if config.overwrite:
        runs.clear(out)
        return None
    results = runs.read_results(out)
    resumable = checkpoint.finished_epochs() > 0
    # A run killed in its first epoch has history rows but nothing to resume:
    # its directory is still another run's, not to be taken over silently.
    history = os.path.join(out, runs.HISTORY)
    started = (results is not None or resumable
               or (os.path.isfile(history) and os.path.getsize(history) > 0))
    recipe = runs.read_recipe(out) if started else None
    if recipe is not None:
        differing = runs.differing_settings(recipe, config)
        if differing:
            what = ("finished run" if results is not None
                    else "run to resume" if resumable else "started run")
            raise RunError(
                f"{out} holds a {what} with other settings ({', '.join(differing)}): rerun "
                "with its settings, add --overwrite to train again there, or choose another "
                "--output-dir"
            )
    if results is not None:
        return {**results, "already_finished": True}
    return None


def _train(config, out, dataset, strategy, chief, checkpoint, extra_callbacks, start) -> dict:
    steps = config.steps_per_epoch or dataset.steps_per_epoch
    with strategy.scope():
        model = build_training_model(config, dataset.input_shape, dataset.num_classes)
        compile_model(model, config, steps)
        first_epoch = checkpoint.resume(model)
    if chief:
        save_recipe(config, os.path.join(out, runs.RECIPE))
    tensorboard = tf.keras.callbacks.TensorBoard(  # no op graph: it costs seconds per run
        os.path.join(out, runs.LOGS), profile_batch=0, write_graph=False
    )
    history = fit(
        model, config, dataset, first_epoch=first_epoch, checkpoint=checkpoint,
        callbacks=[tensorboard] if chief else [], after_checkpoint=extra_callbacks or (),
        validation_data=dataset.validation,
    )
    with strategy.scope():  # built in scope: it evaluates under the same strategy
        trained = strip_lcr(model)
        if trained is model:  # no LCR: a model of its own, compiled apart
            trained = tf.keras.Model(model.inputs, model.outputs, name=model.name)
        # The deployed network computes in float32 (LCE and TFLite take no
        # 16-bit layers): under mixed precision it is the float32 copy.
        bnn = compile_for_evaluation(as_float32(trained))
    scores = _test(bnn, config, dataset, steps)
    if bnn is not trained:
        scores["test_accuracy_as_trained"] = _accuracy_as_trained(trained, bnn, dataset)
    height, width = dataset.input_shape[:2]
    save_dir = out if chief else os.path.join(checkpoint.scratch, "models")
    os.makedirs(save_dir, exist_ok=True)
    model.save(os.path.join(save_dir, runs.MODEL))
    bnn.save(os.path.join(save_dir, runs.BNN))
    results = {
        **scores,
        **_settings_of(config),
        "model": model.name,
        "optimizer": compile_description(model.optimizer),
        "blocks": len(find_blocks(bnn)) if not config.full_precision else None,
        "input_size": height if height == width else None,
        "input_shape": list(dataset.input_shape),
        "train_size": dataset.train_size,
        "validation_size": dataset.validation_size,
        "test_size": dataset.test_size,
        "weights_sha256": weights_digest(bnn),
        "resumed": first_epoch > 0,
        "resumed_from_epoch": first_epoch,
        "final_epoch_metrics": last_epoch_metrics(history, out if chief else None),
        "seconds": round(time.time() - start, 2),
        "output_dir": out,
        "provenance": provenance.describe(),
    }
    if chief:
        runs.save_json(results, os.path.join(out, runs.RESULTS))
    else:
        shutil.rmtree(save_dir, ignore_errors=True)
    checkpoint.remove()
    return results


def _test(bnn: tf.keras.Model, config: TrainConfig, dataset, steps: int) -> dict:
    """The deployed BNN's test scores: with the moving BN statistics of
    training, then with the statistics re-estimated for the final weights
    (which it keeps)."""
    _, moving_accuracy = bnn.evaluate(dataset.test, verbose=0)
    calibration = recalibrate(bnn, dataset, config.bn_recalibration_batches)
    test_loss, test_accuracy = bnn.evaluate(dataset.test, verbose=0)
    if not all(np.isfinite(w).all() for w in bnn.get_weights()):
        raise RunError(divergence_message(config, (config.epochs - 1, steps - 1, math.nan)))
    return {
        "test_accuracy": float(test_accuracy),
        "test_loss": float(test_loss),
        "test_accuracy_moving_statistics": float(moving_accuracy),
        "bn_recalibration": calibration,
    }


def _accuracy_as_trained(trained: tf.keras.Model, bnn: tf.keras.Model, dataset) -> float:
    """The test accuracy of the 16-bit network as trained, with the weights
    and re-estimated BN statistics of its float32 copy ``bnn``: what
    computing in 16 bits alone changes."""
    trained.set_weights(bnn.get_weights())
    return float(compile_for_evaluation(trained).evaluate(dataset.test, verbose=0)[1])


def _settings_of(config: TrainConfig) -> dict:
    """The settings ``results.json`` repeats (what tables of runs compare)."""
    return {
        "lcr_lambda": config.lcr_lambda if config.uses_lcr else 0.0,
        "lcr_beta": config.lcr_beta,
        "lcr_reference": config.lcr_reference,
        "lcr_form": config.lcr_form,
        "power_iterations": config.power_iterations,
        "lcr_samples": config.lcr_samples,
        "lcr_every": config.lcr_every,
        "precision": "fp32" if config.full_precision else config.precision,
        "weight_quantizer": config.weight_quantizer,
        "bireal": config.bireal,
        "dataset": config.dataset,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "seed": config.seed,
        "mixed_precision": config.mixed_precision,
        "jit_compile": config.jit_compile,
    }


def fit(
    model: tf.keras.Model,
    config: TrainConfig,
    dataset: lcr_data.Dataset,
    *,
    first_epoch: int = 0,
    epochs: int | None = None,
    checkpoint: RunCheckpoint | None = None,
    callbacks: Sequence[tf.keras.callbacks.Callback] = (),
    after_checkpoint: Sequence[tf.keras.callbacks.Callback] = (),
    validation_data: tf.data.Dataset | None = None,
) -> tf.keras.callbacks.History:
    """``model.fit`` as every command trains: epochs ``first_epoch`` to
    ``epochs`` (default ``config.epochs``) of :meth:`Dataset.epochs
    <lcr_larq.data.Dataset.epochs>`, the quantizer schedules, a progress bar,
    ``callbacks``, then ``checkpoint`` (so a backup holding an epoch implies
    that these callbacks have seen it), then ``after_checkpoint``. A diverged loss
    (:class:`RunCheckpoint` watches it) is a :class:`RunError`."""
    steps = config.steps_per_epoch or dataset.steps_per_epoch
    history = model.fit(
        dataset.epochs(first_epoch, steps),
        initial_epoch=first_epoch,
        epochs=epochs or config.epochs,
        steps_per_epoch=steps,
        validation_data=validation_data,
        callbacks=[
            *schedules_for(model, config.epochs, steps, config),
            ProgressBar(),
            *callbacks,
            *([checkpoint] if checkpoint is not None else []),
            *after_checkpoint,
        ],
        verbose=verbosity(config.verbose),
    )
    if checkpoint is not None and checkpoint.diverged is not None:
        raise RunError(divergence_message(config, checkpoint.diverged))
    return history
