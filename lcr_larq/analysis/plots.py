"""The figures of lcr-larq (PNG, matplotlib): each function takes data and a path.

* :func:`plot_sigma_ratio` — σ_B/σ_F per block over training (``history.csv``)
  and for final models;
* :func:`plot_weight_histograms` — latent weights per binary layer (Fig. 2);
* :func:`plot_activation_correlation` — the independence assumption of Eq. 7:
  sample correlation and channel cosines ``X̂ X̂ᵀ / P`` at a block's input
  (Fig. 3);
* :func:`plot_corruption_accuracy`, :func:`plot_corruption_groups` —
  robustness reports of ``lcr-evaluate``;
* :func:`plot_lipschitz` — the report of ``lcr-diagnose``.

Each ``plot_*`` draws its figure with the matching ``build_*`` (which returns
the :class:`matplotlib.figure.Figure`, unsaved, for inspection) and saves it.
The figures are laid out for their saved size: every panel names its axes,
legends sit outside the plotting area, text is at least 7 pt and crowded
category labels are thinned. ``lcr-plots`` (:mod:`lcr_larq.cli.plots`) gathers
a run's data and draws them.

Example:
    >>> import tempfile
    >>> history = {"epoch": [0, 1], "sigma_ratio_1": [0.5, 0.8], "sigma_ratio_2": [0.7, 0.9]}
    >>> path = plot_sigma_ratio([("λ=4", history, None)], tempfile.mkdtemp() + "/s.png")
    >>> with open(path, "rb") as handle:
    ...     handle.read(4)
    b'\\x89PNG'
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
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, MaxNLocator

from lcr_larq.errors import ConfigError

SIGMA_FILE = "sigma_ratio.png"
HISTOGRAM_FILE = "weight_histograms.png"
CORRELATION_FILE = "activation_correlation.png"
CORRUPTION_FILE = "corruption_accuracy.png"
LIPSCHITZ_FILE = "lipschitz.png"
GROUPS_FILE = "corruption_error_groups.png"
COLORS = ("tab:blue", "tab:orange")
"""The colours of the (one or two) runs compared in a figure."""

DPI = 110
FONT = 8  # text, legends and axis labels (pt)
SMALL = 7  # tick labels and dense annotations: the smallest text drawn (pt)
TITLE = 9

# 16 qualitative colours, pairwise at least 0.24 apart in RGB (unit cube); the
# gray that marks σ_B = σ_F comes last.
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


# --------------------------------------------------------------------------- helpers
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


def _block_style(index: int, colors: Sequence) -> dict[str, Any]:
    """Colour, marker and line style of the block at 0-based ``index``:
    neighbouring blocks differ in all three."""
    return {"color": colors[index], "marker": MARKERS[index % len(MARKERS)],
            "linestyle": LINESTYLES[index % len(LINESTYLES)]}


def _figure(width: float, height: float) -> Figure:
    """A figure outside pyplot (no global state), constrained layout, Agg canvas."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _labels(ax, xlabel: str, ylabel: str, title: str | None = None) -> None:
    ax.set_xlabel(xlabel, fontsize=FONT)
    ax.set_ylabel(ylabel, fontsize=FONT)
    if title is not None:
        ax.set_title(title, fontsize=TITLE)
    ax.tick_params(which="both", labelsize=SMALL)


def _legend_beside(ax, **kwargs):
    """A legend to the right of ``ax``, outside its plotting area."""
    return ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
                     fontsize=FONT, **kwargs)


def _category_ticks(ax, names: Sequence[str], rotation: int = 90) -> None:
    """Names on the x axis at 0..n-1, rotated (90°: their boxes are one line
    high, so neighbours only collide when really crowded; :func:`_finish` thins)."""
    ax.set_xticks(np.arange(len(names)), list(names), rotation=rotation,
                  ha="center" if rotation in (0, 90) else "right", fontsize=SMALL)
    ax.set_xlim(-0.6, len(names) - 0.4)


