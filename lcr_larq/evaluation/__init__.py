"""Robustness of a trained run: clean accuracy, common corruptions and attacks (``lcr-evaluate``).

* :mod:`lcr_larq.evaluation.report` — :func:`evaluate`, the report that
  ``lcr-evaluate`` writes as ``robustness.json``, and its settings;
* :mod:`lcr_larq.evaluation.clean` — clean accuracy and the linear-probe
  protocol;
* :mod:`lcr_larq.evaluation.corruptions` — corruption errors (CE / mCE) and
  the test split corrupted offline; :mod:`~lcr_larq.evaluation.imagenet_c`
  the corruptions' names and AlexNet's errors (the published corrupted sets
  are read by the dataset's source, :mod:`lcr_larq.data`);
* :mod:`lcr_larq.evaluation.attacks` — white-box and gradient-free L∞ attacks
  on pixel images and the check against gradient masking;
  :mod:`~lcr_larq.evaluation.attack_run` — those on a trained run.
"""

from lcr_larq.evaluation.report import (
    ADVERSARIAL_PLOT_FILE,
    PLOT_FILE,
    REPORT_FILE,
    EvaluateSettings,
    evaluate,
)

__all__ = ["ADVERSARIAL_PLOT_FILE", "PLOT_FILE", "REPORT_FILE", "EvaluateSettings", "evaluate"]
