"""lcr-larq: binary neural networks with Lipschitz Continuity Retention, on Larq.

The core (everything a Keras user needs; it imports neither the architectures
of the top-level ``models`` package nor a command):

* :mod:`lcr_larq.spectral` — the math of LCR as pure functions;
  :mod:`lcr_larq.lipschitz` — exact spectral norms and bounds of convolutions;
* :mod:`lcr_larq.layers` — :class:`LipschitzRetention`, the layers with a
  latent full-precision path and the papers' building blocks;
  :mod:`lcr_larq.graph` — attaching LCR to a model and stripping it again;
* :mod:`lcr_larq.quantizers` (IR-Net, ProxConnect, STE; one registry of
  ``--weight-quantizer``) and their schedules (:func:`schedules_for`);
* :mod:`lcr_larq.batchnorm` — BN statistics of the final weights;
* :mod:`lcr_larq.optimizers`, :mod:`lcr_larq.losses` — the papers' PyTorch
  semantics; :mod:`lcr_larq.metrics`;
* :mod:`lcr_larq.data` — the datasets (one registry of ``--dataset``);
* :mod:`lcr_larq.settings`, :mod:`lcr_larq.registry`, :mod:`lcr_larq.errors`
  — the settings machinery, registries, the errors a user fixes.

On top of the core and ``models``, the tools: :mod:`lcr_larq.training` (one
run, run directories), :mod:`lcr_larq.analysis` and
:mod:`lcr_larq.experiments` (what the commands compute), and
:mod:`lcr_larq.cli` (the commands). Importing the package makes ``tf.keras``
Keras 2 (tf-keras from TensorFlow 2.16 on, see :mod:`lcr_larq.compat`) and
registers every custom Keras object, so
``tf.keras.models.load_model("…/bnn.keras")`` works after ``import lcr_larq``.
"""

from lcr_larq import compat

# Before TensorFlow and Larq are imported: the Keras 2 switch (the one global change), and
# for a command process (lcr-<name>, python -m lcr_larq.cli.<name>, train.py) its quiet start-up.
compat.use_legacy_keras(quiet=compat.started_as_command())

from lcr_larq import callbacks, layers, losses, optimizers, quantizers, spectral  # noqa: E402
from lcr_larq.batchnorm import recalibrate_batchnorm  # noqa: E402
from lcr_larq.callbacks import schedules_for  # noqa: E402
from lcr_larq.graph import (  # noqa: E402
    Block,
    as_float32,
    attach_lcr,
    check_jit_compile,
    find_blocks,
    full_precision_path,
    lcr_layer,
    make_full_precision_aware,
    strip_lcr,
)
from lcr_larq.layers import LipschitzRetention  # noqa: E402

__version__ = "0.3.0"

__all__ = [
    "Block",
    "LipschitzRetention",
    "as_float32",
    "attach_lcr",
    "callbacks",
    "check_jit_compile",
    "compat",
    "find_blocks",
    "full_precision_path",
    "layers",
    "lcr_layer",
    "losses",
    "make_full_precision_aware",
    "optimizers",
    "quantizers",
    "recalibrate_batchnorm",
    "schedules_for",
    "spectral",
    "strip_lcr",
]
