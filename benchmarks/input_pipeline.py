#!/usr/bin/env python
"""Is the input pipeline ever the bottleneck? CIFAR pipeline vs training step.

Measures, on this machine:

* the images/s of the CIFAR-10 training pipeline of :mod:`lcr_larq.data`
  (cache → seeded shuffle → pad-4 crop + flip → batch → normalize →
  prefetch), alone, over whole epochs: the first epoch fills the cache, the
  later ones are the steady state of a long run;
* the images/s of one training step of ResNet-20 1w1a with LCR attached
  (λ = 4, ratio form, 5 power iterations), SGD, on a fixed batch, warm-up
  steps excluded;

and their ratio, which must be at least 3 so that input never starves the
step. Without ``--data-dir`` the pipeline reads 50,000 random CIFAR-sized
images served through ``tfds.testing.mock_data`` (no network needed): every
stage after reading is the real one. With ``--data-dir`` it reads the real
TFDS ``cifar10``.

    python benchmarks/input_pipeline.py                 # table
    python benchmarks/input_pipeline.py --json          # one JSON line
    python benchmarks/input_pipeline.py --data-dir ~/tensorflow_datasets
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import lcr_larq  # noqa: E402, F401  (before TensorFlow: tf.keras must be Keras 2)

# isort: split
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from lcr_larq import data  # noqa: E402
from models import build_model  # noqa: E402

REQUIRED_RATIO = 3.0


def synthetic_cifar(train: int, test: int, seed: int = 0):
    """A mock ``_as_dataset`` serving random 32×32×3 uint8 images, like CIFAR-10."""
    rng = np.random.default_rng(seed)
    splits = {
        "train": rng.integers(0, 256, (train, 32, 32, 3), dtype=np.uint8),
        "test": rng.integers(0, 256, (test, 32, 32, 3), dtype=np.uint8),
    }

    def as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False, **_):
        images = splits[str(split).split("[")[0]]
        labels = rng.integers(0, 10, len(images)).astype(np.int64)
        return tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})

    return as_dataset


def load_cifar(batch: int, data_dir: str | None, train: int, test: int) -> data.Dataset:
    if data_dir:
        return data.load_dataset("cifar10", batch_size=batch, seed=0, data_dir=data_dir)
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(as_dataset_fn=synthetic_cifar(train, test)):
        return data.load_dataset("cifar10", batch_size=batch, seed=0)


def pipeline_rate(dataset: data.Dataset, epochs: int) -> list[float]:
    """Images/s of each full epoch of ``dataset.train`` (batches materialized)."""
    rates = []
    for _ in range(epochs):
        count, start = 0, time.perf_counter()
        for x, _ in dataset.train:
            count += int(x.shape[0])
        rates.append(count / (time.perf_counter() - start))
    return rates


def step_rate(batch: int, warmup: int, steps: int, lcr_lambda: float) -> float:
    """Images/s of the ResNet-20 1w1a training step (with LCR when λ > 0)."""
    tf.keras.utils.set_random_seed(0)
    model = build_model("resnet20", (32, 32, 3), 10)
    if lcr_lambda > 0:
        model = lcr_larq.attach_lcr(model, lcr_lambda=lcr_lambda)
    model.compile(
        optimizer=tf.keras.optimizers.SGD(0.1, momentum=0.9),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(batch, 32, 32, 3)).astype(np.float32))
    y = tf.constant(rng.integers(0, 10, batch).astype(np.int32))
    for _ in range(warmup):
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return batch * steps / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3, help="pipeline epochs (≥ 2)")
    parser.add_argument("--train-images", type=int, default=50_000)
    parser.add_argument("--test-images", type=int, default=10_000)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--lcr-lambda", type=float, default=4.0)
    parser.add_argument("--data-dir", default=None, help="TFDS directory holding cifar10")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args(argv)

    dataset = load_cifar(args.batch_size, args.data_dir, args.train_images, args.test_images)
    rates = pipeline_rate(dataset, max(2, args.epochs))
    steady = float(np.median(rates[1:]))
    step = step_rate(args.batch_size, args.warmup, args.steps, args.lcr_lambda)
    ratio = steady / step
    result = {
        "source": "tfds cifar10" if args.data_dir else "synthetic cifar10 via tfds mock_data",
        "batch_size": args.batch_size,
        "pipeline_first_epoch_images_per_s": round(rates[0], 1),
        "pipeline_images_per_s": round(steady, 1),
        "step_images_per_s": round(step, 1),
        "step_model": f"resnet20 1w1a{' + LCR' if args.lcr_lambda > 0 else ''}",
        "ratio": round(ratio, 1),
        "required_ratio": REQUIRED_RATIO,
        "ok": ratio >= REQUIRED_RATIO,
        "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"CIFAR-10 input pipeline ({result['source']}, batch {args.batch_size})")
        print(f"  first epoch (fills the cache)  {rates[0]:10.0f} images/s")
        print(f"  steady state                   {steady:10.0f} images/s")
        print(f"training step, {result['step_model']}     {step:10.0f} images/s")
        verdict = "OK" if result["ok"] else "TOO SLOW"
        print(f"pipeline / step                  {ratio:10.1f}×  (need ≥ {REQUIRED_RATIO:g}×: "
              f"{verdict})")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
