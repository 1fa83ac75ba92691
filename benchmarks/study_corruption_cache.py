#!/usr/bin/env python
"""A study's robustness with one corruption cache for the study against one per run.

Every run of an ``lcr-study --robustness`` is evaluated on the same test
images with the same corruption seed, so ``lcr-study`` generates each
corrupted set once, in ``OUTPUT_DIR/corruption-cache``; ``--corruption-cache
false`` lets every run generate its own, as before. This script trains a
study once (2 arms × 2 seeds of ResNet-20 1w1a on a digits set of 8,000
training and 2,000 test images, :func:`digits_set`), copies it twice and
evaluates the copies, one with each setting, side by side in one process
tree; it prints each evaluation's seconds, the seconds spent generating
corruptions per run (``robustness.json``'s ``seconds.corrupt``) and the
ratio, and checks that both give every run the same mCE.

    python benchmarks/study_corruption_cache.py --out /tmp/cache-bench
    python benchmarks/study_corruption_cache.py --attacks none --severities 3,5
    python benchmarks/study_corruption_cache.py --images 300 100 --epochs 1 --severities 1 \\
        --attacks none   # a quick check that it works, no figure

The training is not timed; rerunning with the same ``--out`` reuses it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from benchmarks.machine import describe_machine  # noqa: E402
from lcr_larq.data.digits import digits_arrays  # noqa: E402

SETTINGS = {"one per run": ["--corruption-cache", "false"], "one per study": []}


def digits_set(train: int = 8000, test: int = 2000, seed: int = 0):
    """``(x, y, x_test, y_test)``: scikit-learn's digits at 16×16, each image
    one of the digits split's (training images from its training split, test
    images from its test split) shifted by up to 2 pixels, with Gaussian
    pixel noise of 8 levels.

    Example:
        >>> x, y, x_test, y_test = digits_set(50, 20)
        >>> x.shape, x_test.shape, x.dtype.name, sorted(set(y_test)) <= list(range(10))
        ((50, 16, 16, 1), (20, 16, 16, 1), 'uint8', True)
    """
    rng = np.random.default_rng(seed)
    x_train, y_train, x_held, y_held = digits_arrays(16)

    def grow(images, labels, count):
        pick = rng.integers(0, len(images), count)
        shifts = rng.integers(-2, 3, (count, 2))
        moved = np.stack([np.roll(images[i], tuple(s), axis=(0, 1))
                          for i, s in zip(pick, shifts)])
        noisy = np.clip(moved + rng.normal(0, 8, moved.shape), 0, 255)
        return np.round(noisy).astype(np.uint8), labels[pick]

    return (*grow(x_train, y_train, train), *grow(x_held, y_held, test))


def corruption_seconds(study_dir: str) -> list[float]:
    """``seconds.corrupt`` of every run's ``robustness.json`` under ``study_dir``, in order."""
    seconds = []
    for root, _, files in sorted(os.walk(study_dir)):
        if "robustness.json" in files:
            with open(os.path.join(root, "robustness.json"), encoding="utf-8") as handle:
                seconds.append(json.load(handle)["seconds"]["corrupt"])
    return seconds


def mces(study_dir: str) -> dict[str, float]:
    with open(os.path.join(study_dir, "study.json"), encoding="utf-8") as handle:
        return {f"{r['arm']} seed {r['seed']}": r["mce"] for r in json.load(handle)["runs"]}


def study(flags: list[str]) -> float:
    """Runs ``lcr-study`` with ``flags``; its wall-clock seconds."""
    began = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "lcr_larq.cli.study", *flags],
                          capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"lcr-study failed:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - began


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="working directory (default: a temp dir)")
    parser.add_argument("--epochs", type=int, default=5, help="training epochs (not timed)")
    parser.add_argument("--severities", default="3,5", help="--mce-severities of the study")
    parser.add_argument("--attacks", default="pgd", help="--attacks of the study")
    parser.add_argument("--images", type=int, nargs=2, default=(8000, 2000),
                        metavar=("TRAIN", "TEST"), help="training and test images of the set")
    args = parser.parse_args(argv)

    out = args.out or tempfile.mkdtemp(prefix="corruption-cache-")
    os.makedirs(out, exist_ok=True)
    data = os.path.join(out, f"digits_{args.images[0]}_{args.images[1]}.npz")
    if not os.path.isfile(data):
        x, y, x_test, y_test = digits_set(*args.images)
        np.savez(data, x=x, y=y, x_test=x_test, y_test=y_test)
    common = ["--dataset", f"npz:{data}", "--vary", "lcr_lambda=0,4", "--seeds", "2",
              "--epochs", str(args.epochs)]
    trained = os.path.join(out, f"trained_{args.images[0]}_{args.images[1]}_{args.epochs}")
    study([*common, "--output-dir", trained])
    rows = {}
    for name, flags in SETTINGS.items():
        copy = os.path.join(out, name.replace(" ", "-"))
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(trained, copy)
        seconds = study([*common, "--robustness", "--mce-severities", args.severities,
                         "--attacks", args.attacks, *flags, "--output-dir", copy])
        rows[name] = {"seconds": seconds, "corrupt": corruption_seconds(copy),
                      "mce": mces(copy)}
    print(describe_machine())
    print(f"2 arms × 2 seeds, {args.images[1]} test images, severities {args.severities}, "
          f"attacks {args.attacks}: the evaluation's seconds (seconds generating corruptions, "
          "per run)")
    for name, row in rows.items():
        per_run = ", ".join(f"{s:.0f}" for s in row["corrupt"])
        print(f"  corrupted sets {name:14s} {row['seconds']:8.1f} s  ({per_run})")
    ratio = rows["one per run"]["seconds"] / rows["one per study"]["seconds"]
    print(f"  one per run / one per study: {ratio:.2f}")
    same = rows["one per run"]["mce"] == rows["one per study"]["mce"]
    print(f"  the same mCE for every run: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
