"""The figures of training: σ_B/σ_F per block, latent weight histograms and
the correlation of the activations entering a block (the paper's Figs. 2 and 3).

Example:
    >>> sigma_ratio_columns({"sigma_ratio_3": [], "epoch": [], "sigma_ratio_1": []})
    ['sigma_ratio_1', 'sigma_ratio_3']
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from lcr_larq.errors import ConfigError
from lcr_larq.plots.style import (
    COLORS,
    FONT,
    HATCHES,
    SMALL,
    axis_labels,
    block_colors,
    block_style,
    category_ticks,
    finish,
    legend_beside,
    new_figure,
    save,
)

__all__ = [
    "CORRELATION_FILE",
    "HISTOGRAM_FILE",
    "SIGMA_FILE",
    "build_activation_correlation",
    "build_sigma_ratio",
    "build_weight_histograms",
    "channel_cosines",
    "plot_activation_correlation",
    "plot_sigma_ratio",
    "plot_weight_histograms",
    "sample_correlation",
    "sigma_ratio_columns",
]

SIGMA_FILE = "sigma_ratio.png"
HISTOGRAM_FILE = "weight_histograms.png"
#: Panels per row of the weight histograms.
HISTOGRAM_COLUMNS = 3
CORRELATION_FILE = "activation_correlation.png"


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
    styles = {k: block_style(i, list(colors.values())) for i, k in enumerate(blocks)}
    final_blocks = max((len(rows) for _, rows in with_final), default=0)
    widths = [5.0] * len(with_history) + ([min(9.0, max(4.0, 0.3 * final_blocks + 1.5))]
                                          if with_final else [])
    fig = new_figure(sum(widths) + 1.0, 4.4)
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
        axis_labels(ax, "epoch", "σ_B / σ_F (training batches)", f"{label}: over training")
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
        category_ticks(ax, [f"{i + 1}: {r['block']}" for i, r in enumerate(longest)])
        samples = longest[0].get("samples", "?")
        axis_labels(ax, "block", "σ_B / σ_F", f"final model, {samples} test images")
        handles = [Patch(facecolor="0.35" if not HATCHES[j % len(HATCHES)] else "white",
                         edgecolor="0.35", hatch=HATCHES[j % len(HATCHES)], label=label)
                   for j, (label, _) in enumerate(with_final)]
        legend_beside(ax, handles=handles, title="run (bars)", title_fontsize=FONT)
    if with_history:
        handles = [Line2D([], [], lw=1.2, ms=4, label=f"block {k}", **styles[k])
                   for k in blocks]
        handles.append(Line2D([], [], color="0.5", lw=0.8, ls=(0, (4, 3)),
                              label="σ_B = σ_F"))
        fig.legend(handles=handles, loc="outside lower center", fontsize=FONT,
                   ncol=min(len(handles), 9))
    return finish(fig, "Lipschitz retention: retention-matrix σ of the binary over the "
                       "latent path, per block")


def plot_sigma_ratio(
    runs: Sequence[tuple[str, dict[str, list[float]], list[dict] | None]], path: str
) -> str:
    """σ_B/σ_F per block over training and for the final model(s).

    ``runs``: ``(label, history, final)`` per model, ``final`` being the rows
    of :func:`lcr_larq.diagnostics.retention.retention_sigmas` (or ``None``). One
    panel per history with ``sigma_ratio_k`` shows every block over the
    epochs; each block keeps its colour, marker and line style (block ``k``
    is row ``k`` of the final measurement) and the legend under the panels
    keys them. The last panel shows each final model's ratio per block, the
    runs told apart by hatching (legend beside it).
    """
    return save(build_sigma_ratio(runs), path)


# --------------------------------------------------------------------------- weights
def build_weight_histograms(
    weights: Sequence[tuple[str, dict[str, np.ndarray]]], samples: int = 10_000,
    seed: int = 0,
) -> Figure:
    """The figure of :func:`plot_weight_histograms`, unsaved."""
    names = list(weights[0][1]) if weights else []
    if not names:
        raise ConfigError("the model has no binary convolution: no latent weights to draw")
    # Three panels a row keep the text legible where the figure is shown at the
    # width of a page or a screen (ResNet-20's 18 layers: 6 rows).
    cols = min(HISTOGRAM_COLUMNS, len(names))
    rows = math.ceil(len(names) / cols)
    fig = new_figure(3.3 * cols + 0.3, 1.9 * rows + 0.9)
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
        axis_labels(ax, "latent weight", "count", f"{name}: std {stds}")
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=3))
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    handles = [Patch(facecolor=COLORS[j % len(COLORS)], alpha=0.55, label=label)
               for j, (label, _) in enumerate(weights)]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles),
               fontsize=FONT)
    return finish(fig, f"latent weights before binarization ({drawn:,} sampled per layer)")


def plot_weight_histograms(
    weights: Sequence[tuple[str, dict[str, np.ndarray]]], path: str, samples: int = 10_000,
    seed: int = 0,
) -> str:
    """Histograms of latent weights per binary layer (the paper's Fig. 2).

    ``weights``: one or two ``(label, {layer: latent weights})`` (see
    :func:`lcr_larq.diagnostics.retention.latent_weights`); layers are matched by
    name and each histogram uses at most ``samples`` randomly picked weights.
    """
    return save(build_weight_histograms(weights, samples, seed), path)


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
    fig = new_figure(8.6, 7.6)
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
            axis_labels(ax, unit, unit, f"{path_name} path: {kind}\nmean |off-diagonal| "
                                        f"{_off_diagonal_mean(matrix):.3f}")
    bar = fig.colorbar(image, ax=axes, shrink=0.6)
    bar.set_label("correlation (samples) / cosine (channels)", fontsize=FONT)
    bar.ax.tick_params(labelsize=SMALL)
    return finish(fig, f"{label + ': ' if label else ''}activations entering {name}, "
                       f"one batch of {len(binary)} test images")


def plot_activation_correlation(
    name: str, binary: np.ndarray, latent: np.ndarray, path: str, label: str = ""
) -> str:
    """The paper's Fig. 3 for one batch: sample correlation and channel cosines
    of the activations entering block ``name`` on the binary and the latent path
    (see :func:`lcr_larq.diagnostics.retention.block_activations`), 2 × 2 panels."""
    return save(build_activation_correlation(name, binary, latent, label), path)
