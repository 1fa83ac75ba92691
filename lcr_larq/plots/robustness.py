"""The figures of ``lcr-evaluate``'s robustness reports: accuracy per corruption
and per severity, CE per corruption over groups of runs (e.g. seeds), and
accuracy under attack against ε.

Example:
    >>> group_summary([{"clean_accuracy": 0.5, "mce": 1.0, "corruption_error": {"fog": 1.0},
    ...                 "normalized": True}])["mce_std"]
    0.0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from lcr_larq.errors import ConfigError
from lcr_larq.plots.style import (
    COLORS,
    FONT,
    LINESTYLES,
    MARKERS,
    SMALL,
    axis_labels,
    category_ticks,
    finish,
    new_figure,
    save,
)

__all__ = [
    "ADVERSARIAL_FILE",
    "ATTACK_STYLE",
    "CORRUPTION_FILE",
    "GROUPS_FILE",
    "build_adversarial_accuracy",
    "build_corruption_accuracy",
    "build_corruption_groups",
    "group_summary",
    "plot_adversarial_accuracy",
    "plot_corruption_accuracy",
    "plot_corruption_groups",
]

CORRUPTION_FILE = "corruption_accuracy.png"
GROUPS_FILE = "corruption_error_groups.png"
ADVERSARIAL_FILE = "adversarial_accuracy.png"
#: Each attack's colour (the same in every figure) and legend text.
ATTACK_STYLE = {
    "fgsm": ("tab:green", "FGSM"),
    "pgd": ("tab:red", "PGD (L∞)"),
    "random": ("tab:gray", "random sign noise"),
    "transfer": ("tab:purple", "transfer: PGD on the float counterpart"),
    "worst": ("black", "worst case per image over the attacks run"),
}


def _accuracy_at(report: dict, corruption: str, severity: int) -> float:
    value = report["accuracy"].get(corruption, {}).get(str(severity))
    return np.nan if value is None else 100 * float(value)


def _consecutive_runs(xs: Sequence[int]) -> list[list[int]]:
    """``xs`` (sorted) split where a value is skipped: lines join only
    severities that were all run.

    Example:
        >>> _consecutive_runs([0, 1, 3, 5, 6])
        [[0, 1], [3], [5, 6]]
    """
    out: list[list[int]] = []
    for x in xs:
        if out and x == out[-1][-1] + 1:
            out[-1].append(x)
        else:
            out.append([x])
    return out


def build_corruption_accuracy(reports: Sequence[tuple[str, dict]]) -> Figure:
    """The figure of :func:`plot_corruption_accuracy`, unsaved."""
    if not reports:
        raise ConfigError("no robustness report to draw")
    names = list(reports[0][1]["accuracy"])
    for _, rep in reports[1:]:
        names += [c for c in rep["accuracy"] if c not in names]
    all_sev = sorted({int(s) for _, rep in reports for s in rep["severities"]})
    left = min(12.0, max(3.0, 0.42 * len(names)))
    fig = new_figure(left + 4.5, 4.8)
    ax, ax2 = fig.subplots(1, 2, width_ratios=[left, 3.0])
    width = 0.8 / len(reports)
    handles = []
    for j, (label, rep) in enumerate(reports):
        color = COLORS[j % len(COLORS)] if len(reports) <= len(COLORS) else f"C{j}"
        sev = sorted(int(s) for s in rep["severities"])
        means = [np.nanmean([_accuracy_at(rep, c, s) for s in sev] or [np.nan])
                 if rep["accuracy"].get(c) else np.nan for c in names]
        x = np.arange(len(names)) + (j - (len(reports) - 1) / 2) * width
        ax.bar(x, means, width, color=color)
        clean = 100 * rep["clean_accuracy"]
        ax.axhline(clean, color=color, ls="--", lw=1)
        with np.errstate(all="ignore"):
            by_sev = {s: float(np.nanmean([_accuracy_at(rep, c, s) for c in names]))
                      for s in sev}
        points = {0: clean, **by_sev}
        for segment in _consecutive_runs(sorted(points)):
            ax2.plot(segment, [points[s] for s in segment], marker="o", ms=5, color=color,
                     ls="-" if len(segment) > 1 else "none")
        kind = "normalized" if rep["normalized"] else "unnormalized"
        handles.append(Patch(color=color, label=f"{label}: mCE {rep['mce']:.3f} ({kind}), "
                                                f"clean {clean:.1f}%"))
    handles.append(Line2D([], [], color="0.3", ls="--", lw=1,
                          label="clean accuracy (dashed, left)"))
    category_ticks(ax, names)
    ax.set_ylim(0, 100)
    axis_labels(ax, "corruption", "top-1 accuracy (%)",
                "accuracy per corruption (mean over the severities run)")
    ax2.set_xticks([0, *all_sev], ["clean", *(str(s) for s in all_sev)], fontsize=SMALL)
    ax2.set_xlim(-0.5, max(all_sev, default=0) + 0.5)
    ax2.set_ylim(0, 100)
    axis_labels(ax2, "severity (only those run)", "mean accuracy over corruptions (%)",
                "per severity")
    fig.legend(handles=handles, loc="outside lower center", fontsize=FONT,
               ncol=1 if len(handles) > 3 else len(handles))
    return finish(fig)


def plot_corruption_accuracy(reports: Sequence[tuple[str, dict]], path: str) -> str:
    """Accuracy per corruption type (mean over severities) and per severity
    (mean over corruptions), one or two ``(label, robustness report)``.

    The per-severity panel has a tick for clean (0) and for each severity
    of the reports, nothing else; a line joins only neighbouring severities
    that were both run (clean and severity 1 included), the others are points.
    """
    return save(build_corruption_accuracy(reports), path)


def group_summary(reports: Sequence[dict]) -> dict[str, Any]:
    """Mean and standard deviation (over runs, e.g. seeds) of the clean accuracy,
    the mCE and each corruption's CE of several robustness reports.

    Example:
        >>> reps = [{"clean_accuracy": 0.9, "mce": 1.0, "corruption_error": {"fog": 1.0},
        ...          "normalized": False},
        ...         {"clean_accuracy": 0.8, "mce": 2.0, "corruption_error": {"fog": 2.0},
        ...          "normalized": False}]
        >>> s = group_summary(reps)
        >>> s["mce_mean"], round(s["mce_std"], 4), s["runs"]
        (1.5, 0.7071, 2)
    """
    if not reports:
        raise ConfigError("a group needs at least one robustness.json")
    if any(r.get("mce") is None for r in reports):
        raise ConfigError("a group's robustness.json holds no corruption results: run "
                          "lcr-evaluate with --corruptions on every run of the group")
    if len({bool(r["normalized"]) for r in reports}) > 1:
        raise ConfigError("a group mixes normalized and unnormalized reports")

    def stats(values):
        arr = np.asarray(values, np.float64)
        return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0

    names = list(reports[0]["corruption_error"])
    out: dict[str, Any] = {"runs": len(reports), "normalized": bool(reports[0]["normalized"])}
    out["clean_accuracy_mean"], out["clean_accuracy_std"] = stats(
        [r["clean_accuracy"] for r in reports])
    out["mce_mean"], out["mce_std"] = stats([r["mce"] for r in reports])
    out["corruption_error"] = {
        c: dict(zip(("mean", "std"), stats([r["corruption_error"][c] for r in reports])))
        for c in names
    }
    return out


def build_corruption_groups(groups: Sequence[tuple[str, list[dict]]]) -> Figure:
    """The figure of :func:`plot_corruption_groups`, unsaved."""
    if not groups:
        raise ConfigError("no group of robustness reports to draw")
    summaries = [(label, group_summary(reports)) for label, reports in groups]
    if len({s["normalized"] for _, s in summaries}) > 1:
        raise ConfigError("the groups mix normalized and unnormalized reports")
    names = list(summaries[0][1]["corruption_error"])
    fig = new_figure(min(14.0, max(7.0, 0.45 * len(names) + 1.5)), 5.0)
    ax = fig.subplots()
    width = 0.8 / len(summaries)
    for j, (label, s) in enumerate(summaries):
        x = np.arange(len(names)) + (j - (len(summaries) - 1) / 2) * width
        ce = s["corruption_error"]
        color = COLORS[j % len(COLORS)] if len(summaries) <= len(COLORS) else f"C{j}"
        ax.bar(x, [ce[c]["mean"] if c in ce else np.nan for c in names], width,
               yerr=[ce[c]["std"] if c in ce else 0.0 for c in names], capsize=2,
               color=color, error_kw={"lw": 0.8},
               label=f"{label}: mCE {s['mce_mean']:.3f} ± {s['mce_std']:.3f}, clean "
               f"{100 * s['clean_accuracy_mean']:.1f} ± {100 * s['clean_accuracy_std']:.1f}% "
               f"({s['runs']} runs)")
    kind = "normalized by AlexNet" if summaries[0][1]["normalized"] else "unnormalized"
    category_ticks(ax, names)
    axis_labels(ax, "corruption", f"CE ({kind}; lower is better)",
                "corruption error per type, mean ± std over runs")
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", fontsize=FONT)
    return finish(fig)


def plot_corruption_groups(groups: Sequence[tuple[str, list[dict]]], path: str) -> str:
    """CE per corruption, mean ± standard deviation over the runs of each group
    (e.g. 3 seeds with and without LCR); the legend gives each group's mCE."""
    return save(build_corruption_groups(groups), path)


