"""A study on your own arrays

Does LCR help on your data? Your images and labels go into one `.npz` file, `lcr-study`
trains λ = 0 and λ = 4 over several seeds on it, and the paired difference says how large
the effect is and how certain:

```bash
python examples/study_on_npz.py --npz mine.npz                    # 5 seeds, the defaults
python examples/study_on_npz.py --npz mine.npz --seeds 10 --model resnet18 --epochs 80
python examples/study_on_npz.py                                   # digits as the stand-in
```

The file holds `x` (N×H×W or N×H×W×C, uint8 pixels) and `y` (the class indices 0…K−1),
and optionally `x_test`, `y_test`; without a test split a stratified 20 % is held out.
Without `--npz` the script writes scikit-learn's 8×8 digits into such a file first, to show
the format. Every other flag goes to `lcr-study` as it is (`--epochs`, `--model`,
`--output-dir`, `--robustness`, …). The runs, `study.md` and `study.png` stay in
`--output-dir` (default `runs/study_npz`); rerunning the command skips the finished runs.
Over 5 seeds on digits (10 runs of 40 epochs) it takes about as long as 10 × `make train`
([Studies](../docs/studies.md) has a full study and how to read it).
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np


def write_digits(path: str) -> str:
    """scikit-learn's 1,797 digits as 8×8 uint8 images (0–255) with their labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = np.round(digits.images * (255 / 16)).astype(np.uint8)
    np.savez_compressed(path, x=x, y=digits.target)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="every other flag goes to lcr-study")
    parser.add_argument("--npz", help="your arrays (default: digits, written to --output-dir)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per arm")
    parser.add_argument("--output-dir", default="runs/study_npz")
    args, study_flags = parser.parse_known_args()

    os.makedirs(args.output_dir, exist_ok=True)
    npz = args.npz or write_digits(os.path.join(args.output_dir, "digits.npz"))
    command = [sys.executable, "-m", "lcr_larq.cli.study", "--dataset", f"npz:{npz}",
               "--vary", "lcr_lambda=0,4", "--seeds", str(args.seeds),
               "--output-dir", args.output_dir, *study_flags]
    print("$", " ".join(command[2:]).replace("lcr_larq.cli.study", "lcr-study", 1))
    finished = subprocess.run(command)
    if finished.returncode not in (0, 1):  # 1: some runs failed, listed in the report
        return finished.returncode

    with open(os.path.join(args.output_dir, "study.json"), encoding="utf-8") as handle:
        study = json.load(handle)
    lcr = next(arm for arm in study["arms"] if not arm["control"])
    difference = lcr["test_accuracy_vs_control"]
    print(f"\n{lcr['arm']} minus {study['control']}, test accuracy over "
          f"{difference['n']} paired seeds: {100 * difference['mean']:+.2f} points", end="")
    if difference["ci"] is None:
        print(" (one seed: no interval; run more seeds)")
    else:
        low, high = (100 * bound for bound in difference["ci"])
        verdict = ("LCR helped" if low > 0 else "LCR hurt" if high < 0
                   else "no difference shown: the interval includes 0")
        print(f", 95 % interval [{low:+.2f}, {high:+.2f}], p = {difference['p_value']:.3g}: "
              f"{verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
