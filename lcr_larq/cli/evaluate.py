"""``lcr-evaluate``: clean accuracy and common-corruption robustness of a trained run.

Writes ``robustness.json`` (CE per corruption, mCE) and
``corruption_accuracy.png`` beside it, and prints the table::

    lcr-evaluate --model-dir runs/resnet20_digits_1w1a_lambda4_seed0
    lcr-evaluate --model-dir RUN --corruptions fog snow --severities 5
    lcr-evaluate --model-dir RUN --data-dir ~/tfds --extra --protocol linear-probe

See :mod:`lcr_larq.analysis.evaluation` for the sources and the metrics.
"""

from __future__ import annotations

import sys

import numpy as np

from lcr_larq import cli
from lcr_larq.analysis import evaluation, plots


def evaluate(settings: evaluation.EvaluateSettings) -> None:
    report = evaluation.evaluate(settings, cli.progress(settings.quiet))

    def plot() -> str:
        path = cli.beside(settings.report_path, evaluation.PLOT_FILE)
        return plots.plot_corruption_accuracy([(plots.report_label(report), report)], path)

    cli.present(report, settings.report_path, table(report), None if settings.no_plot else plot)


def table(report: dict) -> str:
    """Accuracy (%) per corruption and severity, each corruption's CE, and the
    summary lines."""
    severities = report["severities"]
    errors = report["corruption_error"]
    rows = [
        [c, *(f"{100 * by[str(s)]:.1f}" for s in severities), f"{errors[c]:.3f}"]
        for c, by in report["accuracy"].items()
    ]
    means = [np.mean([by[str(s)] for by in report["accuracy"].values()]) for s in severities]
    rows.append(["mean", *(f"{100 * m:.1f}" for m in means), ""])
    header = ["corruption", *(f"s{s}" for s in severities), "CE"]
    kind = "normalized" if report["normalized"] else "unnormalized"
    extra = f"; extra corruptions {report['mce_extra']:.4f}" if report.get("mce_extra") else ""
    calibration = report.get("bn_recalibration")
    lines = [
        cli.table(rows, header),
        f"clean accuracy {100 * report['clean_accuracy']:.2f}% on {report['num_images']} images; "
        f"mean corruption accuracy {100 * report['mean_corruption_accuracy']:.2f}%",
        f"mCE {report['mce']:.4f} ({kind}, over {len(report['mce_corruptions'])} corruptions)"
        + extra,
        f"  {report['normalization']}",
        f"  source: {report['source']}; protocol: {report['protocol']}",
    ]
    if calibration:
        lines.append(
            f"  BN statistics re-estimated on {calibration['samples']} training images (the run "
            "predates their re-estimation at the end of training)"
        )
    return "\n".join(lines)


main = cli.command(evaluation.EvaluateSettings, evaluate, __doc__)

if __name__ == "__main__":
    sys.exit(main())
