"""One training run, from a :class:`~lcr_larq.config.TrainConfig` to results.

``run(config)`` builds the data and the model, attaches LCR, trains with the
papers' optimizer semantics (:mod:`lcr_larq.optimizers`), validates on a
split carved from the training data every epoch, checkpoints every epoch so a
killed run resumes, re-estimates the BN statistics of the final weights
(:mod:`lcr_larq.batchnorm`), evaluates the plain BNN on the test split and
writes in ``output_dir``:

* ``results.json`` — test accuracy and loss (of the deployed network, BN
  re-estimated; also with the moving averages of training), settings, seconds;
* ``history.csv`` — the per-epoch History (loss, accuracy, L_lip, σ_B/σ_F…,
  and the ``val_`` metrics of the validation split);
* ``model.keras`` — the trained model with its LCR layer (Keras loads it back
  once ``lcr_larq`` and ``models`` are imported);
* ``bnn.keras`` — the plain BNN, everything of LCR stripped;
* ``config.yaml`` — the recipe of the run (``train.py --config`` reads it);
* ``logs/`` — TensorBoard; ``backup/`` — the resume checkpoint while training.

Example:
    >>> import tempfile
    >>> from lcr_larq.config import TrainConfig
    >>> out = tempfile.mkdtemp()
    >>> results = run(TrainConfig(epochs=1, output_dir=out, verbose=0))
    >>> results["dataset"], results["epochs"], 0.0 <= results["test_accuracy"] <= 1.0
    ('digits', 1, True)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import sys
import time
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from lcr_larq import callbacks as lcr_callbacks
from lcr_larq import config as cfg
from lcr_larq import data as lcr_data
from lcr_larq import runs
from lcr_larq.batchnorm import recalibrate
from lcr_larq.errors import RunError
from lcr_larq.graph import attach_lcr, find_blocks, strip_lcr
from lcr_larq.losses import SparseCrossEntropy
from lcr_larq.optimizers import WarmupDecay, make_optimizer


def get_strategy(name: str) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy of ``--strategy``; ``multiworker`` reads
    the cluster from ``TF_CONFIG``, checked first."""
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        check_tf_config(os.environ.get("TF_CONFIG"))
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def check_tf_config(text: str | None) -> dict:
    """``TF_CONFIG`` parsed; a :class:`~lcr_larq.config.ConfigError` saying
    what is wrong with it otherwise.

    Example:
        >>> check_tf_config('{"cluster": {"worker": ["localhost:1"]}, "task": {"type": '
        ...                 '"worker", "index": 0}}')["task"]["index"]
        0
    """
    example = ('{"cluster": {"worker": ["host1:port", "host2:port"]}, '
               '"task": {"type": "worker", "index": 0}}')
    if not text:
        raise cfg.ConfigError(f"--strategy multiworker needs TF_CONFIG, e.g. {example}")
    try:
        spec = json.loads(text)
    except ValueError as error:
        raise cfg.ConfigError(
            f"TF_CONFIG is not valid JSON ({error.msg}, char {error.pos}): set it like {example}"
        ) from None
    task = spec.get("task") if isinstance(spec, dict) else None
    if not isinstance(task, dict) or not isinstance(spec.get("cluster"), dict) or not (
        task.get("type") in spec["cluster"] and isinstance(task.get("index"), int)
    ):
        raise cfg.ConfigError(f"TF_CONFIG needs a cluster and this process's task, like {example}")
    return spec


def prepare_output_dir(path: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, ".write-test")
        with open(probe, "w") as handle:
            handle.write("ok")
        os.remove(probe)
    except OSError as error:
        raise cfg.ConfigError(
            f"cannot write to --output-dir {path} ({error.strerror}): choose a writable directory"
        ) from None


