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
    >>> from lcr_larq.config import TrainConfig
    >>> results = run(TrainConfig(epochs=1, output_dir="/tmp/lcr-doc", verbose=0))
    >>> results["dataset"], results["epochs"], 0.0 <= results["test_accuracy"] <= 1.0
    ('digits', 1, True)
"""

from __future__ import annotations

import json
import os
import shutil
import time

import tensorflow as tf

from lcr_larq import callbacks as lcr_callbacks
from lcr_larq import config as cfg
from lcr_larq import data as lcr_data
from lcr_larq.batchnorm import recalibrate_batchnorm
from lcr_larq.graph import attach_lcr, find_blocks, strip_lcr
from lcr_larq.losses import SparseCrossEntropy
from lcr_larq.optimizers import WarmupDecay, make_optimizer

BACKUP = "backup"


class TrainingError(RuntimeError):
    """A run that cannot go on; the message names the fix."""


def get_strategy(name: str) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy of ``--strategy``."""
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        # Reads the cluster from TF_CONFIG.
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


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


def load_trained_model(path: str, strip: bool = True) -> tf.keras.Model:
    """Loads a model written by :func:`run` (a run directory or a ``.keras`` file).

    Raises :class:`TrainingError` with a one-line message for a missing or
    corrupt model.
    """
    import models  # noqa: F401  (registers nothing, but keeps imports symmetric)

    if os.path.isdir(path):
        for name in ("bnn.keras", "model.keras") if strip else ("model.keras",):
            candidate = os.path.join(path, name)
            if os.path.isfile(candidate):
                path = candidate
                break
        else:
            raise TrainingError(f"{path} holds no model.keras: train one with train.py")
    if not os.path.isfile(path):
        raise TrainingError(f"{path} does not exist: give a directory written by train.py")
    try:
        model = tf.keras.models.load_model(path, compile=False)
    except Exception as error:  # Keras raises many kinds for a broken file
        raise TrainingError(
            f"{path} is not a loadable Keras model ({type(error).__name__}): retrain it"
        ) from None
    return strip_lcr(model) if strip else model


def build_training_model(config: cfg.TrainConfig, input_shape, num_classes):
    """The BNN (or its full-precision version) with LCR attached when λ > 0.

    With ``--input-size S`` the model takes S×S images of the dataset's
    channels instead of the dataset's own size.
    """
    from models import build_model

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
        teacher = load_trained_model(config.teacher)
    return attach_lcr(
        model,
        lcr_lambda=config.lcr_lambda,
        beta=config.lcr_beta,
        form=config.lcr_form,
        power_iterations=config.power_iterations,
        reference=config.lcr_reference,
        teacher=teacher,
        samples=config.lcr_samples,
    )


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


class ResumableBackup(tf.keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` whose failure to restore is a one-line error."""

    def on_train_begin(self, logs=None):
        try:
            super().on_train_begin(logs)
        except Exception as error:  # corrupt file, or another model's checkpoint
            raise TrainingError(
                f"cannot resume from {self.backup_dir} ({type(error).__name__}): it is "
                "corrupt or from other settings; delete it or choose another --output-dir"
            ) from None


def recalibrate(bnn: tf.keras.Model, dataset: lcr_data.Dataset, batches: int) -> dict | None:
    """Re-estimates the BN statistics of ``bnn`` from ``batches`` training
    batches of ``dataset`` (its calibration pipeline: no augmentation); None
    when ``batches`` is 0 or the dataset has no such pipeline."""
    if not batches or dataset.calibration is None:
        return None
    return recalibrate_batchnorm(bnn, dataset.calibration, max_batches=batches)


def run(config: cfg.TrainConfig, extra_callbacks: list | None = None) -> dict:
    """Trains, evaluates and saves one run; returns the results dict."""
    cfg.validate(config)
    prepare_output_dir(config.output_dir)
    tf.keras.utils.set_random_seed(config.seed)
    start = time.time()

    strategy = get_strategy(config.strategy)
    dataset = lcr_data.load_dataset(
        config.dataset, batch_size=config.batch_size, seed=config.seed,
        data_dir=config.data_dir, input_size=config.input_size,
        validation_split=config.validation_split,
    )
    steps = config.steps_per_epoch or int(tf.data.experimental.cardinality(dataset.train))
    # Keras does not restart a finite dataset that has more batches than
    # --steps-per-epoch: it would run dry after a few epochs. Repeat it.
    train_data = dataset.train.repeat() if config.steps_per_epoch else dataset.train
    with strategy.scope():
        model = build_training_model(config, dataset.input_shape, dataset.num_classes)
        compile_model(model, config, steps)
    cfg.save_recipe(config, os.path.join(config.output_dir, "config.yaml"))

    backup_dir = os.path.join(config.output_dir, BACKUP)
    resuming = os.path.isdir(backup_dir)
    callbacks = [
        ResumableBackup(backup_dir),
        *lcr_callbacks.schedules_for(
            model, config.epochs, steps, prox_rho_end=config.prox_rho_end,
            prox_hard_epochs=config.prox_hard_epochs,
        ),
        tf.keras.callbacks.CSVLogger(
            os.path.join(config.output_dir, "history.csv"), append=resuming
        ),
        tf.keras.callbacks.TensorBoard(
            os.path.join(config.output_dir, "logs"), profile_batch=0
        ),
        *(extra_callbacks or []),
    ]
    history = model.fit(
        train_data,
        epochs=config.epochs,
        steps_per_epoch=config.steps_per_epoch,
        validation_data=dataset.validation,
        callbacks=callbacks,
        verbose=config.verbose,
    )

    with strategy.scope():  # built in scope: it evaluates under the same strategy
        bnn = compile_for_evaluation(strip_lcr(model))
    _, moving_accuracy = bnn.evaluate(dataset.test, verbose=0)
    calibration = recalibrate(bnn, dataset, config.bn_recalibration_batches)
    test_loss, test_accuracy = bnn.evaluate(dataset.test, verbose=0)
    model.save(os.path.join(config.output_dir, "model.keras"))
    bnn.save(os.path.join(config.output_dir, "bnn.keras"))

    last = {key: float(values[-1]) for key, values in history.history.items() if values}
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
        "resumed": resuming,
        "final_epoch_metrics": last,
        "seconds": round(time.time() - start, 2),
    }
    with open(os.path.join(config.output_dir, "results.json"), "w") as handle:
        json.dump(results, handle, indent=2)
    shutil.rmtree(backup_dir, ignore_errors=True)
    return results


def compile_description(optimizer: tf.keras.optimizers.Optimizer) -> str:
    """``optimizer`` in a few words, e.g. ``SGD (momentum 0.9, coupled weight
    decay 0.0001 on all)``."""
    config = optimizer.get_config()
    parts = [f"momentum {config['momentum']:g}"] if "momentum" in config else []
    if config.get("weight_decay"):
        kind = "decoupled" if config.get("decoupled") else "coupled"
        parts.append(f"{kind} weight decay {config['weight_decay']:g} on {config['decay_on']}")
    return f"{config['name']} ({', '.join(parts) or 'no weight decay'})"


def format_results(results: dict) -> str:
    """A short human-readable summary of a run."""
    lines = [
        f"model           {results['model']} on {results['dataset']}",
        f"LCR             λ={results['lcr_lambda']:g} β={results['lcr_beta']:g} "
        f"({results['lcr_form']}, {results['lcr_reference']}, "
        f"{results['power_iterations']} power iterations)",
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
