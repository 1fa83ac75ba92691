#!/usr/bin/env python
"""Test accuracy against the LCR strength λ, over seeds (the paper's Table 3).

Trains one run per (λ, seed) with the same code as ``train.py`` and writes in
``--output-dir`` (default ``runs/sweep``):

* ``lambda_<λ>_seed_<s>/`` — each run's directory (``results.json`` …);
* ``runs.csv`` — one row per run: λ, log2 λ, seed, test accuracy, loss, seconds;
* ``summary.csv`` — one row per λ: runs, mean and sample std of the test
  accuracy, min, max;
* ``accuracy_vs_log2_lambda.png`` — mean ± std against log2 λ, the seeds as
  dots, λ = 0 (the plain BNN) as a dashed line with its ±std band.

Every finished run is kept: rerunning the command skips runs that have a
``results.json`` and resumes an interrupted one from its last finished epoch.
The tables and the plot are rewritten after every run.

    python benchmarks/lambda_sweep.py --epochs 15
    python benchmarks/lambda_sweep.py --lambdas 0 1 4 --seeds 0 1 --model resnet18
    python benchmarks/lambda_sweep.py --epochs 15 --report-only   # tables and plot only

Every ``train.py`` flag is accepted and applies to all runs, except
``--lcr-lambda`` and ``--seed``, which the sweep sets (``--lambdas``, ``--seeds``).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lcr_larq import config as cfg  # noqa: E402

#: λ = 0 (the plain BNN) and the paper's log2 λ ∈ {−1, 0, 1, 2, 3}.
PAPER_LAMBDAS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)
DEFAULT_OUTPUT = os.path.join("runs", "sweep")
PLOT_NAME = "accuracy_vs_log2_lambda.png"


def run_name(lcr_lambda: float, seed: int) -> str:
    """The directory of one run.

    Example:
        >>> run_name(0.5, 2)
        'lambda_0.5_seed_2'
    """
    return f"lambda_{lcr_lambda:g}_seed_{seed}"


def log2_lambda(lcr_lambda: float) -> float:
    """log2 λ, ``-inf`` for the baseline λ = 0.

    Example:
        >>> log2_lambda(8.0), log2_lambda(0.0)
        (3.0, -inf)
    """
    return math.log2(lcr_lambda) if lcr_lambda > 0 else -math.inf


def summarize(rows: list[dict]) -> list[dict]:
    """Per λ: number of runs, mean and sample std of the test accuracy, min, max.

    Example:
        >>> rows = [{"lcr_lambda": 1.0, "test_accuracy": a} for a in (0.8, 0.9)]
        >>> s = summarize(rows)[0]
        >>> s["runs"], round(s["mean"], 3), round(s["std"], 4)
        (2, 0.85, 0.0707)
    """
    by_lambda: dict[float, list[float]] = {}
    for row in rows:
        by_lambda.setdefault(float(row["lcr_lambda"]), []).append(float(row["test_accuracy"]))
    summary = []
    for lcr_lambda in sorted(by_lambda):
        values = by_lambda[lcr_lambda]
        summary.append({
            "lcr_lambda": lcr_lambda,
            "log2_lambda": log2_lambda(lcr_lambda),
            "runs": len(values),
            "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values),
            "max": max(values),
        })
    return summary


def format_summary(summary: list[dict]) -> str:
    """The summary as an aligned text table, accuracies in percent."""
    lines = [f"{'λ':>6} {'log2 λ':>7} {'runs':>5} {'test accuracy (%)':>19} "
             f"{'min':>6} {'max':>6}"]
    for s in summary:
        log2 = "base" if s["lcr_lambda"] == 0 else f"{s['log2_lambda']:g}"
        lines.append(
            f"{s['lcr_lambda']:>6g} {log2:>7} {s['runs']:>5} "
            f"{100 * s['mean']:>11.2f} ± {100 * s['std']:<5.2f} "
            f"{100 * s['min']:>6.2f} {100 * s['max']:>6.2f}"
        )
    return "\n".join(lines)


def write_csv(path: str, rows: list[dict]) -> None:
    if not rows:
        return
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def plot(summary: list[dict], rows: list[dict], path: str, title: str) -> None:
    """Mean ± std of the test accuracy against log2 λ; λ = 0 as a dashed band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 4.0), dpi=120)
    lcr = [s for s in summary if s["lcr_lambda"] > 0]
    if lcr:
        x = [s["log2_lambda"] for s in lcr]
        ax.errorbar(x, [100 * s["mean"] for s in lcr], yerr=[100 * s["std"] for s in lcr],
                    marker="o", capsize=4, color="C0", label="LCR (mean ± std)")
        seeds = [r for r in rows if float(r["lcr_lambda"]) > 0]
        ax.scatter([log2_lambda(float(r["lcr_lambda"])) for r in seeds],
                   [100 * float(r["test_accuracy"]) for r in seeds],
                   s=12, color="C0", alpha=0.4, label="single seeds")
        ax.set_xticks(x)
    base = [s for s in summary if s["lcr_lambda"] == 0]
    if base:
        mean, std = 100 * base[0]["mean"], 100 * base[0]["std"]
        ax.axhline(mean, color="C3", linestyle="--", label="λ = 0 (plain BNN)")
        ax.axhspan(mean - std, mean + std, color="C3", alpha=0.12)
    ax.set_xlabel("log2 λ")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run_row(results: dict) -> dict:
    return {
        "lcr_lambda": results["lcr_lambda"],
        "log2_lambda": log2_lambda(results["lcr_lambda"]),
        "seed": results["seed"],
        "test_accuracy": results["test_accuracy"],
        "test_loss": results["test_loss"],
        "epochs": results["epochs"],
        "seconds": results["seconds"],
    }