def build_training_model(config: cfg.TrainConfig, input_shape, num_classes):
    """The BNN (or its full-precision version) with LCR attached when λ > 0.

    With ``--input-size S`` the model takes S×S images of the dataset's
    channels instead of the dataset's own size.
    """
    from lcr_larq.models import build_model

    if config.input_size:
        input_shape = (config.input_size, config.input_size, input_shape[-1])
    try:
        model = build_model(
            config.model,
            input_shape,
            num_classes,
            precision=config.precision,
            quantized=not config.full_precision,
            bireal=config.bireal,
            weight_quantizer=config.weight_quantizer,
            shortcut=None if config.shortcut == "auto" else config.shortcut,
            prox_gradient=config.prox_gradient,
        )
    except ValueError as error:  # settings the chosen architecture does not take
        raise cfg.ConfigError(
            f"cannot build --model {config.model} for {tuple(input_shape)} inputs: "
            f"{str(error).splitlines()[0]}"
        ) from None
    if config.full_precision or config.lcr_lambda == 0:
        return model
    teacher = None
    if config.lcr_reference == "teacher":
        teacher = load_teacher(config.teacher)
    try:
        return attach_lcr(
            model,
            lcr_lambda=config.lcr_lambda,
            beta=config.lcr_beta,
            form=config.lcr_form,
            power_iterations=config.power_iterations,
            reference=config.lcr_reference,
            teacher=teacher,
            samples=config.lcr_samples,
            every=config.lcr_every,
        )
    except ValueError as error:  # a teacher of other blocks
        raise cfg.ConfigError(
            f"--teacher {config.teacher} does not fit --model {config.model}: "
            f"{str(error).splitlines()[0]}"
        ) from None


def load_teacher(path: str) -> tf.keras.Model:
    """The full-precision model of ``--teacher`` (a run directory or a
    ``.keras`` file); a binary network is refused."""
    from lcr_larq.quantizers import quantizers_of

    teacher = runs.load_model(path)
    if any(getattr(q, "precision", None) for q in quantizers_of(teacher)):
        raise cfg.ConfigError(
            f"--teacher {path} is a binary network: the teacher must be full precision "
            "(train it with --full-precision)"
        )
    return teacher


def learning_rate(config: cfg.TrainConfig, steps_per_epoch: int) -> WarmupDecay:
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


def compile_model(model: tf.keras.Model, config: cfg.TrainConfig, steps_per_epoch: int):
    """Compiles ``model`` with the optimizer, schedule and loss of ``config``
    (the papers' PyTorch semantics, see :mod:`lcr_larq.optimizers`)."""
    optimizer = make_optimizer(
        config.optimizer,
        learning_rate(config, steps_per_epoch),
        weight_decay=config.weight_decay,
        weight_decay_mode=config.weight_decay_mode,
        momentum=config.momentum,
        decay_on=config.weight_decay_on,
    )
    model.compile(
        optimizer=optimizer,
        loss=SparseCrossEntropy(config.label_smoothing),
        metrics=["accuracy"],
    )


def compile_for_evaluation(model: tf.keras.Model) -> tf.keras.Model:
    """``model`` compiled for ``evaluate``: cross entropy and accuracy."""
    model.compile(loss=SparseCrossEntropy(), metrics=["accuracy"])
    return model


BLOCK_METRIC = re.compile(r"^(val_)?sigma_(ratio|b|f)_\d+$")


class ProgressBar(tf.keras.callbacks.ProgbarLogger):
    """Keras' progress bar showing ``lcr_lip`` and the mean σ ratio but not
    every block's (``history.csv`` and TensorBoard keep those): with 9–16
    blocks the bar would be thousands of characters wide."""

    def __init__(self):
        super().__init__(count_mode="steps")

    @staticmethod
    def _brief(logs):
        return None if logs is None else {
            k: v for k, v in logs.items() if not BLOCK_METRIC.match(k)
        }

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, self._brief(logs))

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, self._brief(logs))


def verbosity(verbose: int) -> int:
    """Keras' ``verbose``: a progress bar (1) only on a terminal; one line per
    epoch (2) when the output goes to a file or a pipe."""
    return 2 if verbose == 1 and not sys.stdout.isatty() else verbose