def _thin_category_labels(fig: Figure) -> None:
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


def _finish(fig: Figure, title: str | None = None) -> Figure:
    if title:
        fig.suptitle(title, fontsize=TITLE + 1)
    _thin_category_labels(fig)
    return fig


def _save(fig: Figure, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


# --------------------------------------------------------------------------- σ_B/σ_F
def sigma_ratio_columns(history: dict[str, list[float]]) -> list[str]:
    """The ``sigma_ratio_k`` columns of a History, in block order.

    Example:
        >>> sigma_ratio_columns({"sigma_ratio_10": [], "loss": [], "sigma_ratio_2": []})
        ['sigma_ratio_2', 'sigma_ratio_10']
    """
    keys = [k for k in history if k.startswith("sigma_ratio_") and k[12:].isdigit()]
    return sorted(keys, key=lambda k: int(k[12:]))


def build_sigma_ratio(
    runs: Sequence[tuple[str, dict[str, list[float]], list[dict] | None]]
) -> Figure:
    """The figure of :func:`plot_sigma_ratio`, unsaved."""
    with_history = [(label, h) for label, h, _ in runs if sigma_ratio_columns(h)]
    with_final = [(label, f) for label, _, f in runs if f]
    if not with_history and not with_final:
        raise ConfigError("no σ_B/σ_F to draw: no LCR history and no final measurement")
    blocks = sorted({int(k[12:]) for _, h in with_history for k in sigma_ratio_columns(h)}
                    | {i + 1 for _, rows in with_final for i in range(len(rows))})
    colors = dict(zip(blocks, block_colors(len(blocks))))
    styles = {k: _block_style(i, list(colors.values())) for i, k in enumerate(blocks)}
    final_blocks = max((len(rows) for _, rows in with_final), default=0)
    widths = [5.0] * len(with_history) + ([min(9.0, max(4.0, 0.3 * final_blocks + 1.5))]
                                          if with_final else [])
    fig = _figure(sum(widths) + 1.0, 4.4)
    axes = fig.subplots(1, len(widths), squeeze=False, width_ratios=widths)[0]
    for ax, (label, history) in zip(axes, with_history):
        keys = sigma_ratio_columns(history)
        length = len(history[keys[0]])
        epochs = history.get("epoch") or list(range(length))
        epochs = [e + 1 for e in epochs]
        step = max(1, length // 8)
        for key in keys:
            k = int(key[12:])
            ax.plot(epochs, history[key], lw=1.2, ms=4, markevery=(k % step, step),
                    label=f"block {k}", **styles[k])
        ax.axhline(1.0, color="0.5", lw=0.8, ls=(0, (4, 3)), zorder=0)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=8, integer=True))
        _labels(ax, "epoch", "σ_B / σ_F (training batches)", f"{label}: over training")
    if with_final:
        ax = axes[-1]
        width = 0.8 / len(with_final)
        for j, (_, rows) in enumerate(with_final):
            x = np.arange(len(rows)) + (j - (len(with_final) - 1) / 2) * width
            block_rgb = [colors[i + 1] for i in range(len(rows))]
            hatch = HATCHES[j % len(HATCHES)]
            if hatch:
                ax.bar(x, [r["sigma_ratio"] for r in rows], width, facecolor="white",
                       edgecolor=block_rgb, hatch=hatch, lw=1.0)
            else:
                ax.bar(x, [r["sigma_ratio"] for r in rows], width, color=block_rgb)
        ax.axhline(1.0, color="0.5", lw=0.8, ls=(0, (4, 3)), zorder=0)
        longest = max(with_final, key=lambda item: len(item[1]))[1]
        _category_ticks(ax, [f"{i + 1}: {r['block']}" for i, r in enumerate(longest)])
        samples = longest[0].get("samples", "?")
        _labels(ax, "block", "σ_B / σ_F", f"final model, {samples} test images")
        handles = [Patch(facecolor="0.35" if not HATCHES[j % len(HATCHES)] else "white",
                         edgecolor="0.35", hatch=HATCHES[j % len(HATCHES)], label=label)
                   for j, (label, _) in enumerate(with_final)]
        _legend_beside(ax, handles=handles, title="run (bars)", title_fontsize=FONT)
    if with_history:
        handles = [Line2D([], [], lw=1.2, ms=4, label=f"block {k}", **styles[k])
                   for k in blocks]
        handles.append(Line2D([], [], color="0.5", lw=0.8, ls=(0, (4, 3)),
                              label="σ_B = σ_F"))
        fig.legend(handles=handles, loc="outside lower center", fontsize=FONT,
                   ncol=min(len(handles), 9))
    return _finish(fig, "Lipschitz retention: retention-matrix σ of the binary over the "
                        "latent path, per block")


