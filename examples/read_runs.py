"""Reading run directories and plotting

Every run of `lcr-train` (and every run of a study, a tuning search's baseline, …) is a
directory with `results.json` (the test accuracy and the settings) and `history.csv` (one
row per epoch). This script finds the runs under the paths it is given, prints a table of
them and draws their training curves, one colour per λ, into one figure:

```bash
python examples/read_runs.py runs/study                    # the runs of a study
python examples/read_runs.py runs/lcr runs/plain --output curves.png
```

The columns of `history.csv` are Keras' metrics of the training model: `loss`, `accuracy`,
`lcr_lip` (L_lip), `sigma_ratio_mean` and `sigma_ratio_k` (σ_B/σ_F, the mean and block k),
`ede_t`, and the same with `val_` for the validation split; `results.json` holds the test
accuracy (`test_accuracy`, BN statistics re-estimated) and every setting of the run by its
name (`lcr_lambda`, `seed`, `epochs`, …). Both are plain JSON and CSV: this script reads
them with Python's own modules and needs neither TensorFlow nor this project.
"""

import argparse
import csv
import json
import math
import os

import matplotlib
from matplotlib.figure import Figure  # drawn into a file: no window, no backend to choose


def find_runs(paths: list[str]) -> list[str]:
    """The run directories (those holding results.json) under ``paths``, sorted."""
    found = set()
    for path in paths:
        for directory, _, files in os.walk(path):
            if "results.json" in files:
                found.add(directory)
    return sorted(found)


def read_results(directory: str) -> dict:
    with open(os.path.join(directory, "results.json"), encoding="utf-8") as handle:
        return json.load(handle)


def read_history(directory: str) -> dict[str, list[float]]:
    """history.csv as columns of numbers (NaN where a value is missing)."""
    columns: dict[str, list[float]] = {}
    path = os.path.join(directory, "history.csv")
    if os.path.exists(path):
        with open(path, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                for key, value in row.items():
                    try:
                        number = float(value)
                    except (TypeError, ValueError):
                        number = math.nan
                    columns.setdefault(key, []).append(number)
    return columns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="run directories or folders holding them")
    parser.add_argument("--output", default="runs.png", help="the figure (PNG)")
    args = parser.parse_args()

    directories = find_runs(args.paths)
    if not directories:
        parser.error(f"no finished run (results.json) under {' '.join(args.paths)}")
    lambdas = sorted({read_results(d)["lcr_lambda"] for d in directories})
    palette = matplotlib.colormaps["viridis"].resampled(max(2, len(lambdas)))
    colours = {value: palette(index) for index, value in enumerate(lambdas)}
    figure = Figure(figsize=(10, 4))
    accuracy_axes, sigma_axes = figure.subplots(1, 2)
    print(f"{'run':<40} {'λ':>5} {'seed':>5} {'epochs':>6} {'test accuracy':>14}")
    for directory in directories:
        results, history = read_results(directory), read_history(directory)
        print(f"{os.path.relpath(directory):<40} {results['lcr_lambda']:>5g} {results['seed']:>5} "
              f"{results['epochs']:>6} {100 * results['test_accuracy']:>13.2f}%")
        colour = colours[results["lcr_lambda"]]
        epochs = range(1, len(history.get("accuracy", [])) + 1)
        accuracy_axes.plot(epochs, history.get("val_accuracy") or history["accuracy"],
                           color=colour, alpha=0.8)
        if "sigma_ratio_mean" in history:  # runs with λ > 0
            sigma_axes.plot(epochs, history["sigma_ratio_mean"], color=colour, alpha=0.8)
    for value, colour in colours.items():
        accuracy_axes.plot([], [], color=colour, label=f"λ = {value:g}")
    accuracy_axes.set(xlabel="epoch", ylabel="validation accuracy (training, if none)")
    sigma_axes.set(xlabel="epoch", ylabel="σ_B/σ_F, mean over blocks")
    sigma_axes.axhline(1.0, color="gray", linewidth=0.8)
    accuracy_axes.legend()
    figure.tight_layout()
    figure.savefig(args.output, dpi=120)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
