"""``lcr-study``: does a setting help, on my model and data? Arms × seeds, with intervals.

::

    lcr-study --vary lcr_lambda=0,4 --seeds 5
    lcr-study --vary lcr_lambda=0,0.5,1,2,4,8 --seeds 5 --config configs/cifar10_resnet20_lcr.yaml
    lcr-study --vary lcr_samples=16,24,32 --vary lcr_lambda=0,4 --seeds 3 --robustness
    lcr-study --vary lcr_lambda=0,4 --robustness --diagnose --attacks pgd --epsilons 2 8
    lcr-study --vary lcr_lambda=0,4 --seeds 3 --output-dir /shared/lambda --worker  # any machine
    lcr-study --vary lcr_lambda=0,4 --seeds 3 --output-dir /shared/lambda --report

Every ``lcr-train`` flag sets what every arm shares. Writes ``study.json``,
``study.csv``, ``study.md`` (the table below, ready for a README) and
``study.png`` into ``--output-dir`` (default ``runs/study``), each run in
its own directory beneath it; rerun the same command to complete an
interrupted study. ``--worker`` makes the command one of any number of
workers sharing ``--output-dir`` (an array job's task with ``--cell`` or the
scheduler's index), and ``--report`` joins what they finished. See
:mod:`lcr_larq.experiments.study`.
"""

from __future__ import annotations

import csv
import io
import os
import sys

from lcr_larq import cli, plots
from lcr_larq.evaluation.attacks import MASKING_TEST
from lcr_larq.experiments import statistics, study

__all__ = [
    "ATTACK_NAMES",
    "METRIC_NAMES",
    "PERCENT",
    "main",
    "markdown",
    "metric_name",
    "robustness_notes",
    "run",
    "write_csv",
]

METRIC_NAMES = {
    "test_accuracy": "test accuracy (%)",
    "test_accuracy_moving_statistics": "test accuracy, training BN statistics (%)",
    "test_accuracy_as_trained": "test accuracy computed as trained (%)",
    "mce": "corruption mCE",
    "retention_rank_correlation": "retention rank corr.",
    "empirical_lipschitz": "empirical Lipschitz estimate",
    "log10_exact_norm_product": "log10 product of exact norms",
}
ATTACK_NAMES = {"fgsm": "FGSM", "pgd": "PGD", "random": "random-noise", "transfer": "transfer",
                "worst": "worst-case (per image, every attack)"}
PERCENT = ("test_accuracy", "robust_accuracy")


def metric_name(metric: str) -> str:
    """A metric's name in the tables.

    Example:
        >>> metric_name("robust_accuracy_pgd_eps2"), metric_name("mce")
        ('PGD accuracy at ε=2/255 (%)', 'corruption mCE')
    """
    if metric.startswith("robust_accuracy_"):
        attack, _, epsilon = metric.removeprefix("robust_accuracy_").rpartition("_eps")
        return f"{ATTACK_NAMES.get(attack, attack)} accuracy at ε={epsilon}/255 (%)"
    return METRIC_NAMES.get(metric, metric)


def _number(value, metric: str, signed: bool = False) -> str:
    if value is None:
        return "–"
    scale, digits = (100.0, 2) if metric.startswith(PERCENT) else (1.0, 3)
    return f"{scale * value:+.{digits}f}" if signed else f"{scale * value:.{digits}f}"


def _interval(ci, metric: str, signed: bool = False) -> str:
    if not ci:
        return "–"
    return f"[{_number(ci[0], metric, signed)}, {_number(ci[1], metric, signed)}]"