def plot_sigma_ratio(
    runs: Sequence[tuple[str, dict[str, list[float]], list[dict] | None]], path: str
) -> str:
    """σ_B/σ_F per block over training and for the final model(s).

    ``runs``: ``(label, history, final)`` per model, ``final`` being the rows
    of :func:`lcr_larq.analysis.diagnosis.retention_sigmas` (or ``None``). One
    panel per history with ``sigma_ratio_k`` shows every block over the
    epochs; each block keeps its colour, marker and line style (block ``k``
    is row ``k`` of the final measurement) and the legend under the panels
    keys them. The last panel shows each final model's ratio per block, the
    runs told apart by hatching (legend beside it).
    """
    return _save(build_sigma_ratio(runs), path)


# --------------------------------------------------------------------------- weights
def build_weight_histograms(
    weights: Sequence[tuple[str, dict[str, np.ndarray]]], samples: int = 10_000,
    seed: int = 0,
) -> Figure:
    """The figure of :func:`plot_weight_histograms`, unsaved."""
    names = list(weights[0][1]) if weights else []
    if not names:
        raise ConfigError("the model has no binary convolution: no latent weights to draw")
    cols = min(6, len(names))
    rows = math.ceil(len(names) / cols)
    fig = _figure(2.7 * cols + 0.3, 2.2 * rows + 0.9)
    axes = fig.subplots(rows, cols, squeeze=False)
    rng = np.random.default_rng(seed)
    drawn = 0
    for ax, name in zip(axes.ravel(), names):
        data = []
        for j, (label, per_layer) in enumerate(weights):
            w = per_layer.get(name)
            if w is None or not len(w):
                continue
            w = np.asarray(w, np.float64).ravel()
            if len(w) > samples:
                w = rng.choice(w, samples, replace=False)
            data.append((j, label, w))
        if not data:
            ax.axis("off")
            continue
        drawn = max(drawn, max(len(w) for _, _, w in data))
        low = min(float(w.min()) for _, _, w in data)
        high = max(float(w.max()) for _, _, w in data)
        bins = np.linspace(low, high if high > low else low + 1e-6, 61)
        for j, label, w in data:
            ax.hist(w, bins=bins, alpha=0.55, color=COLORS[j % len(COLORS)], label=label)
        stds = " / ".join(f"{w.std():.3g}" for _, _, w in data)
        _labels(ax, "latent weight", "count", f"{name}\nstd {stds}")
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    handles = [Patch(facecolor=COLORS[j % len(COLORS)], alpha=0.55, label=label)
               for j, (label, _) in enumerate(weights)]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles),
               fontsize=FONT)
    return _finish(fig, f"latent weights before binarization ({drawn:,} sampled per layer)")


def plot_weight_histograms(
    weights: Sequence[tuple[str, dict[str, np.ndarray]]], path: str, samples: int = 10_000,
    seed: int = 0,
) -> str:
    """Histograms of latent weights per binary layer (the paper's Fig. 2).

    ``weights``: one or two ``(label, {layer: latent weights})`` (see
    :func:`lcr_larq.analysis.diagnosis.latent_weights`); layers are matched by
    name and each histogram uses at most ``samples`` randomly picked weights.
    """
    return _save(build_weight_histograms(weights, samples, seed), path)


