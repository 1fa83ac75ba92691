"""The report of ``lcr-diagnose``: how good is each spectral-norm estimate of a trained BNN?

``lcr-diagnose --model-dir DIR`` computes, for every binary
convolution of the run's plain BNN, the spectral norm of the operator the
layer really applies, and of the same layer with its latent weights, with
five methods, and writes ``DIR/lipschitz.json`` (a list ``layers``, one row
per layer) and ``DIR/lipschitz.png``, and prints a table.

The operator. A binary convolution computes ``y = conv(q(x), Q(W))`` with the
input quantizer ``q`` (sign, for 1w1a) and the effective binary kernel
``Q(W)`` (read inside ``larq.context.quantized_scope(True)``: IR-Net's
LibraSign gives the sign of the standardized weights times a per-channel
power of two, ``ste_sign`` gives ±1). The sign of the input is not linear:
the operator measured is the convolution acting on the layer's (binarized)
input, ``x_b -> conv(x_b, Q(W))``, with the layer's stride and padding at
its input size (``layer.input_shape``). The "latent" operator is the same
convolution with the latent weights ``W`` (``kernel.latent_variable``).

Padding. The 1w1a layers pad with ``pad_values=1.0`` (so that the padded
input stays binary). A constant non-zero padding makes the layer *affine*:
``conv_pad1(x) = conv_pad0(x) + conv_pad0(P)`` where ``P`` is 1 on the
padding frame and 0 inside; the offset does not depend on ``x``. The
Lipschitz constant (the norm of the linear part) is therefore the norm of the
zero-padded convolution, which is what every method below computes.
``operator_check`` in each row verifies this on the layer itself:
``layer(a) - layer(b) == conv_pad0(a - b, Q(W))`` for random ±1 inputs.
Grouped, depthwise and dilated convolutions are expanded to the equivalent
dense kernel (block-diagonal channels, zero-inserted taps) first.

Methods (keys of each row; ``<key>_latent`` holds the latent value and
``seconds[<key>]`` the time each took):

* ``exact`` — block power iteration on ``A^T A`` with ``tf.nn.conv2d`` and
  its transpose until converged (:func:`lcr_larq.lipschitz.conv_operator_norm`),
  the reference;
* ``toeplitz_bound`` — the upper bound of Araujo et al. (AAAI 2021) from
  Toeplitz matrix theory, with a provable grid correction
  (:func:`lcr_larq.lipschitz.toeplitz_bound`); ``toeplitz_symbol`` (on
  request) is the tighter ``sup_w sigma_max`` of the symbol;
* ``gram_bound`` — the Gram-iteration upper bound of Delattre et al.
  (ICML 2023) (:func:`lcr_larq.lipschitz.gram_bound`);
* ``reshaped_kernel`` — ``||W reshaped to C_out x (C_in k k)||_2``, the
  spectral-normalization heuristic (not a bound);
* ``retention_estimate`` — ``sigma = sqrt(lambda_max(RM))`` of the LCR
  retention matrix of the *block* holding the layer, on real test batches
  (mean over samples; binary path and latent full-precision path,
  :func:`lcr_larq.graph.full_precision_path`), many power iterations.

The retention matrix is defined per block (residual block: two binary convs,
batch norms, activations and the shortcut), so it cannot be compared with one
layer's norm alone. ``blocks`` in the report puts each block's ``sigma_RM``
beside the exact norms of its binary convs and their product (a Lipschitz
bound of the block's conv path), and ``summary.retention_tracking`` gives
the correlation over blocks of ``log sigma_RM`` with ``log`` of that
product, for the binary and the latent path, and of the binary/latent
ratios (what LCR pulls towards 1) — the assumption of the paper, measured.

The whole network (``summary.network``, :func:`network_lipschitz`): an
empirical local Lipschitz estimate of the deployed BNN — the largest L2 norm,
over test images, of the input gradient of the logit margin through the
straight-through estimator (:func:`lcr_larq.diagnostics.empirical.empirical_lipschitz`)
— beside the product of the exact norms of its binary convolutions.

Example:
    >>> from models import build_model
    >>> model = build_model("resnet20", (8, 8, 1), 10)
    >>> report = diagnose(model, None, ["exact", "toeplitz_bound"], max_layers=2)
    >>> all(r["toeplitz_bound"] >= r["exact"] * (1 - 1e-6) for r in report["layers"])
    True

This module builds the report; the per-layer operators and their norms are
:mod:`lcr_larq.diagnostics.kernels`, the retention estimate
:mod:`lcr_larq.diagnostics.retention`. Command line: ``lcr-diagnose``
(:mod:`lcr_larq.cli.diagnose`).
"""