def build_adversarial_accuracy(reports: Sequence[tuple[str, dict]]) -> Figure:
    """The figure of :func:`plot_adversarial_accuracy`, unsaved."""
    reports = [(label, rep) for label, rep in reports if rep.get("adversarial")]
    if not reports:
        raise ConfigError("no robustness report with attacks to draw: run lcr-evaluate --attacks")
    fig = new_figure(7.0, 5.4)
    ax = fig.subplots()
    epsilons = sorted({float(r["epsilon"]) for _, rep in reports for r in rep["adversarial"]})
    attacks = [a for a in ATTACK_STYLE
               if any(r["attack"] == a for _, rep in reports for r in rep["adversarial"])]
    flagged = [_attack_lines(ax, j, rep, attacks) for j, (_, rep) in enumerate(reports)]
    ax.set_xticks(epsilons, [f"{e:g}" for e in epsilons])
    ax.set_xlim(min(epsilons) - 0.4, max(epsilons) + 0.4)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    samples = sorted({rep.get("adversarial_setup", {}).get("samples") for _, rep in reports}
                     - {None})
    axis_labels(ax, "ε (pixel levels, 1/255 of the range; L∞ ball)",
                f"top-1 accuracy (%) on {'/'.join(map(str, samples))} test images",
                "accuracy under attack (white-box gradients through the sign: straight-through "
                "estimator)")
    fig.legend(handles=_adversarial_legend(reports, attacks, any(flagged)),
               loc="outside lower center", fontsize=FONT, ncol=2)
    return finish(fig)


