"""The figure of ``lcr-diagnose``'s report: estimators of the spectral norm of
each binary convolution against the exact norm, their cost, and the retention
estimate of each block against the exact norms of its convolutions."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from lcr_larq.plots.style import (
    COLORS,
    FONT,
    LINESTYLES,
    MARKERS,
    SMALL,
    axis_labels,
    category_ticks,
    finish,
    legend_beside,
    new_figure,
    save,
)

__all__ = [
    "LIPSCHITZ_FILE",
    "build_lipschitz",
    "plot_lipschitz",
]

LIPSCHITZ_FILE = "lipschitz.png"


def build_lipschitz(report: dict) -> Figure:
    """The figure of :func:`plot_lipschitz`, unsaved."""
    names = [r["name"] for r in report["layers"]]
    panel = min(9.0, max(5.0, 0.16 * len(names) + 1.5))
    fig = new_figure(2 * panel + 2.5, 8.6)
    axes = fig.subplots(2, 2)
    _ratio_panel(axes[0, 0], report, "", "binary kernel", legend=False)
    _ratio_panel(axes[0, 1], report, "_latent", "latent kernel", legend=True)
    _cost_panel(axes[1, 0], report)
    _block_panel(axes[1, 1], report)
    return finish(fig, f"spectral norms of the binary convolutions of "
                       f"{report.get('model', '')}")


def _ratio_panel(ax, report: dict, suffix: str, title: str, legend: bool) -> None:
    """Each estimator over the exact norm, per layer, for the binary (``suffix``
    ``""``) or the latent (``"_latent"``) kernels; the legend beside it."""
    layers = report["layers"]
    methods = [m for m in report["methods"] if m not in ("exact", "retention_estimate")]
    names = [r["name"] for r in layers]
    markers = dict(zip(
        ("toeplitz_bound", "toeplitz_symbol", "gram_bound", "reshaped_kernel"), "^vos"
    ))
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
    category_ticks(ax, names)
    axis_labels(ax, "binary convolution", "estimate / exact",
                f"{title}: ratio to the exact norm")
    if legend and (methods or names):
        legend_beside(ax, title="estimator", title_fontsize=FONT)


def _cost_panel(ax, report: dict) -> None:
    """Seconds each method took over all layers (binary + latent kernels)."""
    summary = report["summary"]["methods"]
    labels = list(summary)
    totals = [summary[m]["seconds_total"] + summary[m]["seconds_total_latent"] for m in labels]
    if report.get("blocks"):
        labels.append("retention_estimate")
        totals.append(report["retention"]["seconds"])
    ax.bar(range(len(labels)), totals, color="tab:gray")
    ax.set_yscale("log")
    category_ticks(ax, labels, rotation=30)
    axis_labels(ax, "method", "seconds (all layers, binary + latent)", "cost")


def _block_panel(ax, report: dict) -> None:
    """σ of each block's retention matrix against the product of the exact
    (BN-folded when measured) norms of its binary convolutions, both paths."""
    blocks = [(k + 1, b) for k, b in enumerate(report.get("blocks", []))
              if b.get("exact_product")]
    if not blocks:
        ax.axis("off")
        ax.text(0.5, 0.5, "no block-level comparison\n(retention_estimate not computed)",
                ha="center", va="center", fontsize=FONT, transform=ax.transAxes)
        return
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
    axis_labels(ax, f"product of the exact {what}norms of the block's binary convs",
                "σ of the retention matrix",
                "retention estimate vs exact, per block (numbers: block index)")
    legend_beside(ax, title="path", title_fontsize=FONT)


def plot_lipschitz(report: dict, path: str) -> str:
    """Estimators against the exact norm: ratio per layer (binary, latent),
    seconds per method, retention estimate against the exact norms per block."""
    return save(build_lipschitz(report), path)
