"""Experiments over many training runs, as library functions that return data.

* :mod:`lcr_larq.experiments.tuning` — the Keras Tuner search over λ, β, the
  power iterations and the reference of LCR (``lcr-tune``);
* :mod:`lcr_larq.experiments.study` — arms × seeds with confidence intervals,
  on :mod:`lcr_larq.experiments.statistics`, its cells trained by any number of
  workers (:mod:`lcr_larq.experiments.workers`) that claim them on a shared
  directory (:mod:`lcr_larq.experiments.claims`).
"""

__all__: list[str] = []  # its modules are imported by name
