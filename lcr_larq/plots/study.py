"""The figure of a study (``lcr-study``): each arm's runs over seeds, and each
seed's run of the control joined to the same seed's run of every arm."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from lcr_larq.errors import ConfigError
from lcr_larq.plots.style import (
    axis_labels,
    category_ticks,
    finish,
    legend_inside,
    new_figure,
    save,
)

__all__ = [
    "STUDY_FILE",
    "build_study",
    "plot_study",
]

STUDY_FILE = "study.png"


def build_study(report: dict, metric: str = "test_accuracy") -> Figure:
    """The figure of :func:`plot_study`, unsaved."""
    arms = report["arms"]
    runs_by_arm = {a["arm"]: {r["seed"]: r[metric] for r in report["runs"]
                              if r["arm"] == a["arm"] and r.get(metric) is not None}
                   for a in arms}
    if not any(runs_by_arm.values()):
        raise ConfigError(f"the study has no finished run with a {metric}")
    percent = metric == "test_accuracy"
    scale = 100.0 if percent else 1.0
    unit = "test accuracy (%)" if percent else metric.replace("_", " ")
    fig = new_figure(min(14.0, max(8.0, 1.2 * len(arms) + 5.0)), 4.8)
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.2, 1.0]})
    for i, arm in enumerate(arms):
        seeds = runs_by_arm[arm["arm"]]
        values = np.array(list(seeds.values()), np.float64) * scale
        jitter = np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else np.zeros(1)
        left.scatter(i + jitter[: len(values)], values, s=14, color="0.55", zorder=2,
                     label="one seed" if i == 0 else None)
        stats = arm.get(metric) or {}
        if stats.get("mean") is not None:
            ci = stats.get("ci")
            err = None if ci is None else [[stats["mean"] * scale - ci[0] * scale],
                                           [ci[1] * scale - stats["mean"] * scale]]
            label = f"mean, {report['confidence']:.0%} interval" if i == 0 else None
            left.errorbar(i + 0.25, stats["mean"] * scale, yerr=err, fmt="o", color="tab:blue",
                          capsize=4, zorder=3, label=label)
    # One varied setting: its values name the arms, the setting the axis.
    fields = list(arms[0].get("values") or {})
    names = [_value_name(a["values"][fields[0]]) if len(fields) == 1 else a["arm"]
             for a in arms]
    names = [n + (" (control)" if a["control"] else "") for n, a in zip(names, arms)]
    category_ticks(left, names, rotation=0 if len(fields) == 1 and len(arms) <= 6 else 90)
    axis_labels(left, fields[0] if len(fields) == 1 else "arm", unit,
                f"{unit} per arm, {report['confidence']:.0%} Student-t interval")
    legend_inside(left)
    control = next(a for a in arms if a["control"])
    others = [a for a in arms if not a["control"]]
    for j, arm in enumerate(others):
        base, mine = runs_by_arm[control["arm"]], runs_by_arm[arm["arm"]]
        color = f"C{(j + 1) % 10}"
        for n, seed in enumerate(sorted(set(base) & set(mine))):
            right.plot([0, 1], [base[seed] * scale, mine[seed] * scale], "-o", color=color,
                       ms=3, lw=1, alpha=0.8, label=arm["arm"] if n == 0 else None)
    right.set_xticks([0, 1], ["control", "arm"])
    right.set_xlim(-0.3, 1.3)
    axis_labels(right, f"{control['arm']} (control) → arm, per seed", unit,
                "paired per seed: one line per seed")
    if others:
        legend_inside(right)
    seeds = ", ".join(str(seed) for seed in report["seeds"])
    return finish(fig, f"study: {', '.join(report['vary'])} over seeds {seeds}")


def _value_name(value) -> str:
    """A setting's value as an axis label: ``4.0`` as ``4``, ``0.5`` as ``0.5``."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def plot_study(report: dict, path: str, metric: str = "test_accuracy") -> str:
    """A study (``lcr-study``): each arm's runs, mean and 95 % interval (left),
    and every seed's run of the control joined to the same seed's run of
    each arm (right)."""
    return save(build_study(report, metric), path)
