"""What several test files share: a small BNN and its batches, the one-line error
of a command, and the settings of the trained run of ``conftest.trained_run``."""

import numpy as np
import tensorflow as tf

from models import build_model

#: The run that the commands reading a run are tested on (conftest.trained_run):
#: ResNet-8 1w1a + LCR on 8×8 digits, trained by lcr_larq.training.run (the
#: producer of run directories) for 2×10 steps on all 1,437 training images (no
#: validation split: the images are normalized by the statistics of all of them),
#: its BN moving averages kept.
RUN_SETTINGS = dict(model="resnet8", input_size=8, lcr_lambda=4.0, epochs=2, steps_per_epoch=10,
                    batch_size=32, validation_split=0.0, bn_recalibration_batches=0, seed=0,
                    verbose=0)
#: Its architecture: three basic blocks of two binary convolutions.
RUN_BLOCKS = 3


def small_bnn(**kwargs) -> tf.keras.Model:
    """ResNet-8 1w1a for 16×16×1 images and 4 classes (``build_model``'s keywords)."""
    return build_model("resnet8", (16, 16, 1), 4, **kwargs)


def batch(rng: np.random.Generator, n: int = 8, size: int = 16, classes: int = 4):
    """A batch of ``small_bnn``'s inputs: normal images and random labels."""
    x = rng.normal(size=(n, size, size, 1)).astype(np.float32)
    return tf.constant(x), tf.constant(rng.integers(0, classes, size=n))


def one_line_error(capsys, code: int | None = None) -> str:
    """The one line ``error: …`` a command printed (and its exit code 2, when given)."""
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:"), err
    assert code is None or code == 2, (code, err)
    return err