def is_chief(strategy: tf.distribute.Strategy) -> tuple[bool, str]:
    """``(chief, worker name)``: whether this process writes the run's files
    (always, but under ``MultiWorkerMirroredStrategy`` for one worker: the
    ``chief`` task, else worker 0), and a name for its temporary files."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return True, "chief"
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type is None:
        return True, "chief"
    cluster = resolver.cluster_spec().as_dict()
    chief = task_type == "chief" or (task_type == "worker" and task_id == 0
                                     and "chief" not in cluster)
    return chief, f"{task_type}-{task_id}"


class RunCheckpoint(tf.keras.callbacks.Callback):
    """The resume state of a run, epoch by epoch, in ``DIR/backup``.

    At the end of every epoch (after validation): the epoch's row is appended
    to ``history.csv`` and flushed to disk, then the model's and optimizer's
    variables are written (``tf.train.Checkpoint``: weights, BN statistics,
    quantizer state, the optimizer's slots and step count), then
    ``state.json`` naming them. A checkpoint without its ``state.json`` is
    never read, and a resumed run drops the rows of epochs its checkpoint
    does not hold; so a kill at any moment loses at most the running epoch.
    The data of epoch e depends only on the seed and e
    (:meth:`lcr_larq.data.Dataset.epochs`), so the resumed run continues the
    uninterrupted one exactly.

    Under ``MultiWorkerMirroredStrategy`` every worker saves (reading
    synchronized variables is collective); only the chief keeps its files.
    """

    def __init__(self, directory: str, chief: bool = True, worker: str = "chief"):
        super().__init__()
        self.directory = directory
        self.worker = worker
        self.backup = os.path.join(directory, runs.BACKUP)
        self.chief = chief
        self.target = self.backup if chief else os.path.join(directory, f".{worker}-backup")
        self.history: runs.History | None = None
        self.diverged: tuple[int, int, float] | None = None
        self._epoch = 0
        self._prefix = ""

    # ---------------------------------------------------------------- state
    def finished_epochs(self) -> int:
        """Epochs the backup holds (0 when there is none); a
        :class:`~lcr_larq.errors.RunError` when it cannot be read."""
        if os.path.exists(self.backup) and not os.path.isdir(self.backup):
            raise RunError(
                f"{self.backup} is a file, not the checkpoint folder of a run: remove it or "
                "choose another --output-dir"
            )
        path = os.path.join(self.backup, runs.STATE)
        if not os.path.isfile(path):
            return 0  # killed before its first checkpoint was complete
        try:
            state = runs.load_json(path)
            epoch = int(state["epoch"])
            prefix = os.path.join(self.backup, str(state["checkpoint"]))
        except (RunError, KeyError, TypeError, ValueError):
            raise self._corrupt("unreadable state.json") from None
        if epoch < 0 or not tf.io.gfile.glob(prefix + ".index"):
            raise self._corrupt(f"no checkpoint {os.path.basename(prefix)}")
        self._prefix = prefix
        return epoch

    def _corrupt(self, why: str) -> RunError:
        return RunError(
            f"cannot resume from {self.backup} ({why}): it is corrupt; delete it to train "
            "again from the start, or choose another --output-dir"
        )

    def resume(self, model: tf.keras.Model) -> int:
        """Restores the backup into ``model`` (built and compiled, in its
        strategy's scope); returns the first epoch to train."""
        epoch = self.finished_epochs()
        if epoch:
            model.optimizer.build(model.trainable_variables)
            try:
                self._checkpoint(model).read(self._prefix).assert_existing_objects_matched()
            except Exception as error:  # TensorFlow raises many kinds for a bad file
                raise self._corrupt(type(error).__name__) from None
        elif os.path.isdir(self.backup) and self.chief:
            shutil.rmtree(self.backup)  # an incomplete first checkpoint
        if self.chief:
            self.history = runs.History(self.directory, epoch)
        return epoch

    @staticmethod
    def _checkpoint(model: tf.keras.Model) -> tf.train.Checkpoint:
        return tf.train.Checkpoint(model=model, optimizer=model.optimizer)

    def remove(self) -> None:
        """Deletes the backup (the run has written its results)."""
        shutil.rmtree(self.target, ignore_errors=True)

    # ---------------------------------------------------------------- training
    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and self.diverged is None and not _sane(float(loss)):
            self.diverged = (self._epoch, batch, float(loss))
            self.model.stop_training = True

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if self.diverged is not None:
            return  # the last good checkpoint stays
        if self.history is not None:
            self.history.append(epoch, logs or {})
        os.makedirs(self.target, exist_ok=True)
        name = f"ckpt-{epoch + 1}"
        self._checkpoint(self.model).write(os.path.join(self.target, name))
        if self.chief:
            runs.save_json({"epoch": epoch + 1, "checkpoint": name},
                           os.path.join(self.target, runs.STATE))
            for old in tf.io.gfile.glob(os.path.join(self.target, "ckpt-*")):
                if not os.path.basename(old).startswith(name + "."):
                    tf.io.gfile.remove(old)
        else:
            shutil.rmtree(self.target, ignore_errors=True)


#: A training loss above this has diverged, finite or not (cross entropy starts
#: at ln K: 2.3 for 10 classes, 6.9 for 1,000).
DIVERGED_LOSS = 1e4


def _sane(loss: float) -> bool:
    return math.isfinite(loss) and loss < DIVERGED_LOSS


def divergence_message(config: cfg.TrainConfig, diverged: tuple[int, int, float]) -> str:
    """One line naming the step a run diverged at and the likely fix."""
    epoch, batch, loss = diverged
    causes = [f"--lr {config.lr:g}"]
    if config.lcr_lambda > 0 and not config.full_precision:
        causes.append(f"--lcr-lambda {config.lcr_lambda:g}")
    if config.weight_decay > 1e-2:
        causes.append(f"--weight-decay {config.weight_decay:g}")
    return (
        f"training diverged in epoch {epoch + 1}, step {batch + 1} (loss {loss:g}): lower "
        f"{' or '.join(causes)}; no model was saved and the checkpoint of the last finished "
        "epoch is kept"
    )


def run(config: cfg.TrainConfig, extra_callbacks: list | None = None) -> dict:
    """Trains, evaluates and saves one run; returns the results dict.

    ``extra_callbacks`` see every epoch after its checkpoint is written.

    A directory holding a finished run with the same settings is left alone
    (its results are returned, ``"already_finished": True``) unless
    ``config.overwrite``; one with other settings is refused, naming them.
    """
    cfg.validate(config)
    strategy = get_strategy(config.strategy)
    chief, worker = is_chief(strategy)
    out = config.run_dir
    prepare_output_dir(out)
    with runs.RunLock(out) if chief else contextlib.nullcontext():
        checkpoint = RunCheckpoint(out, chief, worker)
        previous = _previous_run(config, out, checkpoint)
        if previous is not None:
            return previous
        try:
            return _train(config, out, strategy, chief, checkpoint, extra_callbacks)
        except tf.errors.ResourceExhaustedError:
            raise RunError(
                f"out of memory training {config.model} at batch {config.batch_size}"
                + (f", {config.input_size} px" if config.input_size else "")
                + ": lower --batch-size or --input-size"
            ) from None


def _previous_run(config: cfg.TrainConfig, out: str, checkpoint: RunCheckpoint) -> dict | None:
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


def _train(config, out, strategy, chief, checkpoint, extra_callbacks) -> dict:
    tf.keras.utils.set_random_seed(config.seed)
    start = time.time()
    dataset = lcr_data.load_dataset(
        config.dataset, batch_size=config.batch_size, seed=config.seed,
        data_dir=config.data_dir, input_size=config.input_size,
        validation_split=config.validation_split,
    ).for_replicas(strategy.num_replicas_in_sync)
    steps = config.steps_per_epoch or dataset.steps_per_epoch
    with strategy.scope():
        model = build_training_model(config, dataset.input_shape, dataset.num_classes)
        compile_model(model, config, steps)
        first_epoch = checkpoint.resume(model)
    if chief:
        cfg.save_recipe(config, os.path.join(out, runs.RECIPE))
    tensorboard = tf.keras.callbacks.TensorBoard(  # no op graph: it costs seconds per run
        os.path.join(out, runs.LOGS), profile_batch=0, write_graph=False
    )
    history = fit(
        model, config, dataset, first_epoch=first_epoch, checkpoint=checkpoint,
        callbacks=[tensorboard] if chief else [], after_checkpoint=extra_callbacks or (),
        validation_data=dataset.validation,
    )
    with strategy.scope():  # built in scope: it evaluates under the same strategy
        bnn = compile_for_evaluation(strip_lcr(model))
    _, moving_accuracy = bnn.evaluate(dataset.test, verbose=0)
    calibration = recalibrate(bnn, dataset, config.bn_recalibration_batches)
    test_loss, test_accuracy = bnn.evaluate(dataset.test, verbose=0)
    if not all(np.isfinite(w).all() for w in bnn.get_weights()):
        raise RunError(divergence_message(config, (config.epochs - 1, steps - 1, math.nan)))
    save_dir = out if chief else os.path.join(out, f".{checkpoint.worker}-models")
    os.makedirs(save_dir, exist_ok=True)
    model.save(os.path.join(save_dir, runs.MODEL))
    bnn.save(os.path.join(save_dir, runs.BNN))
    last = last_epoch_metrics(history, out if chief else None)
    results = {
        "test_accuracy": float(test_accuracy),
        "test_loss": float(test_loss),
        "test_accuracy_moving_statistics": float(moving_accuracy),
        "bn_recalibration": calibration,
        "lcr_lambda": 0.0 if config.full_precision else config.lcr_lambda,
        "lcr_beta": config.lcr_beta,
        "lcr_reference": config.lcr_reference,
        "lcr_form": config.lcr_form,
        "power_iterations": config.power_iterations,
        "lcr_samples": config.lcr_samples,
        "lcr_every": config.lcr_every,
        "model": model.name,
        "precision": "fp32" if config.full_precision else config.precision,
        "weight_quantizer": config.weight_quantizer,
        "bireal": config.bireal,
        "dataset": config.dataset,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "optimizer": compile_description(model.optimizer),
        "seed": config.seed,
        "blocks": len(find_blocks(bnn)) if not config.full_precision else None,
        "train_size": dataset.train_size,
        "validation_size": dataset.validation_size,
        "test_size": dataset.test_size,
        "weights_sha256": weights_digest(bnn),
        "resumed": first_epoch > 0,
        "resumed_from_epoch": first_epoch,
        "final_epoch_metrics": last,
        "seconds": round(time.time() - start, 2),
        "output_dir": out,
    }
    if chief:
        runs.save_json(results, os.path.join(out, runs.RESULTS))
    else:
        shutil.rmtree(save_dir, ignore_errors=True)
    checkpoint.remove()
    return results


def fit(
    model: tf.keras.Model,
    config: cfg.TrainConfig,
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
            *lcr_callbacks.schedules_for(
                model, config.epochs, steps, prox_rho_end=config.prox_rho_end,
                prox_hard_epochs=config.prox_hard_epochs,
            ),
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


def last_epoch_metrics(history: tf.keras.callbacks.History, directory: str | None) -> dict:
    """The last epoch's metrics of ``history``; for a run resumed after its
    last epoch (nothing trained), those of ``directory``'s ``history.csv``."""
    last = {key: float(values[-1]) for key, values in history.history.items() if values}
    if not last and directory:
        last = {k: v[-1] for k, v in runs.read_history(directory).items() if v and k != "epoch"}
    return last


def weights_digest(model: tf.keras.Model) -> str:
    """SHA-256 of every weight of ``model`` (values and shapes, in order): equal
    digests are equal networks, e.g. a resumed run and an uninterrupted one."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        array = np.ascontiguousarray(weight)
        digest.update(str(array.shape).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def compile_description(optimizer: tf.keras.optimizers.Optimizer) -> str:
    """``optimizer`` in a few words, e.g. ``SGD (momentum 0.9, coupled weight
    decay 0.0001 on all)``."""
    config = optimizer.get_config()
    parts = [f"momentum {config['momentum']:g}"] if "momentum" in config else []
    if config.get("weight_decay"):
        kind = "decoupled" if config.get("decoupled") else "coupled"
        parts.append(f"{kind} weight decay {config['weight_decay']:g} on {config['decay_on']}")
    return f"{config['name']} ({', '.join(parts) or 'no weight decay'})"


def describe_lcr(results: dict) -> str:
    """LCR's settings of a run in one line (results without the sample or
    schedule keys predate them: then the whole batch, every step).

    Example:
        >>> describe_lcr({"lcr_lambda": 4.0, "lcr_beta": 2.0, "lcr_form": "ratio",
        ...               "lcr_reference": "latent", "power_iterations": 5,
        ...               "lcr_samples": 32, "lcr_every": 2})
        'λ=4 β=2 (ratio, latent, 5 power iterations, 32 samples, 1 step in 2, weight ×2)'
    """
    samples = results.get("lcr_samples", 0)
    every = results.get("lcr_every", 1)
    return (
        f"λ={results['lcr_lambda']:g} β={results['lcr_beta']:g} ({results['lcr_form']}, "
        f"{results['lcr_reference']}, {results['power_iterations']} power iterations, "
        f"{f'{samples} samples' if samples else 'whole batch'}, "
        f"{'every step' if every == 1 else f'1 step in {every}, weight ×{every}'})"
    )


def format_results(results: dict) -> str:
    """A short human-readable summary of a run."""
    lines = [
        f"model           {results['model']} on {results['dataset']}",
        f"LCR             {describe_lcr(results)}",
        f"epochs          {results['epochs']} (batch {results['batch_size']}, "
        f"seed {results['seed']})",
        f"test accuracy   {100 * results['test_accuracy']:.2f}%"
        + _recalibration_note(results),
        f"test loss       {results['test_loss']:.4f}",
        f"seconds         {results['seconds']:.1f}",
    ]
    ratios = {
        k: v for k, v in results["final_epoch_metrics"].items() if k.startswith("sigma_ratio")
    }
    if ratios:
        lines.append(
            "σ_B/σ_F (last)  " + " ".join(f"{v:.2f}" for v in ratios.values())
        )
    return "\n".join(lines)


def _recalibration_note(results: dict) -> str:
    calibration = results.get("bn_recalibration")
    if not calibration:
        return " (BN moving averages of training)"
    return (
        f" (BN statistics re-estimated on {calibration['samples']} training images; "
        f"{100 * results['test_accuracy_moving_statistics']:.2f}% with the moving averages)"
    )
