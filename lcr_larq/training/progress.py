"""What a run prints while it trains: a progress bar that fits a terminal.

Example:
    >>> ProgressBar._brief({"loss": 1.0, "sigma_ratio_3": 0.9, "val_sigma_b_1": 2.0})
    {'loss': 1.0}
"""

from __future__ import annotations

import re
import sys

import tensorflow as tf

__all__ = [
    "BLOCK_METRIC",
    "ProgressBar",
    "verbosity",
]

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