from __future__ import annotations

import fnmatch
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from lcr_larq.attack_view import AttackTarget
from lcr_larq.data import DatasetSpec, dataset_spec
from lcr_larq.diagnostics.empirical import empirical_lipschitz
from lcr_larq.diagnostics.kernels import (
    batchnorm_scale,
    expand_kernel,
    following_batchnorm,
    kernel_norms,
    latent_output_variances,
    layer_geometry,
    layer_kernels,
    operator_check,
)
from lcr_larq.diagnostics.retention import (
    block_activations,
    block_layer_names,
    latent_weights,
    retention_sigmas,
    sample_images,
)
from lcr_larq.errors import RunError
from lcr_larq.graph import as_float32
from lcr_larq.quantizers import quantized_convolutions
from lcr_larq.settings import expand_names, setting
from lcr_larq.training import runs
from lcr_larq.training.runs import ReportSettings

__all__ = [
    "REPORT_FILE", "PLOT_FILE", "KERNEL_METHODS", "METHODS", "DEFAULT_METHODS", "BOUNDS",
    "NOTES", "DiagnoseSettings", "parse_methods", "select_layers", "layer_row", "block_rows",
    "summarize", "diagnose", "diagnose_run", "network_lipschitz",
    # the per-layer operators (lcr_larq.diagnostics.kernels) and the retention
    # estimate (lcr_larq.diagnostics.retention), importable from here as well
    "expand_kernel", "layer_kernels", "layer_geometry", "operator_check",
    "following_batchnorm", "batchnorm_scale", "latent_output_variances", "kernel_norms",
    "block_layer_names", "latent_weights", "block_activations", "sample_images",
    "retention_sigmas",
]

REPORT_FILE = "lipschitz.json"
PLOT_FILE = "lipschitz.png"
KERNEL_METHODS = ("exact", "toeplitz_bound", "toeplitz_symbol", "gram_bound", "reshaped_kernel")
METHODS = (*KERNEL_METHODS, "retention_estimate")
DEFAULT_METHODS = ("exact", "toeplitz_bound", "gram_bound", "reshaped_kernel", "retention_estimate")
BOUNDS = ("toeplitz_bound", "toeplitz_symbol", "gram_bound")


@dataclass
class DiagnoseSettings(ReportSettings):
    """The settings of ``lcr-diagnose``."""

    report_file: ClassVar[str] = REPORT_FILE
    methods: tuple[str, ...] = setting(
        ("default",),
        f"default ({' '.join(DEFAULT_METHODS)}), all, or names of {' '.join(METHODS)}",
        metavar="METHOD",
    )
    layers: tuple[str, ...] | None = setting(
        None, "layer names or wildcards, e.g. 'block9_*' (default: every binary conv)",
        metavar="NAME",
    )
    max_layers: int | None = setting(None, "diagnose at most N binary convolutions", low=1)
    samples: int = setting(128, "test images for the retention estimate", low=1, high=10**6)
    empirical_samples: int = setting(
        1000, "test images (the first N) of the empirical local Lipschitz estimate of the "
        "deployed network: the largest norm of the logit margin's input gradient, through "
        "the straight-through estimator; 0: skip it", low=0, high=10**7,
    )
    batch_size: int = setting(64, "batch size of the retention estimate", low=1, high=2**16)
    rm_iterations: int = setting(
        100, "power iterations of the retention estimate", low=1, high=100_000
    )
    exact_iterations: int = setting(
        500, "maximum iterations of the exact method", low=1, high=1_000_000
    )
    exact_tol: float = setting(1e-6, "relative tolerance of the exact method", above=0, high=1)
    data_dir: str | None = setting(None, "dataset directory (default: the run's)")
    dataset: str | None = setting(None, "dataset of the retention estimate, if not the run's")
    output: str | None = setting(None, f"report path (default: DIR/{REPORT_FILE})")
    no_plot: bool = setting(False, f"do not draw {PLOT_FILE}")
    quiet: bool = setting(False, "no progress lines")

    @property
    def method_list(self) -> list[str]:
        return parse_methods(self.methods)

    @property
    def dataset_spec(self) -> DatasetSpec | None:
        """``--dataset`` parsed when the settings were made; None: the run's."""
        return self._dataset_spec

    def check(self) -> None:
        super().check()
        self._dataset_spec = dataset_spec(self.dataset) if self.dataset else None
        parse_methods(self.methods)


