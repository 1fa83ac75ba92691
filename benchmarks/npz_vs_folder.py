#!/usr/bin/env python
"""The same data as ``npz:`` and as ``folder:`` gives the same run.

Writes scikit-learn's digits (32×32×1, the split of ``--dataset digits``)
once as an ``.npz`` file (``x``, ``y``, ``x_test``, ``y_test``) and once as
PNG files (``train/<class>/00000.png`` …, ``test/<class>/…``), checks that
both load to identical arrays and batches, then trains ResNet-20 1w1a + LCR
with ``train.py`` on each, with the same seed, and compares test accuracy.

The npz arrays are written in the order the folder reader defines — classes
by sorted name, files by sorted name within a class — so the two sources
agree element for element.

    python benchmarks/npz_vs_folder.py                    # 10 epochs each
    python benchmarks/npz_vs_folder.py --epochs 40 --out /tmp/digits-files
    python benchmarks/npz_vs_folder.py --holdout          # no test split given
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from lcr_larq import data  # noqa: E402


def folder_order(labels: np.ndarray) -> np.ndarray:
    """Indices that sort images by class, keeping their order within a class."""
    return np.argsort(labels, kind="stable")


def write_png_folder(root: str, images: np.ndarray, labels: np.ndarray) -> None:
    """``root/<label>/<rank>.png`` for images already in :func:`folder_order`."""
    ranks: dict[int, int] = {}
    for image, label in zip(images, labels):
        rank = ranks[int(label)] = ranks.get(int(label), -1) + 1
        directory = os.path.join(root, str(int(label)))
        os.makedirs(directory, exist_ok=True)
        Image.fromarray(image[..., 0]).save(os.path.join(directory, f"{rank:05d}.png"))


def write_digits(out: str, holdout: bool) -> tuple[str, str]:
    """Writes digits as ``out/digits.npz`` and ``out/digits/``; returns both specs."""
    x_train, y_train, x_test, y_test = data.digits_arrays()
    if holdout:  # one pool of images: the loaders hold out their own test split
        x_train = np.concatenate([x_train, x_test])
        y_train = np.concatenate([y_train, y_test])
    train_order, test_order = folder_order(y_train), folder_order(y_test)
    x_train, y_train = x_train[train_order], y_train[train_order]
    x_test, y_test = x_test[test_order], y_test[test_order]
    npz = os.path.join(out, "digits.npz")
    folder = os.path.join(out, "digits")
    if holdout:
        np.savez(npz, x=x_train, y=y_train)
        write_png_folder(folder, x_train, y_train)
    else:
        np.savez(npz, x=x_train, y=y_train, x_test=x_test, y_test=y_test)
        write_png_folder(os.path.join(folder, "train"), x_train, y_train)
        write_png_folder(os.path.join(folder, "test"), x_test, y_test)
    return f"npz:{npz}", f"folder:{folder}"


def same_data(spec_a: str, spec_b: str, seed: int) -> dict:
    """Loads both specs and compares arrays, statistics and the seeded batches."""
    a = data.load_dataset(spec_a, batch_size=128, seed=seed)
    b = data.load_dataset(spec_b, batch_size=128, seed=seed)
    arrays = all(np.array_equal(u, v) for u, v in zip(a.test_arrays, b.test_arrays))
    batches = all(
        np.array_equal(xa, xb) and np.array_equal(ya, yb)
        for (xa, ya), (xb, yb) in zip(a.train.as_numpy_iterator(), b.train.as_numpy_iterator())
    )
    return {
        "train_size": [a.train_size, b.train_size],
        "test_size": [a.test_size, b.test_size],
        "input_shape": [list(a.input_shape), list(b.input_shape)],
        "identical_test_arrays": arrays,
        "identical_normalization": a.info["mean"] == b.info["mean"]
        and a.info["std"] == b.info["std"],
        "identical_train_batches": batches,
    }


def train(spec: str, out: str, epochs: int, seed: int) -> dict:
    command = [
        sys.executable, os.path.join(ROOT, "train.py"), "--dataset", spec,
        "--model", "resnet20", "--precision", "1w1a", "--lcr-lambda", "4",
        "--epochs", str(epochs), "--seed", str(seed), "--output-dir", out, "--verbose", "0",
    ]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"train.py failed on {spec}:\n{proc.stderr[-2000:]}")
    with open(os.path.join(out, "results.json"), encoding="utf-8") as handle:
        return json.load(handle)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="working directory (default: a temp dir)")
    parser.add_argument("--holdout", action="store_true",
                        help="write no test split: each loader holds out 20 %%")
    parser.add_argument("--no-train", action="store_true", help="only compare the data")
    args = parser.parse_args(argv)

    out = args.out or tempfile.mkdtemp(prefix="npz-vs-folder-")
    os.makedirs(out, exist_ok=True)
    npz, folder = write_digits(out, args.holdout)
    report = {"npz": npz, "folder": folder, "data": same_data(npz, folder, args.seed)}
    if not args.no_train:
        runs = {}
        for name, spec in (("npz", npz), ("folder", folder)):
            runs[name] = train(spec, os.path.join(out, f"run_{name}"), args.epochs, args.seed)
        report["test_accuracy"] = {k: r["test_accuracy"] for k, r in runs.items()}
        report["test_loss"] = {k: r["test_loss"] for k, r in runs.items()}
        report["epochs"] = args.epochs
        report["same_result"] = runs["npz"]["test_accuracy"] == runs["folder"]["test_accuracy"]
    print(json.dumps(report, indent=2))
    checks = [v for k, v in report["data"].items() if k.startswith("identical")]
    return 0 if all(checks) and report.get("same_result", True) else 1


if __name__ == "__main__":
    sys.exit(main())
