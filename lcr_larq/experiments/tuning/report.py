"""The tables of a search: ``trials.csv`` (the baseline first, then the
trials best first) and ``best.yaml`` (the best trial as a recipe).

Example:
    >>> columns([{"a": 1}, {"b": 2, "a": 3}])
    ['a', 'b']
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from lcr_larq.experiments.tuning.settings import (
    BASELINE,
    METRICS,
    OBJECTIVES,
    TuneConfig,
    baseline_config,
    trial_config,
)
from lcr_larq.settings import save_recipe
from lcr_larq.training import TrainConfig

__all__ = [
    "columns",
    "last_line",
    "trial_rows",
    "write_best",
    "write_table",
]


def last_line(message: str | None) -> str:
    """The last non-empty line of a trial's message (its traceback), the
    module path of the exception's class left out.

    Example:
        >>> last_line("Traceback (most recent call last):\\n  ...\\nValueError: boom\\n")
        'ValueError: boom'
        >>> last_line("lcr_larq.errors.RunError: training diverged")
        'RunError: training diverged'
    """
    lines = [line.strip() for line in (message or "").splitlines() if line.strip()]
    return re.sub(r"^(?:\w+\.)+(\w+(?:Error|Exception|Interrupt)\b)", r"\1",
                  lines[-1]) if lines else "no message"


def _row(config: TuneConfig, trial_id: str, status: str, values: Mapping[str, Any],
         metrics: Mapping[str, float | None], baseline: bool = False) -> dict[str, Any]:
    run = baseline_config(config) if baseline else trial_config(config, values)
    row: dict[str, Any] = {
        "rank": None,
        "trial": trial_id,
        "status": status,
        config.objective: metrics.get(config.objective) if status == "COMPLETED" else None,
        "lcr_lambda": run.lcr_lambda,
        "log2_lambda": None if baseline else math.log2(run.lcr_lambda),
        "lcr_beta": None if baseline else run.lcr_beta,
        "power_iterations": None if baseline else run.power_iterations,
        "lcr_reference": None if baseline else run.lcr_reference,
        "epochs": values.get("tuner/epochs", config.epochs),
    }
    if config.tuner == "hyperband":
        row["continues"] = values.get("tuner/trial_id")
    for name in METRICS:
        if name != config.objective and (name != "val_mce" or config.objective == name):
            row[name] = metrics.get(name)
    return row


def trial_rows(config: TuneConfig, trials: Sequence, baseline: dict | None | str = None
               ) -> list[dict[str, Any]]:
    """One row per trial: the baseline first (``baseline``: its
    ``result.json``, or its status when it has not finished), then the
    finished trials best first (ranked; ties by id), then the others by id.

    ``trials`` are Keras Tuner ``Trial`` objects (``tuner.oracle.trials``).
    """
    direction = OBJECTIVES[config.objective]
    done, rest = [], []
    for trial in trials:
        metrics = {
            name: trial.metrics.get_last_value(name)
            for name in (*METRICS, config.objective) if trial.metrics.exists(name)
        }
        if trial.status == "COMPLETED":
            metrics[config.objective] = trial.score
        row = _row(config, trial.trial_id, trial.status, trial.hyperparameters.values, metrics)
        if trial.status in ("INVALID", "FAILED"):
            row["error"] = last_line(trial.message)
        (done if row[config.objective] is not None else rest).append(row)
    sign = -1 if direction == "max" else 1  # ties: the earlier trial first
    done.sort(key=lambda r: (sign * r[config.objective], int(r["trial"])))
    rest.sort(key=lambda r: int(r["trial"]))
    for rank, row in enumerate(done, start=1):
        row["rank"] = rank
    first = []
    if isinstance(baseline, dict):
        first = [_row(config, BASELINE, baseline["status"], {}, baseline["metrics"], True)]
    elif baseline:
        first = [_row(config, BASELINE, str(baseline), {}, {}, True)]
    return first + done + rest


def columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every key of ``rows``, in the order first seen."""
    return list(dict.fromkeys(k for row in rows for k in row))


def write_table(rows: Sequence[Mapping[str, Any]], path: str) -> None:
    """``rows`` as CSV (an empty cell for None)."""
    fields = columns(rows)
    temporary = f"{path}.tmp"
    with open(temporary, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in fields})
    os.replace(temporary, path)


def write_best(run: TrainConfig, row: Mapping[str, Any], config: TuneConfig,
               baseline: Mapping[str, Any] | None, path: str) -> None:
    """``run`` as a recipe of ``lcr-train --config``, headed by its score."""
    objective = config.objective
    header = [
        f"# best LCR trial ({row['trial']}) of lcr-tune: {objective} = {row[objective]:.6g} on "
        "the validation split",
    ]
    if baseline and baseline.get(objective) is not None:
        header.append(f"# the λ = 0 baseline: {objective} = {baseline[objective]:.6g}")
    header.append(f"# train it: lcr-train --config {path}")
    save_recipe(run, path)
    with open(path, encoding="utf-8") as handle:
        recipe = handle.read()
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(header) + "\n" + recipe)