def parse_methods(parts) -> list[str]:
    """Methods of ``--methods``: ``default``, ``all`` or names.

    Example:
        >>> parse_methods(["exact", "gram_bound"])
        ['exact', 'gram_bound']
        >>> parse_methods(["all"])[-1]
        'retention_estimate'
    """
    names = expand_names(parts, {"default": DEFAULT_METHODS, "all": METHODS}, METHODS, "method")
    return [m for m in METHODS if m in names]


# --------------------------------------------------------------------------- layers
def select_layers(
    layers: Sequence, patterns: Sequence[str] | None = None, max_layers: int | None = None
) -> list:
    """Layers whose name matches one of ``patterns`` (shell wildcards), at most
    ``max_layers`` of them, in model order.

    Example:
        >>> class L:  # a stand-in with a name
        ...     def __init__(self, name): self.name = name
        >>> [l.name for l in select_layers([L("a1"), L("b1"), L("a2")], ["a*"], 1)]
        ['a1']
    """
    chosen = [
        layer for layer in layers
        if not patterns or any(fnmatch.fnmatchcase(layer.name, p) for p in patterns)
    ]
    if patterns and not chosen:
        raise RunError(
            f"no binary convolution matches --layers {','.join(patterns)}; the layers are "
            + ", ".join(layer.name for layer in layers)
        )
    return chosen[:max_layers] if max_layers else chosen


# --------------------------------------------------------------------------- report
def _pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 3 or x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def _log(values) -> list[float]:
    return [math.log(v) if v and v > 0 else math.nan for v in values]


def _product(rows: list[dict], key: str) -> float | None:
    values = [r.get(key) for r in rows]
    if not values or any(v is None for v in values):
        return None
    return float(np.prod(values))


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def block_rows(retention: list[dict], layers: list[dict]) -> list[dict]:
    """Each block's ``sigma_RM`` beside the exact norms of its binary convs.

    ``exact_product`` is the product of the exact norms of the block's binary
    convs (``_latent``: latent kernels); ``exact_bn_product`` the same with
    each conv's batch norm folded in (the linear map between the input sign
    and the activation: a Lipschitz bound of the residual branch with the
    sign taken as the identity). Ratios ``*_ratio`` are binary over latent;
    ``rm_over_*`` divide ``sigma_RM`` by a product.

    Example:
        >>> ret = [{"block": "b1", "layers": ["c1", "c2", "bn"], "sigma_binary": 3.0,
        ...         "sigma_latent": 1.5, "sigma_ratio": 2.0}]
        >>> lay = [{"name": "c1", "exact": 2.0, "exact_latent": 1.0},
        ...        {"name": "c2", "exact": 4.0, "exact_latent": 2.0}]
        >>> row = block_rows(ret, lay)[0]
        >>> row["exact_product"], row["exact_ratio"], row["rm_over_exact_product"]
        (8.0, 4.0, 0.375)
    """
    by_name = {row["name"]: row for row in layers}
    rows = []
    for r in retention:
        convs = [by_name[name] for name in r["layers"] if name in by_name]
        out: dict[str, Any] = {
            "block": r["block"],
            "binary_convs": [c["name"] for c in convs],
            "sigma_rm_binary": r["sigma_binary"],
            "sigma_rm_latent": r["sigma_latent"],
            "sigma_rm_ratio": r["sigma_ratio"],
            "exact": {c["name"]: c.get("exact") for c in convs},
            "exact_latent": {c["name"]: c.get("exact_latent") for c in convs},
        }
        for key in ("exact", "exact_bn"):
            prod_b = _product(convs, key)
            prod_f = _product(convs, key + "_latent")
            out[f"{key}_product"] = prod_b
            out[f"{key}_product_latent"] = prod_f
            out[f"{key}_ratio"] = _div(prod_b, prod_f)
            out[f"rm_over_{key}_product"] = _div(r["sigma_binary"], prod_b)
            out[f"rm_over_{key}_product_latent"] = _div(r["sigma_latent"], prod_f)
        rows.append(out)
    return rows