def markdown(report: dict) -> str:
    """The study as Markdown tables: per metric, every arm's n, mean ± std and
    95 % interval, and its paired difference against the control."""
    parts = []
    for metric in report["metrics"]:
        name = metric_name(metric)
        lines = [
            f"| arm | n | {name}: mean ± std | 95 % interval | paired difference vs "
            f"{report['control']}: mean [95 % interval] | p (paired t) |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for arm in report["arms"]:
            s = arm[metric]
            spread = f" ± {_number(s['std'], metric)}" if s.get("std") is not None else ""
            if arm["control"]:
                diff, p = "(control)", ""
            else:
                d = arm[f"{metric}_vs_control"]
                diff = (f"{_number(d['mean'], metric, True)} {_interval(d['ci'], metric, True)}"
                        f" over {d['n']} seeds")
                p = "–" if d["p_value"] is None else f"{d['p_value']:.3g}"
            lines.append(f"| {arm['arm']} | {s['n']} | {_number(s['mean'], metric)}{spread} | "
                         f"{_interval(s['ci'], metric)} | {diff} | {p} |")
        parts.append("\n".join(lines))
    parts += sensitivity_table(report)
    parts += robustness_notes(report)
    parts += hardware_notes(report)
    if report["failed"]:
        parts.append("Runs that failed or diverged (not in the numbers above):\n\n" + "\n".join(
            f"- {f['arm']} seed {f['seed']}: {f['message']}" for f in report["failed"]
        ))
    if report.get("missing"):
        parts.append(
            f"Cells not finished yet ({len(report['missing'])} of {report['cells']}, not in the "
            "numbers above; a worker of the study trains them):\n\n" + "\n".join(
                f"- cell {m['cell']}, {m['arm']} seed {m['seed']}: {m['message']}"
                for m in report["missing"]))
    return "\n\n".join(parts) + "\n"


def sensitivity_table(report: dict) -> list[str]:
    """How many seeds: per metric and arm, the spread of the paired
    differences, the smallest difference the paired test detects with 80 %
    power and the seeds a 1-point difference needs (:func:`study.one_point`)."""
    lines = []
    for metric in report["metrics"]:
        for arm in report["arms"]:
            s = (arm.get(f"{metric}_vs_control") or {}).get("sensitivity")
            if arm["control"] or not s or s["n"] < 2:
                continue
            seeds = ("–" if s["unit"] is None else str(s["seeds_for_unit"])
                     if s["seeds_for_unit"] is not None else f"> {statistics.MOST_SEEDS}")
            lines.append(f"| {metric_name(metric)} | {arm['arm']} | {s['n']} | "
                         f"{_number(s['sd'], metric)} | "
                         f"±{_number(s['detectable_difference'], metric)} | {seeds} |")
    if not lines:
        return []
    confidence = report["confidence"]
    return [
        f"How many seeds: the smallest difference from {report['control']} that the paired "
        f"t-test (two-sided, at {100 * (1 - confidence):g} %) detects with "
        f"{100 * statistics.POWER:g} % power over these seeds, taking the spread of the paired "
        "differences as it was; and the seeds a difference of 1 point (of an accuracy: 1 "
        "percentage point) would need at that spread.\n\n"
        "| metric | arm | seeds | SD of the paired differences | smallest detectable "
        "difference | seeds for 1 point |\n| --- | --- | --- | --- | --- | --- |\n"
        + "\n".join(lines)
    ]


def hardware_notes(report: dict) -> list[str]:
    """Where the finished cells ran, and which pairs ran on different hardware."""
    hardware = report.get("hardware") or {}
    kinds = hardware.get("kinds") or []
    if not kinds:
        return []
    if not hardware.get("differs"):
        if kinds[0]["hardware"] == "unknown":  # runs made before results.json recorded it
            return ["The finished cells record no hardware (made before `provenance` was "
                    "recorded): name it with the figures."]
        return [f"Every finished cell ran on {kinds[0]['hardware']}."]
    lines = ["**The cells ran on different hardware** (a seed's weights differ between CPUs "
             "and between GPUs):", ""]
    lines += [f"- {k['hardware']}: cells {', '.join(map(str, k['cells']))}" for k in kinds]
    pairs = hardware.get("pairs_across") or []
    if pairs:
        lines += ["", "Pairs whose arm and control ran on different hardware (their paired "
                  "difference mixes hardware with the setting): " + ", ".join(
                      f"{p['arm']} seed {p['seed']}" for p in pairs) + "."]
    return ["\n".join(lines)]


def robustness_notes(report: dict) -> list[str]:
    """The runs with possible gradient masking, and the rank correlations of
    the Lipschitz estimates with robust accuracy over the runs."""
    parts = []
    masking = report.get("gradient_masking") or []
    if masking:
        parts.append(
            "Possible gradient masking (a gradient-free attack broke more images than PGD "
            f"beyond chance: {MASKING_TEST}; the PGD accuracies of these runs at these ε are "
            "upper bounds, read the worst case):\n\n" + _listed(masking))
    stronger = report.get("gradient_free_stronger") or []
    if stronger:
        parts.append("A gradient-free attack left a lower accuracy than PGD at all (information; "
                     "flagged above only beyond chance):\n\n" + _listed(stronger))
    correlations = report.get("lipschitz_vs_robustness") or []
    if correlations:
        lines = ["| Lipschitz estimate | robust accuracy | Spearman ρ over runs | p | runs |",
                 "| --- | --- | --- | --- | --- |"]
        for c in correlations:
            rho = "–" if c["spearman"] is None else f"{c['spearman']:+.3f}"
            p = "–" if c["p_value"] is None else f"{c['p_value']:.3g}"
            lines.append(f"| {metric_name(c['estimate'])} | {metric_name(c['metric'])} | {rho} "
                         f"| {p} | {c['runs']} |")
        lines.append("\n(every arm's runs pooled; – for fewer than three runs or a constant "
                     "column)")
        parts.append("\n".join(lines))
    return parts


def _listed(runs: list[dict]) -> str:
    """One line per run: its arm, seed and ε."""
    return "\n".join(
        f"- {m['arm']} seed {m['seed']}: ε = {', '.join(f'{e:g}' for e in m['epsilons'])}"
        for m in runs)


def write_csv(report: dict, path: str) -> str:
    fields = list(dict.fromkeys(k for row in report["runs"] for k in row))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=fields)
    writer.writeheader()
    for row in report["runs"]:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in fields})
    return write_text(text.getvalue(), path)


def write_text(text: str, path: str) -> str:
    """Writes ``text`` to ``path`` through a temporary file of this process's
    own: two workers writing the report at once leave one whole."""
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w", newline="", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)
    return path


def run(settings: study.StudySettings) -> int:
    if settings.worker:
        return study.run_worker(settings, cli.progress())
    report = study.run_study(settings, cli.progress())
    out = settings.run_dir
    written = [cli.save_report(report, os.path.join(out, study.REPORT), "--output-dir"),
               write_csv(report, os.path.join(out, study.TABLE))]
    text = markdown(report)
    written.append(write_text(text, os.path.join(out, study.MARKDOWN)))
    if any(r.get("test_accuracy") is not None for r in report["runs"]):
        written.append(plots.plot_study(report, os.path.join(out, study.PLOT)))
    print()
    print(text)
    cli.wrote(*written)
    return 1 if report["failed"] else 0


main = cli.command(study.StudySettings, run, __doc__,
                   interrupted="interrupted: rerun the same command to complete the study")

if __name__ == "__main__":
    sys.exit(main())