# --------------------------------------------------------------------------- correlation
def sample_correlation(activations: np.ndarray) -> np.ndarray:
    """Pearson correlation between the flattened activations of the samples
    of a batch (``B × …`` -> ``B × B``); constant samples get 0 off the diagonal.

    Example:
        >>> a = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [3.0, 1.0, 2.0]])
        >>> np.round(sample_correlation(a)[0], 2).tolist()
        [1.0, 1.0, -0.5]
    """
    x = np.asarray(activations, np.float64).reshape(len(activations), -1)
    x = x - x.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(x, axis=1)
    x = np.divide(x, norm[:, None], out=np.zeros_like(x), where=norm[:, None] > 0)
    corr = x @ x.T
    np.fill_diagonal(corr, 1.0)
    return corr


def channel_cosines(activations: np.ndarray) -> np.ndarray:
    """``X̂ X̂ᵀ / P`` averaged over the batch, as cosines (``C × C``): the matrix
    the retention matrix assumes to be (a multiple of) the identity.

    Example:
        >>> x = np.zeros((1, 2, 2, 2)); x[0, 0, 0, 0] = x[0, 1, 1, 1] = 1.0
        >>> channel_cosines(x).tolist()  # two channels on disjoint positions
        [[1.0, 0.0], [0.0, 1.0]]
    """
    x = np.asarray(activations, np.float64)
    if x.ndim == 4:
        x = x.reshape(x.shape[0], -1, x.shape[-1])
        gram = np.einsum("bpc,bpd->cd", x, x) / (x.shape[0] * x.shape[1])
    else:
        gram = x.T @ x / len(x)
    d = np.sqrt(np.clip(np.diag(gram), 0, None))
    outer = np.outer(d, d)
    cos = np.divide(gram, outer, out=np.zeros_like(gram), where=outer > 0)
    np.fill_diagonal(cos, 1.0)
    return cos


def _off_diagonal_mean(matrix: np.ndarray) -> float:
    n = len(matrix)
    if n < 2:
        return 0.0
    return float((np.abs(matrix).sum() - np.abs(np.diag(matrix)).sum()) / (n * n - n))


def build_activation_correlation(
    name: str, binary: np.ndarray, latent: np.ndarray, label: str = ""
) -> Figure:
    """The figure of :func:`plot_activation_correlation`, unsaved."""
    fig = _figure(8.6, 7.6)
    axes = fig.subplots(2, 2)
    image = None
    for row, (path_name, acts) in enumerate((("binary", binary), ("latent", latent))):
        for col, (kind, unit, matrix) in enumerate((
            ("sample correlation (Eq. 7)", "sample", sample_correlation(acts)),
            ("channel cosines X̂X̂ᵀ/P", "channel", channel_cosines(acts)),
        )):
            ax = axes[row, col]
            image = ax.imshow(matrix, cmap="coolwarm", vmin=-1, vmax=1,
                              interpolation="nearest")
            ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
            ax.yaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
            _labels(ax, unit, unit, f"{path_name} path: {kind}\nmean |off-diagonal| "
                                    f"{_off_diagonal_mean(matrix):.3f}")
    bar = fig.colorbar(image, ax=axes, shrink=0.6)
    bar.set_label("correlation (samples) / cosine (channels)", fontsize=FONT)
    bar.ax.tick_params(labelsize=SMALL)
    return _finish(fig, f"{label + ': ' if label else ''}activations entering {name}, "
                        f"one batch of {len(binary)} test images")


def plot_activation_correlation(
    name: str, binary: np.ndarray, latent: np.ndarray, path: str, label: str = ""
) -> str:
    """The paper's Fig. 3 for one batch: sample correlation and channel cosines
    of the activations entering block ``name`` on the binary and the latent path
    (see :func:`lcr_larq.analysis.diagnosis.block_activations`), 2 × 2 panels."""
    return _save(build_activation_correlation(name, binary, latent, label), path)


