"""``lcr-tune``: search λ, β, power iterations and the reference of LCR with Keras Tuner.

::

    lcr-tune --max-trials 12 --epochs 10
    lcr-tune --tuner bayesian --lambda-range 0.25 16 --beta-range 1.5 3
    lcr-tune --tuner hyperband --epochs 27 --objective val_mce
    lcr-tune --config runs/tune/search.yaml --max-trials 20   # continue with more trials
    lcr-train --config runs/tune/best.yaml                    # train the best trial

    # on many machines, one shared --output-dir: Keras Tuner's chief and workers
    export KERASTUNER_ORACLE_IP=10.0.0.1 KERASTUNER_ORACLE_PORT=8000
    KERASTUNER_TUNER_ID=chief  lcr-tune --output-dir /shared/tune --max-trials 12
    KERASTUNER_TUNER_ID=tuner0 lcr-tune --output-dir /shared/tune --max-trials 12

Every flag of ``lcr-train`` but the four searched settings sets every trial
and the λ = 0 baseline; the search is :func:`lcr_larq.experiments.tuning.run_search`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from lcr_larq import cli
from lcr_larq.experiments import tuning
from lcr_larq.experiments.tuning.report import columns
from lcr_larq.experiments.tuning.settings import RANGES, SEARCHED
from lcr_larq.settings import flag_name

__all__ = [
    "INTERRUPTED",
    "main",
    "searched_flag",
    "tune",
]

PROG, _ = cli.command_line(__doc__)
INTERRUPTED = "interrupted: rerun the same command to continue the search"


def tune(config: tuning.TuneConfig) -> None:
    """Runs the search, prints the trials and says what it wrote."""
    result = tuning.run_search(config, progress=cli.progress(config.verbose == 0))
    if result.role.kind == "worker":
        print(f"{result.role.tuner_id} trained {trained(result)}; the chief writes "
              f"{result.trials_path} and its best.yaml")
        return
    header = columns(result.rows)
    print()
    print(cli.table([[row.get(k) for k in header] for row in result.rows], header,
                    title=f" {config.objective}, best first "))
    print()
    cli.wrote(result.trials_path, *([result.best_path] if result.best_path else []),
              result.search_path)
    if result.best_path:
        print(f"train the best trial: lcr-train --config {result.best_path}")


def trained(result: tuning.SearchResult) -> str:
    """What a search process trained, with the epochs it ran of each.

    Example:
        >>> trained(tuning.SearchResult([], None, "t.csv", None, "s.yaml",
        ...                             ["baseline", "1", "3"],
        ...                             {"baseline": [0, 1], "1": [1], "3": []}))
        'the λ = 0 baseline (epochs 1-2), trial 1 (epoch 2), trial 3 (no epoch left: scored)'
    """
    def one(trial: str) -> str:
        name = "the λ = 0 baseline" if trial == tuning.BASELINE else f"trial {trial}"
        epochs = result.epochs_run.get(trial, [])
        if not epochs:
            return f"{name} (no epoch left: scored)"
        if len(epochs) == 1:
            return f"{name} (epoch {epochs[0] + 1})"
        return f"{name} (epochs {epochs[0] + 1}-{epochs[-1] + 1})"

    return ", ".join(map(one, result.executed)) or "no trial"


def searched_flag(argv: Sequence[str]) -> str | None:
    """The one-line refusal of a searched setting given as a flag, else None.

    Example:
        >>> searched_flag(["--epochs", "3", "--lcr-lambda=2"])
        '--lcr-lambda is searched: set its range with --lambda-range (LOW = HIGH fixes it)'
        >>> searched_flag(["--lcr-form", "mse"]) is None
        True
    """
    for arg in argv:
        if arg == "--":
            break
        for name, range_name in RANGES.items():
            flag = flag_name(name)
            if arg == flag or arg.startswith(flag + "="):
                fixes = "one value fixes it" if name == "lcr_reference" else "LOW = HIGH fixes it"
                return (f"{flag} is searched: set its range with {flag_name(range_name)} "
                        f"({fixes})")
    return None


_command = cli.command(tuning.TuneConfig, tune, __doc__, interrupted=INTERRUPTED,
                       exclude=SEARCHED)


def main(argv: Sequence[str] | None = None) -> int:
    """``lcr-tune``; returns the exit code. A searched setting given as a flag
    is refused in one line naming its range flag."""
    args = list(sys.argv[1:] if argv is None else argv)
    refusal = searched_flag(args)
    if refusal:
        print(f"error: {refusal} (see {PROG} --help)", file=sys.stderr)
        return 2
    return _command(args)


main.settings = tuning.TuneConfig

if __name__ == "__main__":
    sys.exit(main())
