"""lcr-larq: binary neural networks with Lipschitz Continuity Retention, on Larq.

The core (everything a Keras user needs; it imports neither the architectures
of the top-level ``models`` package nor a tool or command):

* :mod:`lcr_larq.spectral` — the math of LCR as pure functions;
  :mod:`lcr_larq.lipschitz` — exact spectral norms and bounds of convolutions;
* :mod:`lcr_larq.layers` — :class:`LipschitzRetention`, the layers with a
  latent full-precision path and the papers' building blocks;
  :mod:`lcr_larq.graph` — attaching LCR to a model and stripping it again;
  :mod:`lcr_larq.surgery` — a BNN's quantizers off, its latent weights carried
  over (the float counterpart); :mod:`lcr_larq.attack_view` — the network an
  attack differentiates (the straight-through gradient through the signs);
* :mod:`lcr_larq.quantizers` (IR-Net, ProxConnect, STE; one registry of
  ``--weight-quantizer``) and their schedules (:mod:`lcr_larq.callbacks`);
* :mod:`lcr_larq.batchnorm` — BN statistics of the final weights;
* :mod:`lcr_larq.optimizers`, :mod:`lcr_larq.losses` — the papers' PyTorch
  semantics; :mod:`lcr_larq.metrics`;
* :mod:`lcr_larq.data` — the datasets (one registry of ``--dataset``) and
  their published corrupted counterparts;
* :mod:`lcr_larq.settings`, :mod:`lcr_larq.registry`, :mod:`lcr_larq.errors`,
  :mod:`lcr_larq.compat` — the settings machinery, registries, the errors a
  user fixes, the Keras 2 switch.

On top of the core and ``models``, the tools: :mod:`lcr_larq.training` (one
run, run directories), :mod:`lcr_larq.evaluation` (clean accuracy,
corruptions, attacks), :mod:`lcr_larq.diagnostics` (Lipschitz estimates of a
trained run), :mod:`lcr_larq.export` (the Larq Compute Engine flatbuffer),
:mod:`lcr_larq.plots` (figures), :mod:`lcr_larq.experiments` (studies,
tuning); then :mod:`lcr_larq.cli` (the commands).

What ``import lcr_larq`` gives, by one rule: every module of the core, as an
attribute (``lcr_larq.spectral``; the tools and commands are imported by
name, ``from lcr_larq import training``), and at the top the classes and
functions a training script calls on its model: those of
:mod:`lcr_larq.graph` (``attach_lcr``, ``strip_lcr``, ``find_blocks``, …), the
layer it adds (:class:`LipschitzRetention`), the quantizers' schedules
(:func:`schedules_for`) and the BN statistics of the final weights
(:func:`recalibrate_batchnorm`).

Importing the package changes one global thing: ``tf.keras`` becomes Keras 2
(tf-keras from TensorFlow 2.16 on, see :mod:`lcr_larq.compat`); and it
registers every custom Keras object, so
``tf.keras.models.load_model("…/bnn.keras")`` works after ``import lcr_larq``.
"""

from lcr_larq import compat

# Before TensorFlow and Larq are imported: the Keras 2 switch (the one global change), and
# for a command process (lcr-<name>, python -m lcr_larq.cli.<name>, train.py) its quiet start-up.
compat.use_legacy_keras(quiet=compat.started_as_command())

from lcr_larq import (  # noqa: E402
    attack_view,
    batchnorm,
    callbacks,
    data,
    errors,
    graph,
    layers,
    lipschitz,
    losses,
    metrics,
    optimizers,
    quantizers,
    registry,
    settings,
    spectral,
    surgery,
)
from lcr_larq.batchnorm import recalibrate_batchnorm  # noqa: E402
from lcr_larq.callbacks import schedules_for  # noqa: E402
from lcr_larq.graph import (  # noqa: E402
    Block,
    as_float32,
    attach_lcr,
    batchnorm_inputs,
    check_jit_compile,
    computes_in_float32,
    find_blocks,
    full_precision_path,
    lcr_layer,
    make_full_precision_aware,
    replay,
    strip_lcr,
)
from lcr_larq.layers import LipschitzRetention  # noqa: E402

__version__ = "0.3.0"

#: The core's modules, then the names of a training script (the rule above).
__all__ = [
    "attack_view",
    "batchnorm",
    "callbacks",
    "compat",
    "data",
    "errors",
    "graph",
    "layers",
    "lipschitz",
    "losses",
    "metrics",
    "optimizers",
    "quantizers",
    "registry",
    "settings",
    "spectral",
    "surgery",
    "Block",
    "LipschitzRetention",
    "as_float32",
    "attach_lcr",
    "batchnorm_inputs",
    "check_jit_compile",
    "computes_in_float32",
    "find_blocks",
    "full_precision_path",
    "lcr_layer",
    "make_full_precision_aware",
    "recalibrate_batchnorm",
    "replay",
    "schedules_for",
    "strip_lcr",
]
