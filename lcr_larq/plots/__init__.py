"""The figures of lcr-larq (PNG, matplotlib): each function takes data and a path.

* :func:`plot_sigma_ratio` — σ_B/σ_F per block over training (``history.csv``)
  and for final models;
* :func:`plot_weight_histograms` — latent weights per binary layer (Fig. 2);
* :func:`plot_activation_correlation` — the independence assumption of Eq. 7:
  sample correlation and channel cosines ``X̂ X̂ᵀ / P`` at a block's input
  (Fig. 3);
* :func:`plot_corruption_accuracy`, :func:`plot_corruption_groups`,
  :func:`plot_adversarial_accuracy` — robustness reports of ``lcr-evaluate``;
* :func:`plot_lipschitz` — the report of ``lcr-diagnose``.

Each ``plot_*`` draws its figure with the matching ``build_*`` (which returns
the :class:`matplotlib.figure.Figure`, unsaved, for inspection) and saves it.
The figures are laid out for their saved size: every panel names its axes,
legends sit outside the plotting area, text is at least 7 pt and crowded
category labels are thinned. ``lcr-plots`` (:mod:`lcr_larq.cli.plots`) gathers
a run's data and draws them.

The figures live by subject: :mod:`~lcr_larq.plots.training`,
:mod:`~lcr_larq.plots.robustness`,
:mod:`~lcr_larq.plots.lipschitz` and
:mod:`~lcr_larq.plots.study`, drawn with the sizes, colours and
helpers of :mod:`~lcr_larq.plots.style`; every public name is
importable from here.

Example:
    >>> import tempfile
    >>> history = {"epoch": [0, 1], "sigma_ratio_1": [0.5, 0.8], "sigma_ratio_2": [0.7, 0.9]}
    >>> path = plot_sigma_ratio([("λ=4", history, None)], tempfile.mkdtemp() + "/s.png")
    >>> with open(path, "rb") as handle:
    ...     handle.read(4)
    b'\\x89PNG'
"""

from __future__ import annotations

from lcr_larq.plots.lipschitz import LIPSCHITZ_FILE, build_lipschitz, plot_lipschitz
from lcr_larq.plots.robustness import (
    ADVERSARIAL_FILE,
    ATTACK_STYLE,
    CORRUPTION_FILE,
    GROUPS_FILE,
    build_adversarial_accuracy,
    build_corruption_accuracy,
    build_corruption_groups,
    group_summary,
    plot_adversarial_accuracy,
    plot_corruption_accuracy,
    plot_corruption_groups,
)
from lcr_larq.plots.study import STUDY_FILE, build_study, plot_study
from lcr_larq.plots.style import (
    BLOCK_PALETTE,
    COLORS,
    DPI,
    FONT,
    HATCHES,
    LINESTYLES,
    MARKERS,
    SMALL,
    TITLE,
    block_colors,
    report_label,
    run_label,
)
from lcr_larq.plots.training import (
    CORRELATION_FILE,
    HISTOGRAM_FILE,
    SIGMA_FILE,
    build_activation_correlation,
    build_sigma_ratio,
    build_weight_histograms,
    channel_cosines,
    plot_activation_correlation,
    plot_sigma_ratio,
    plot_weight_histograms,
    sample_correlation,
    sigma_ratio_columns,
)

__all__ = [
    # file names
    "SIGMA_FILE", "HISTOGRAM_FILE", "CORRELATION_FILE", "CORRUPTION_FILE", "LIPSCHITZ_FILE",
    "GROUPS_FILE", "STUDY_FILE", "ADVERSARIAL_FILE",
    # style
    "COLORS", "DPI", "FONT", "SMALL", "TITLE", "BLOCK_PALETTE", "MARKERS", "LINESTYLES",
    "HATCHES", "run_label", "report_label", "block_colors",
    # training
    "sigma_ratio_columns", "build_sigma_ratio", "plot_sigma_ratio", "build_weight_histograms",
    "plot_weight_histograms", "sample_correlation", "channel_cosines",
    "build_activation_correlation", "plot_activation_correlation",
    # robustness
    "build_corruption_accuracy", "plot_corruption_accuracy", "group_summary",
    "build_corruption_groups", "plot_corruption_groups", "ATTACK_STYLE",
    "build_adversarial_accuracy", "plot_adversarial_accuracy",
    # lipschitz, study
    "build_lipschitz", "plot_lipschitz", "build_study", "plot_study",
]