def summarize(layers: list[dict], blocks: list[dict], methods: Sequence[str]) -> dict:
    """Per method: ratio to ``exact`` (median, min, max; binary and latent) and
    seconds; whether every bound held; how the retention estimate tracks."""
    out: dict[str, Any] = {"methods": {
        m: _method_summary(layers, m, ratios=m != "exact" and "exact" in methods)
        for m in methods if m != "retention_estimate"
    }}
    if "exact" in methods:
        out["bounds_hold"] = {
            m: all(
                r[m + s] >= r["exact" + s] * (1 - 1e-6) for r in layers for s in ("", "_latent")
            )
            for m in methods if m in BOUNDS
        }
    tracking: dict[str, Any] = {}
    for key in ("exact", "exact_bn"):
        done = [b for b in blocks if b[f"{key}_product"] is not None]
        if done:
            tracking[key] = _retention_tracking(done, key)
    if tracking:
        out["retention_tracking"] = tracking
    return out


def _method_summary(layers: list[dict], method: str, ratios: bool) -> dict[str, Any]:
    """Seconds of one kernel method over the layers (binary, latent) and, with
    ``ratios``, the median, min and max of its ratio to ``exact``."""
    entry: dict[str, Any] = {
        "seconds_total": float(sum(r["seconds"].get(method, 0.0) for r in layers)),
        "seconds_total_latent": float(
            sum(r["seconds"].get(f"{method}_latent", 0.0) for r in layers)
        ),
    }
    for suffix in ("", "_latent") if ratios else ():
        values = [
            r[method + suffix] / r["exact" + suffix] for r in layers if r.get("exact" + suffix)
        ]
        if values:
            entry[f"ratio_to_exact{suffix}"] = {
                "median": float(np.median(values)),
                "min": float(np.min(values)),
                "max": float(np.max(values)),
            }
    return entry


def _retention_tracking(done: list[dict], key: str) -> dict[str, Any]:
    """How ``sigma_RM`` follows the product of the ``key`` norms over the
    blocks ``done`` (those with the product): correlations and medians."""
    latent = [b for b in done if b[f"{key}_product_latent"] is not None]
    return {
        "blocks_compared": len(done),
        "pearson_log_binary": _pearson(
            _log(b["sigma_rm_binary"] for b in done), _log(b[f"{key}_product"] for b in done),
        ),
        "pearson_log_latent": _pearson(
            _log(b["sigma_rm_latent"] for b in latent),
            _log(b[f"{key}_product_latent"] for b in latent),
        ),
        "pearson_ratio": _pearson(
            [b["sigma_rm_ratio"] for b in latent], [b[f"{key}_ratio"] for b in latent]
        ),
        "median_rm_over_product": float(np.median([b[f"rm_over_{key}_product"] for b in done])),
        "median_rm_over_product_latent": (
            float(np.median([b[f"rm_over_{key}_product_latent"] for b in latent]))
            if latent else None
        ),
    }


NOTES = [
    "operator: the convolution applied to the layer's (binarized) input, x_b -> "
    "conv(x_b, Q(W)); the input sign is not linear and is not part of it",
    "padding: pad_values=1 makes the layer affine, conv_pad1(x) = conv_pad0(x) + const; "
    "its Lipschitz constant is the norm of the zero-padded convolution, measured here "
    "(operator_check verifies layer(a) - layer(b) = conv_pad0(a - b) on the layer)",
    "exact: block power iteration (a lower bound converging to the norm; see exact_info); "
    "toeplitz_bound, toeplitz_symbol, gram_bound: upper bounds; reshaped_kernel: heuristic",
    "retention_estimate: sigma of the retention matrix of the block holding the layer "
    "(block-level, mean over test samples); compare blocks[*] for the block-level view",
]

FLOAT32_COPY_NOTE = (
    "the model was trained under a mixed-precision policy: everything here is measured on "
    "its float32 copy (same weights), the network lcr-export converts"
)