# --------------------------------------------------------------------------- robustness
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
    fig = _figure(left + 4.5, 4.8)
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
    _category_ticks(ax, names)
    ax.set_ylim(0, 100)
    _labels(ax, "corruption", "top-1 accuracy (%)",
            "accuracy per corruption (mean over the severities run)")
    ax2.set_xticks([0, *all_sev], ["clean", *(str(s) for s in all_sev)], fontsize=SMALL)
    ax2.set_xlim(-0.5, max(all_sev, default=0) + 0.5)
    ax2.set_ylim(0, 100)
    _labels(ax2, "severity (only those run)", "mean accuracy over corruptions (%)",
            "per severity")
    fig.legend(handles=handles, loc="outside lower center", fontsize=FONT,
               ncol=1 if len(handles) > 3 else len(handles))
    return _finish(fig)


def plot_corruption_accuracy(reports: Sequence[tuple[str, dict]], path: str) -> str:
    """Accuracy per corruption type (mean over severities) and per severity
    (mean over corruptions), one or two ``(label, robustness report)``.

    The per-severity panel has a tick for clean (0) and for each severity
    of the reports, nothing else; a line joins only neighbouring severities
    that were both run (clean and severity 1 included), the others are points.
    """
    return _save(build_corruption_accuracy(reports), path)


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
    fig = _figure(min(14.0, max(7.0, 0.45 * len(names) + 1.5)), 5.0)
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
    _category_ticks(ax, names)
    _labels(ax, "corruption", f"CE ({kind}; lower is better)",
            "corruption error per type, mean ± std over runs")
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", fontsize=FONT)
    return _finish(fig)


def plot_corruption_groups(groups: Sequence[tuple[str, list[dict]]], path: str) -> str:
    """CE per corruption, mean ± standard deviation over the runs of each group
    (e.g. 3 seeds with and without LCR); the legend gives each group's mCE."""
    return _save(build_corruption_groups(groups), path)


