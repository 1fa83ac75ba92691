"""Figures of a trained run (PNG, matplotlib), written into the run directory.

``python -m lcr_larq.plots --model-dir DIR [--compare DIR2]`` draws, for any
model trained by ``train.py``:

* ``sigma_ratio.png`` — σ_B/σ_F per block: over training from the History the
  LCR layer records (``history.csv``, ``sigma_ratio_k``; runs with λ > 0),
  and for the final model(s) measured on test images (every run, also λ = 0);
* ``weight_histograms.png`` — histograms of the latent weights (before
  binarization) of every binary convolution, 10,000 sampled weights per layer
  as in the paper's Fig. 2; with ``--compare``, both models overlaid (e.g.
  with and without LCR), standard deviations in the titles;
* ``activation_correlation.png`` — the paper's Fig. 3 (the independence
  assumption of Eq. 7): correlation between the activations of the samples
  of one batch at a block's input, binary and latent full-precision path,
  and beside it the channel Gram matrix ``X̂ X̂ᵀ / P`` (as cosines) that the
  retention matrix assumes to be the identity;

and, when ``robustness.json`` (``lcr_larq.evaluate``) or ``lipschitz.json``
(``lcr_larq.diagnose``) exist:

* ``corruption_accuracy.png`` — accuracy per corruption type and per
  severity, one or two models;
* ``lipschitz.png`` — each estimator's ratio to the exact norm per layer,
  its cost, and the retention estimate against the exact norms per block;
* ``corruption_error_groups.png`` (with ``--group LABEL:DIR1,DIR2,...``,
  repeated) — CE per corruption, mean ± std over each group's runs, e.g. three
  seeds with and without LCR.

Example:
    >>> paths = make_plots("runs/latest")  # doctest: +SKIP
    >>> sorted(os.path.basename(p) for p in paths)[:2]  # doctest: +SKIP
    ['activation_correlation.png', 'sigma_ratio.png']
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

SIGMA_FILE = "sigma_ratio.png"
HISTOGRAM_FILE = "weight_histograms.png"
CORRELATION_FILE = "activation_correlation.png"
CORRUPTION_FILE = "corruption_accuracy.png"
LIPSCHITZ_FILE = "lipschitz.png"
GROUPS_FILE = "corruption_error_groups.png"
COLORS = ("tab:blue", "tab:orange")


class PlotError(ValueError):
    """A figure that cannot be drawn; the message names the fix."""


def run_label(recipe: dict, model_dir: str) -> str:
    """A short legend label of a run: its λ and seed, else the directory name.

    Example:
        >>> run_label({"lcr_lambda": 4.0, "seed": 1}, "runs/x")
        'λ=4 (LCR), seed 1'
        >>> run_label({}, "runs/baseline/")
        'baseline'
    """
    lam = recipe.get("lcr_lambda")
    if lam is None:
        return os.path.basename(os.path.normpath(model_dir))
    text = f"λ={float(lam):g}" + (" (LCR)" if float(lam) > 0 and not recipe.get(
        "full_precision") else "")
    if recipe.get("seed") is not None:
        text += f", seed {recipe['seed']}"
    return text


def _save(fig, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- σ_B/σ_F
def read_history(model_dir: str) -> dict[str, list[float]]:
    """``history.csv`` of a run as columns of floats (``NaN`` for ``NA``); ``{}``
    when absent.

    Example:
        >>> read_history("/nonexistent")
        {}
    """
    path = os.path.join(model_dir, "history.csv")
    if not os.path.isfile(path):
        return {}
    columns: dict[str, list[float]] = {}
    with open(path) as handle:
        for row in csv.DictReader(handle):
            for key, value in row.items():
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    number = math.nan
                columns.setdefault(key, []).append(number)
    return columns


def sigma_ratio_columns(history: dict[str, list[float]]) -> list[str]:
    """The ``sigma_ratio_k`` columns of a History, in block order.

    Example:
        >>> sigma_ratio_columns({"sigma_ratio_10": [], "loss": [], "sigma_ratio_2": []})
        ['sigma_ratio_2', 'sigma_ratio_10']
    """
    keys = [k for k in history if k.startswith("sigma_ratio_") and k[12:].isdigit()]
    return sorted(keys, key=lambda k: int(k[12:]))


def plot_sigma_ratio(
    runs: Sequence[tuple[str, dict[str, list[float]], list[dict] | None]], path: str
) -> str:
    """σ_B/σ_F per block over training and for the final model(s).

    ``runs``: ``(label, history, final)`` per model, ``final`` being the rows
    of :func:`lcr_larq.diagnose.retention_sigmas` (or ``None``). The left
    panel (drawn when a history has ``sigma_ratio_k``) shows every block over
    the epochs, a colour map from the first block (light) to the last (dark);
    the right panel shows the final model's ratio per block.
    """
    with_history = [(label, h) for label, h, _ in runs if sigma_ratio_columns(h)]
    with_final = [(label, f) for label, _, f in runs if f]
    panels = len(with_history) + (1 if with_final else 0)
    if not panels:
        raise PlotError("no σ_B/σ_F to draw: no LCR history and no final measurement")
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4), squeeze=False)
    axes = axes[0]
    for ax, (label, history) in zip(axes, with_history):
        keys = sigma_ratio_columns(history)
        cmap = plt.get_cmap("viridis_r")
        epochs = history.get("epoch") or list(range(len(history[keys[0]])))
        epochs = [e + 1 for e in epochs]
        for i, key in enumerate(keys):
            ax.plot(epochs, history[key], color=cmap(0.15 + 0.85 * i / max(1, len(keys) - 1)),
                    label=f"block {key[12:]}")
        ax.axhline(1.0, color="gray", lw=0.8, ls="--")
        ax.set(xlabel="epoch", ylabel="σ_B / σ_F (training batches)",
               title=f"{label}: over training")
        ax.legend(fontsize=7, ncol=2)
    if with_final:
        ax = axes[-1]
        width = 0.8 / len(with_final)
        for j, (label, rows) in enumerate(with_final):
            x = np.arange(len(rows))
            ax.bar(x + (j - (len(with_final) - 1) / 2) * width,
                   [r["sigma_ratio"] for r in rows], width, label=label, color=COLORS[j % 2])
        ax.axhline(1.0, color="gray", lw=0.8, ls="--")
        names = [r["block"] for r in with_final[0][1]]
        ax.set_xticks(np.arange(len(names)), names, rotation=45, ha="right", fontsize=8)
        samples = with_final[0][1][0]["samples"]
        ax.set(ylabel="σ_B / σ_F", title=f"final model, {samples} test images")
        ax.legend(fontsize=8)
    fig.suptitle("Lipschitz retention: retention-matrix σ of the binary over the latent path")
    fig.tight_layout()
    return _save(fig, path)


# --------------------------------------------------------------------------- weights
def latent_weights(model) -> dict[str, np.ndarray]:
    """Latent (pre-binarization) weights of every binary convolution, flattened.

    Example:
        >>> from models import build_model
        >>> w = latent_weights(build_model("resnet20", (16, 16, 1), 10))
        >>> len(w), w["block1_conv1"].shape
        (18, (2304,))
    """
    from lcr_larq.diagnose import binary_conv_layers

    out = {}
    for layer in binary_conv_layers(model):
        variable = getattr(layer, "depthwise_kernel", None)
        if variable is None:
            variable = layer.kernel
        latent = getattr(variable, "latent_variable", variable)
        out[layer.name] = np.asarray(latent.numpy(), np.float64).ravel()
    return out


def plot_weight_histograms(
    models: Sequence[tuple[str, Any]], path: str, samples: int = 10_000, seed: int = 0
) -> str:
    """Histograms of latent weights per binary layer (the paper's Fig. 2).

    ``models``: one or two ``(label, model)``; layers are matched by name and
    each histogram uses at most ``samples`` randomly picked weights.
    """
    weights = [(label, latent_weights(model)) for label, model in models]
    names = list(weights[0][1])
    if not names:
        raise PlotError("the model has no binary convolution: no latent weights to draw")
    cols = min(6, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.8 * cols, 2.3 * rows), squeeze=False)
    rng = np.random.default_rng(seed)
    for ax, name in zip(axes.ravel(), names):
        stds = []
        data = []
        for label, per_layer in weights:
            w = per_layer.get(name)
            if w is None:
                continue
            if len(w) > samples:
                w = rng.choice(w, samples, replace=False)
            data.append((label, w))
            stds.append(f"{w.std():.3g}")
        low = min(float(w.min()) for _, w in data)
        high = max(float(w.max()) for _, w in data)
        bins = np.linspace(low, high if high > low else low + 1e-6, 61)
        for j, (label, w) in enumerate(data):
            ax.hist(w, bins=bins, alpha=0.55, color=COLORS[j % 2], label=label)
        ax.set_title(f"{name}\nstd {' / '.join(stds)}", fontsize=8)
        ax.tick_params(labelsize=6)
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right", fontsize=8)
    fig.suptitle("latent weights before binarization (10,000 sampled per layer)", y=1.0)
    fig.tight_layout()
    return _save(fig, path)


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


def block_activations(model, images: np.ndarray, block: str | None = None):
    """``(block name, binary, latent)`` activations entering a block (default:
    the last one) for ``images``, binary path in inference mode."""
    import tensorflow as tf

    from lcr_larq.graph import find_blocks, full_precision_path

    blocks = find_blocks(model)
    if block is None:
        chosen = blocks[-1]
    else:
        matches = [b for b in blocks if b.name == block]
        if not matches:
            raise PlotError(
                f"no block {block!r}; the blocks are {', '.join(b.name for b in blocks)}"
            )
        chosen = matches[0]
    (latent,) = full_precision_path(model, [chosen.input])
    probe = tf.keras.Model(model.inputs, [chosen.input, latent])
    binary, full = probe(tf.constant(images, tf.float32), training=False)
    return chosen.name, binary.numpy(), full.numpy()


def plot_activation_correlation(
    model, images: np.ndarray, path: str, block: str | None = None, label: str = ""
) -> str:
    """The paper's Fig. 3 for one batch: sample correlation and channel cosines
    of the activations entering ``block``, binary and latent path (2 × 2)."""
    name, binary, latent = block_activations(model, images, block)
    fig, axes = plt.subplots(2, 2, figsize=(9, 8))
    for row, (path_name, acts) in enumerate((("binary", binary), ("latent", latent))):
        for col, (kind, matrix) in enumerate((
            ("sample correlation (Eq. 7)", sample_correlation(acts)),
            ("channel cosines X̂X̂ᵀ/P", channel_cosines(acts)),
        )):
            ax = axes[row, col]
            im = ax.imshow(matrix, cmap="coolwarm", vmin=-1, vmax=1)
            ax.set_title(
                f"{path_name}: {kind}\nmean |off-diagonal| {_off_diagonal_mean(matrix):.3f}",
                fontsize=9,
            )
            ax.set_xlabel("sample" if col == 0 else "channel", fontsize=8)
    fig.colorbar(im, ax=axes, shrink=0.6)
    fig.suptitle(
        f"{label + ': ' if label else ''}activations entering {name}, one batch of "
        f"{len(images)} test images"
    )
    return _save(fig, path)


# --------------------------------------------------------------------------- robustness
def plot_corruption_accuracy(reports: Sequence[tuple[str, dict]], path: str) -> str:
    """Accuracy per corruption type (mean over severities) and per severity
    (mean over corruptions), one or two ``(label, robustness report)``."""
    fig, (ax, ax2) = plt.subplots(
        1, 2, figsize=(14, 4.5), gridspec_kw={"width_ratios": [3, 1]}
    )
    names = list(reports[0][1]["accuracy"])
    width = 0.8 / len(reports)
    for j, (label, rep) in enumerate(reports):
        color = COLORS[j % 2]
        means = [100 * np.mean(list(rep["accuracy"].get(c, {}).values()) or [np.nan])
                 for c in names]
        x = np.arange(len(names)) + (j - (len(reports) - 1) / 2) * width
        kind = "normalized" if rep["normalized"] else "unnormalized"
        ax.bar(x, means, width, color=color, label=f"{label}: mCE {rep['mce']:.3f} ({kind})")
        ax.axhline(100 * rep["clean_accuracy"], color=color, ls="--", lw=1)
        sev = rep["severities"]
        by_sev = [100 * np.mean([by[str(s)] for by in rep["accuracy"].values()]) for s in sev]
        ax2.plot([0, *sev], [100 * rep["clean_accuracy"], *by_sev], "o-", color=color, label=label)
    ax.set_xticks(np.arange(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set(ylabel="top-1 accuracy (%)", ylim=(0, 100),
           title="accuracy per corruption (mean over severities; dashed: clean)")
    ax.legend(fontsize=8, loc="lower left")
    ax2.set(xlabel="severity (0 = clean)", ylabel="mean accuracy (%)", ylim=(0, 100),
            title="per severity")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


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
        raise PlotError("a group needs at least one robustness.json")
    if len({bool(r["normalized"]) for r in reports}) > 1:
        raise PlotError("a group mixes normalized and unnormalized reports")

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


def plot_corruption_groups(groups: Sequence[tuple[str, list[dict]]], path: str) -> str:
    """CE per corruption, mean ± standard deviation over the runs of each group
    (e.g. 3 seeds with and without LCR); the legend gives each group's mCE."""
    summaries = [(label, group_summary(reports)) for label, reports in groups]
    names = list(summaries[0][1]["corruption_error"])
    fig, ax = plt.subplots(figsize=(14, 4.8))
    width = 0.8 / len(summaries)
    for j, (label, s) in enumerate(summaries):
        x = np.arange(len(names)) + (j - (len(summaries) - 1) / 2) * width
        ce = s["corruption_error"]
        ax.bar(x, [ce[c]["mean"] for c in names], width, yerr=[ce[c]["std"] for c in names],
               capsize=2, color=COLORS[j % 2] if j < 2 else None,
               label=f"{label}: mCE {s['mce_mean']:.3f} ± {s['mce_std']:.3f}, clean "
               f"{100 * s['clean_accuracy_mean']:.1f} ± {100 * s['clean_accuracy_std']:.1f}% "
               f"({s['runs']} runs)")
    kind = "normalized by AlexNet" if summaries[0][1]["normalized"] else "unnormalized"
    ax.set_xticks(np.arange(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set(ylabel=f"CE ({kind}; lower is better)",
           title="corruption error per type, mean ± std over runs")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def parse_group(text: str) -> tuple[str, list[str]]:
    """``LABEL=DIR1,DIR2,...`` of ``--group``.

    Example:
        >>> parse_group("λ=4:runs/a,runs/b")
        ('λ=4', ['runs/a', 'runs/b'])
    """
    label, sep, dirs = text.rpartition(":")
    if not sep or not label or not dirs:
        raise PlotError(f"--group {text!r}: write LABEL:DIR1,DIR2,...")
    return label, [d for d in dirs.split(",") if d]


# --------------------------------------------------------------------------- Lipschitz
def plot_lipschitz(report: dict, path: str) -> str:
    """Estimators against the exact norm: ratio per layer (binary, latent),
    seconds per method, retention estimate against the exact norms per block."""
    layers = report["layers"]
    methods = [m for m in report["methods"] if m not in ("exact", "retention_estimate")]
    names = [r["name"] for r in layers]
    fig, axes = plt.subplots(2, 2, figsize=(14, 9))
    markers = dict(zip(
        ("toeplitz_bound", "toeplitz_symbol", "gram_bound", "reshaped_kernel"), "^vos"
    ))
    for ax, suffix, title in ((axes[0, 0], "", "binary kernel"),
                              (axes[0, 1], "_latent", "latent kernel")):
        for m in methods:
            ratios = [
                r[m + suffix] / r["exact" + suffix] if r.get("exact" + suffix) else np.nan
                for r in layers
            ]
            ax.plot(range(len(names)), ratios, markers.get(m, "x") + "-", label=m, ms=5)
        ax.axhline(1.0, color="gray", ls="--", lw=0.8)
        ax.set_yscale("log")
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
        ax.set(ylabel="estimate / exact", title=f"{title}: ratio to the exact norm")
        ax.legend(fontsize=8)
    ax = axes[1, 0]
    summary = report["summary"]["methods"]
    labels = list(summary)
    totals = [summary[m]["seconds_total"] + summary[m]["seconds_total_latent"] for m in labels]
    if report.get("blocks"):
        labels.append("retention_estimate")
        totals.append(report["retention"]["seconds"])
    ax.bar(range(len(labels)), totals, color="tab:gray")
    ax.set_yscale("log")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
    ax.set(ylabel="seconds (all layers, binary + latent)", title="cost")
    ax = axes[1, 1]
    blocks = [b for b in report.get("blocks", []) if b.get("exact_product")]
    if blocks:
        key = "exact_bn_product" if blocks[0].get("exact_bn_product") else "exact_product"
        for suffix, color, tag in (("", COLORS[0], "binary"), ("_latent", COLORS[1], "latent")):
            pairs = [(b[key + suffix], b["sigma_rm" + (suffix or "_binary")], b["block"])
                     for b in blocks if b.get(key + suffix)]
            xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
            ax.scatter(xs, ys, color=color, label=tag)
            for x, y, name in pairs:
                ax.annotate(name.replace("_out", ""), (x, y), fontsize=6)
        ax.set_xscale("log")
        ax.set_yscale("log")
        what = "BN-folded " if key == "exact_bn_product" else ""
        ax.set(xlabel=f"product of the exact {what}norms of the block's binary convs",
               ylabel="σ of the retention matrix",
               title="retention estimate vs exact, per block")
        ax.legend(fontsize=8)
    else:
        ax.axis("off")
        ax.text(0.5, 0.5, "no block-level comparison\n(retention_estimate not computed)",
                ha="center", va="center")
    fig.suptitle(f"spectral norms of the binary convolutions of {report.get('model', '')}")
    fig.tight_layout()
    return _save(fig, path)


# --------------------------------------------------------------------------- all
def _read_json(path: str) -> dict | None:
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        raise PlotError(f"{path} is not readable JSON: rerun the command that writes it") from None


def make_plots(
    model_dir: str,
    compare: str | None = None,
    output_dir: str | None = None,
    samples: int = 64,
    block: str | None = None,
    data_dir: str | None = None,
) -> list[str]:
    """Draws every figure available for ``model_dir`` (and ``compare``); returns
    the paths written. ``samples`` test images feed the measured figures."""
    from lcr_larq.diagnose import retention_sigmas, sample_images
    from lcr_larq.evaluate import load_run

    out = output_dir or model_dir
    dirs = [model_dir] + ([compare] if compare else [])
    runs = [load_run(d, data_dir=data_dir) for d in dirs]
    labels = [run_label(r.recipe, r.model_dir) for r in runs]
    if len(labels) == 2 and labels[0] == labels[1]:
        labels = [os.path.basename(os.path.normpath(d)) for d in dirs]
    images = [sample_images(r.dataset, samples) for r in runs]
    paths = []
    finals = [retention_sigmas(r.model, x, iterations=100) for r, x in zip(runs, images)]
    paths.append(plot_sigma_ratio(
        [(label, read_history(d), f) for label, d, f in zip(labels, dirs, finals)],
        os.path.join(out, SIGMA_FILE),
    ))
    paths.append(plot_weight_histograms(
        [(label, r.model) for label, r in zip(labels, runs)], os.path.join(out, HISTOGRAM_FILE)
    ))
    paths.append(plot_activation_correlation(
        runs[0].model, images[0][:32], os.path.join(out, CORRELATION_FILE), block, labels[0]
    ))
    reports = [(label, _read_json(os.path.join(d, "robustness.json")))
               for label, d in zip(labels, dirs)]
    reports = [(label, rep) for label, rep in reports if rep]
    if reports:
        paths.append(plot_corruption_accuracy(reports, os.path.join(out, CORRUPTION_FILE)))
    lipschitz = _read_json(os.path.join(model_dir, "lipschitz.json"))
    if lipschitz:
        paths.append(plot_lipschitz(lipschitz, os.path.join(out, LIPSCHITZ_FILE)))
    return paths


def main(argv: list[str] | None = None) -> int:
    """``python -m lcr_larq.plots``: 0 on success, 2 with a one-line error."""
    parser = argparse.ArgumentParser(
        prog="python -m lcr_larq.plots",
        description="Figures of a run trained by train.py (σ_B/σ_F, weight histograms, "
        "activation correlation, corruption accuracy, Lipschitz estimators).",
    )
    parser.add_argument("--model-dir", required=True, help="run directory written by train.py")
    parser.add_argument("--compare", help="a second run directory (e.g. without LCR)")
    parser.add_argument("--output-dir", help="where the PNGs go (default: --model-dir)")
    parser.add_argument("--samples", type=int, default=64,
                        help="test images for the measured figures (default 64)")
    parser.add_argument("--block", help="block of the correlation figure (default: the last)")
    parser.add_argument("--data-dir", help="dataset directory (default: the run's)")
    parser.add_argument(
        "--group", action="append", default=[], metavar="LABEL:DIR1,DIR2,...",
        help="runs whose robustness.json are averaged (e.g. seeds); repeat per group; "
        f"draws {GROUPS_FILE} in --output-dir (default: --model-dir)",
    )
    args = parser.parse_args(argv)

    from lcr_larq import config as cfg
    from lcr_larq import data as lcr_data
    from lcr_larq.diagnose import DiagnoseError
    from lcr_larq.evaluate import EvaluationError
    from lcr_larq.training import TrainingError

    try:
        if args.samples < 2:
            raise PlotError(f"--samples must be >= 2, got {args.samples}")
        groups = []
        for text in args.group:
            label, dirs = parse_group(text)
            reports = []
            for d in dirs:
                report = _read_json(os.path.join(d, "robustness.json"))
                if report is None:
                    raise PlotError(
                        f"{d} has no robustness.json: run python -m lcr_larq.evaluate on it"
                    )
                reports.append(report)
            groups.append((label, reports))
        paths = make_plots(
            args.model_dir, args.compare, args.output_dir, args.samples, args.block,
            args.data_dir,
        )
        if groups:
            out = os.path.join(args.output_dir or args.model_dir, GROUPS_FILE)
            paths.append(plot_corruption_groups(groups, out))
            for label, reports in groups:
                s = group_summary(reports)
                print(
                    f"{label}: mCE {s['mce_mean']:.4f} ± {s['mce_std']:.4f}, clean accuracy "
                    f"{100 * s['clean_accuracy_mean']:.2f} ± {100 * s['clean_accuracy_std']:.2f}%"
                    f" over {s['runs']} runs"
                )
    except (PlotError, DiagnoseError, EvaluationError, TrainingError, cfg.ConfigError,
            lcr_data.DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: cannot write the figures ({error.strerror}): check --output-dir",
              file=sys.stderr)
        return 2
    for path in paths:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