def diagnose(
    model,
    images: np.ndarray | None,
    methods: Sequence[str] = DEFAULT_METHODS,
    layers: Sequence[str] | None = None,
    max_layers: int | None = None,
    exact_iterations: int = 500,
    exact_tol: float = 1e-6,
    rm_iterations: int = 100,
    batch_size: int = 64,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """The Lipschitz report of ``model``'s binary convolutions (see module doc).

    ``images`` (normalized model inputs) feed the retention estimate; they
    may be ``None`` when ``retention_estimate`` is not among ``methods``. A
    model trained under a mixed-precision policy is measured as its float32
    copy (:func:`~lcr_larq.graph.as_float32`, the same weights): the operator
    check and the estimates compare with float64 and would otherwise measure
    16-bit rounding.
    """
    start = time.perf_counter()
    trained, model = model, as_float32(model)
    convs = quantized_convolutions(model)
    if not convs:
        raise RunError(
            f"model {model.name!r} has no binary convolution (a full-precision model?)"
        )
    chosen = select_layers(convs, layers, max_layers)
    kernel_methods = [m for m in methods if m in KERNEL_METHODS]
    # the batch norms folded into the exact norm (exact_bn)
    batchnorms = {
        layer.name: following_batchnorm(layer) if "exact" in methods else None for layer in chosen
    }
    variances = _latent_variances(model, chosen, batchnorms, images, batch_size)
    rows: list[dict] = []
    for layer in chosen:
        rows.append(layer_row(layer, kernel_methods, batchnorms[layer.name],
                              variances.get(layer.name), exact_iterations, exact_tol))
        if progress:
            progress(f"{layer.name}: " + ", ".join(
                f"{m} {rows[-1][m]:.3g}" for m in kernel_methods
            ))
    retention: list[dict] = []
    if "retention_estimate" in methods:
        retention = _add_retention(rows, model, images, rm_iterations, batch_size)
    blocks = block_rows(retention, rows)
    return {
        "model": model.name,
        "methods": list(methods),
        "binary_convs": len(convs),
        "layers": rows,
        "blocks": blocks,
        "summary": summarize(rows, blocks, methods),
        "retention": {
            "samples": int(len(images)) if images is not None and retention else 0,
            "power_iterations": rm_iterations,
            "seconds": round(sum(r["seconds"] + r["forward_seconds"] for r in retention), 4),
        },
        "notes": NOTES + ([FLOAT32_COPY_NOTE] if model is not trained else []),
        "seconds": round(time.perf_counter() - start, 2),
    }


def _latent_variances(
    model, chosen: Sequence, batchnorms: dict, images: np.ndarray | None, batch_size: int
) -> dict[str, np.ndarray]:
    """Output variances on the latent path of the layers of ``chosen`` that
    feed a batch norm (see :func:`latent_output_variances`); empty without
    images or without a latent path (stock Larq layers: binary side only)."""
    with_bn = [layer for layer in chosen if batchnorms[layer.name] is not None]
    if not with_bn or images is None:
        return {}
    try:
        return latent_output_variances(model, with_bn, images, batch_size)
    except ValueError:
        return {}


def layer_row(
    layer,
    kernel_methods: Sequence[str],
    batchnorm=None,
    latent_variance: np.ndarray | None = None,
    exact_iterations: int = 500,
    exact_tol: float = 1e-6,
) -> dict[str, Any]:
    """The report's row of one binary convolution: its geometry, the
    :func:`operator_check`, and each kernel method on the binary and the latent
    kernel; with ``batchnorm`` (the one it feeds), the exact norm of each
    kernel with the batch norm folded in (``exact_bn``; latent: with
    ``latent_variance``, the batch statistics of the latent path)."""
    geometry = layer_geometry(layer)
    binary, latent = layer_kernels(layer)
    row: dict[str, Any] = {
        "name": layer.name,
        "type": type(layer).__name__,
        "kernel_shape": list(binary.shape),
        **geometry,
        "operator_check": operator_check(layer, binary, geometry),
    }
    seconds: dict[str, float] = {}
    for suffix, kernel in (("", binary), ("_latent", latent)):
        values, secs, info = kernel_norms(
            kernel, geometry, kernel_methods, exact_iterations, exact_tol
        )
        row.update({m + suffix: v for m, v in values.items()})
        seconds.update({m + suffix: round(s, 4) for m, s in secs.items()})
        if info:
            row["exact_info" + suffix] = info
    if batchnorm is not None:
        row["batchnorm"] = batchnorm.name
        scales = [("", batchnorm_scale(batchnorm), binary)]
        if latent_variance is not None:
            scales.append(("_latent", batchnorm_scale(batchnorm, latent_variance), latent))
        for suffix, scale, kernel in scales:
            values, secs, _ = kernel_norms(
                kernel * scale, geometry, ["exact"], exact_iterations, exact_tol
            )
            row["exact_bn" + suffix] = values["exact"]
            seconds["exact_bn" + suffix] = round(secs["exact"], 4)
    row["seconds"] = seconds
    return row


def _add_retention(
    rows: list[dict], model, images: np.ndarray | None, rm_iterations: int, batch_size: int
) -> list[dict]:
    """:func:`retention_sigmas` of ``model``'s blocks; each row gets the
    ``sigma_RM`` of the block holding its layer (``None`` outside a block)."""
    if images is None:
        raise RunError("the retention estimate needs test images")
    retention = retention_sigmas(model, images, rm_iterations, batch_size)
    by_layer = {name: r for r in retention for name in r["layers"]}
    for row in rows:
        r = by_layer.get(row["name"])
        row["block"] = r["block"] if r else None
        row["retention_estimate"] = r["sigma_binary"] if r else None
        row["retention_estimate_latent"] = r["sigma_latent"] if r else None
        row["seconds"]["retention_estimate"] = (
            round(r["seconds"] + r["forward_seconds"], 4) if r else None
        )
    return retention


def diagnose_run(settings: DiagnoseSettings, progress: Callable[[str], None] | None = None) -> dict:
    """Loads the run of ``settings`` (and ``settings.samples`` of its test
    images when the retention estimate is asked for) and runs :func:`diagnose`;
    ``summary.network`` puts the empirical estimate beside the product of the
    exact norms (:func:`network_lipschitz`)."""
    methods = settings.method_list
    run, images = None, None
    if "retention_estimate" in methods or settings.empirical_samples:
        run = runs.load_run(settings.model_dir, settings.dataset_spec, settings.data_dir)
        model = run.model
        if "retention_estimate" in methods:
            images = sample_images(run.dataset, settings.samples)
    else:
        model = runs.load_model(settings.model_dir)
    report = diagnose(
        model, images, methods, layers=settings.layers, max_layers=settings.max_layers,
        exact_iterations=settings.exact_iterations, exact_tol=settings.exact_tol,
        rm_iterations=settings.rm_iterations, batch_size=settings.batch_size,
        progress=progress,
    )
    empirical = None
    if settings.empirical_samples:
        pixels, labels = runs.test_images(run.dataset, settings.empirical_samples)
        target = AttackTarget(model, run.dataset.normalize)
        empirical = empirical_lipschitz(target, pixels, labels, batch_size=settings.batch_size)
    report["summary"]["network"] = network_lipschitz(report, empirical)
    report["model_dir"] = os.path.abspath(settings.model_dir)
    return report


def network_lipschitz(report: dict, empirical: dict | None) -> dict[str, Any]:
    """The deployed network's empirical local Lipschitz estimate
    (:func:`lcr_larq.diagnostics.empirical.empirical_lipschitz`, or None) beside
    the product of the exact norms of the diagnosed binary convolutions (binary
    and latent kernels, and with their batch norms folded in).

    The product covers the binary convolutions only (not the float stem and
    head, nor the shortcuts), so it is no bound of the network: a summary of
    the per-layer norms to rank runs by, as is the empirical estimate.

    Example:
        >>> rows = [{"exact": 2.0, "exact_latent": 1.0}, {"exact": 5.0, "exact_latent": 2.0}]
        >>> out = network_lipschitz({"layers": rows, "binary_convs": 2}, None)
        >>> out["exact_product"], out["log10_exact_product"], out["exact_product_latent"]
        (10.0, 1.0, 2.0)
    """
    layers = report["layers"]
    out: dict[str, Any] = {
        "layers": len(layers),
        "all_binary_convs": len(layers) == report.get("binary_convs", len(layers)),
    }
    for key, name in (("exact", "exact_product"), ("exact_latent", "exact_product_latent"),
                      ("exact_bn", "exact_bn_product"),
                      ("exact_bn_latent", "exact_bn_product_latent")):
        out[name] = _product(layers, key)
    product = out["exact_product"]
    out["log10_exact_product"] = math.log10(product) if product else None
    out["empirical"] = empirical
    if empirical is not None:
        out["empirical_lipschitz"] = empirical["l2_input_max"]
        out["empirical_over_exact_product"] = _div(empirical["l2_input_max"], product)
    return out
