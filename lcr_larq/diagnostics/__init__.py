"""Lipschitz diagnostics of a trained run (``lcr-diagnose``, the figures of ``lcr-plots``).

* :mod:`lcr_larq.diagnostics.report` — :func:`diagnose_run`, the report that
  ``lcr-diagnose`` writes as ``lipschitz.json``, and its settings;
* :mod:`lcr_larq.diagnostics.kernels` — the operator a binary convolution
  applies and its spectral norms (exact, bounds), by :mod:`lcr_larq.lipschitz`;
* :mod:`lcr_larq.diagnostics.retention` — the retention estimate σ_RM of
  each block on real images, and the activations and weights the figures read;
* :mod:`lcr_larq.diagnostics.empirical` — the empirical local Lipschitz
  constant of the deployed network, through the straight-through view.
"""

from lcr_larq.diagnostics.report import (
    PLOT_FILE,
    REPORT_FILE,
    DiagnoseSettings,
    diagnose,
    diagnose_run,
)
from lcr_larq.diagnostics.retention import (
    block_activations,
    latent_weights,
    retention_sigmas,
    sample_images,
)

__all__ = [
    "PLOT_FILE",
    "REPORT_FILE",
    "DiagnoseSettings",
    "block_activations",
    "diagnose",
    "diagnose_run",
    "latent_weights",
    "retention_sigmas",
    "sample_images",
]
