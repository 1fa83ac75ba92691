"""What the commands that read a trained run compute, as functions that return data.

* :mod:`lcr_larq.analysis.evaluation` and :mod:`~lcr_larq.analysis.robustness` —
  clean accuracy and common-corruption CE / mCE (``lcr-evaluate``);
* :mod:`lcr_larq.analysis.diagnosis` — spectral norms of the binary
  convolutions (``lcr-diagnose``), by :mod:`lcr_larq.lipschitz`;
* :mod:`lcr_larq.analysis.adversarial` (with :mod:`~lcr_larq.analysis.attack_view`
  and :mod:`~lcr_larq.analysis.adversarial_run`) — white-box attacks (FGSM, PGD
  through the straight-through estimator), checks against gradient masking and
  an empirical Lipschitz estimate (``lcr-evaluate --attacks``, ``lcr-diagnose``);
* :mod:`lcr_larq.analysis.export` — the Larq Compute Engine flatbuffer, checked
  (``lcr-export``);
* :mod:`lcr_larq.analysis.plots` — figures drawn from data (``lcr-plots``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import ClassVar

from lcr_larq.errors import ConfigError
from lcr_larq.settings import Settings, setting


@dataclass
class RunSettings(Settings):
    """The settings every command that reads a run starts with.

    Example:
        >>> RunSettings(model_dir="runs/a").model_dir
        'runs/a'
        >>> RunSettings()  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        lcr_larq.errors.ConfigError: --model-dir is required: give a run directory ...
    """

    model_dir: str | None = setting(None, "run directory written by lcr-train (required)")

    def check(self) -> None:
        if not self.model_dir:
            raise ConfigError("--model-dir is required: give a run directory written by lcr-train")


@dataclass
class ReportSettings(RunSettings):
    """:class:`RunSettings` of a command that writes a report, by default
    ``report_file`` in the run directory."""

    report_file: ClassVar[str] = "report.json"
    output: str | None = setting(None, "report path (default: a file in --model-dir)")

    @property
    def report_path(self) -> str:
        return self.output or os.path.join(self.model_dir, self.report_file)