def _run_style(index: int) -> dict[str, str]:
    return {"ls": LINESTYLES[index % len(LINESTYLES)], "marker": MARKERS[index % len(MARKERS)]}


def _attack_lines(ax, index: int, report: dict, attacks: Sequence[str]) -> bool:
    """Accuracy against ε of each attack of one report (the ``index``-th run's
    line style), a ring on every flagged masking point; whether there was one."""
    for attack in attacks:
        points = sorted((float(r["epsilon"]), 100 * r["accuracy"])
                        for r in report["adversarial"] if r["attack"] == attack)
        if points:
            ax.plot(*zip(*points), color=ATTACK_STYLE[attack][0], ms=5, lw=1.4,
                    **_run_style(index))
    flags = [f for f in report.get("gradient_masking") or [] if f["possible_masking"]]
    for flag in flags:
        ax.plot(flag["epsilon"], 100 * flag["accuracy"], "o", ms=13, mfc="none", mec="black",
                mew=1.2)
    return bool(flags)


def _adversarial_legend(
    reports: Sequence[tuple[str, dict]], attacks: Sequence[str], flagged: bool
) -> list[Line2D]:
    """Two columns: the attacks by colour; the runs by line style (with their
    clean accuracies) and the ring."""
    colours = [Line2D([], [], color=ATTACK_STYLE[a][0], lw=2, label=ATTACK_STYLE[a][1])
               for a in attacks]
    handles: list[Line2D] = []
    for j, (label, rep) in enumerate(reports):
        setup = rep.get("adversarial_setup", {})
        text = f"{label}: clean {100 * setup.get('clean_accuracy', np.nan):.1f}%"
        if rep.get("float_clean_accuracy") is not None:
            text += f", float counterpart {100 * rep['float_clean_accuracy']:.1f}%"
            if not (rep.get("transfer_source") or {}).get("informative", True):
                text += " (near chance: no check)"
        handles.append(Line2D([], [], color="0.2", ms=5, label=text, **_run_style(j)))
    if flagged:
        handles.append(Line2D([], [], ls="none", marker="o", ms=11, mfc="none", mec="black",
                              label="possible gradient masking: a gradient-free attack beats "
                              "PGD beyond chance"))
    rows = max(len(colours), len(handles))

    def blank() -> Line2D:
        return Line2D([], [], ls="none", label=" ")

    # The legend fills its columns top to bottom: pad each to the same height.
    return [*colours, *(blank() for _ in range(rows - len(colours))),
            *handles, *(blank() for _ in range(rows - len(handles)))]


def plot_adversarial_accuracy(reports: Sequence[tuple[str, dict]], path: str) -> str:
    """Accuracy against ε per attack (colours) for one or two ``(label,
    robustness report)`` (line styles); rings mark the ε where a gradient-free
    attack beat PGD beyond chance (possible gradient masking, the report's
    ``gradient_masking``)."""
    return save(build_adversarial_accuracy(reports), path)