# --------------------------------------------------------------------------- Lipschitz
def build_lipschitz(report: dict) -> Figure:
    """The figure of :func:`plot_lipschitz`, unsaved."""
    layers = report["layers"]
    methods = [m for m in report["methods"] if m not in ("exact", "retention_estimate")]
    names = [r["name"] for r in layers]
    panel = min(9.0, max(5.0, 0.16 * len(names) + 1.5))
    fig = _figure(2 * panel + 2.5, 8.6)
    axes = fig.subplots(2, 2)
    markers = dict(zip(
        ("toeplitz_bound", "toeplitz_symbol", "gram_bound", "reshaped_kernel"), "^vos"
    ))
    for col, (ax, suffix, title) in enumerate(((axes[0, 0], "", "binary kernel"),
                                               (axes[0, 1], "_latent", "latent kernel"))):
        for i, m in enumerate(methods):
            ratios = [
                r[m + suffix] / r["exact" + suffix]
                if r.get("exact" + suffix) and r.get(m + suffix) is not None else np.nan
                for r in layers
            ]
            ax.plot(range(len(names)), ratios, marker=markers.get(m, MARKERS[i % 8]), ms=5,
                    ls=LINESTYLES[i % len(LINESTYLES)], color=f"C{i}", label=m)
        ax.axhline(1.0, color="0.5", ls=(0, (4, 3)), lw=0.8, zorder=0,
                   label="= exact norm")
        ax.set_yscale("log")
        _category_ticks(ax, names)
        _labels(ax, "binary convolution", "estimate / exact",
                f"{title}: ratio to the exact norm")
        if col == 1 and (methods or names):
            _legend_beside(ax, title="estimator", title_fontsize=FONT)
    ax = axes[1, 0]
    summary = report["summary"]["methods"]
    labels = list(summary)
    totals = [summary[m]["seconds_total"] + summary[m]["seconds_total_latent"] for m in labels]
    if report.get("blocks"):
        labels.append("retention_estimate")
        totals.append(report["retention"]["seconds"])
    ax.bar(range(len(labels)), totals, color="tab:gray")
    ax.set_yscale("log")
    _category_ticks(ax, labels, rotation=30)
    _labels(ax, "method", "seconds (all layers, binary + latent)", "cost")
    ax = axes[1, 1]
    blocks = [(k + 1, b) for k, b in enumerate(report.get("blocks", []))
              if b.get("exact_product")]
    if blocks:
        key = "exact_bn_product" if blocks[0][1].get("exact_bn_product") else "exact_product"
        for suffix, color, tag in (("", COLORS[0], "binary"), ("_latent", COLORS[1], "latent")):
            pairs = [(b[key + suffix], b["sigma_rm" + (suffix or "_binary")], k)
                     for k, b in blocks if b.get(key + suffix)]
            ax.scatter([p[0] for p in pairs], [p[1] for p in pairs], color=color, label=tag,
                       s=18)
            for x, y, index in pairs:
                ax.annotate(str(index), (x, y), xytext=(3, 2),
                            textcoords="offset points", fontsize=SMALL, color=color)
        ax.set_xscale("log")
        ax.set_yscale("log")
        what = "BN-folded " if key == "exact_bn_product" else ""
        _labels(ax, f"product of the exact {what}norms of the block's binary convs",
                "σ of the retention matrix",
                "retention estimate vs exact, per block (numbers: block index)")
        _legend_beside(ax, title="path", title_fontsize=FONT)
    else:
        ax.axis("off")
        ax.text(0.5, 0.5, "no block-level comparison\n(retention_estimate not computed)",
                ha="center", va="center", fontsize=FONT, transform=ax.transAxes)
    return _finish(fig, f"spectral norms of the binary convolutions of "
                        f"{report.get('model', '')}")


def plot_lipschitz(report: dict, path: str) -> str:
    """Estimators against the exact norm: ratio per layer (binary, latent),
    seconds per method, retention estimate against the exact norms per block."""
    return _save(build_lipschitz(report), path)


# --------------------------------------------------------------------------- studies
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
    fig = _figure(min(14.0, max(8.0, 1.2 * len(arms) + 5.0)), 4.8)
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
            left.errorbar(i + 0.25, stats["mean"] * scale, yerr=err, fmt="o", color="tab:blue",
                          capsize=4, zorder=3, label="mean, 95 % interval" if i == 0 else None)
    # One varied setting: its values name the arms, the setting the axis.
    fields = list(arms[0].get("values") or {})
    names = [_value_name(a["values"][fields[0]]) if len(fields) == 1 else a["arm"]
             for a in arms]
    names = [n + (" (control)" if a["control"] else "") for n, a in zip(names, arms)]
    _category_ticks(left, names, rotation=0 if len(fields) == 1 and len(arms) <= 6 else 90)
    _labels(left, fields[0] if len(fields) == 1 else "arm", unit,
            f"{unit} per arm, {report['confidence']:.0%} Student-t interval")
    _legend_beside(left)
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
    _labels(right, f"{control['arm']} (control) → arm, per seed", unit,
            "paired per seed: one line per seed")
    if others:
        _legend_beside(right)
    return _finish(fig, f"study: {', '.join(report['vary'])} over seeds {report['seeds']}")


def _value_name(value) -> str:
    """A setting's value as an axis label: ``4.0`` as ``4``, ``0.5`` as ``0.5``."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def plot_study(report: dict, path: str, metric: str = "test_accuracy") -> str:
    """A study (``lcr-study``): each arm's runs, mean and 95 % interval (left),
    and every seed's run of the control joined to the same seed's run of
    each arm (right)."""
    return _save(build_study(report, metric), path)
