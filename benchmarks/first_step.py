#!/usr/bin/env python
"""The first training step and the first evaluation of a compiled model:
with the step's variables created beforehand
(:func:`lcr_larq.training.build_step_variables`, as ``lcr-train`` does)
divided by Keras' default, which creates them in the first step.

A ``tf.function`` that creates variables on its first call is traced twice,
and on a short run tracing is most of the time. Each turn builds the model
afresh (the same seed), compiles it, then times one ``model.fit`` step and one
``model.evaluate`` batch; the two ways take turns — A B A B … — in one
process, after one warm-up turn of each (:mod:`benchmarks.turns`), and the
median over the turns is taken.

    python benchmarks/first_step.py                        # ResNet-20 + LCR, 16×16
    python benchmarks/first_step.py --model resnet8 --lcr-lambda 0 --turns 5
"""

from __future__ import annotations

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import lcr_larq  # noqa: E402  (before TensorFlow: tf.keras must be Keras 2)

# isort: split
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.machine import describe_machine  # noqa: E402
from benchmarks.turns import alternate  # noqa: E402
from lcr_larq.losses import SparseCrossEntropy  # noqa: E402
from lcr_larq.optimizers import SGD  # noqa: E402
from lcr_larq.training import build_step_variables  # noqa: E402
from models import build_model  # noqa: E402

WAYS = ("keras", "built")  # variables made in the first step / beforehand


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--size", type=int, default=16, help="image side")
    parser.add_argument("--lcr-lambda", type=float, default=4.0, help="0: no LCR")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--turns", type=int, default=2, help="timed turns of each way")
    return parser


def _data(size: int, batch: int) -> tf.data.Dataset:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, size, size, 1)).astype(np.float32)
    y = rng.integers(0, 10, size=batch).astype(np.int32)
    return tf.data.Dataset.from_tensors((x, y)).repeat()


def time_first_steps(args, way: str, data: tf.data.Dataset) -> tuple[float, float]:
    """Seconds of the first ``fit`` step and the first ``evaluate`` batch."""
    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(0)
    model = build_model(args.model, (args.size, args.size, 1), 10)
    if args.lcr_lambda > 0:
        model = lcr_larq.attach_lcr(model, lcr_lambda=args.lcr_lambda)
    model.compile(SGD(0.1, momentum=0.9), SparseCrossEntropy(), metrics=["accuracy"])
    if way == "built":
        build_step_variables(model)
    start = time.perf_counter()
    model.fit(data, epochs=1, steps_per_epoch=1, verbose=0,
              callbacks=lcr_larq.schedules_for(model, 1, 1))
    fitted = time.perf_counter()
    model.evaluate(data, steps=1, verbose=0)
    return fitted - start, time.perf_counter() - fitted


def main(argv=None) -> None:
    args = _parser().parse_args(argv)
    data = _data(args.size, args.batch_size)
    medians = alternate(WAYS, args.turns, lambda way: time_first_steps(args, way, data))
    print(describe_machine())
    lcr = f"LCR λ = {args.lcr_lambda:g}" if args.lcr_lambda > 0 else "no LCR"
    print(f"{args.model}, {args.size}×{args.size}, batch {args.batch_size}, {lcr}; "
          f"median of {args.turns} turns")
    print("| variables made | first fit step (s) | first evaluate batch (s) |")
    print("| --- | --- | --- |")
    for way in WAYS:
        label = "in the first step (Keras)" if way == "keras" else "beforehand"
        print(f"| {label} | {medians[way][0]:.2f} | {medians[way][1]:.2f} |")
    (fit_k, eval_k), (fit_b, eval_b) = medians["keras"], medians["built"]
    print(f"ratio beforehand / Keras: fit {fit_b / fit_k:.2f}, evaluate {eval_b / eval_k:.2f}")

if __name__ == "__main__":
    main()
