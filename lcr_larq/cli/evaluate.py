"""``lcr-evaluate``: clean accuracy, common-corruption and adversarial robustness of a trained run.

Writes ``robustness.json`` (CE per corruption, mCE; with ``--attacks`` the
accuracy under each attack at each ε) and ``corruption_accuracy.png`` /
``adversarial_accuracy.png`` beside it, and prints the tables::

    lcr-evaluate --model-dir runs/resnet20_digits_1w1a_lambda4_seed0
    lcr-evaluate --model-dir RUN --corruptions fog snow --severities 5
    lcr-evaluate --model-dir RUN --data-dir ~/tfds --extra --protocol linear-probe
    lcr-evaluate --model-dir RUN --corruptions none --attacks fgsm pgd --epsilons 0 1 2 4 8

ε is in pixel levels (1/255 of the pixel range). PGD runs with random sign
noise and a transfer attack from the run's float counterpart beside it
(``--masking-check``): when one of them breaks more images than PGD beyond
chance (a one-sided exact McNemar test per ε), the report flags possible
gradient masking. See :mod:`lcr_larq.evaluation.report` for
the sources and the metrics, :mod:`lcr_larq.evaluation.attacks` for the attacks.
"""

from __future__ import annotations

import sys

import numpy as np

from lcr_larq import cli, evaluation, plots
from lcr_larq.evaluation.attacks import MASKING_TEST, WORST

__all__ = [
    "ROW_NAMES",
    "adversarial_table",
    "evaluate",
    "main",
    "masking_lines",
    "table",
]


def evaluate(settings: evaluation.EvaluateSettings) -> None:
    report = evaluation.evaluate(settings, cli.progress(settings.quiet))

    def plot() -> list[str]:
        label = plots.report_label(report)
        paths = []
        if report["corruptions"]:
            path = cli.beside(settings.report_path, evaluation.PLOT_FILE)
            paths.append(plots.plot_corruption_accuracy([(label, report)], path))
        if report.get("adversarial"):
            path = cli.beside(settings.report_path, evaluation.ADVERSARIAL_PLOT_FILE)
            paths.append(plots.plot_adversarial_accuracy([(label, report)], path))
        return paths

    text = "\n".join(part for part in (table(report), adversarial_table(report)) if part)
    cli.present(report, settings.report_path, text, None if settings.no_plot else plot)


def table(report: dict) -> str:
    """Accuracy (%) per corruption and severity, each corruption's CE, and the
    summary lines (the clean accuracy alone without corruptions)."""
    clean = (f"clean accuracy {100 * report['clean_accuracy']:.2f}% on "
             f"{report['num_images']} images")
    if not report["corruptions"]:
        return clean
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
        f"{clean}; mean corruption accuracy {100 * report['mean_corruption_accuracy']:.2f}%",
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


def adversarial_table(report: dict) -> str:
    """Accuracy (%) per attack and ε, the masking check and how the attacks
    ran; empty without attacks."""
    rows = report.get("adversarial")
    if not rows:
        return ""
    setup = report["adversarial_setup"]
    epsilons = sorted({r["epsilon"] for r in rows})
    by = {(r["attack"], r["epsilon"]): r["accuracy"] for r in rows}
    attacks = list(dict.fromkeys(r["attack"] for r in rows))
    cells = [[ROW_NAMES.get(a, a), *(_percent(by.get((a, e))) for e in epsilons),
              f"{setup['seconds'][a]:.1f}" if a in setup["seconds"] else ""]
             for a in attacks]
    lines = [
        f"accuracy (%) under attack on {setup['samples']} test images, ε in pixel levels (/255):",
        cli.table(cells, ["attack", *(f"ε={e:g}" for e in epsilons), "seconds"]),
    ]
    lines += masking_lines(report)
    how = [f"gradients: {setup['gradient']}"]
    if "pgd" in setup["attacks"] or "transfer" in setup["attacks"]:
        how.append(f"PGD: {setup['pgd_steps']} steps of {setup['pgd_step_size']}")
    if "random" in setup["attacks"]:
        how.append(f"random: {setup['random_draws']} draws per image")
    lines.append("  " + "; ".join(how))
    return "\n".join(lines)


#: The table's name of the per-image worst case.
ROW_NAMES = {WORST: "worst (per image)"}


def masking_lines(report: dict) -> list[str]:
    """The float counterpart's clean accuracy (and whether it is above
    chance), the gradient-masking verdict per ε, and, as information, the ε
    where a gradient-free attack was stronger than PGD within chance."""
    lines = []
    if report.get("float_clean_accuracy") is not None:
        calibration = report["adversarial_setup"].get("float_bn_recalibration")
        how = (f"BN statistics re-estimated on {calibration['samples']} training images"
               if calibration else "the BNN's BN statistics")
        line = (f"float counterpart (transfer source): clean accuracy "
                f"{100 * report['float_clean_accuracy']:.2f}% ({how})")
        source = report.get("transfer_source")
        if source and not source["informative"]:
            line += (f"; not above chance ({100 * source['chance']:.1f}%; one-sided exact "
                     f"binomial test p = {source['p_value']:.2g} ≥ {source['level']:g}): the "
                     "transfer rows are uninformative and no masking check")
        lines.append(line)
    flags = report.get("gradient_masking") or []
    for f in flags:
        if f["possible_masking"]:
            test = min(f["tests"], key=lambda t: t["p_value"])
            lines.append(
                f"POSSIBLE GRADIENT MASKING at ε={f['epsilon']:g}: {_versus(test)}, "
                f"p = {test['p_value']:.2g} < {f['level']:.3g}: {test['attack']} leaves "
                f"{100 * test['accuracy']:.1f}% < PGD's {100 * f['pgd_accuracy']:.1f}%; PGD's "
                "gradient misleads it: read the worst-case row (each image under its strongest "
                "attack)"
            )
    within = [f for f in flags if f.get("stronger") and not f["possible_masking"]]
    if within:
        lines.append("stronger than PGD within chance (not flagged): " + "; ".join(
            f"ε={f['epsilon']:g} {f['attack']} {100 * f['accuracy']:.1f}% < "
            f"{100 * f['pgd_accuracy']:.1f}% ({_versus(t)}, p = {t['p_value']:.2g})"
            for f in within for t in f["tests"] if t["attack"] == f["attack"]))
    if flags and not any(f["possible_masking"] or f.get("stronger") for f in flags):
        compared = dict.fromkeys(t["attack"] for f in flags for t in f.get("tests", ()))
        lines.append(f"gradient masking check: PGD is at least as strong as "
                     f"{' and '.join(compared)} at every ε")
    if flags:
        lines.append(f"  masking test: {MASKING_TEST}")
    return lines


def _versus(test: dict) -> str:
    return (f"{test['attack']} breaks {test['broken_only_by_attack']} images PGD does not, PGD "
            f"{test['broken_only_by_pgd']} it does not")


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


main = cli.command(evaluation.EvaluateSettings, evaluate, __doc__)

if __name__ == "__main__":
    sys.exit(main())
