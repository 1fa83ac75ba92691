"""The resume state of a run: a checkpoint per epoch, and the divergence watch.

A killed run resumes from its last finished epoch and continues the
uninterrupted one exactly; a loss that is not finite (or above
:data:`DIVERGED_LOSS`) stops training and keeps the last good checkpoint.

Example:
    >>> _sane(2.3), _sane(float("nan")), _sane(1e5)
    (True, False, False)
"""

from __future__ import annotations

import math
import os
import shutil

import tensorflow as tf

from lcr_larq.errors import RunError
from lcr_larq.training import runs
from lcr_larq.training.config import TrainConfig

__all__ = [
    "DIVERGED_LOSS",
    "RunCheckpoint",
    "divergence_message",
]


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
    synchronized variables is collective); only the chief keeps its files:
    the others (``chief=False``) read the chief's backup to resume and write
    theirs in ``scratch``, a folder of their own, never in ``directory``.
    """

    def __init__(self, directory: str, chief: bool = True, scratch: str | None = None):
        super().__init__()
        self.directory = directory
        self.backup = os.path.join(directory, runs.BACKUP)
        self.chief = chief
        self.scratch = scratch
        if not (chief or scratch):
            raise ValueError("a worker that is not the chief writes in a scratch folder")
        self.target = self.backup if chief else os.path.join(scratch, runs.BACKUP)
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


def divergence_message(config: TrainConfig, diverged: tuple[int, int, float]) -> str:
    """One line naming the step a run diverged at and the likely fix."""
    epoch, batch, loss = diverged
    causes = [f"--lr {config.lr:g}"]
    if config.uses_lcr:
        causes.append(f"--lcr-lambda {config.lcr_lambda:g}")
    if config.weight_decay > 1e-2:
        causes.append(f"--weight-decay {config.weight_decay:g}")
    return (
        f"training diverged in epoch {epoch + 1}, step {batch + 1} (loss {loss:g}): lower "
        f"{' or '.join(causes)}; no model was saved and the checkpoint of the last finished "
        "epoch is kept"
    )