def report(base: cfg.TrainConfig, lambdas, seeds, output_dir: str) -> list[dict]:
    """Reads the finished runs, writes the CSVs and the plot; returns the summary."""
    rows = []
    for lcr_lambda in lambdas:
        for seed in seeds:
            path = os.path.join(output_dir, run_name(lcr_lambda, seed), "results.json")
            if os.path.isfile(path):
                with open(path) as handle:
                    rows.append(run_row(json.load(handle)))
    summary = summarize(rows)
    write_csv(os.path.join(output_dir, "runs.csv"), rows)
    write_csv(os.path.join(output_dir, "summary.csv"), summary)
    if summary:
        runs = max(s["runs"] for s in summary)
        title = (f"{base.model} {base.precision} on {base.dataset}, {base.epochs} epochs, "
                 f"{runs} seed{'s' if runs > 1 else ''} per λ, β={base.lcr_beta:g}")
        plot(summary, rows, os.path.join(output_dir, PLOT_NAME), title)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cfg.add_arguments(parser)
    parser.add_argument("--lambdas", type=float, nargs="+", default=list(PAPER_LAMBDAS),
                        help=f"λ values (default: {' '.join(map(str, PAPER_LAMBDAS))})")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="seeds of every λ (default: 0 1 2)")
    parser.add_argument("--report-only", action="store_true",
                        help="write the tables and the plot from finished runs only")
    args = parser.parse_args(argv)
    given = vars(args)
    for swept, flag in (("lcr_lambda", "--lambdas"), ("seed", "--seeds")):
        if swept in given:
            print(f"error: --{swept.replace('_', '-')} is swept; use {flag}", file=sys.stderr)
            return 2
    if "output_dir" not in given:
        args.output_dir = DEFAULT_OUTPUT

    from lcr_larq import data, training

    try:
        base = cfg.build_config(args)
        for lcr_lambda in args.lambdas:
            cfg.validate(dataclasses.replace(base, lcr_lambda=lcr_lambda))
        os.makedirs(base.output_dir, exist_ok=True)
        for lcr_lambda in [] if args.report_only else args.lambdas:
            for seed in args.seeds:
                out = os.path.join(base.output_dir, run_name(lcr_lambda, seed))
                if os.path.isfile(os.path.join(out, "results.json")):
                    continue
                config = dataclasses.replace(base, lcr_lambda=lcr_lambda, seed=seed,
                                             output_dir=out)
                results = training.run(config)
                print(f"λ={lcr_lambda:g} seed={seed}: test accuracy "
                      f"{100 * results['test_accuracy']:.2f}% ({results['seconds']:.0f} s)",
                      flush=True)
                report(base, args.lambdas, args.seeds, base.output_dir)
                import tensorflow as tf

                tf.keras.backend.clear_session()
        summary = report(base, args.lambdas, args.seeds, base.output_dir)
    except (cfg.ConfigError, data.DataError, training.TrainingError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: rerun the same command to continue the sweep", file=sys.stderr)
        return 130
    print(format_summary(summary))
    print(f"\nwrote {os.path.join(base.output_dir, 'summary.csv')} and "
          f"{os.path.join(base.output_dir, PLOT_NAME)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
