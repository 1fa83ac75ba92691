#!/usr/bin/env python
"""Attaching LCR to a model and loading a saved training model: with the LCR
layer's loss left out of tf-keras' shape-only trace
(:func:`lcr_larq.compat.inferring_output_signature`, the default) divided by
tracing all of it there.

Building a functional model on a layer (``attach_lcr``, ``load_model``) runs
the layer's ``call`` once for the shape of its output. The LCR layer's output
is its input logits; its loss, the power iterations of every block, is made
in the training step. Each turn builds the model afresh, then times
``attach_lcr`` and ``load_model`` of the training model it saved; the two ways
take turns — A B A B … — in one process after one warm-up turn of each
(:mod:`benchmarks.turns`), and the median over the turns is taken.

    python benchmarks/attach.py                          # ResNet-20, 16×16
    python benchmarks/attach.py --model quicknet --size 32 --turns 3
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import lcr_larq  # noqa: E402  (before TensorFlow: tf.keras must be Keras 2)

# isort: split
import tensorflow as tf  # noqa: E402

from benchmarks.machine import describe_machine  # noqa: E402
from benchmarks.turns import alternate  # noqa: E402
from lcr_larq.layers import lcr as lcr_module  # noqa: E402
from models import build_model  # noqa: E402

WAYS = ("traced", "skipped")  # the loss in the shape-only trace / left out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--size", type=int, default=16, help="image side")
    parser.add_argument("--turns", type=int, default=2, help="timed turns of each way")
    return parser


def time_attach_and_load(args, way: str, folder: str) -> tuple[float, float]:
    """Seconds of ``attach_lcr`` and of ``load_model`` of the saved result."""
    detect = lcr_module.inferring_output_signature
    if way == "traced":  # what a layer without the check does
        lcr_module.inferring_output_signature = lambda: False
    try:
        tf.keras.backend.clear_session()
        bnn = build_model(args.model, (args.size, args.size, 1), 10)
        start = time.perf_counter()
        model = lcr_larq.attach_lcr(bnn)
        attached = time.perf_counter()
        path = os.path.join(folder, f"{way}.keras")
        model.save(path)
        saved = time.perf_counter()
        tf.keras.models.load_model(path)
        return attached - start, time.perf_counter() - saved
    finally:
        lcr_module.inferring_output_signature = detect


def main(argv=None) -> None:
    args = _parser().parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        medians = alternate(WAYS, args.turns, lambda way: time_attach_and_load(args, way, folder))
    print(describe_machine())
    print(f"{args.model}, {args.size}×{args.size}, LCR at the defaults; "
          f"median of {args.turns} turns")
    print("| LCR loss in the shape-only trace | attach_lcr (s) | load_model (s) |")
    print("| --- | --- | --- |")
    for way in WAYS:
        print(f"| {way} | {medians[way][0]:.2f} | {medians[way][1]:.2f} |")
    (attach_t, load_t), (attach_s, load_s) = medians["traced"], medians["skipped"]
    print(f"ratio skipped / traced: attach {attach_s / attach_t:.2f}, load {load_s / load_t:.2f}")

if __name__ == "__main__":
    main()
