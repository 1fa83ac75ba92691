"""``lcr-diagnose``: how good is each spectral-norm estimate of a trained BNN?

For every binary convolution: the exact operator norm, the Toeplitz and Gram
bounds, the reshaped-kernel heuristic and the retention-matrix estimate
(binary and latent kernels), and per block the retention estimate against the
product of its convolutions' norms. Writes ``lipschitz.json`` and
``lipschitz.png`` beside it and prints the tables::

    lcr-diagnose --model-dir RUN
    lcr-diagnose --model-dir RUN --layers 'block9_*' --methods all
    lcr-diagnose --model-dir RUN --max-layers 4 --samples 32

See :mod:`lcr_larq.diagnostics.report`.
"""

from __future__ import annotations

import sys

from lcr_larq import cli, diagnostics, plots

__all__ = [
    "SHORT_NAMES",
    "diagnose",
    "main",
    "network_lines",
    "tables",
]

SHORT_NAMES = {
    "exact": "exact",
    "toeplitz_bound": "toeplitz",
    "toeplitz_symbol": "toeplitz symbol",
    "gram_bound": "gram",
    "reshaped_kernel": "reshaped",
    "retention_estimate": "RM (block)",
}


def diagnose(settings: diagnostics.DiagnoseSettings) -> None:
    report = diagnostics.diagnose_run(settings, cli.progress(settings.quiet))

    def plot() -> str:
        return plots.plot_lipschitz(report, cli.beside(settings.report_path, diagnostics.PLOT_FILE))

    cli.present(report, settings.report_path, tables(report), None if settings.no_plot else plot)


def _value(value: float | None, exact: float | None = None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f} ({value / exact:.2f}x)" if exact else f"{value:.3f}"


def tables(report: dict) -> str:
    """Per-layer tables (binary and latent kernel), the block table, the cost."""
    methods = list(report["methods"])
    parts = []
    for suffix, title in (("", "binary kernel"), ("_latent", "latent kernel")):
        rows = []
        for row in report["layers"]:
            shape = "x".join(map(str, row["input_shape"])) + f"/{row['strides'][0]}"
            exact = row.get("exact" + suffix)
            rows.append([row["name"], shape, *(
                _value(row.get(m + suffix),
                       None if m in ("exact", "retention_estimate") else exact)
                for m in methods
            )])
        header = ["layer", "input/stride", *(SHORT_NAMES[m] for m in methods)]
        parts.append(cli.table(rows, header, f" {title}: value (ratio to exact) "))
    if report["blocks"]:
        def f(v):
            return "-" if v is None else f"{v:.3f}"

        rows = [
            [b["block"], f(b["sigma_rm_binary"]), f(b["exact_product"]), f(b["exact_bn_product"]),
             f(b["sigma_rm_latent"]), f(b["exact_product_latent"]),
             f(b["exact_bn_product_latent"]), f(b["sigma_rm_ratio"]), f(b["exact_ratio"]),
             f(b["exact_bn_ratio"])]
            for b in report["blocks"]
        ]
        header = ["block", "RM bin", "prod", "BN prod", "RM lat", "prod", "BN prod", "RM B/F",
                  "prod B/F", "BN B/F"]
        parts.append(cli.table(
            rows, header, " blocks: σ of the retention matrix vs the product of the exact norms "
            "of the block's binary convs (BN: batch norms folded in) "
        ))

        def g(v):
            return "n/a" if v is None else f"{v:+.2f}"

        for key, t in report["summary"].get("retention_tracking", {}).items():
            parts.append(
                f"correlation over {t['blocks_compared']} blocks, log RM vs log {key} product: "
                f"binary {g(t['pearson_log_binary'])}, latent {g(t['pearson_log_latent'])}; "
                f"B/F ratios {g(t['pearson_ratio'])}"
            )
    rows = []
    for m, entry in report["summary"]["methods"].items():
        ratio = entry.get("ratio_to_exact")
        span = (f"{ratio['median']:.2f} [{ratio['min']:.2f}, {ratio['max']:.2f}]"
                if ratio else "-")
        rows.append([m, f"{entry['seconds_total'] + entry['seconds_total_latent']:.2f}", span])
    if report["blocks"]:
        rows.append(["retention_estimate", f"{report['retention']['seconds']:.2f}",
                     f"all {len(report['blocks'])} blocks, both paths, forward included"])
    parts.append(cli.table(rows, ["method", "seconds", "ratio to exact: median [min, max]"],
                           " cost over all layers, binary + latent "))
    held = report["summary"].get("bounds_hold")
    if held:
        parts.append("bounds >= exact on every layer: " + ", ".join(
            f"{m} {'yes' if ok else 'NO'}" for m, ok in held.items()
        ))
    parts += network_lines(report["summary"].get("network"))
    return "\n".join(parts)


def network_lines(network: dict | None) -> list[str]:
    """The deployed network's empirical Lipschitz estimate beside the product
    of the exact norms of its binary convolutions."""
    if not network:
        return []
    lines = []
    empirical = network.get("empirical")
    if empirical:
        lines.append(
            f"network: empirical local Lipschitz estimate {empirical['l2_input_max']:.4g} (the "
            f"largest L2 norm of the logit margin's input gradient through the STE over "
            f"{empirical['samples']} test images; mean {empirical['l2_input_mean']:.4g}; L1 norm "
            f"per pixel level: max {empirical['l1_pixel_max']:.4g})"
        )
    if network.get("exact_product") is not None:
        scope = "all" if network["all_binary_convs"] else "the diagnosed"
        bn = network.get("exact_bn_product")
        lines.append(
            f"network: product of the exact norms of {scope} {network['layers']} binary convs "
            f"{network['exact_product']:.4g} (latent {network['exact_product_latent']:.4g}"
            + (f"; BN folded in {bn:.4g}" if bn is not None else "") + ")"
        )
    return lines


main = cli.command(diagnostics.DiagnoseSettings, diagnose, __doc__)

if __name__ == "__main__":
    sys.exit(main())
