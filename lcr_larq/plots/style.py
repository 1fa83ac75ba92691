"""What every figure of :mod:`lcr_larq.plots` shares: sizes, colours,
markers, labels of runs, and the helpers that make, label and save a figure.

Example:
    >>> fig = new_figure(3.0, 2.0)
    >>> axis_labels(fig.subplots(), "x", "y", "title")
    >>> finish(fig, "suptitle") is fig
    True
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator

__all__ = [
    "BLOCK_PALETTE",
    "COLORS",
    "DPI",
    "FONT",
    "HATCHES",
    "LINESTYLES",
    "MARKERS",
    "SMALL",
    "TITLE",
    "axis_labels",
    "block_colors",
    "block_style",
    "category_ticks",
    "finish",
    "legend_beside",
    "legend_inside",
    "new_figure",
    "report_label",
    "run_label",
    "save",
    "thin_category_labels",
]

COLORS = ("tab:blue", "tab:orange")
"""The colours of the (one or two) runs compared in a figure."""

DPI = 110
FONT = 8  # text, legends and axis labels (pt)
SMALL = 7  # tick labels and dense annotations: the smallest text drawn (pt)
TITLE = 9

#: 16 qualitative colours, pairwise at least 0.24 apart in RGB (unit cube); the
#: gray that marks σ_B = σ_F comes last.
BLOCK_PALETTE = (
    "tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
    "tab:pink", "tab:olive", "tab:cyan", "black", "#ffd700", "#000080", "#800000",
    "#008080", "#ff00ff", "tab:gray",
)
MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*")
LINESTYLES = ("-", "--", "-.", ":")
HATCHES = ("", "///", "...", "xx")


def run_label(lcr_lambda: float | None, seed: int | None, directory: str,
              full_precision: bool = False) -> str:
    """A short legend label of a run: its λ and seed, else the directory name.

    Example:
        >>> run_label(4.0, 1, "runs/x")
        'λ=4 (LCR), seed 1'
        >>> run_label(None, None, "runs/baseline/")
        'baseline'
    """
    if lcr_lambda is None:
        return os.path.basename(os.path.normpath(directory))
    text = f"λ={float(lcr_lambda):g}" + (
        " (LCR)" if float(lcr_lambda) > 0 and not full_precision else "")
    if seed is not None:
        text += f", seed {seed}"
    return text


def report_label(report: dict) -> str:
    """:func:`run_label` of a report of ``lcr-evaluate`` or ``lcr-diagnose``."""
    return run_label(report.get("lcr_lambda"), report.get("train_seed"),
                     report.get("model_dir", ""))


def block_colors(count: int) -> list[tuple[float, float, float]]:
    """``count`` distinguishable RGB colours for blocks 1..count: the 16 of
    :data:`BLOCK_PALETTE`, beyond that hues of ``turbo`` interleaved so that
    neighbouring blocks are far apart on the colour map.

    Example:
        >>> colors = block_colors(16)
        >>> rgb = np.array(colors)
        >>> gaps = np.linalg.norm(rgb[:, None] - rgb[None], axis=-1) + 9 * np.eye(16)
        >>> len(colors), bool(gaps.min() > 0.2)
        (16, True)
    """
    if count <= len(BLOCK_PALETTE):
        return [matplotlib.colors.to_rgb(c) for c in BLOCK_PALETTE[:count]]
    cmap = matplotlib.colormaps["turbo"]
    stride = count // 2 + 1
    while math.gcd(stride, count) != 1:
        stride += 1
    return [tuple(cmap(0.05 + 0.9 * ((i * stride) % count) / (count - 1))[:3])
            for i in range(count)]


def block_style(index: int, colors: Sequence) -> dict[str, Any]:
    """Colour, marker and line style of the block at 0-based ``index``:
    neighbouring blocks differ in all three."""
    return {"color": colors[index], "marker": MARKERS[index % len(MARKERS)],
            "linestyle": LINESTYLES[index % len(LINESTYLES)]}


def new_figure(width: float, height: float) -> Figure:
    """A figure outside pyplot (no global state), constrained layout, Agg canvas."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def axis_labels(ax, xlabel: str, ylabel: str, title: str | None = None) -> None:
    ax.set_xlabel(xlabel, fontsize=FONT)
    ax.set_ylabel(ylabel, fontsize=FONT)
    if title is not None:
        ax.set_title(title, fontsize=TITLE)
    ax.tick_params(which="both", labelsize=SMALL)


def legend_beside(ax, **kwargs):
    """A legend to the right of ``ax``, outside its plotting area."""
    return ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
                     fontsize=FONT, **kwargs)


def legend_inside(ax, **kwargs):
    """A legend in the emptiest corner of ``ax`` (for panels side by side,
    where a legend beside one would push its neighbour away)."""
    return ax.legend(loc="best", fontsize=FONT, framealpha=0.85, **kwargs)


def category_ticks(ax, names: Sequence[str], rotation: int = 90) -> None:
    """Names on the x axis at 0..n-1, rotated (90°: their boxes are one line
    high, so neighbours only collide when really crowded; :func:`finish` thins)."""
    ax.set_xticks(np.arange(len(names)), list(names), rotation=rotation,
                  ha="center" if rotation in (0, 90) else "right", fontsize=SMALL)
    ax.set_xlim(-0.6, len(names) - 0.4)


def thin_category_labels(fig: Figure) -> None:
    """Keeps every k-th label of a fixed (category) x axis whose neighbouring
    labels overlap at the figure's size, k the smallest step that separates them."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        if not isinstance(ax.xaxis.get_major_locator(), FixedLocator):
            continue
        labels = ax.get_xticklabels()
        texts = [t.get_text() for t in labels]
        if len(labels) < 2 or not any(texts):
            continue
        boxes = [t.get_window_extent(renderer) for t in labels]

        def clash(a, b):
            return min(a.x1, b.x1) - max(a.x0, b.x0) > 0.5

        step = 1
        while step < len(boxes) and any(
            clash(boxes[i], boxes[i + step]) for i in range(0, len(boxes) - step, step)
        ):
            step += 1
        if step > 1:
            ax.set_xticks(ax.get_xticks(),
                          [t if i % step == 0 else "" for i, t in enumerate(texts)])


def finish(fig: Figure, title: str | None = None) -> Figure:
    """``fig`` with its title and category labels thinned to fit."""
    if title:
        fig.suptitle(title, fontsize=TITLE + 1)
    thin_category_labels(fig)
    return fig


def save(fig: Figure, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path
