"""One training run and its run directory: the tools every command builds on.

* :mod:`lcr_larq.training.config` — :class:`TrainConfig`, the settings of a
  run (``lcr-train``'s flags and recipes);
* :mod:`lcr_larq.training.architectures` — the architectures of ``models``,
  imported here alone (a user's own ``models`` folder found first is a
  one-line error), and :func:`build_network`, a run's settings to its network;
* :mod:`lcr_larq.training.run` — :func:`run` (data, model, LCR, training,
  BN re-estimation, test, saving) and :func:`fit`;
* :mod:`lcr_larq.training.runs` — run directories: what a run writes, locks,
  history, reading it back (:func:`~lcr_larq.training.runs.load_run`), and
  the settings every command that reads one starts with;
* :mod:`~lcr_larq.training.checkpoint` (resume, divergence),
  :mod:`~lcr_larq.training.distribute` (``tf.distribute``),
  :mod:`~lcr_larq.training.progress` (the progress bar) and
  :mod:`~lcr_larq.training.summary` (a finished run in a few numbers).
"""

from lcr_larq.training.config import (
    RUNS_DIR,
    TrainConfig,
    build_network,
    default_run_name,
    input_size_note,
    parse_args,
    with_input_size,
)
from lcr_larq.training.run import (
    build_step_variables,
    build_training_model,
    checked_data,
    compile_for_evaluation,
    compile_model,
    fit,
    learning_rate,
    load_teacher,
    run,
)
from lcr_larq.training.runs import weights_digest
from lcr_larq.training.summary import describe_lcr

__all__ = [
    "RUNS_DIR",
    "TrainConfig",
    "build_network",
    "build_step_variables",
    "build_training_model",
    "checked_data",
    "compile_for_evaluation",
    "compile_model",
    "default_run_name",
    "describe_lcr",
    "fit",
    "input_size_note",
    "learning_rate",
    "load_teacher",
    "parse_args",
    "run",
    "weights_digest",
    "with_input_size",
]
